/* metrics_test.c - the metrics registry and its exposition (the latency
 * tracker's test is latency_test.c). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "metrics.h"

/* The registry's own counter, first in every rendering. */
#define SELF                                                                                       \
	"# HELP edgespool_metrics_series_refused_total Label combinations refused because "        \
	"their metric had too many series.\n"                                                      \
	"# TYPE edgespool_metrics_series_refused_total counter\n"                                  \
	"edgespool_metrics_series_refused_total "

static es_metrics *make(size_t max)
{
	es_metrics *m = NULL;
	assert_int_equal(es_metrics_new(max, &m), ES_OK);
	assert_non_null(m);
	return m;
}

static es_metric_family *add(es_metrics *m, es_metric_type type, const char *name, const char *help,
			     const char *labels)
{
	es_metric_desc d = {.type = type, .name = name, .help = help, .labels = labels};
	es_metric_family *f = NULL;
	assert_int_equal(es_metrics_add(m, &d, &f), ES_OK);
	assert_non_null(f);
	return f;
}

static char *render(es_metrics *m)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(es_metrics_render(m, &text, &len), ES_OK);
	assert_int_equal(strlen(text), len);
	return text;
}

static void exposition_exact(void **state)
{
	es_metrics *m = make(0);
	es_metric_family *c = add(m, ES_METRIC_COUNTER, "x_requests_total", "Requests.", "code");
	es_metric_family *g = add(m, ES_METRIC_GAUGE, "x_temperature_celsius", "Temp.", NULL);
	es_metric_inc(es_metric_child(c, "200"));
	es_metric_add(es_metric_child(c, "200"), 2);
	es_metric_add(es_metric_child(c, "404"), -5); /* a counter never goes down */
	es_metric_set(es_metric_child(g, NULL), -0.25);
	char *text = render(m);
	assert_string_equal(text, SELF "0\n"
				       "# HELP x_requests_total Requests.\n"
				       "# TYPE x_requests_total counter\n"
				       "x_requests_total{code=\"200\"} 3\n"
				       "x_requests_total{code=\"404\"} 0\n"
				       "# HELP x_temperature_celsius Temp.\n"
				       "# TYPE x_temperature_celsius gauge\n"
				       "x_temperature_celsius -0.25\n");
	free(text);
	es_metrics_free(m);
}

static void escaping(void **state)
{
	es_metrics *m = make(0);
	es_metric_family *f =
		add(m, ES_METRIC_GAUGE, "x_info", "A \\ back\nslash and \"quotes\".", "a,b");
	es_metric_set(es_metric_child(f, "q\"u\\o\nte", NULL), 1);
	char *text = render(m);
	const char *want = "# HELP x_info A \\\\ back\\nslash and \"quotes\".\n"
			   "# TYPE x_info gauge\n"
			   "x_info{a=\"q\\\"u\\\\o\\nte\",b=\"\"} 1\n";
	assert_non_null(strstr(text, want));
	free(text);
	es_metrics_free(m);
}

static void histogram(void **state)
{
	static const double b[] = {0.1, 1, 2.5};
	es_metrics *m = make(0);
	es_metric_desc d = {.type = ES_METRIC_HISTOGRAM,
			    .name = "x_seconds",
			    .help = "Time.",
			    .labels = "route",
			    .buckets = b,
			    .nbuckets = 3};
	es_metric_family *f;
	assert_int_equal(es_metrics_add(m, &d, &f), ES_OK);
	es_metric *h = es_metric_child(f, "/a");
	es_metric_observe(h, 0.05);
	es_metric_observe(h, 0.1); /* le is inclusive */
	es_metric_observe(h, 2);
	es_metric_observe(h, 100);
	assert_int_equal(es_metric_count(h), 4);
	char *text = render(m);
	const char *want = "# TYPE x_seconds histogram\n"
			   "x_seconds_bucket{route=\"/a\",le=\"0.1\"} 2\n"
			   "x_seconds_bucket{route=\"/a\",le=\"1\"} 2\n"
			   "x_seconds_bucket{route=\"/a\",le=\"2.5\"} 3\n"
			   "x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
			   "x_seconds_sum{route=\"/a\"} 102.15\n"
			   "x_seconds_count{route=\"/a\"} 4\n";
	assert_non_null(strstr(text, want));
	free(text);
	es_metrics_free(m);
}

static void histogram_checks(void **state)
{
	static const double unsorted[] = {1, 0.5}, inf[] = {1, INFINITY};
	es_metrics *m = make(0);
	es_metric_family *f;
	es_metric_desc d = {
		.type = ES_METRIC_HISTOGRAM, .name = "h", .buckets = unsorted, .nbuckets = 2};
	assert_int_equal(es_metrics_add(m, &d, &f), ES_EINVAL);
	d.buckets = inf;
	assert_int_equal(es_metrics_add(m, &d, &f), ES_EINVAL);
	d.buckets = NULL;
	assert_int_equal(es_metrics_add(m, &d, &f), ES_EINVAL);
	d.buckets = unsorted;
	d.nbuckets = 1;
	d.labels = "le";
	assert_int_equal(es_metrics_add(m, &d, &f), ES_EINVAL);
	es_metrics_free(m);
}

