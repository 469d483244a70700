/* node_metrics.h - the metrics every node has, and its GET /metrics.
 *
 * An es_node_metrics owns a registry (metrics.h) holding the families the
 * agent and the bridge share: edgespool_build_info, the journal's (copied
 * from its counters and stats by a collector at each render), the events
 * sent and acked with the time from their commit to their ack (an
 * es_latency), the link families (set by the node's collector through
 * es_node_metrics_link), the HTTP request counter and duration histogram
 * (es_node_metrics_on_request, the http module's hook) and the process
 * metrics. The node adds its own families and collector through the
 * options, and GET /metrics (ES_ROUTE_METRICS) renders the registry.
 *
 * Threads: es_node_metrics_sent, _acked and _reset belong to one thread
 * (the loop's); the other updates and the render are any thread's.
 */
#ifndef ES_NODE_METRICS_H
#define ES_NODE_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "http.h"
#include "journal.h"
#include "metrics.h"

typedef struct es_node_metrics es_node_metrics;

/* One family of a node's own: what it is, and where its pointer goes (an
 * offset into the node's struct, offsetof). */
typedef struct es_node_metric_def {
	size_t off;
	es_metric_type type;
	const char *name, *labels, *help;
} es_node_metric_def;

/* The words of the shared families that are the node's: its name and
 * version (edgespool_build_info's labels), the name and help of the counter
 * of events sent and of the latency histogram, and the help texts that say
 * what its journal holds and where its events go. */
typedef struct es_node_metrics_words {
	const char *program, *version;
	const char *sent_name, *sent_help, *latency_name, *latency_help;
	const char *acked, *journaled, *pending, *oldest_age, *evicted, *expired;
	const char *bytes, *file_bytes, *commits, *errors, *writable;
} es_node_metrics_words;

typedef struct es_node_metrics_opts {
	const es_node_metrics_words *words; /* borrowed for the call */
	es_journal *journal;		    /* counters and writability */
	es_journal_reader *reader;	    /* stats, read under reader_lock */
	pthread_mutex_t *reader_lock;
	uint64_t journal_cap; /* journal.max_bytes (0: no cap) */
	/* The node's families, added after the shared ones, each pointer
	 * stored at (char *)base + off. */
	const es_node_metric_def *defs;
	size_t ndefs;
	void *base;
	es_metrics_collect_fn collect; /* the node's collector (after the journal's) */
	void *ctx;
	es_http *http; /* GET /metrics is routed here (before es_http_start) */
} es_node_metrics_opts;

/* Makes the registry, its families and collectors, and routes GET /metrics.
 * journal, reader, reader_lock and http must outlive the result, and so
 * must base and ctx. ES_EINVAL (an option missing; a bad family, logged
 * by es_metrics_add), ES_ENOMEM; *out is written only on success. */
es_err es_node_metrics_new(const es_node_metrics_opts *o, es_node_metrics **out);
/* After the HTTP workers and the loop are done with it. NULL ok. */
void es_node_metrics_free(es_node_metrics *nm);

/* An event sent (its tag, and when it was committed, wall ms); its ack;
 * the connection lost (what was in flight will be sent again). Loop
 * thread; NULL nm ok. */
void es_node_metrics_sent(es_node_metrics *nm, uint64_t tag, uint64_t committed_ms);
void es_node_metrics_acked(es_node_metrics *nm, uint64_t tag);
void es_node_metrics_reset(es_node_metrics *nm);

/* Counts an answered request: usable as es_http_opts.on_request with an
 * es_node_metrics (or NULL: nothing is counted) as ctx. Any thread. */
void es_node_metrics_on_request(void *ctx, const char *method, const char *route, int status,
				double seconds);

/* For collectors. Sets the link families of link (edgespool_link_up,
 * _reconnects_total from the connections made, _connect_failures_total). */
void es_node_metrics_link(es_node_metrics *nm, const char *link, bool up, uint64_t connects,
			  uint64_t failures);
/* Sets f's child for label (NULL for a family without labels) to v. */
void es_node_metrics_set(es_metric_family *f, const char *label, double v);

#endif
