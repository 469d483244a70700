/* japi.h - the REST API both programs serve over their journal
 * (docs/api.md): GET /api/events, GET /api/events/{id}, GET
 * /api/deadletters, GET /api/series and the live stream GET /api/live.
 *
 * Handlers run on the HTTP threads and read through one journal reader of
 * their own (under a lock). A sampler thread keeps the 15-minute series:
 * every 10 s it turns the journal's counters into one point.
 */
#ifndef ES_JAPI_H
#define ES_JAPI_H

#include "err.h"
#include "http.h"
#include "journal.h"
#include "metrics.h"

typedef struct es_japi es_japi;

typedef struct es_japi_opts {
	es_http *http;
	es_journal *journal;
	/* The node's /api/status as malloc'd JSON text (an object), or NULL;
	 * called from HTTP threads. /api/live sends it every 2 s. */
	char *(*status_json)(void *ctx);
	void *ctx;
	/* Concurrent /api/live streams (each holds an HTTP worker), at most
	 * ES_JAPI_LIVE_CAP; another gets one "busy" event and its end. */
	int live_max;
} es_japi_opts;

#define ES_JAPI_STEP_S	 10
#define ES_JAPI_POINTS	 90 /* 15 minutes */
#define ES_JAPI_LIMIT	 500
#define ES_JAPI_LIVE_S	 2
#define ES_JAPI_LIVE_MAX 600 /* seconds a stream lasts; the browser reconnects */
#define ES_JAPI_LIVE_CAP 32  /* streams at most, whatever live_max says */

/* Registers the routes (before es_http_start) and starts the sampler. */
es_err es_japi_new(const es_japi_opts *o, es_japi **out);
/* Ends the live streams: call before es_http_free, which waits for them. */
void es_japi_stop(es_japi *a);
/* Stops the sampler and frees; after es_http_free. NULL ok. */
void es_japi_free(es_japi *a);

/* Adds "recent_errors" (the log's newest warnings and errors) to a cJSON
 * object (given as void * so this header needs no cJSON). */
void es_japi_add_recent_errors(void *json_object);

/* Replies with the cJSON value as compact JSON (200, 503, ...) and frees it;
 * NULL or a failed print (out of memory) gives 503. Returns the status sent.
 * The value is given as void * so this header needs no cJSON. */
int es_japi_reply_json(es_http_req *req, int status, void *json);

/* GET /readyz: one named condition a program needs in place to do its job
 * (its journal writable, its subscriptions acknowledged, ...). */
typedef struct es_ready_check {
	const char *name;
	bool ok;
} es_ready_check;

/* Replies {"ready":R,"checks":{"<name>":true|false,...}}: 200 when every
 * check is ok, else 503. Returns the status sent. */
int es_japi_reply_ready(es_http_req *req, const es_ready_check *checks, size_t n);

/* Replies with the registry rendered in the Prometheus text format (200), or
 * 503 when it cannot be rendered. Returns the status sent. */
int es_japi_reply_metrics(es_http_req *req, es_metrics *m);

/* Parses a limit/before/after style parameter: digits only, in [min, max]. */
bool es_japi_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
