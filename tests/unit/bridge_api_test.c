/* bridge_api_test.c - the bridge's /api/status (cloud-bridge/api.c) as JSON,
 * from a fake view of the bridge that the test fills, over a real SQLite
 * inbox in a temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmpdir.h"
#include "api.h"
#include "clock.h"
#include "http.h"
#include "journal.h"

typedef struct fixture {
	char dir[64], path[128];
	es_journal *journal;
	es_http *http;
	bridge_api *api;
	bridge_view view; /* what the fake view hands out */
} fixture;

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
	if (es_tmpdir_make(f->dir, sizeof f->dir, "bridge-api-test"))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/inbox.db", f->dir);
	es_journal_opts jo = {.path = f->path, .sync = ES_SYNC_NORMAL, .source = "/site/bridge"};
	es_http_opts ho = {.listen = "127.0.0.1:0"};
	if (es_journal_open(&jo, &f->journal) || es_http_new(&ho, &f->http))
		return -1;
	bridge_api_opts o = {.node_id = "bridge",
			     .site = "site",
			     .filter = "edgespool/#",
			     .journal_path = f->path,
			     .cloud_nodes = 1,
			     .live_max = 2};
	bridge_api_deps d = {.http = f->http, .journal = f->journal, .view = view, .ctx = f};
	return bridge_api_new(&o, &d, &f->api) ? -1 : 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	bridge_api_stop(f->api);
	es_http_free(f->http);
	bridge_api_free(f->api);
	es_journal_close(f->journal);
	es_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* /api/status parsed (cJSON_Delete it). */
static cJSON *status(fixture *f)
{
	char *text = bridge_api_status_json(f->api);
	assert_non_null(text);
	cJSON *o = cJSON_Parse(text);
	cJSON_free(text);
	assert_non_null(o);
	return o;
}

static double number(const cJSON *o, const char *name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!cJSON_IsNumber(n))
		fail_msg("%s is not a number", name);
	return n->valuedouble;
}

/* cloud.lanes: high, normal, low, each with every field; bytes_per_event
 * is bytes / sent (0 before any), eta_s backlog / rate (0 with no
 * backlog, null when a backlog does not drain). */
static void lanes(void **state)
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
	fw->inflight_bytes = 1234;
	fw->inflight_cap = 65536;
	cJSON *o = status(f);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cloud");
	assert_true(number(c, "inflight_bytes") == 1234);
	assert_true(number(c, "inflight_cap") == 65536);
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, "lanes");
	assert_true(cJSON_IsArray(a) && cJSON_GetArraySize(a) == BRIDGE_LANES);
	const char *names[] = {"high", "normal", "low"};
	for (int i = 0; i < BRIDGE_LANES; i++) {
		const cJSON *l = cJSON_GetArrayItem(a, i);
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(l, "lane");
		assert_true(cJSON_IsString(name));
		assert_string_equal(name->valuestring, names[i]);
		assert_int_equal(cJSON_GetArraySize(l), 11);
	}
	const cJSON *high = cJSON_GetArrayItem(a, 0), *normal = cJSON_GetArrayItem(a, 1);
	const cJSON *low = cJSON_GetArrayItem(a, 2);
	assert_true(number(high, "backlog") == 10 && number(high, "held") == 2);
	assert_true(number(high, "sent") == 7 && number(high, "acked") == 6);
	assert_true(number(high, "expired") == 1 && number(high, "bytes") == 700);
	assert_true(number(high, "bytes_per_event") == 100);
	assert_true(number(high, "drain_per_s") == 5 && number(high, "eta_s") == 2);
	assert_true(number(high, "oldest_age_s") >= 5 && number(high, "oldest_age_s") < 65);
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(normal, "eta_s")));
	assert_true(number(normal, "bytes_per_event") == 0);
	assert_true(number(low, "eta_s") == 0 && number(low, "oldest_age_s") == 0);
	cJSON_Delete(o);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(lanes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
