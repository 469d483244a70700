/* rotation_test.c - fail-over order over a cluster's URLs: round robin, a
 * round of failures before backing off, and the fail-over count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>

#include "rotation.h"

static void one_url_backs_off_on_every_failure(void **state)
{
	es_rotation r;
	es_rotation_init(&r, 1);
	for (int i = 0; i < 5; i++) {
		assert_true(es_rotation_failed(&r));
		assert_int_equal(es_rotation_current(&r), 0);
	}
	assert_false(es_rotation_connected(&r));
	assert_true(es_rotation_failed(&r)); /* lost: back off, same node */
	assert_false(es_rotation_connected(&r));
	assert_int_equal(r.failovers, 0);
}

static void zero_urls_is_one(void **state)
{
	es_rotation r;
	es_rotation_init(&r, 0);
	assert_int_equal(r.n, 1);
	assert_true(es_rotation_failed(&r));
	assert_int_equal(es_rotation_current(&r), 0);
}

/* Three nodes all down: each tried once per round, backoff only after the
 * third failure of a round. */
static void backs_off_after_a_whole_round(void **state)
{
	es_rotation r;
	es_rotation_init(&r, 3);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(es_rotation_current(&r), 0);
		assert_false(es_rotation_failed(&r));
		assert_int_equal(es_rotation_current(&r), 1);
		assert_false(es_rotation_failed(&r));
		assert_int_equal(es_rotation_current(&r), 2);
		assert_true(es_rotation_failed(&r));
	}
	assert_int_equal(r.failovers, 0);
}

/* Connected to node 0, node 0 dies: node 1 is tried at once; connecting
 * there is one fail-over; losing node 1 while 0 is still down goes on to 2,
 * then back around. */
static void fails_over_and_counts(void **state)
{
	es_rotation r;
	es_rotation_init(&r, 3);
	assert_false(es_rotation_connected(&r));
	assert_false(es_rotation_failed(&r)); /* lost node 0 */
	assert_int_equal(es_rotation_current(&r), 1);
	assert_true(es_rotation_connected(&r));
	assert_int_equal(r.failovers, 1);
	assert_false(es_rotation_failed(&r)); /* lost node 1 */
	assert_int_equal(es_rotation_current(&r), 2);
	assert_false(es_rotation_failed(&r)); /* node 2 refuses */
	assert_int_equal(es_rotation_current(&r), 0);
	assert_true(es_rotation_failed(&r)); /* node 0 still down: a round */
	assert_int_equal(es_rotation_current(&r), 1);
	assert_false(es_rotation_connected(&r)); /* back on 1: same node as before */
	assert_int_equal(r.failovers, 1);
	assert_false(es_rotation_failed(&r));
	assert_true(es_rotation_connected(&r)); /* on 2 */
	assert_int_equal(r.failovers, 2);
}

/* A success in the middle of a round starts the count again. */
static void success_resets_the_round(void **state)
{
	es_rotation r;
	es_rotation_init(&r, 2);
	assert_false(es_rotation_failed(&r));
	assert_false(es_rotation_connected(&r)); /* the first connection, on node 1 */
	assert_int_equal(r.failovers, 0);
	assert_false(es_rotation_failed(&r));
	assert_true(es_rotation_failed(&r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_url_backs_off_on_every_failure),
		cmocka_unit_test(zero_urls_is_one),
		cmocka_unit_test(backs_off_after_a_whole_round),
		cmocka_unit_test(fails_over_and_counts),
		cmocka_unit_test(success_resets_the_round),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
