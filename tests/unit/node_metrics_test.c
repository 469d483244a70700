/* node_metrics_test.c - the families every node has, read as a scraper
 * does: GET /metrics from the HTTP server on a loopback port 0, over a real
 * SQLite journal in a temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmpdir.h"
#include "clock.h"
#include "http.h"
#include "httpc.h"
#include "journal.h"
#include "node_metrics.h"

#define WAIT_MS	  10000
#define CAP_BYTES 1048576

static const es_node_metrics_words words = {
	.program = "node-test",
	.version = "9.8.7",
	.sent_name = "node_test_sent_total",
	.sent_help = "Events sent by the test.",
	.latency_name = "node_test_latency_seconds",
	.latency_help = "From commit to ack.",
	.acked = "Acked.",
	.journaled = "Journaled by the test.",
	.pending = "Pending.",
	.oldest_age = "Oldest.",
	.evicted = "Evicted.",
	.expired = "Expired.",
	.bytes = "Bytes.",
	.file_bytes = "File bytes.",
	.commits = "Commits.",
	.errors = "Errors.",
	.writable = "Writable.",
};

typedef struct fixture {
	char dir[64], path[128], url[64];
	es_journal *journal;
	es_journal_reader *reader;
	pthread_mutex_t reader_lock;
	es_http *http;
	es_node_metrics *nm;
	es_httpc *client;
	/* the node's own families, and what its collector copies */
	es_metric_family *things, *queue;
	double queue_len;
	int collects;
} fixture;

static const es_node_metric_def defs[] = {
	{offsetof(fixture, things), ES_METRIC_COUNTER, "node_test_things_total", NULL, "Things."},
	{offsetof(fixture, queue), ES_METRIC_GAUGE, "node_test_queue", "queue", "Queued."},
};

static void collect(void *ctx)
{
	fixture *f = ctx;
	f->collects++;
	es_node_metrics_set(f->queue, "a", f->queue_len);
}

static void on_request(void *ctx, const char *method, const char *route, int status, double seconds)
{
	fixture *f = ctx;
	es_node_metrics_on_request(f->nm, method, route, status, seconds);
}