static void names(void **state)
{
	assert_true(es_metrics_name_ok("a"));
	assert_true(es_metrics_name_ok("_a:b_c9"));
	assert_true(es_metrics_name_ok(":x"));
	assert_false(es_metrics_name_ok(""));
	assert_false(es_metrics_name_ok(NULL));
	assert_false(es_metrics_name_ok("9a"));
	assert_false(es_metrics_name_ok("a-b"));
	assert_false(es_metrics_name_ok("a b"));
	assert_false(es_metrics_name_ok("é"));
	es_metrics *m = make(0);
	es_metric_family *f;
	es_metric_desc d = {.type = ES_METRIC_GAUGE, .name = "ok", .labels = "a:b"};
	assert_int_equal(es_metrics_add(m, &d, &f), ES_EINVAL); /* no ':' in labels */
	d.labels = "__x";
	assert_int_equal(es_metrics_add(m, &d, &f), ES_EINVAL); /* reserved */
	d.labels = "a,,b";
	assert_int_equal(es_metrics_add(m, &d, &f), ES_EINVAL);
	d.labels = "a,b";
	assert_int_equal(es_metrics_add(m, &d, &f), ES_OK);
	assert_int_equal(es_metrics_add(m, &d, &f), ES_EINVAL); /* taken */
	d.name = "bad name";
	d.labels = NULL;
	assert_int_equal(es_metrics_add(m, &d, &f), ES_EINVAL);
	es_metrics_free(m);
}

static void formatting(void **state)
{
	char buf[32];
	es_metrics_format_double(1, buf, sizeof buf);
	assert_string_equal(buf, "1");
	es_metrics_format_double(0.1, buf, sizeof buf);
	assert_string_equal(buf, "0.1");
	es_metrics_format_double(1e21, buf, sizeof buf);
	assert_string_equal(buf, "1e+21");
	es_metrics_format_double(18446744073709551615.0, buf, sizeof buf);
	assert_true(strtod(buf, NULL) == 18446744073709551615.0);
	es_metrics_format_double(INFINITY, buf, sizeof buf);
	assert_string_equal(buf, "+Inf");
	es_metrics_format_double(-INFINITY, buf, sizeof buf);
	assert_string_equal(buf, "-Inf");
	es_metrics_format_double(NAN, buf, sizeof buf);
	assert_string_equal(buf, "NaN");
	es_metrics_format_double(1.0 / 3.0, buf, sizeof buf);
	assert_true(strtod(buf, NULL) == 1.0 / 3.0);
}

static void child_cap(void **state)
{
	es_metrics *m = make(3);
	es_metric_family *f = add(m, ES_METRIC_COUNTER, "x_total", "X.", "k");
	char v[8];
	for (int i = 0; i < 5; i++) {
		snprintf(v, sizeof v, "%d", i);
		es_metric *c = es_metric_child(f, v);
		if (i < 3)
			assert_non_null(c);
		else
			assert_null(c);
		es_metric_inc(c); /* NULL is a no-op */
	}
	assert_non_null(es_metric_child(f, "0")); /* existing ones still found */
	char *text = render(m);
	assert_non_null(strstr(text, SELF "2\n"));
	assert_null(strstr(text, "k=\"3\""));
	free(text);
	es_metrics_free(m);
}

struct worker {
	es_metric_family *f;
	es_metric *h;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 10000; i++) {
		es_metric_inc(es_metric_child(w->f, i % 2 ? "odd" : "even"));
		es_metric_observe(w->h, 0.5);
	}
	return NULL;
}

static void concurrent(void **state)
{
	static const double b[] = {1};
	es_metrics *m = make(0);
	es_metric_family *f = add(m, ES_METRIC_COUNTER, "x_total", "X.", "parity");
	es_metric_desc d = {.type = ES_METRIC_HISTOGRAM, .name = "h", .buckets = b, .nbuckets = 1};
	es_metric_family *hf;
	assert_int_equal(es_metrics_add(m, &d, &hf), ES_OK);
	struct worker w = {f, es_metric_child(hf, NULL)};
	pthread_t t[8];
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &w), 0);
	for (int i = 0; i < 8; i++) {
		char *text = render(m); /* renders meanwhile */
		free(text);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	assert_true(es_metric_value(es_metric_child(f, "odd")) == 40000);
	assert_true(es_metric_value(es_metric_child(f, "even")) == 40000);
	assert_int_equal(es_metric_count(w.h), 80000);
	assert_true(es_metric_value(w.h) == 40000);
	es_metrics_free(m);
}

static int calls;

static void collector(void *ctx)
{
	calls++;
	es_metric_set(es_metric_child(ctx, NULL), calls);
}

static void collectors(void **state)
{
	es_metrics *m = make(0);
	es_metric_family *f = add(m, ES_METRIC_GAUGE, "x_renders", "Renders.", NULL);
	calls = 0;
	assert_int_equal(es_metrics_collector(m, collector, f), ES_OK);
	free(render(m));
	char *text = render(m);
	assert_non_null(strstr(text, "\nx_renders 2\n"));
	free(text);
	assert_int_equal(es_metrics_add_process(m), ES_OK);
	text = render(m);
	assert_non_null(strstr(text, "\nprocess_resident_memory_bytes "));
	assert_non_null(strstr(text, "\nprocess_start_time_seconds "));
	free(text);
	es_metrics_free(m);
	es_metrics_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exposition_exact),
		cmocka_unit_test(escaping),
		cmocka_unit_test(histogram),
		cmocka_unit_test(histogram_checks),
		cmocka_unit_test(names),
		cmocka_unit_test(formatting),
		cmocka_unit_test(child_cap),
		cmocka_unit_test(concurrent),
		cmocka_unit_test(collectors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
