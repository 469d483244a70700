/* grow_test.c - room in a growing array (common/grow.c): the first
 * capacity, doubling until the need fits, contents kept, and a size that
 * would overflow refused with the array left as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>

#include "grow.h"

static void starts_at_first_and_doubles(void **state)
{
	(void)state;
	int *v = NULL;
	size_t cap = 0;
	v = es_grow(v, &cap, 1, sizeof *v, 4);
	assert_non_null(v);
	assert_int_equal(cap, 4);
	for (int i = 0; i < 4; i++)
		v[i] = i;
	int *same = es_grow(v, &cap, 4, sizeof *v, 4);
	assert_ptr_equal(same, v); /* room already: nothing moves */
	assert_int_equal(cap, 4);
	v = es_grow(v, &cap, 5, sizeof *v, 4);
	assert_non_null(v);
	assert_int_equal(cap, 8);
	v = es_grow(v, &cap, 30, sizeof *v, 4); /* doubles until it fits */
	assert_non_null(v);
	assert_int_equal(cap, 32);
	for (int i = 0; i < 4; i++)
		assert_int_equal(v[i], i);
	free(v);
}

static void a_first_of_zero_still_makes_room(void **state)
{
	(void)state;
	char *p = NULL;
	size_t cap = 0;
	p = es_grow(p, &cap, 3, 1, 0);
	assert_non_null(p);
	assert_true(cap >= 3);
	free(p);
}

static void refuses_an_overflowing_size_and_keeps_the_array(void **state)
{
	(void)state;
	uint64_t *v = NULL;
	size_t cap = 0;
	v = es_grow(v, &cap, 2, sizeof *v, 2);
	assert_non_null(v);
	v[0] = 7;
	assert_null(es_grow(v, &cap, SIZE_MAX / 4, sizeof *v, 2)); /* bytes overflow */
	assert_null(es_grow(v, &cap, SIZE_MAX, 1, 2));		   /* count overflows */
	assert_int_equal(cap, 2);
	assert_int_equal(v[0], 7);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(starts_at_first_and_doubles),
		cmocka_unit_test(a_first_of_zero_still_makes_room),
		cmocka_unit_test(refuses_an_overflowing_size_and_keeps_the_array),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
