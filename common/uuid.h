/* uuid.h - UUID version 7 (RFC 9562): time-ordered, random from getrandom.
 *
 * Layout: 48-bit Unix time in ms, version 7, 12 bits rand_a, variant 10,
 * 62 bits rand_b. The generator is monotonic (RFC 9562 section 6.2, method 2
 * "monotonic random"): within one millisecond, or when the wall clock steps
 * back, the 74 random bits are incremented by a random amount instead of
 * drawn afresh, so every id is greater than the one before it, as bytes and
 * as text. If the counter would overflow, the timestamp is advanced by one
 * millisecond.
 *
 * A generator is not thread-safe: one thread owns it.
 */
#ifndef ES_UUID_H
#define ES_UUID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Text form: 36 characters, lower-case hex, plus the NUL. */
#define ES_UUID_STR 37

typedef struct es_uuid {
	uint8_t b[16];
} es_uuid;

typedef struct es_uuid7_gen es_uuid7_gen;

/* Random bytes source; returns 0 on success. Tests may inject one. */
typedef int (*es_random_fn)(void *buf, size_t len, void *ctx);

es_err es_uuid7_gen_new(es_uuid7_gen **out);
/* As es_uuid7_gen_new with a custom random source (NULL = getrandom). */
es_err es_uuid7_gen_new_with(es_random_fn rnd, void *ctx, es_uuid7_gen **out);
void es_uuid7_gen_free(es_uuid7_gen *g);

/* Next id for wall time now_ms. Fails only if the random source fails
 * (ES_ESYS). */
es_err es_uuid7_next(es_uuid7_gen *g, uint64_t now_ms, es_uuid *out);

/* A one-off v4 (random) UUID, e.g. a boot id. */
es_err es_uuid4(es_uuid *out);

void es_uuid_format(const es_uuid *u, char out[ES_UUID_STR]);
/* Accepts the 36-character hyphenated form, either case. */
bool es_uuid_parse(const char *s, es_uuid *out);
/* The Unix time in ms of a v7 UUID. */
uint64_t es_uuid7_time_ms(const es_uuid *u);
/* Version nibble (7 for ours). */
int es_uuid_version(const es_uuid *u);

#endif
