/* dedup.h - a consumer's memory of the event ids it has seen.
 *
 * At-least-once delivery means a consumer may get an event twice (re-sends,
 * reconnects, two bridges sharing a subscription); always with the same id.
 * An es_dedup remembers the last `capacity` distinct ids and says whether an
 * id is among them. Ids are kept as 128-bit hashes (two independent 64-bit
 * hashes): a false "seen" would need a 128-bit collision among the ids kept.
 * Memory: about 48 bytes an id. Oldest ids are forgotten first.
 * Not thread-safe: one thread owns it.
 */
#ifndef ES_DEDUP_H
#define ES_DEDUP_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct es_dedup es_dedup;

/* capacity: how many distinct ids to remember (1..2^28). */
es_err es_dedup_new(size_t capacity, es_dedup **out);
void es_dedup_free(es_dedup *d);

/* True when id was seen (and is still remembered); otherwise remembers it
 * (forgetting the oldest when full) and returns false. */
bool es_dedup_seen(es_dedup *d, const char *id);

/* How many ids are remembered now. */
size_t es_dedup_size(const es_dedup *d);

#endif
