/* ingest.h - POST /api/events: events handed in over HTTP, one or a batch,
 * decoded, checked and journaled; the answer (202 with each event's id and
 * sequence) only after the commit. Refusals are answered with why and
 * counted by reason. An event speaks for this node: a full CloudEvent whose
 * `source` is another's is refused (400), never journaled under our
 * sequence for someone else.
 *
 * Runs on the HTTP server's worker threads. Needs, at creation: the HTTP
 * server (the route is added before it starts) and the journal (its append
 * is thread-safe). Calls nothing else of the agent.
 */
#ifndef AGENT_INGEST_H
#define AGENT_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "http.h"
#include "journal.h"

typedef struct agent_ingest agent_ingest;

typedef struct agent_ingest_opts {
	es_http *http;
	es_journal *journal;
	const char *source;	/* "/site/node": a full event naming another is refused */
	size_t event_max_bytes; /* event.max_bytes */
	size_t max_batch;	/* events per request at most (http.max_batch) */
} agent_ingest_opts;

/* Why a request was refused; agent_ingest_reason_name() gives the label
 * used by /api/status and /metrics. */
enum agent_ingest_reason {
	AGENT_INGEST_MALFORMED,
	AGENT_INGEST_INVALID,
	AGENT_INGEST_TOO_BIG,
	AGENT_INGEST_CONTENT_TYPE,
	AGENT_INGEST_FULL,
	AGENT_INGEST_REASONS
};

typedef struct agent_ingest_stats {
	uint64_t accepted; /* events journaled */
	uint64_t rejected[AGENT_INGEST_REASONS];
} agent_ingest_stats;

/* Routes POST /api/events. http and journal must outlive the result.
 * ES_EINVAL, ES_ENOMEM, or the route's error. */
es_err agent_ingest_new(const agent_ingest_opts *o, agent_ingest **out);
/* After the HTTP server is freed. NULL ok. */
void agent_ingest_free(agent_ingest *in);

/* From now on requests get 503 (shutdown). Any thread. */
void agent_ingest_close(agent_ingest *in);
/* Any thread. */
void agent_ingest_stats_get(agent_ingest *in, agent_ingest_stats *out);
const char *agent_ingest_reason_name(enum agent_ingest_reason r);

#endif
