/* event_fuzz.c - libFuzzer target for the CloudEvent decoder and validator.
 *
 * The input is an HTTP ingest body (POST /api/events): es_event_decode_input
 * runs on it with the agent's default limits and with small ones. Every
 * event it accepts must encode within the limit, and the encoding must be
 * accepted again (by es_event_decode for a full event, by
 * es_event_decode_input for a short one, and by es_event_decode once
 * stamped) and encode to the same bytes: what the journal stores, the
 * broker carries and the bridge decodes is what was accepted. The raw input
 * also goes to es_event_decode (the bridge's strict decoder). Any
 * difference abort()s; the sanitizers catch the rest.
 * Built by tests/fuzz/run_fuzz.sh, and with replay_main.c by CMake. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

/* The agent's default limits, and small ones whose size checks short
 * inputs reach (an input under a sixth of the limit is not measured). */
static const struct limits {
	size_t bytes, count;
} limits[] = {{ES_EVENT_MAX_BYTES_DEFAULT, 100}, {300, 3}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ev encodes within the limit; returns the text (free it). */
static char *encode_ok(const es_event *ev, size_t max, size_t *len)
{
	char *json = NULL;
	if (es_event_encode(ev, max, &json, len) != ES_OK)
		abort();
	if (strlen(json) != *len)
		abort();
	return json;
}

/* json[0..len) decodes strictly, and encodes again to the same bytes. */
static void strict_again(const char *json, size_t len, size_t max)
{
	es_event *ev = NULL;
	es_verr verr;
	if (es_event_decode(json, len, max, &ev, &verr) != ES_OK)
		abort();
	size_t len2;
	char *json2 = encode_ok(ev, max, &len2);
	if (len2 != len || memcmp(json, json2, len) != 0)
		abort();
	free(json2);
	es_event_free(ev);
}

/* A short-form event's text is accepted as input again, as one event. */
static void input_again(const char *json, size_t len, size_t max)
{
	es_event **evs = NULL;
	size_t n = 0, len2;
	es_verr verr;
	if (es_event_decode_input(json, len, max, 1, &evs, &n, &verr) != ES_OK || n != 1)
		abort();
	char *json2 = encode_ok(evs[0], max, &len2);
	if (len2 != len || memcmp(json, json2, len) != 0)
		abort();
	free(json2);
	es_event_free_array(evs, n);
}

/* The journal's path: stamp, encode, and the broker's consumer decodes. */
static void stamped_again(es_event *ev, size_t max)
{
	size_t len;
	if (es_event_stamp(ev, "fuzz-id", "/fuzz", 1764237600000u, 42) != ES_OK)
		abort();
	char *json = NULL;
	/* Stamping adds attributes, so the limit may now be exceeded. */
	if (es_event_encode(ev, 0, &json, &len) != ES_OK)
		abort();
	if (es_event_seq(ev) != 42)
		abort();
	if (len <= max)
		strict_again(json, len, max);
	free(json);
}

static void round_trip(es_event *ev, size_t max)
{
	size_t len;
	char *json = encode_ok(ev, max, &len);
	if (es_event_is_full(ev))
		strict_again(json, len, max);
	else
		input_again(json, len, max);
	free(json);
	stamped_again(ev, max);
}

/* The input under one pair of limits. */
static void decode_all(const char *text, size_t size, size_t max, size_t count)
{
	es_event **evs = NULL, *ev = NULL;
	size_t n = 0;
	es_verr verr;

	if (es_event_decode_input(text, size, max, count, &evs, &n, &verr) == ES_OK) {
		if (n == 0 || n > count)
			abort();
		for (size_t i = 0; i < n; i++)
			round_trip(evs[i], max);
		es_event_free_array(evs, n);
	}
	if (es_event_decode(text, size, max, &ev, &verr) == ES_OK) {
		if (!es_event_is_full(ev) || !es_event_id(ev) || !es_event_type(ev))
			abort();
		round_trip(ev, max);
		es_event_free(ev);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
		decode_all((const char *)data, size, limits[i].bytes, limits[i].count);
	return 0;
}
