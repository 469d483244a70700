/* lograte_test.c - a few log lines a second per kind of message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lograte.h"

/* max lines a second pass; the rest are counted, and the first line of a
 * later second says how many were held back, once. */
static void keeps_max_lines_a_second(void **state)
{
	(void)state;
	es_lograte r = {.max = 3};
	uint64_t held = 99;
	for (int i = 0; i < 3; i++) {
		assert_true(es_lograte_ok(&r, 1000 + (uint64_t)i, &held));
		assert_int_equal(held, 0);
	}
	for (int i = 0; i < 5; i++)
		assert_false(es_lograte_ok(&r, 1500, &held));
	assert_true(es_lograte_ok(&r, 2000, &held));
	assert_int_equal(held, 5);
	assert_true(es_lograte_ok(&r, 2001, &held));
	assert_int_equal(held, 0);
	assert_true(es_lograte_ok(&r, 2002, NULL));
	assert_false(es_lograte_ok(&r, 2999, NULL));
	assert_true(es_lograte_ok(&r, 7000, &held));
	assert_int_equal(held, 1);
}

static void defaults_and_null(void **state)
{
	(void)state;
	es_lograte r = {0};
	for (int i = 0; i < 10; i++)
		assert_true(es_lograte_ok(&r, 5, NULL));
	assert_false(es_lograte_ok(&r, 5, NULL));
	assert_true(es_lograte_ok(NULL, 5, NULL));
}

/* The clock's own now: a burst within one second (far shorter than one)
 * lets at most 2 * max lines through even across a second's boundary. */
static void line_at_the_clock(void **state)
{
	(void)state;
	es_lograte r = {.max = 2};
	int through = 0;
	for (int i = 0; i < 1000; i++)
		through += es_lograte_line(&r, "test", "test lines");
	assert_in_range(through, 2, 4);
	assert_true(r.held > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keeps_max_lines_a_second),
		cmocka_unit_test(defaults_and_null),
		cmocka_unit_test(line_at_the_clock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
