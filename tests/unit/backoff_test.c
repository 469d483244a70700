/* backoff_test.c - exponential backoff with full jitter and a floor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "backoff.h"

#define BASE  100
#define CAP   10000
#define DRAWS 2000

static uint64_t ceiling_of(uint64_t base, uint64_t cap, uint32_t attempt)
{
	uint64_t c = base;
	for (uint32_t i = 0; i < attempt && c < cap; i++)
		c *= 2;
	return c < cap ? c : cap;
}

/* Draws DRAWS delays at one attempt number, each within [base/4, ceiling];
 * returns the largest. */
static uint64_t max_at_attempt(es_backoff *b, uint32_t attempt, uint64_t ceiling)
{
	uint64_t max = 0;
	for (int i = 0; i < DRAWS; i++) {
		b->attempt = attempt;
		uint64_t d = es_backoff_next(b);
		assert_in_range(d, b->base_ms / 4, ceiling);
		assert_int_equal(b->attempt, attempt + 1);
		if (d > max)
			max = d;
	}
	return max;
}

static void delays_stay_in_bounds(void **state)
{
	es_backoff b;
	es_backoff_init(&b, BASE, CAP);
	assert_int_equal(b.base_ms, BASE);
	assert_int_equal(b.cap_ms, CAP);
	assert_int_equal(b.attempt, 0);
	for (uint32_t n = 0; n < 40; n++) {
		uint64_t d = es_backoff_next(&b);
		assert_in_range(d, BASE / 4, ceiling_of(BASE, CAP, n));
		assert_int_equal(b.attempt, n + 1);
	}
}

/* The ceiling doubles each attempt, then stays at the cap: the largest of many
 * draws comes close to it and never passes it. */
static void ceiling_doubles_then_caps(void **state)
{
	es_backoff b;
	es_backoff_init(&b, BASE, CAP);
	uint64_t prev = 0;
	for (uint32_t n = 0; n < 12; n++) {
		uint64_t ceiling = ceiling_of(BASE, CAP, n);
		assert_int_equal(ceiling, n < 7 ? (uint64_t)BASE << n : CAP);
		uint64_t max = max_at_attempt(&b, n, ceiling);
		assert_true(max * 10 >= ceiling * 9); /* within 10% of the ceiling */
		if (n < 7)
			assert_true(max > prev);
		prev = max;
	}
}

static void reset_returns_to_base(void **state)
{
	es_backoff b;
	es_backoff_init(&b, BASE, CAP);
	for (int i = 0; i < 20; i++)
		es_backoff_next(&b);
	es_backoff_reset(&b);
	assert_int_equal(b.attempt, 0);
	for (int i = 0; i < DRAWS; i++) {
		es_backoff_reset(&b);
		assert_in_range(es_backoff_next(&b), BASE / 4, BASE);
	}
	/* And grows again from there. */
	es_backoff_reset(&b);
	es_backoff_next(&b);
	assert_in_range(es_backoff_next(&b), BASE / 4, 2 * BASE);
}

static void jitter_varies(void **state)
{
	es_backoff a, b;
	es_backoff_init(&a, BASE, CAP);
	es_backoff_init(&b, BASE, CAP);
	uint64_t first = 0, seen_a[100], seen_b[100];
	bool varied = false;
	int floors = 0;
	for (int i = 0; i < 100; i++) {
		a.attempt = b.attempt = 5;
		seen_a[i] = es_backoff_next(&a);
		seen_b[i] = es_backoff_next(&b);
		if (i == 0)
			first = seen_a[0];
		else if (seen_a[i] != first)
			varied = true;
		floors += seen_a[i] == BASE / 4;
	}
	assert_true(varied);
	assert_true(floors < 20); /* ceiling 3200: the floor is rarely hit */
	/* Two clients do not draw the same sequence (seeded apart). */
	assert_true(memcmp(seen_a, seen_b, sizeof seen_a) != 0);
}

/* At attempt 0 the range is [base/4, base]: about a quarter of draws fall
 * below the floor and are raised to it; none is below it. */
static void floor_is_a_quarter_of_base(void **state)
{
	es_backoff b;
	es_backoff_init(&b, 400, 400);
	int at_floor = 0;
	for (int i = 0; i < DRAWS; i++) {
		uint64_t d = es_backoff_next(&b);
		assert_in_range(d, 100, 400);
		at_floor += d == 100;
	}
	assert_in_range(at_floor, DRAWS / 8, DRAWS / 2);
}

static void odd_settings_are_fixed_up(void **state)
{
	es_backoff b;
	es_backoff_init(&b, 0, 0); /* base 0 becomes 1, cap below base becomes base */
	assert_int_equal(b.base_ms, 1);
	assert_int_equal(b.cap_ms, 1);
	for (int i = 0; i < 50; i++)
		assert_in_range(es_backoff_next(&b), 0, 1);
	es_backoff_init(&b, 500, 100);
	assert_int_equal(b.cap_ms, 500);
	for (int i = 0; i < 50; i++)
		assert_in_range(es_backoff_next(&b), 125, 500);
	/* The attempt counter saturates instead of wrapping to 0. */
	es_backoff_init(&b, BASE, CAP);
	b.attempt = UINT32_MAX;
	assert_in_range(es_backoff_next(&b), BASE / 4, CAP);
	assert_int_equal(b.attempt, UINT32_MAX);
}

/* A cap above 2^63 must not make the doubling wrap around: after many
 * attempts the ceiling is the cap, so draws are spread far above the floor. */
static void huge_cap_does_not_wrap(void **state)
{
	es_backoff b;
	es_backoff_init(&b, 1000, UINT64_MAX);
	int at_floor = 0;
	for (int i = 0; i < 100; i++) {
		b.attempt = 100;
		at_floor += es_backoff_next(&b) == 250;
	}
	assert_true(at_floor < 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(delays_stay_in_bounds),
		cmocka_unit_test(ceiling_doubles_then_caps),
		cmocka_unit_test(reset_returns_to_base),
		cmocka_unit_test(jitter_varies),
		cmocka_unit_test(floor_is_a_quarter_of_base),
		cmocka_unit_test(odd_settings_are_fixed_up),
		cmocka_unit_test(huge_cap_does_not_wrap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
