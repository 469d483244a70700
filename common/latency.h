/* latency.h - times in-flight work from its start to its completion, by tag.
 *
 * For a publish whose start time is known when it is sent (an event's
 * commit) and whose completion arrives later with only its tag (a PUBACK):
 * es_latency_start remembers (tag, start), es_latency_done finds it and
 * observes now - start into a histogram. Completions are expected in start
 * order (PUBACKs of one connection are): a completion also forgets whatever
 * started before it and is still remembered, so an entry that never
 * completes cannot pile up. At most max entries
 * are remembered; beyond that new starts are not timed (nothing fails).
 * Not thread-safe: one owner thread (the histogram itself is).
 */
#ifndef ES_LATENCY_H
#define ES_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "metrics.h"

typedef struct es_latency es_latency;

/* A tracker that observes seconds into hist (borrowed; NULL: nothing is
 * observed). max 0: 65536. ES_ENOMEM. */
es_err es_latency_new(es_metric *hist, size_t max, es_latency **out);
void es_latency_free(es_latency *l);

/* Remembers that tag started at start_ms (any clock, the one done uses). */
void es_latency_start(es_latency *l, uint64_t tag, uint64_t start_ms);
/* tag completed at now_ms: observes its time (0 if the clock went back)
 * and forgets it and every older entry; an unknown tag is ignored. */
void es_latency_done(es_latency *l, uint64_t tag, uint64_t now_ms);
/* Forgets everything started (a connection lost: it will start again). */
void es_latency_clear(es_latency *l);
/* Entries remembered. */
size_t es_latency_size(const es_latency *l);

#endif
