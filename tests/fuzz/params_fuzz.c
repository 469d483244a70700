/* params_fuzz.c - libFuzzer target for the REST API's query parameters
 * (limit, before, after, from, to: docs/api.md), the part of request
 * parsing that is reachable without the HTTP server.
 *
 * The input, cut at its first NUL, goes to es_japi_parse_u64 (with bounds
 * taken from the input's length) and to es_time_parse. The invariants:
 *  - a number accepted is all digits, at most 19 of them, within its
 *    bounds, and prints back as the input without its leading zeros;
 *  - a time accepted formats (es_time_format) to a text that parses to
 *    the same instant (up to the year 9999, where formatting stops).
 * Any difference abort()s; the sanitizers catch the rest. Built by
 * tests/fuzz/run_fuzz.sh, and with replay_main.c by CMake. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "japi.h"

#define TEXT_MAX 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_u64(const char *s, uint64_t min, uint64_t max)
{
	uint64_t v = 0;
	char back[24];
	if (!es_japi_parse_u64(s, min, max, &v))
		return;
	size_t len = strlen(s);
	if (len == 0 || len > 19 || strspn(s, "0123456789") != len || v < min || v > max)
		abort();
	const char *digits = s + strspn(s, "0");
	snprintf(back, sizeof back, "%" PRIu64, v);
	if (strcmp(back, *digits ? digits : "0") != 0)
		abort();
}

static void check_time(const char *s)
{
	uint64_t ms = 0, again = 0, last = 0;
	char text[ES_TIME_STR];
	if (!es_time_parse(s, &ms))
		return;
	if (!es_time_parse("9999-12-31T23:59:59.999Z", &last))
		abort();
	es_time_format(ms, text);
	if (strlen(text) != ES_TIME_STR - 1 || !es_time_parse(text, &again))
		abort();
	if (again != (ms > last ? last : ms))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[TEXT_MAX + 1];
	size_t n = size > TEXT_MAX ? TEXT_MAX : size;
	memcpy(s, data, n);
	s[n] = '\0';
	check_u64(s, 0, UINT64_MAX);
	check_u64(s, 1, 500);
	check_u64(s, (uint64_t)size, (uint64_t)INT64_MAX - (uint64_t)size);
	check_time(s);
	return 0;
}
