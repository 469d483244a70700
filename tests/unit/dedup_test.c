/* dedup_test.c - the consumer's memory of event ids (common/dedup.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "dedup.h"

static void id_of(unsigned n, char buf[40])
{
	snprintf(buf, 40, "01a2%04x-0000-7000-8000-%012x", n & 0xffff, n);
}

static void first_time_new_second_time_seen(void **state)
{
	es_dedup *d;
	assert_int_equal(es_dedup_new(100, &d), ES_OK);
	assert_false(es_dedup_seen(d, "a"));
	assert_true(es_dedup_seen(d, "a"));
	assert_false(es_dedup_seen(d, "b"));
	assert_true(es_dedup_seen(d, "a"));
	assert_int_equal(es_dedup_size(d), 2);
	es_dedup_free(d);
}

/* With capacity c, the last c distinct ids are remembered, older ones not. */
static void oldest_are_forgotten(void **state)
{
	enum { CAP = 1000, N = 5000 };
	es_dedup *d;
	char id[40];
	assert_int_equal(es_dedup_new(CAP, &d), ES_OK);
	for (unsigned i = 0; i < N; i++) {
		id_of(i, id);
		assert_false(es_dedup_seen(d, id));
	}
	assert_int_equal(es_dedup_size(d), CAP);
	for (unsigned i = N - CAP; i < N; i++) {
		id_of(i, id);
		assert_true(es_dedup_seen(d, id)); /* remembered */
	}
	id_of(N - CAP - 1, id);
	assert_false(es_dedup_seen(d, id)); /* forgotten, so new again */
	es_dedup_free(d);
}

/* Many evictions through long probe runs keep every remembered id findable
 * (deletion shifts entries back instead of leaving holes). */
static void heavy_churn_keeps_lookups_right(void **state)
{
	enum { CAP = 257, N = 200000 };
	es_dedup *d;
	char id[40];
	assert_int_equal(es_dedup_new(CAP, &d), ES_OK);
	for (unsigned i = 0; i < N; i++) {
		id_of(i * 2654435761u, id);
		assert_false(es_dedup_seen(d, id));
		if (i >= CAP && i % 97 == 0) {
			for (unsigned k = i - CAP + 1; k <= i; k += 37) {
				id_of(k * 2654435761u, id);
				assert_true(es_dedup_seen(d, id));
			}
		}
	}
	es_dedup_free(d);
}

static void bad_arguments(void **state)
{
	es_dedup *d = NULL;
	assert_int_equal(es_dedup_new(0, &d), ES_EINVAL);
	assert_int_equal(es_dedup_new(((size_t)1 << 28) + 1, &d), ES_EINVAL);
	assert_int_equal(es_dedup_new(10, NULL), ES_EINVAL);
	assert_null(d);
	es_dedup_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(first_time_new_second_time_seen),
		cmocka_unit_test(oldest_are_forgotten),
		cmocka_unit_test(heavy_churn_keeps_lookups_right),
		cmocka_unit_test(bad_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
