/* uuid_test.c - UUIDv7 generation (order, uniqueness, overflow), v4, text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "uuid.h"

#define T0 UINT64_C(1795773600123) /* 2026-11-27T10:00:00.123Z */

/* An injected random source: fills with a fixed byte, counts calls, and
 * fails when told to. */
typedef struct fake_rnd {
	uint8_t fill;
	int calls;
	size_t bytes;
	bool fail;
} fake_rnd;

static int fake_random(void *buf, size_t len, void *ctx)
{
	fake_rnd *f = ctx;
	if (f->fail)
		return -1;
	memset(buf, f->fill, len);
	f->calls++;
	f->bytes += len;
	return 0;
}

static es_uuid7_gen *new_gen(void)
{
	es_uuid7_gen *g = NULL;
	assert_int_equal(es_uuid7_gen_new(&g), ES_OK);
	assert_non_null(g);
	return g;
}

static void assert_greater(const es_uuid *a, const es_uuid *b)
{
	char ta[ES_UUID_STR], tb[ES_UUID_STR];
	es_uuid_format(a, ta);
	es_uuid_format(b, tb);
	if (memcmp(a->b, b->b, 16) <= 0 || strcmp(ta, tb) <= 0)
		fail_msg("%s is not greater than %s", ta, tb);
}

static void test_version_variant_time(void **state)
{
	(void)state;
	es_uuid7_gen *g = new_gen();
	for (uint64_t i = 0; i < 1000; i++) {
		es_uuid u;
		assert_int_equal(es_uuid7_next(g, T0 + i, &u), ES_OK);
		assert_int_equal(es_uuid_version(&u), 7);
		assert_int_equal(u.b[6] >> 4, 7);
		assert_int_equal(u.b[8] & 0xC0, 0x80);
		assert_int_equal(es_uuid7_time_ms(&u), T0 + i);
	}
	es_uuid7_gen_free(g);
}

static void test_monotonic_same_ms(void **state)
{
	(void)state;
	es_uuid7_gen *g = new_gen();
	es_uuid prev, u;
	assert_int_equal(es_uuid7_next(g, T0, &prev), ES_OK);
	for (int i = 0; i < 100000; i++) {
		assert_int_equal(es_uuid7_next(g, T0, &u), ES_OK);
		assert_greater(&u, &prev);
		assert_int_equal(es_uuid_version(&u), 7);
		assert_int_equal(u.b[8] & 0xC0, 0x80);
		prev = u;
	}
	es_uuid7_gen_free(g);
}

static void test_monotonic_clock_steps_back(void **state)
{
	(void)state;
	es_uuid7_gen *g = new_gen();
	es_uuid prev, u;
	assert_int_equal(es_uuid7_next(g, T0, &prev), ES_OK);
	/* the wall clock jumps back a minute and creeps forward again */
	for (uint64_t i = 0; i < 1000; i++) {
		assert_int_equal(es_uuid7_next(g, T0 - 60000 + i, &u), ES_OK);
		assert_greater(&u, &prev);
		/* the timestamp stays at the latest seen, never goes back */
		assert_true(es_uuid7_time_ms(&u) >= T0);
		prev = u;
	}
	/* once the clock passes the last id's time, ids use it again */
	assert_int_equal(es_uuid7_next(g, T0 + 5, &u), ES_OK);
	assert_greater(&u, &prev);
	assert_int_equal(es_uuid7_time_ms(&u), T0 + 5);
	es_uuid7_gen_free(g);
}

static int cmp_uuid(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(es_uuid));
}

/* Two generators interleaved in the same milliseconds, as two threads of
 * one node would be: no id may repeat among a million. */
static void test_unique_million(void **state)
{
	(void)state;
	enum { N = 1000000 };
	es_uuid *ids = malloc(N * sizeof *ids);
	assert_non_null(ids);
	es_uuid7_gen *g[2] = {new_gen(), new_gen()};
	for (size_t i = 0; i < N; i++)
		assert_int_equal(es_uuid7_next(g[i % 2], T0 + i / 1000, &ids[i]), ES_OK);
	qsort(ids, N, sizeof *ids, cmp_uuid);
	for (size_t i = 1; i < N; i++)
		if (memcmp(&ids[i - 1], &ids[i], sizeof *ids) == 0)
			fail_msg("duplicate id at sorted index %zu", i);
	es_uuid7_gen_free(g[0]);
	es_uuid7_gen_free(g[1]);
	free(ids);
}

/* With every random bit set, the counter is at its maximum after each fresh
 * draw, so each following id in the same ms must overflow into the next ms. */
static void test_counter_overflow_advances_ms(void **state)
{
	(void)state;
	fake_rnd f = {.fill = 0xFF};
	es_uuid7_gen *g = NULL;
	assert_int_equal(es_uuid7_gen_new_with(fake_random, &f, &g), ES_OK);
	es_uuid prev, u;
	assert_int_equal(es_uuid7_next(g, T0, &prev), ES_OK);
	assert_int_equal(es_uuid7_time_ms(&prev), T0);
	assert_int_equal(prev.b[6], 0x7F); /* version 7, rand_a all ones */
	assert_int_equal(prev.b[8], 0xBF); /* variant 10, rand_b all ones */
	for (uint64_t i = 1; i <= 5; i++) {
		assert_int_equal(es_uuid7_next(g, T0, &u), ES_OK);
		assert_int_equal(es_uuid7_time_ms(&u), T0 + i);
		assert_greater(&u, &prev);
		prev = u;
	}
	es_uuid7_gen_free(g);
}

