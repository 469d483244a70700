/* api.h - the bridge's HTTP API: GET /healthz, GET /readyz, GET
 * /api/status, the inbox's REST API and live stream (japi.h) and the
 * dashboard's files.
 *
 * Threads: the HTTP workers'; new, stop and free on the loop thread.
 * Needs (at creation): the HTTP server (not started yet), the inbox
 * journal, and a view of the bridge (view.h).
 */
#ifndef BRIDGE_API_H
#define BRIDGE_API_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "http.h"
#include "journal.h"
#include "view.h"

typedef struct bridge_api bridge_api;

typedef struct bridge_api_opts {
	const char *node_id, *site; /* who we are */
	const char *filter;	    /* the edge subscription */
	const char *journal_path;
	uint64_t journal_max_bytes;
	size_t cloud_nodes; /* URLs in cloud.url */
	int live_max;	    /* concurrent /api/live streams */
} bridge_api_opts;

typedef struct bridge_api_deps {
	es_http *http;
	es_journal *journal;
	bridge_view_fn view;
	void *ctx;
} bridge_api_deps;

/* Routes every path above (before es_http_start); copies o's strings.
 * ES_EINVAL, ES_ENOMEM, the journal's errors. */
es_err bridge_api_new(const bridge_api_opts *o, const bridge_api_deps *d, bridge_api **out);
/* Ends the live streams: before es_http_free, which waits for them. */
void bridge_api_stop(bridge_api *a);
/* After es_http_free. NULL ok. */
void bridge_api_free(bridge_api *a);

/* /api/status as malloc'd JSON text (cJSON_free it), or NULL. Any thread. */
char *bridge_api_status_json(void *api);

#endif
