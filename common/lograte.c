/* lograte.c - a few lines a second per kind of message (lograte.h). */
#include "lograte.h"

#include <inttypes.h>
#include <stddef.h>

#include "clock.h"
#include "log.h"

#define DEFAULT_MAX 10

/* Contract in lograte.h. */
bool es_lograte_ok(es_lograte *r, uint64_t now_ms, uint64_t *held)
{
	if (held)
		*held = 0;
	if (!r)
		return true;
	uint32_t max = r->max ? r->max : DEFAULT_MAX;
	if (now_ms / 1000 != r->second) {
		r->second = now_ms / 1000;
		r->lines = 0;
	}
	if (r->lines >= max) {
		r->held++;
		return false;
	}
	r->lines++;
	if (held)
		*held = r->held;
	r->held = 0;
	return true;
}

/* Contract in lograte.h. */
bool es_lograte_line(es_lograte *r, const char *tag, const char *what)
{
	uint64_t held;
	bool ok = es_lograte_ok(r, es_clock_mono_ms(), &held);
	if (held)
		es_warn(tag, "%" PRIu64 " more %s came since the last logged; not logged", held,
			what);
	return ok;
}
