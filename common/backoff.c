#include "backoff.h"

#include <sys/random.h>

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

void es_backoff_init(es_backoff *b, uint64_t base_ms, uint64_t cap_ms)
{
	b->base_ms = base_ms ? base_ms : 1;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
	b->attempt = 0;
	if (getrandom(&b->rng, sizeof b->rng, 0) != (ssize_t)sizeof b->rng || b->rng == 0)
		b->rng = 0x9e3779b97f4a7c15u ^ (uintptr_t)b; /* jitter still varies per object */
}

uint64_t es_backoff_next(es_backoff *b)
{
	uint64_t ceiling = b->base_ms;
	/* min(cap, base * 2^attempt), without ever overflowing. */
	for (uint32_t i = 0; i < b->attempt && ceiling < b->cap_ms; i++)
		ceiling = ceiling > b->cap_ms / 2 ? b->cap_ms : ceiling * 2;
	if (b->attempt < UINT32_MAX)
		b->attempt++;
	uint64_t floor = b->base_ms / 4;
	uint64_t r = xorshift(&b->rng);
	uint64_t delay = ceiling == UINT64_MAX ? r : r % (ceiling + 1);
	return delay < floor ? floor : delay;
}

void es_backoff_reset(es_backoff *b)
{
	b->attempt = 0;
}
