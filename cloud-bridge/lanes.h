/* lanes.h - an event's priority lane on the uplink, by its type.
 *
 * Three lanes: high goes first, then normal, then low (lanes.high and
 * lanes.low are lists of type patterns, consumer.h's syntax: words split by
 * '.', '*' one word, '#' any number; the first list that matches wins,
 * everything else is normal). Each lane may have a time to live: an event
 * older than it (since it reached the inbox) is not sent. Pure, no I/O.
 */
#ifndef BRIDGE_LANES_H
#define BRIDGE_LANES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum { BRIDGE_LANE_HIGH, BRIDGE_LANE_NORMAL, BRIDGE_LANE_LOW, BRIDGE_LANES };

#define BRIDGE_LANE_PATTERNS_MAX 16

typedef struct bridge_lanes {
	char *high[BRIDGE_LANE_PATTERNS_MAX], *low[BRIDGE_LANE_PATTERNS_MAX];
	size_t nhigh, nlow;
	uint64_t ttl_ms[BRIDGE_LANES]; /* 0: none */
} bridge_lanes;

/* "high", "normal", "low". */
const char *bridge_lane_name(int lane);

/* Parses the two comma-separated pattern lists (NULL or "": none) into l
 * (zeroed first). ES_EINVAL with why written ("lanes.high: 'a.b*' has '*'
 * or '#' inside a word ..."), ES_ENOMEM. */
es_err bridge_lanes_parse(bridge_lanes *l, const char *high, const char *low, char *why,
			  size_t cap);
void bridge_lanes_free(bridge_lanes *l);

/* The lane of an event of this type. */
int bridge_lane_of(const bridge_lanes *l, const char *type);

#endif
