/* api.h - the agent's own HTTP routes: GET /healthz, GET /readyz, GET
 * /api/status, GET /api/devices and POST /api/replay (docs/api.md). POST
 * /api/events is ingest.h's; the journal's REST API is common/japi.h's;
 * GET /metrics is metrics.h's.
 *
 * Runs on the HTTP server's worker threads. Needs, at creation: the HTTP
 * server (routes are added before it starts), the journal and a reader of
 * the HTTP threads' with its lock, and what it reports or forwards, each
 * through its own header and only what that says any thread may call: the
 * loop's view (view.h), ingest's counts (ingest.h), the device links
 * (links.h; NULL when none) and the re-send service (agent_resend_ask).
 */
#ifndef AGENT_API_H
#define AGENT_API_H

#include <pthread.h>
#include <stdint.h>

#include "err.h"
#include "http.h"
#include "ingest.h"
#include "journal.h"
#include "links.h"
#include "resend.h"
#include "view.h"

typedef struct agent_api agent_api;

typedef struct agent_api_opts {
	es_http *http;
	es_journal *journal;
	es_journal_reader *reader; /* read under reader_lock */
	pthread_mutex_t *reader_lock;
	agent_view *view;
	agent_ingest *ingest;
	agent_resend *resend;
	links *links; /* NULL: no device links */
	/* What /api/status says of the node; borrowed. */
	const char *node, *site, *source, *boot_id;
	const char *broker_url, *client_id, *journal_path;
	uint64_t journal_max_bytes;
} agent_api_opts;

/* Adds the routes. Everything in o must outlive the result. ES_EINVAL,
 * ES_ENOMEM, or a route's error. */
es_err agent_api_new(const agent_api_opts *o, agent_api **out);
/* After the HTTP server is freed. NULL ok. */
void agent_api_free(agent_api *api);

/* /api/status as JSON text (malloc'd; NULL when out of memory), for the
 * route and the live stream (es_japi_opts.status_json). Any thread. */
char *agent_api_status_json(void *api);

#endif
