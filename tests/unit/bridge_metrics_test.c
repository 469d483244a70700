/* bridge_metrics_test.c - the bridge's own families (cloud-bridge/metrics.c)
 * as a scraper reads them: GET /metrics from the HTTP server on a loopback
 * port 0, a real SQLite inbox in a temporary folder, and a fake view of the
 * bridge that the test fills. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmpdir.h"
#include "clock.h"
#include "http.h"
#include "httpc.h"
#include "journal.h"
#include "metrics.h"

typedef struct fixture {
	char dir[64], path[128], url[64];
	es_journal *journal;
	es_http *http;
	bridge_metrics *m;
	es_httpc *client;
	bridge_view view; /* what the fake view hands out */
} fixture;

static const char *const cloud_urls[] = {"mqtt://127.0.0.1:1883"};

static void view(void *ctx, bridge_view *out)
{
	fixture *f = ctx;
	*out = f->view;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	*state = f;
	if (es_tmpdir_make(f->dir, sizeof f->dir, "bridge-metrics-test"))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/inbox.db", f->dir);
	es_journal_opts jo = {.path = f->path, .sync = ES_SYNC_NORMAL, .source = "/site/bridge"};
	es_http_opts ho = {.listen = "127.0.0.1:0"};
	if (es_journal_open(&jo, &f->journal) || es_http_new(&ho, &f->http))
		return -1;
	bridge_metrics_opts o = {.cloud_urls = cloud_urls, .ncloud_urls = 1};
	bridge_metrics_deps d = {.http = f->http, .journal = f->journal, .view = view, .ctx = f};
	if (bridge_metrics_new(&o, &d, &f->m) || es_http_start(f->http) ||
	    es_httpc_new(NULL, &f->client))
		return -1;
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/metrics", es_http_port(f->http));
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	es_httpc_free(f->client);
	es_http_free(f->http);
	bridge_metrics_free(f->m);
	es_journal_close(f->journal);
	es_tmpdir_remove(f->dir);
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

static double lane_value(const char *text, const char *name, const char *lane)
{
	char series[160];
	snprintf(series, sizeof series, "%s{lane=\"%s\"}", name, lane);
	return value(text, series);
}

static void expect_lane(const char *text, const char *name, const char *lane, double want)
{
	double v = lane_value(text, name, lane);
	if (!(v == want))
		fail_msg("%s{lane=\"%s\"} is %g, not %g", name, lane, v, want);
}

/* ---- tests ---------------------------------------------------------------- */

static const char *const lane_families[] = {
	"edgespool_lane_backlog_events",    "edgespool_lane_oldest_age_seconds",
	"edgespool_lane_held_events",	    "edgespool_lane_sent_total",
	"edgespool_lane_acked_total",	    "edgespool_lane_expired_total",
	"edgespool_lane_bytes_total",	    "edgespool_lane_drain_rate",
	"edgespool_lane_drain_eta_seconds",
};

/* Every lane's series is there from the start, at 0, with its type. */
static void every_lane_always_present(void **state)
{
	fixture *f = *state;
	char *t = scrape(f);
	for (size_t i = 0; i < sizeof lane_families / sizeof lane_families[0]; i++) {
		for (const char *const *l = (const char *const[]){"high", "normal", "low", NULL};
		     *l; l++)
			expect_lane(t, lane_families[i], *l, 0);
	}
	assert_non_null(strstr(t, "# TYPE edgespool_lane_sent_total counter\n"));
	assert_non_null(strstr(t, "# TYPE edgespool_lane_backlog_events gauge\n"));
	assert_non_null(strstr(t, "# TYPE edgespool_lane_drain_eta_seconds gauge\n"));
	assert_true(value(t, "edgespool_cloud_inflight_bytes") == 0);
	assert_true(value(t, "edgespool_cloud_inflight_cap_bytes") == 0);
	free(t);
}

/* The view's figures, by lane; the ETA is backlog / rate, 0 with no
 * backlog, -1 when a backlog does not drain. */
static void lanes_from_the_view(void **state)
{
	fixture *f = *state;
	uint64_t now = es_clock_wall_ms();
	bridge_forward_stats *fw = &f->view.forward;
	fw->lanes[BRIDGE_LANE_HIGH] = (bridge_lane_stats){.held = 2,
							  .backlog = 10,
							  .oldest_ms = now - 5000,
							  .sent = 7,
							  .acked = 6,
							  .expired = 1,
							  .bytes = 700,
							  .drain_per_s = 5};
	fw->lanes[BRIDGE_LANE_NORMAL] = (bridge_lane_stats){.backlog = 4, .oldest_ms = now - 1000};
	fw->lanes[BRIDGE_LANE_LOW] = (bridge_lane_stats){.sent = 3, .acked = 3, .drain_per_s = 2};
	fw->inflight_bytes = 1234;
	fw->inflight_cap = 65536;
	char *t = scrape(f);
	expect_lane(t, "edgespool_lane_backlog_events", "high", 10);
	expect_lane(t, "edgespool_lane_held_events", "high", 2);
	expect_lane(t, "edgespool_lane_sent_total", "high", 7);
	expect_lane(t, "edgespool_lane_acked_total", "high", 6);
	expect_lane(t, "edgespool_lane_expired_total", "high", 1);
	expect_lane(t, "edgespool_lane_bytes_total", "high", 700);
	expect_lane(t, "edgespool_lane_drain_rate", "high", 5);
	expect_lane(t, "edgespool_lane_drain_eta_seconds", "high", 2);
	double age = lane_value(t, "edgespool_lane_oldest_age_seconds", "high");
	assert_true(age >= 5 && age < 65);
	expect_lane(t, "edgespool_lane_drain_eta_seconds", "normal", -1);
	expect_lane(t, "edgespool_lane_drain_eta_seconds", "low", 0);
	expect_lane(t, "edgespool_lane_oldest_age_seconds", "low", 0);
	expect_lane(t, "edgespool_lane_sent_total", "low", 3);
	assert_true(value(t, "edgespool_cloud_inflight_bytes") == 1234);
	assert_true(value(t, "edgespool_cloud_inflight_cap_bytes") == 65536);
	free(t);
}

static void arguments(void **state)
{
	fixture *f = *state;
	bridge_metrics *m = NULL;
	bridge_metrics_opts o = {.cloud_urls = cloud_urls, .ncloud_urls = 1};
	bridge_metrics_deps d = {.http = f->http, .journal = f->journal, .view = NULL};
	assert_int_equal(bridge_metrics_new(&o, &d, &m), ES_EINVAL);
	assert_int_equal(bridge_metrics_new(NULL, &d, &m), ES_EINVAL);
	assert_null(m);
	bridge_metrics_free(NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(every_lane_always_present),
		T(lanes_from_the_view),
		T(arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
