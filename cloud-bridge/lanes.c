/* lanes.c - an event's priority lane (lanes.h). */
#include "lanes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"

static const char *const names[BRIDGE_LANES] = {"high", "normal", "low"};

const char *bridge_lane_name(int lane)
{
	return lane >= 0 && lane < BRIDGE_LANES ? names[lane] : "?";
}

/* Splits list at commas (spaces around a pattern are ignored) into v. */
static es_err parse_list(const char *key, const char *list, char **v, size_t *n, char *why,
			 size_t cap)
{
	*n = 0;
	for (const char *p = list ? list : ""; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t len = strcspn(p, ",");
		while (len && p[len - 1] == ' ')
			len--;
		if (!len)
			break;
		if (*n == BRIDGE_LANE_PATTERNS_MAX) {
			snprintf(why, cap, "%s: more than %d patterns", key,
				 BRIDGE_LANE_PATTERNS_MAX);
			return ES_EINVAL;
		}
		char *pat = strndup(p, len);
		if (!pat)
			return ES_ENOMEM;
		const char *bad = es_consumer_check_pattern(pat);
		if (bad) {
			snprintf(why, cap, "%s: '%.*s' %s", key, (int)(len > 80 ? 80 : len), p,
				 bad);
			free(pat);
			return ES_EINVAL;
		}
		v[(*n)++] = pat;
		p += strcspn(p, ",");
	}
	return ES_OK;
}

es_err bridge_lanes_parse(bridge_lanes *l, const char *high, const char *low, char *why, size_t cap)
{
	memset(l, 0, sizeof *l);
	es_err err = parse_list("lanes.high", high, l->high, &l->nhigh, why, cap);
	if (!err)
		err = parse_list("lanes.low", low, l->low, &l->nlow, why, cap);
	if (err)
		bridge_lanes_free(l);
	return err;
}

void bridge_lanes_free(bridge_lanes *l)
{
	for (size_t i = 0; i < l->nhigh; i++)
		free(l->high[i]);
	for (size_t i = 0; i < l->nlow; i++)
		free(l->low[i]);
	l->nhigh = l->nlow = 0;
}

static bool any(char *const *v, size_t n, const char *type)
{
	for (size_t i = 0; i < n; i++)
		if (es_consumer_match(v[i], type))
			return true;
	return false;
}

int bridge_lane_of(const bridge_lanes *l, const char *type)
{
	if (!l || !type)
		return BRIDGE_LANE_NORMAL;
	if (any(l->high, l->nhigh, type))
		return BRIDGE_LANE_HIGH;
	if (any(l->low, l->nlow, type))
		return BRIDGE_LANE_LOW;
	return BRIDGE_LANE_NORMAL;
}
