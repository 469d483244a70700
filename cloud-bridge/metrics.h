/* metrics.h - the bridge's metrics and GET /metrics (docs/metrics.md): the
 * families every node has (node_metrics.h, with the bridge's words), the
 * forward latency from inbox commit to cloud PUBACK, and the bridge's own
 * families, copied from a view of the bridge (view.h) when /metrics is
 * rendered.
 *
 * Threads: bridge_metrics_sent, _acked and _lost on the loop thread;
 * bridge_metrics_on_request and the render on any thread.
 * Needs (at creation): the HTTP server (not started yet), the inbox
 * journal and the view.
 */
#ifndef BRIDGE_METRICS_H
#define BRIDGE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "http.h"
#include "journal.h"
#include "view.h"

typedef struct bridge_metrics bridge_metrics;

typedef struct bridge_metrics_opts {
	const char *const *cloud_urls; /* cloud.url, must outlive the metrics */
	size_t ncloud_urls;
	uint64_t journal_max_bytes;
} bridge_metrics_opts;

typedef struct bridge_metrics_deps {
	es_http *http;
	es_journal *journal;
	bridge_view_fn view;
	void *ctx;
} bridge_metrics_deps;

/* Makes the registry and routes GET /metrics (before es_http_start).
 * ES_EINVAL, ES_ENOMEM, the journal's errors (logged). */
es_err bridge_metrics_new(const bridge_metrics_opts *o, const bridge_metrics_deps *d,
			  bridge_metrics **out);
/* After the HTTP workers and the loop are done with it. NULL ok. */
void bridge_metrics_free(bridge_metrics *m);

/* An inbox row published to the cloud (its seq, when it was journaled, wall
 * ms); its PUBACK; the cloud connection lost. Loop thread; NULL m ok. */
void bridge_metrics_sent(bridge_metrics *m, uint64_t seq, uint64_t journaled_ms);
void bridge_metrics_acked(bridge_metrics *m, uint64_t seq);
void bridge_metrics_lost(bridge_metrics *m);

/* Counts an answered HTTP request (es_http_opts.on_request's shape). Any
 * thread; NULL m ok. */
void bridge_metrics_on_request(bridge_metrics *m, const char *method, const char *route, int status,
			       double seconds);

#endif
