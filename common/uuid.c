/* uuid.c - UUIDv7 (RFC 9562, monotonic random) and v4 ids.
 *
 * The 74 random bits of a v7 id are kept as a counter split in two: rand_a
 * (12 bits, the high part) and rand_b (62 bits). A new millisecond draws them
 * afresh; an id in the same millisecond (or after the clock stepped back)
 * adds a random increment of 1..2^32 to them. Random bytes come from a
 * 256-byte pool refilled in one call, because ids are made tens of thousands
 * of times a second and a getrandom call per id would dominate.
 */
#include "uuid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define POOL_SIZE   256
#define RAND_A_BITS 12
#define RAND_B_BITS 62
#define RAND_B_MASK ((UINT64_C(1) << RAND_B_BITS) - 1)
#define TIME_MASK   ((UINT64_C(1) << 48) - 1)

struct es_uuid7_gen {
	es_random_fn rnd;
	void *ctx;
	bool started;	 /* false until the first id */
	uint64_t ms;	 /* timestamp of the last id */
	uint32_t rand_a; /* < 2^12 */
	uint64_t rand_b; /* < 2^62 */
	size_t pool_pos; /* next unused byte of pool; POOL_SIZE when empty */
	uint8_t pool[POOL_SIZE];
};

/* getrandom(2) until len bytes are read; returns 0 or -1. */
static int os_random(void *buf, size_t len, void *ctx)
{
	uint8_t *p = buf;
	(void)ctx;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Creates a generator using getrandom. Errors: ES_EINVAL, ES_ENOMEM. */
es_err es_uuid7_gen_new(es_uuid7_gen **out)
{
	return es_uuid7_gen_new_with(NULL, NULL, out);
}

/* Creates a generator drawing from rnd(ctx) (NULL: getrandom). ctx is not
 * owned. Errors: ES_EINVAL (out is NULL), ES_ENOMEM. */
es_err es_uuid7_gen_new_with(es_random_fn rnd, void *ctx, es_uuid7_gen **out)
{
	if (!out)
		return ES_EINVAL;
	es_uuid7_gen *g = calloc(1, sizeof *g);
	if (!g)
		return ES_ENOMEM;
	g->rnd = rnd ? rnd : os_random;
	g->ctx = rnd ? ctx : NULL;
	g->pool_pos = POOL_SIZE;
	*out = g;
	return ES_OK;
}

/* Frees g; NULL is a no-op. */
void es_uuid7_gen_free(es_uuid7_gen *g)
{
	free(g);
}

/* Takes n (<= POOL_SIZE) random bytes from the pool, refilling it whole when
 * it runs short. On failure nothing is consumed. */
static es_err take(es_uuid7_gen *g, void *dst, size_t n)
{
	if (POOL_SIZE - g->pool_pos < n) {
		if (g->rnd(g->pool, POOL_SIZE, g->ctx) != 0)
			return ES_ESYS;
		g->pool_pos = 0;
	}
	memcpy(dst, g->pool + g->pool_pos, n);
	g->pool_pos += n;
	return ES_OK;
}

static uint64_t load_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Fresh 74 random bits into *a (12) and *b (62). */
static es_err draw(es_uuid7_gen *g, uint32_t *a, uint64_t *b)
{
	uint8_t r[10];
	es_err err = take(g, r, sizeof r);
	if (err)
		return err;
	*a = (uint32_t)load_be(r, 2) >> (16 - RAND_A_BITS);
	*b = load_be(r + 2, 8) & RAND_B_MASK;
	return ES_OK;
}

/* Adds a random 1..2^32 to the 74-bit counter a:b. Sets *overflow (and
 * leaves a:b meaningless) when it would pass 2^74 - 1. */
static es_err bump(es_uuid7_gen *g, uint32_t *a, uint64_t *b, bool *overflow)
{
	uint8_t r[4];
	es_err err = take(g, r, sizeof r);
	if (err)
		return err;
	uint64_t sum = *b + load_be(r, 4) + 1; /* < 2^62 + 2^32 + 1: no wrap */
	*a += (uint32_t)(sum >> RAND_B_BITS);
	*b = sum & RAND_B_MASK;
	*overflow = *a >> RAND_A_BITS != 0;
	return ES_OK;
}

/* Writes the id for timestamp ms and counter a:b, with version and variant. */
static void build(uint64_t ms, uint32_t a, uint64_t b, es_uuid *out)
{
	for (int i = 0; i < 6; i++)
		out->b[i] = (uint8_t)(ms >> (40 - 8 * i));
	out->b[6] = (uint8_t)(0x70 | a >> 8);
	out->b[7] = (uint8_t)a;
	out->b[8] = (uint8_t)(0x80 | b >> 56);
	for (int i = 9; i < 16; i++)
		out->b[i] = (uint8_t)(b >> (8 * (15 - i)));
}

/* Next id at wall time now_ms, greater than every id g made before. The
 * state changes only on success. Errors: ES_EINVAL, ES_ESYS (random source
 * failed). */
es_err es_uuid7_next(es_uuid7_gen *g, uint64_t now_ms, es_uuid *out)
{
	if (!g || !out)
		return ES_EINVAL;
	uint64_t ms = g->ms;
	uint32_t a = g->rand_a;
	uint64_t b = g->rand_b;
	bool overflow = false;
	es_err err;
	if (!g->started || (now_ms & TIME_MASK) > g->ms) {
		ms = now_ms & TIME_MASK;
		err = draw(g, &a, &b);
	} else {
		err = bump(g, &a, &b, &overflow);
		if (!err && overflow) {
			ms++; /* borrow the next millisecond rather than repeat */
			err = draw(g, &a, &b);
		}
	}
	if (err)
		return err;
	g->started = true;
	g->ms = ms;
	g->rand_a = a;
	g->rand_b = b;
	build(ms, a, b, out);
	return ES_OK;
}

/* A random (version 4) UUID from getrandom. Errors: ES_EINVAL, ES_ESYS. */
es_err es_uuid4(es_uuid *out)
{
	es_uuid u;
	if (!out)
		return ES_EINVAL;
	if (os_random(u.b, sizeof u.b, NULL) != 0)
		return ES_ESYS;
	u.b[6] = (uint8_t)(0x40 | (u.b[6] & 0x0F));
	u.b[8] = (uint8_t)(0x80 | (u.b[8] & 0x3F));
	*out = u;
	return ES_OK;
}

/* Writes u as 8-4-4-4-12 lower-case hex plus a NUL. */
void es_uuid_format(const es_uuid *u, char out[ES_UUID_STR])
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[u->b[i] >> 4];
		*p++ = hex[u->b[i] & 0x0F];
	}
	*p = '\0';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses the 36-character hyphenated form, either case, and nothing more.
 * Writes *out only on success. */
bool es_uuid_parse(const char *s, es_uuid *out)
{
	es_uuid u;
	if (!s || !out)
		return false;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10) {
			if (*s++ != '-')
				return false;
		}
		int hi = hex_val(s[0]);
		int lo = hi < 0 ? -1 : hex_val(s[1]);
		if (lo < 0)
			return false;
		u.b[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	if (*s != '\0')
		return false;
	*out = u;
	return true;
}

/* The 48-bit Unix time in ms of a v7 id. */
uint64_t es_uuid7_time_ms(const es_uuid *u)
{
	return load_be(u->b, 6);
}

/* The version nibble. */
int es_uuid_version(const es_uuid *u)
{
	return u->b[6] >> 4;
}
