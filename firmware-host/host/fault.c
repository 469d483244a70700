/* fault.c - parsing and applying injected faults; see fault.h. */
#include "fault.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[FAULT_KINDS_] = {"corrupt", "truncate", "garbage", "reset", "burst"};

const char *fault_name(enum fault_kind k)
{
	return (unsigned)k < FAULT_KINDS_ ? names[k] : "?";
}

static int kind_of(const char *name, size_t len)
{
	for (int k = 0; k < (int)FAULT_KINDS_; k++)
		if (strlen(names[k]) == len && memcmp(names[k], name, len) == 0)
			return k;
	return -1;
}

/* One "kind=P" item of length len. */
static bool parse_item(const char *item, size_t len, struct fault_cfg *out, char *err,
		       size_t errlen)
{
	const char *eq = memchr(item, '=', len);
	char num[32], *end;
	double p;
	int k = eq ? kind_of(item, (size_t)(eq - item)) : -1;

	if (k < 0) {
		snprintf(err, errlen,
			 "'%.*s': unknown fault kind (corrupt, truncate, garbage, "
			 "reset, burst, each as kind=P)",
			 (int)len, item);
		return false;
	}
	if ((size_t)(item + len - eq - 1) >= sizeof num || eq + 1 == item + len)
		goto bad;
	memcpy(num, eq + 1, (size_t)(item + len - eq - 1));
	num[item + len - eq - 1] = '\0';
	errno = 0;
	p = strtod(num, &end);
	if (errno || *end || !(p >= 0 && p <= 1))
		goto bad;
	out->p[k] = p;
	return true;
bad:
	snprintf(err, errlen, "'%.*s': the probability must be a number in 0..1", (int)len, item);
	return false;
}

bool fault_parse(const char *spec, struct fault_cfg *out, char *err, size_t errlen)
{
	struct fault_cfg c = {{0}};
	const char *p = spec;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (!parse_item(p, len, &c, err, errlen))
			return false;
		if (!comma)
			break;
		p = comma + 1;
	}
	*out = c;
	return true;
}

size_t fault_mangle(const struct fault_cfg *c, struct sim_rng *r, const uint8_t *p, size_t n,
		    uint8_t *out, size_t cap, uint32_t counts[FAULT_KINDS_])
{
	size_t o = 0;

	assert(n >= 1 && cap >= FAULT_OUT_MAX(n));
	if (sim_rng_chance(r, c->p[FAULT_GARBAGE])) {
		/* Nonzero bytes, so each injection is exactly one bad run. */
		o = 1 + sim_rng_below(r, FAULT_GARBAGE_MAX);
		for (size_t i = 0; i < o; i++)
			out[i] = (uint8_t)(1 + sim_rng_below(r, 255));
		out[o++] = 0;
		counts[FAULT_GARBAGE]++;
	}
	memcpy(out + o, p, n);
	if (n >= 2 && sim_rng_chance(r, c->p[FAULT_CORRUPT])) {
		out[o + sim_rng_below(r, (uint32_t)n - 1)] ^= (uint8_t)(1u << sim_rng_below(r, 8));
		counts[FAULT_CORRUPT]++;
	}
	if (n >= 3 && sim_rng_chance(r, c->p[FAULT_TRUNCATE])) {
		/* Keep 1..n-2 bytes of the frame, then the delimiter. */
		size_t keep = 1 + sim_rng_below(r, (uint32_t)n - 2);

		out[o + keep] = 0;
		n = keep + 1;
		counts[FAULT_TRUNCATE]++;
	}
	return o + n;
}
