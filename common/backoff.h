/* backoff.h - exponential backoff with full jitter.
 *
 * The n-th retry (n from 0) waits a uniformly random time in
 * [0, min(cap, base * 2^n)] ("full jitter", as in the AWS architecture
 * note): many clients that lost a broker at the same moment do not come back
 * at the same moment. A floor of base/4 keeps a busy loop from retrying in
 * 0 ms forever.
 */
#ifndef ES_BACKOFF_H
#define ES_BACKOFF_H

#include <stdint.h>

typedef struct es_backoff {
	uint64_t base_ms, cap_ms;
	uint32_t attempt;
	uint64_t rng; /* xorshift state, seeded from getrandom */
} es_backoff;

void es_backoff_init(es_backoff *b, uint64_t base_ms, uint64_t cap_ms);
/* The delay before the next attempt; counts the attempt. */
uint64_t es_backoff_next(es_backoff *b);
/* Forget past failures (after a success). */
void es_backoff_reset(es_backoff *b);

#endif
