/* latency_test.c - the tracker of work in flight: what it observes into its
 * histogram, what it forgets, its bound, and its ring as it wraps and
 * grows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "latency.h"
#include "metrics.h"

/* A registry with one histogram (buckets 0.1 and 1 s) in *h. */
static es_metrics *make(es_metric **h)
{
	static const double b[] = {0.1, 1};
	es_metrics *m = NULL;
	es_metric_family *f;
	es_metric_desc d = {.type = ES_METRIC_HISTOGRAM, .name = "l", .buckets = b, .nbuckets = 2};
	assert_int_equal(es_metrics_new(0, &m), ES_OK);
	assert_int_equal(es_metrics_add(m, &d, &f), ES_OK);
	*h = es_metric_child(f, NULL);
	assert_non_null(*h);
	return m;
}

static es_latency *tracker(es_metric *h, size_t max)
{
	es_latency *l = NULL;
	assert_int_equal(es_latency_new(h, max, &l), ES_OK);
	assert_non_null(l);
	return l;
}

static void latency(void **state)
{
	es_metric *h;
	es_metrics *m = make(&h);
	es_latency *l = tracker(h, 4);
	es_latency_start(l, 1, 1000);
	es_latency_start(l, 2, 1000);
	es_latency_start(l, 3, 1500);
	es_latency_done(l, 1, 1050); /* 0.05 s */
	es_latency_done(l, 9, 1050); /* unknown: ignored */
	es_latency_done(l, 3, 2000); /* 0.5 s; 2 never completes: forgotten */
	assert_int_equal(es_latency_size(l), 0);
	assert_int_equal(es_metric_count(h), 2);
	es_latency_done(l, 2, 3000);
	assert_int_equal(es_metric_count(h), 2);
	for (uint64_t t = 10; t < 20; t++) /* at most 4 remembered */
		es_latency_start(l, t, 0);
	assert_int_equal(es_latency_size(l), 4);
	es_latency_done(l, 12, 0); /* forgets 10 and 11 with it */
	es_latency_done(l, 11, 5); /* so this one is unknown */
	assert_int_equal(es_metric_count(h), 3);
	es_latency_clear(l);
	assert_int_equal(es_latency_size(l), 0);
	es_latency_start(l, 20, 10);
	es_latency_done(l, 20, 5); /* a clock that went back counts as 0 */
	assert_int_equal(es_metric_count(h), 4);
	es_latency_free(l);
	es_latency_free(NULL);
	es_metrics_free(m);
}

/* The seconds observed, not only how many: the histogram's sum. */
static void observes_the_time_from_start(void **state)
{
	es_metric *h;
	es_metrics *m = make(&h);
	es_latency *l = tracker(h, 0);
	es_latency_start(l, 7, 10000);
	es_latency_start(l, 8, 10100);
	es_latency_done(l, 7, 10250); /* 0.25 s */
	es_latency_done(l, 8, 12100); /* 2 s */
	assert_int_equal(es_metric_count(h), 2);
	assert_true(fabs(es_metric_value(h) - 2.25) < 1e-9);
	es_latency_free(l);
	es_metrics_free(m);
}

/* The ring wraps (head moves on as entries complete) and grows past its
 * first 64 slots with the entries kept in start order. */
static void ring_wraps_and_grows_in_order(void **state)
{
	es_metric *h;
	es_metrics *m = make(&h);
	es_latency *l = tracker(h, 0);
	uint64_t next = 1, done = 0;
	for (; next <= 40; next++)
		es_latency_start(l, next, next);
	for (done = 1; done <= 30; done++) /* head at 30 of 64 */
		es_latency_done(l, done, done);
	for (; next <= 200; next++) /* wraps, then grows twice */
		es_latency_start(l, next, next);
	assert_int_equal(es_latency_size(l), 200 - 30);
	/* Every remaining tag is found, in order, each observed once. */
	for (; done <= 200; done++) {
		es_latency_done(l, done, done + 1000);
		assert_int_equal(es_latency_size(l), 200 - done);
	}
	assert_int_equal(es_metric_count(h), 200);
	/* 30 of 0 s, 170 of 1 s */
	assert_true(fabs(es_metric_value(h) - 170.0) < 1e-9);
	es_latency_free(l);
	es_metrics_free(m);
}

/* Beyond max, starts are not timed; what was kept still completes. */
static void bound_drops_new_starts(void **state)
{
	es_metric *h;
	es_metrics *m = make(&h);
	es_latency *l = tracker(h, 100);
	for (uint64_t t = 1; t <= 150; t++)
		es_latency_start(l, t, 0);
	assert_int_equal(es_latency_size(l), 100);
	es_latency_done(l, 120, 10); /* never remembered */
	assert_int_equal(es_metric_count(h), 0);
	assert_int_equal(es_latency_size(l), 100);
	es_latency_done(l, 100, 10);
	assert_int_equal(es_metric_count(h), 1);
	assert_int_equal(es_latency_size(l), 0);
	es_latency_free(l);
	es_metrics_free(m);
}

/* No histogram, NULL trackers, a bad call: nothing breaks. */
static void null_cases(void **state)
{
	es_latency *l = tracker(NULL, 2);
	es_latency_start(l, 1, 0);
	es_latency_done(l, 1, 5);
	assert_int_equal(es_latency_size(l), 0);
	es_latency_free(l);
	assert_int_equal(es_latency_new(NULL, 0, NULL), ES_EINVAL);
	es_latency_start(NULL, 1, 0);
	es_latency_done(NULL, 1, 0);
	es_latency_clear(NULL);
	assert_int_equal(es_latency_size(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(latency),
		cmocka_unit_test(observes_the_time_from_start),
		cmocka_unit_test(ring_wraps_and_grows_in_order),
		cmocka_unit_test(bound_drops_new_starts),
		cmocka_unit_test(null_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
