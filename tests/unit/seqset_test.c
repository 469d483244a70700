/* seqset_test.c - the sorted set of sequence numbers (common/seqset.c):
 * order whatever the order of adding, members leaving from the low end,
 * the run above a watermark, the bound, and growth past a compaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>

#include "seqset.h"

static void keeps_members_sorted_and_once(void **state)
{
	(void)state;
	es_seqset s;
	es_seqset_init(&s, 0);
	const uint64_t in[] = {50, 10, 30, 10, 70, 20, 50, 60};
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
		assert_int_equal(es_seqset_add(&s, in[i]), ES_OK);
	assert_int_equal(es_seqset_count(&s), 6);
	for (uint64_t x = 0; x <= 80; x++)
		assert_int_equal(es_seqset_has(&s, x),
				 x == 10 || x == 20 || x == 30 || x == 50 || x == 60 || x == 70);
	for (size_t i = 0; i + 1 < es_seqset_count(&s); i++)
		assert_true(s.v[s.first + i] < s.v[s.first + i + 1]);
	es_seqset_free(&s);
	assert_int_equal(es_seqset_count(&s), 0);
	assert_false(es_seqset_has(&s, 10));
}

/* The inbox-order read passes rows: those below are forgotten, the row
 * itself is a hit once. */
static void passing_drops_what_is_below(void **state)
{
	(void)state;
	es_seqset s;
	es_seqset_init(&s, 0);
	for (uint64_t x = 5; x <= 50; x += 5)
		es_seqset_add(&s, x);
	assert_false(es_seqset_pass(&s, 12)); /* drops 5, 10 */
	assert_int_equal(es_seqset_count(&s), 8);
	assert_true(es_seqset_pass(&s, 15));
	assert_false(es_seqset_pass(&s, 15));
	assert_false(es_seqset_has(&s, 15));
	assert_true(es_seqset_has(&s, 20));
	es_seqset_add(&s, 17); /* below what is left, above what went */
	assert_true(es_seqset_pass(&s, 17));
	assert_true(es_seqset_pass(&s, 50));
	assert_int_equal(es_seqset_count(&s), 0);
	es_seqset_free(&s);
}

/* The acked watermark moves over the run that follows it, no further. */
static void takes_the_run_above_a_mark(void **state)
{
	(void)state;
	es_seqset s;
	es_seqset_init(&s, 0);
	const uint64_t in[] = {13, 11, 12, 15, 16};
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
		es_seqset_add(&s, in[i]);
	assert_int_equal(es_seqset_take_run(&s, 9), 0); /* 10 missing */
	assert_int_equal(es_seqset_take_run(&s, 10), 3);
	assert_int_equal(es_seqset_count(&s), 2);
	assert_int_equal(es_seqset_take_run(&s, 14), 2);
	assert_int_equal(es_seqset_count(&s), 0);
	es_seqset_free(&s);
}

static void refuses_beyond_its_bound(void **state)
{
	(void)state;
	es_seqset s;
	es_seqset_init(&s, 3);
	assert_int_equal(es_seqset_add(&s, 1), ES_OK);
	assert_int_equal(es_seqset_add(&s, 2), ES_OK);
	assert_int_equal(es_seqset_add(&s, 3), ES_OK);
	assert_int_equal(es_seqset_add(&s, 3), ES_OK); /* there already */
	assert_int_equal(es_seqset_add(&s, 4), ES_ENOMEM);
	assert_false(es_seqset_has(&s, 4));
	assert_int_equal(es_seqset_take_run(&s, 0), 3);
	assert_int_equal(es_seqset_add(&s, 4), ES_OK);
	es_seqset_free(&s);
}

/* Adding after members left from the front reuses the array: every member
 * stays findable across the compaction, in any order of adding. */
static void grows_and_compacts(void **state)
{
	(void)state;
	es_seqset s;
	es_seqset_init(&s, 0);
	uint64_t next = 1;
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 40; i++, next++)
			assert_int_equal(es_seqset_add(&s, i % 2 ? next : next + 1000000), ES_OK);
		for (int i = 0; i < 30; i++)
			assert_int_equal(es_seqset_reserve(&s), ES_OK);
		es_seqset_pass(&s, next - 20); /* about half leaves */
	}
	size_t n = es_seqset_count(&s);
	assert_true(n > 0 && n <= 1000 + 40);
	assert_true(s.cap < 4096); /* compacted, not grown without end */
	for (size_t i = 0; i + 1 < n; i++)
		assert_true(s.v[s.first + i] < s.v[s.first + i + 1]);
	assert_true(es_seqset_has(&s, next - 1) && es_seqset_has(&s, 1000001));
	es_seqset_clear(&s);
	assert_int_equal(es_seqset_count(&s), 0);
	es_seqset_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keeps_members_sorted_and_once),
		cmocka_unit_test(passing_drops_what_is_below),
		cmocka_unit_test(takes_the_run_above_a_mark),
		cmocka_unit_test(refuses_beyond_its_bound),
		cmocka_unit_test(grows_and_compacts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