static es_node_metrics_opts opts(fixture *f)
{
	return (es_node_metrics_opts){.words = &words,
				      .journal = f->journal,
				      .reader = f->reader,
				      .reader_lock = &f->reader_lock,
				      .journal_cap = CAP_BYTES,
				      .defs = defs,
				      .ndefs = sizeof defs / sizeof defs[0],
				      .base = f,
				      .collect = collect,
				      .ctx = f,
				      .http = f->http};
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	*state = f;
	pthread_mutex_init(&f->reader_lock, NULL);
	if (es_tmpdir_make(f->dir, sizeof f->dir, "node-metrics-test"))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/journal.db", f->dir);
	es_journal_opts jo = {.path = f->path, .sync = ES_SYNC_NORMAL, .source = "/site/node"};
	es_http_opts ho = {.listen = "127.0.0.1:0", .on_request = on_request, .hook_ctx = f};
	if (es_journal_open(&jo, &f->journal) || es_journal_reader_new(f->journal, &f->reader) ||
	    es_http_new(&ho, &f->http))
		return -1;
	es_node_metrics_opts o = opts(f);
	if (es_node_metrics_new(&o, &f->nm) || es_http_start(f->http) ||
	    es_httpc_new(NULL, &f->client))
		return -1;
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/metrics", es_http_port(f->http));
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char name[192];
	es_httpc_free(f->client);
	es_http_free(f->http);
	es_node_metrics_free(f->nm);
	es_journal_reader_free(f->reader);
	es_journal_close(f->journal);
	pthread_mutex_destroy(&f->reader_lock);
	for (const char *const *s = (const char *const[]){"", "-wal", "-shm", NULL}; *s; s++) {
		snprintf(name, sizeof name, "%s%s", f->path, *s);
		unlink(name);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* GET /metrics (malloc'd text). */
static char *scrape(fixture *f)
{
	es_httpc_resp r;
	assert_int_equal(es_httpc_get(f->client, f->url, &r), ES_OK);
	assert_int_equal(r.status, 200);
	return r.body;
}

/* The value of the series (name and labels, exactly as rendered), or NAN
 * when it is not there. */
static double value(const char *text, const char *series)
{
	char want[256];
	snprintf(want, sizeof want, "\n%s ", series);
	const char *at = strstr(text, want);
	return at ? strtod(at + strlen(want), NULL) : NAN;
}

static void expect(const char *text, const char *series, double want)
{
	double v = value(text, series);
	if (!(v == want))
		fail_msg("%s is %g, not %g", series, v, want);
}

static void append(fixture *f, int n)
{
	for (int i = 0; i < n; i++) {
		es_event *ev;
		es_verr v;
		es_append_result res;
		assert_int_equal(es_event_new("t.x", "s", "{}", &ev, &v), ES_OK);
		assert_int_equal(es_journal_append(f->journal, &ev, 1, &res), ES_OK);
		es_event_free(ev);
	}
}

/* ---- tests ---------------------------------------------------------------- */

static void shared_families_and_the_node_s(void **state)
{
	fixture *f = *state;
	char *t = scrape(f);
	expect(t, "edgespool_build_info{version=\"9.8.7\",program=\"node-test\"}", 1);
	assert_non_null(
		strstr(t, "# HELP edgespool_events_journaled_total Journaled by the test.\n"));
	assert_non_null(strstr(t, "# HELP node_test_sent_total Events sent by the test.\n"));
	assert_non_null(strstr(t, "# TYPE node_test_latency_seconds histogram\n"));
	expect(t, "edgespool_journal_cap_bytes", CAP_BYTES);
	expect(t, "edgespool_journal_writable", 1);
	expect(t, "node_test_sent_total", 0);
	expect(t, "edgespool_events_journaled_total", 0);
	assert_true(value(t, "process_resident_memory_bytes") > 0);
	/* The node's families: their pointers were stored where it said. */
	assert_non_null(f->things);
	assert_non_null(f->queue);
	es_metric_inc(es_metric_child(f->things, NULL));
	free(t);
	t = scrape(f);
	expect(t, "node_test_things_total", 1);
	/* Shared counters and gauges, then the node's, then the histograms. */
	const char *journaled = strstr(t, "# TYPE edgespool_events_journaled_total");
	const char *things = strstr(t, "# TYPE node_test_things_total");
	const char *latency = strstr(t, "# TYPE node_test_latency_seconds");
	assert_true(journaled && things && latency && journaled < things && things < latency);
	free(t);
}

static void journal_collector(void **state)
{
	fixture *f = *state;
	append(f, 3);
	assert_int_equal(es_journal_ack(f->journal, 1), ES_OK);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	char *t = scrape(f);
	expect(t, "edgespool_events_journaled_total", 3);
	expect(t, "edgespool_events_pending", 2);
	expect(t, "edgespool_journal_errors_total", 0);
	assert_true(value(t, "edgespool_journal_commits_total") >= 3);
	assert_true(value(t, "edgespool_journal_bytes") > 0);
	assert_true(value(t, "edgespool_journal_file_bytes") >=
		    value(t, "edgespool_journal_bytes"));
	double age = value(t, "edgespool_oldest_pending_age_seconds");
	assert_true(age >= 0 && age < 60);
	free(t);
}

static void sent_acked_and_latency(void **state)
{
	fixture *f = *state;
	uint64_t now = es_clock_wall_ms();
	es_node_metrics_sent(f->nm, 1, now - 1500);
	es_node_metrics_sent(f->nm, 2, now - 100);
	es_node_metrics_acked(f->nm, 1); /* 1.5 s */
	char *t = scrape(f);
	expect(t, "node_test_sent_total", 2);
	expect(t, "edgespool_events_acked_total", 1);
	expect(t, "node_test_latency_seconds_count", 1);
	expect(t, "node_test_latency_seconds_bucket{le=\"1\"}", 0);
	expect(t, "node_test_latency_seconds_bucket{le=\"2.5\"}", 1);
	free(t);
	/* The connection was lost: what was in flight is not timed any more. */
	es_node_metrics_reset(f->nm);
	es_node_metrics_acked(f->nm, 2);
	t = scrape(f);
	expect(t, "edgespool_events_acked_total", 2);
	expect(t, "node_test_latency_seconds_count", 1);
	free(t);
	es_node_metrics_sent(NULL, 3, now);
	es_node_metrics_acked(NULL, 3);
	es_node_metrics_reset(NULL);
}

static void link_families(void **state)
{
	fixture *f = *state;
	es_node_metrics_link(f->nm, "mqtt", true, 3, 2);
	es_node_metrics_link(f->nm, "cloud", false, 0, 5);
	char *t = scrape(f);
	expect(t, "edgespool_link_up{link=\"mqtt\"}", 1);
	expect(t, "edgespool_reconnects_total{link=\"mqtt\"}", 2); /* after the first */
	expect(t, "edgespool_connect_failures_total{link=\"mqtt\"}", 2);
	expect(t, "edgespool_link_up{link=\"cloud\"}", 0);
	expect(t, "edgespool_reconnects_total{link=\"cloud\"}", 0);
	expect(t, "edgespool_connect_failures_total{link=\"cloud\"}", 5);
	free(t);
}

/* The node's collector runs at every render. */
static void node_collector(void **state)
{
	fixture *f = *state;
	f->queue_len = 5;
	char *t = scrape(f);
	expect(t, "node_test_queue{queue=\"a\"}", 5);
	free(t);
	f->queue_len = 7;
	t = scrape(f);
	expect(t, "node_test_queue{queue=\"a\"}", 7);
	assert_true(f->collects >= 2);
	free(t);
}

/* Each answered request is counted by the http module's hook, after its
 * answer went out: polled for. */
static void http_requests(void **state)
{
	fixture *f = *state;
	char other[96];
	es_httpc_resp r;
	snprintf(other, sizeof other, "%.*snowhere", (int)(strlen(f->url) - strlen("metrics")),
		 f->url);
	assert_int_equal(es_httpc_get(f->client, other, &r), ES_OK);
	assert_int_equal(r.status, 404);
	es_httpc_resp_free(&r);
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	double ok = NAN, missing = NAN, timed = NAN;
	while (es_clock_mono_ms() < deadline && !(ok >= 1 && missing >= 1 && timed >= 1)) {
		char *t = scrape(f);
		ok = value(t, "edgespool_http_requests_total{method=\"GET\",route=\"/metrics\","
			      "status=\"200\"}");
		missing = value(t, "edgespool_http_requests_total{method=\"GET\",route=\"other\","
				   "status=\"404\"}");
		timed = value(t,
			      "edgespool_http_request_duration_seconds_count{route=\"/metrics\"}");
		free(t);
	}
	assert_true(ok >= 1);
	assert_true(missing == 1);
	assert_true(timed >= 1);
	es_node_metrics_on_request(NULL, "GET", "/x", 200, 0.1); /* nothing to count into */
}

static void arguments(void **state)
{
	fixture *f = *state;
	es_node_metrics *nm = NULL;
	es_node_metrics_opts o = opts(f);
	assert_int_equal(es_node_metrics_new(NULL, &nm), ES_EINVAL);
	o.words = NULL;
	assert_int_equal(es_node_metrics_new(&o, &nm), ES_EINVAL);
	o = opts(f);
	o.reader_lock = NULL;
	assert_int_equal(es_node_metrics_new(&o, &nm), ES_EINVAL);
	o = opts(f);
	o.defs = NULL;
	assert_int_equal(es_node_metrics_new(&o, &nm), ES_EINVAL);
	o = opts(f);
	o.http = NULL;
	assert_int_equal(es_node_metrics_new(&o, &nm), ES_EINVAL);
	assert_int_equal(es_node_metrics_new(&o, NULL), ES_EINVAL);
	/* A family of the node's that is not valid: refused as a whole. */
	static const es_node_metric_def bad[] = {
		{offsetof(fixture, things), ES_METRIC_COUNTER, "bad name", NULL, "Bad."},
	};
	o = opts(f);
	o.defs = bad;
	o.ndefs = 1;
	assert_int_equal(es_node_metrics_new(&o, &nm), ES_EINVAL);
	assert_null(nm);
	es_node_metrics_free(NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(shared_families_and_the_node_s),
		T(journal_collector),
		T(sent_acked_and_latency),
		T(link_families),
		T(node_collector),
		T(http_requests),
		T(arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
