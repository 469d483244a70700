/* metrics.h - the agent's metrics and GET /metrics (docs/metrics.md).
 *
 * The families every node has (the journal's, the publish latency, the
 * HTTP requests, the process) are common/node_metrics.h's; this part gives
 * it the agent's words and own families, whose numbers a collector copies
 * at each render from: ingest's counts (ingest.h), the loop's view (view.h:
 * the broker link, refusals, re-sent events), and the device links
 * (links.h). The publisher reports sends and acks straight to the
 * es_node_metrics (agent_metrics_node).
 *
 * The render runs on an HTTP worker thread; it reads only what those
 * headers say any thread may read.
 */
#ifndef AGENT_METRICS_H
#define AGENT_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "err.h"
#include "http.h"
#include "ingest.h"
#include "journal.h"
#include "links.h"
#include "node_metrics.h"
#include "view.h"

typedef struct agent_metrics agent_metrics;

typedef struct agent_metrics_opts {
	es_http *http; /* GET /metrics is routed here, before it starts */
	es_journal *journal;
	es_journal_reader *reader; /* read under reader_lock */
	pthread_mutex_t *reader_lock;
	uint64_t journal_cap; /* journal.max_bytes */
	agent_ingest *ingest;
	agent_view *view;
	links *links; /* NULL: no device links */
} agent_metrics_opts;

/* Everything in o must outlive the result. ES_EINVAL, ES_ENOMEM (logged). */
es_err agent_metrics_new(const agent_metrics_opts *o, agent_metrics **out);
/* After the HTTP workers and the publisher are done with it. NULL ok. */
void agent_metrics_free(agent_metrics *m);

/* The registry's node metrics, for the publisher (publisher.h) and the
 * HTTP server's request hook (es_node_metrics_on_request). NULL m: NULL. */
es_node_metrics *agent_metrics_node(agent_metrics *m);

#endif
