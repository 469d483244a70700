/* clock_test.c - wall/monotonic time and RFC 3339 text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"

#define SENTINEL 0xDEADBEEFull

static void test_wall_and_mono(void **state)
{
	(void)state;
	/* 2020-01-01T00:00:00Z: any machine running this is past it */
	assert_true(es_clock_wall_ms() > 1577836800000ull);
	uint64_t prev = es_clock_mono_ms();
	for (int i = 0; i < 10000; i++) {
		uint64_t now = es_clock_mono_ms();
		assert_true(now >= prev);
		prev = now;
	}
}

static void check_format(uint64_t ms, const char *want)
{
	char buf[ES_TIME_STR];
	memset(buf, 'x', sizeof buf);
	es_time_format(ms, buf);
	assert_string_equal(buf, want);
}

static void test_format_known(void **state)
{
	(void)state;
	check_format(0, "1970-01-01T00:00:00.000Z");
	check_format(951782400000ull, "2000-02-29T00:00:00.000Z");
	check_format(1709251199999ull, "2024-02-29T23:59:59.999Z");
	check_format(1795773600123ull, "2026-11-27T10:00:00.123Z");
	check_format(4107542400000ull, "2100-03-01T00:00:00.000Z");
	check_format(253402300799999ull, "9999-12-31T23:59:59.999Z");
	/* past year 9999 the width is kept by clamping */
	check_format(UINT64_MAX, "9999-12-31T23:59:59.999Z");
}

/* es_time_format against the C library's gmtime over a wide spread. */
static void test_format_matches_gmtime(void **state)
{
	(void)state;
	for (uint64_t ms = 7; ms < 253402300799999ull; ms += 9876543210987ull / 97) {
		time_t t = (time_t)(ms / 1000);
		struct tm tm;
		char want[64], got[ES_TIME_STR];
		gmtime_r(&t, &tm);
		size_t n = strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(want + n, sizeof want - n, ".%03uZ", (unsigned)(ms % 1000));
		es_time_format(ms, got);
		assert_string_equal(got, want);
	}
}

static void check_parse(const char *s, uint64_t want)
{
	uint64_t ms = SENTINEL;
	assert_true(es_time_parse(s, &ms));
	assert_int_equal(ms, want);
}

static void test_parse_valid(void **state)
{
	(void)state;
	check_parse("2026-11-27T10:00:00Z", 1795773600000ull);
	check_parse("2026-11-27T10:00:00.123Z", 1795773600123ull);
	check_parse("2026-11-27t10:00:00.123z", 1795773600123ull);
	check_parse("2026-11-27T10:00:00.1Z", 1795773600100ull);
	check_parse("2026-11-27T10:00:00.12Z", 1795773600120ull);
	/* fractions past ms are truncated, not rounded */
	check_parse("2026-11-27T10:00:00.123999999Z", 1795773600123ull);
	check_parse("2026-11-27T12:00:00.123+02:00", 1795773600123ull);
	check_parse("2026-11-27T04:30:00.123-05:30", 1795773600123ull);
	check_parse("2026-11-27T10:00:00+00:00", 1795773600000ull);
	check_parse("2024-02-29T23:59:59.999Z", 1709251199999ull);
	check_parse("2000-02-29T00:00:00Z", 951782400000ull);
	check_parse("1970-01-01T00:00:00Z", 0);
	check_parse("9999-12-31T23:59:59.999Z", 253402300799999ull);
	/* a leap second lands on the next second */
	check_parse("2016-12-31T23:59:60Z", 1483228800000ull);
}

static void check_invalid(const char *s)
{
	uint64_t ms = SENTINEL;
	if (es_time_parse(s, &ms))
		fail_msg("accepted \"%s\"", s);
	assert_int_equal(ms, SENTINEL);
}

static void test_parse_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"2026-02-30T00:00:00Z",
		"2023-02-29T00:00:00Z",
		"2100-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z",
		"2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z",
		"2026-01-00T00:00:00Z",
		"2026-11-27T10:00:00",
		"2026-11-27T10:00:00.123",
		"2026-11-27 10:00:00Z",
		"2026-11-27",
		"26-11-27T10:00:00Z",
		"2026-11-27T24:00:00Z",
		"2026-11-27T10:60:00Z",
		"2026-11-27T10:00:61Z",
		"2026-11-27T10:00Z",
		"2026-11-27T10:00:00.Z",
		"2026-11-27T10:00:00,5Z",
		"2026-11-27T10:00:00+2:00",
		"2026-11-27T10:00:00+0200",
		"2026-11-27T10:00:00+24:00",
		"2026-11-27T10:00:00+01:60",
		"2026-11-27T10:00:00Z ",
		"2026-11-27T10:00:00ZZ",
		" 2026-11-27T10:00:00Z",
		"2026-1-27T10:00:00Z",
		"1969-12-31T23:59:59Z",
		"1970-01-01T00:30:00+01:00",
		"2026-11-27T10:00:00.12a3Z",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check_invalid(bad[i]);
	uint64_t ms = SENTINEL;
	assert_false(es_time_parse(NULL, &ms));
	assert_false(es_time_parse("2026-11-27T10:00:00Z", NULL));
}

static void test_round_trip(void **state)
{
	(void)state;
	for (uint64_t ms = 0; ms < 253402300799999ull; ms += 1234567890123ull / 7) {
		char buf[ES_TIME_STR];
		uint64_t back = SENTINEL;
		es_time_format(ms, buf);
		assert_true(es_time_parse(buf, &back));
		assert_int_equal(back, ms);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wall_and_mono),	      cmocka_unit_test(test_format_known),
		cmocka_unit_test(test_format_matches_gmtime), cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),	      cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