static void test_random_is_buffered(void **state)
{
	(void)state;
	fake_rnd f = {.fill = 0x11};
	es_uuid7_gen *g = NULL;
	assert_int_equal(es_uuid7_gen_new_with(fake_random, &f, &g), ES_OK);
	es_uuid u;
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(es_uuid7_next(g, T0 + i / 10, &u), ES_OK);
	/* ten bytes at most per id, refilled in large blocks */
	assert_true(f.calls > 0);
	assert_true(f.calls <= 1000 * 10 / 200);
	assert_true(f.bytes / (size_t)f.calls >= 200);
	es_uuid7_gen_free(g);
}

static void test_random_failure(void **state)
{
	(void)state;
	fake_rnd f = {.fill = 0x22, .fail = true};
	es_uuid7_gen *g = NULL;
	assert_int_equal(es_uuid7_gen_new_with(fake_random, &f, &g), ES_OK);
	es_uuid u, before;
	memset(&u, 0xAA, sizeof u);
	before = u;
	assert_int_equal(es_uuid7_next(g, T0, &u), ES_ESYS);
	assert_memory_equal(&u, &before, sizeof u);
	/* the source recovers: the generator works again */
	f.fail = false;
	assert_int_equal(es_uuid7_next(g, T0, &u), ES_OK);
	assert_int_equal(es_uuid7_time_ms(&u), T0);
	es_uuid7_gen_free(g);
}

static void test_bad_args(void **state)
{
	(void)state;
	es_uuid u;
	assert_int_equal(es_uuid7_gen_new(NULL), ES_EINVAL);
	assert_int_equal(es_uuid7_next(NULL, T0, &u), ES_EINVAL);
	assert_int_equal(es_uuid4(NULL), ES_EINVAL);
	es_uuid7_gen_free(NULL);
}

static void test_uuid4(void **state)
{
	(void)state;
	es_uuid a, b;
	assert_int_equal(es_uuid4(&a), ES_OK);
	assert_int_equal(es_uuid4(&b), ES_OK);
	assert_int_equal(es_uuid_version(&a), 4);
	assert_int_equal(a.b[8] & 0xC0, 0x80);
	assert_memory_not_equal(&a, &b, sizeof a);
}

static void test_text_round_trip(void **state)
{
	(void)state;
	es_uuid7_gen *g = new_gen();
	for (int i = 0; i < 1000; i++) {
		es_uuid u, back;
		char s[ES_UUID_STR];
		assert_int_equal(es_uuid7_next(g, T0, &u), ES_OK);
		es_uuid_format(&u, s);
		assert_int_equal(strlen(s), 36);
		assert_true(s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-');
		assert_int_equal(s[14], '7');
		assert_true(es_uuid_parse(s, &back));
		assert_memory_equal(&u, &back, sizeof u);
	}
	es_uuid7_gen_free(g);
}

static void test_format_known(void **state)
{
	(void)state;
	es_uuid u;
	char s[ES_UUID_STR];
	for (int i = 0; i < 16; i++)
		u.b[i] = (uint8_t)(i * 17);
	es_uuid_format(&u, s);
	assert_string_equal(s, "00112233-4455-6677-8899-aabbccddeeff");
	/* upper case parses to the same bytes */
	es_uuid back;
	assert_true(es_uuid_parse("00112233-4455-6677-8899-AABBCCDDEEFF", &back));
	assert_memory_equal(&u, &back, sizeof u);
	/* the RFC 9562 appendix A.6 example */
	assert_true(es_uuid_parse("017F22E2-79B0-7CC3-98C4-DC0C0C07398F", &back));
	assert_int_equal(es_uuid_version(&back), 7);
	assert_int_equal(es_uuid7_time_ms(&back), 0x017F22E279B0ull);
}

static void test_parse_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"00112233-4455-6677-8899-aabbccddeef",
		"00112233-4455-6677-8899-aabbccddeeff0",
		"00112233445566778899aabbccddeeff",
		"00112233-4455-6677-8899_aabbccddeeff",
		"0011223-34455-6677-8899-aabbccddeeff",
		"00112233-4455-6677-8899-aabbccddeefg",
		"{00112233-4455-6677-8899-aabbccddeeff}",
		" 00112233-4455-6677-8899-aabbccddeeff",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		es_uuid u;
		memset(&u, 0x5A, sizeof u);
		if (es_uuid_parse(bad[i], &u))
			fail_msg("accepted \"%s\"", bad[i]);
		for (int k = 0; k < 16; k++)
			assert_int_equal(u.b[k], 0x5A);
	}
	es_uuid u;
	assert_false(es_uuid_parse(NULL, &u));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_variant_time),
		cmocka_unit_test(test_monotonic_same_ms),
		cmocka_unit_test(test_monotonic_clock_steps_back),
		cmocka_unit_test(test_unique_million),
		cmocka_unit_test(test_counter_overflow_advances_ms),
		cmocka_unit_test(test_random_is_buffered),
		cmocka_unit_test(test_random_failure),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_uuid4),
		cmocka_unit_test(test_text_round_trip),
		cmocka_unit_test(test_format_known),
		cmocka_unit_test(test_parse_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
