/* agent_http_test.c - the agent's parts on the HTTP threads, in-process
 * through their headers: ingest (edge-agent/ingest.h: POST /api/events),
 * the API (api.h: /healthz, /readyz, /api/status, /api/devices, /api/replay) and
 * the view of the loop's state they read (view.h). A real HTTP server on a
 * free loopback port, the real journal on a temporary SQLite file; the
 * re-send service behind /api/replay runs on a loop thread of the test's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agent_fixture.h"
#include "api.h"
#include "ingest.h"
#include "loop.h"
#include "resend.h"
#include "view.h"

#define JSON "application/json"

typedef struct env {
	fx *f;
	es_loop *loop;
	pthread_t loop_thread;
	pthread_mutex_t reader_lock;
	es_journal_reader *reader; /* the HTTP threads' */
	es_http *http;
	agent_view *view;
	agent_ingest *ingest;
	agent_resend *resend;
	agent_api *api;
	int port;
	char body[16384];
} env;

static void no_reply(void *ctx, const char *json, size_t len)
{
	(void)ctx, (void)json, (void)len;
}

static void pump(void *ctx)
{
	agent_resend_pump(*(agent_resend **)ctx);
}

static void *run_loop(void *arg)
{
	es_loop_run(arg);
	return NULL;
}

static void stop_loop(void *arg)
{
	es_loop_stop(arg);
}

static void make_parts(env *e)
{
	fx *f = e->f;
	es_http_opts ho = {.listen = "127.0.0.1:0", .threads = 4};
	agent_resend_opts ro = {.loop = e->loop,
				.names = f->names,
				.journal = f->journal,
				.reader = f->reader,
				.rate = 100,
				.max_span = 1000,
				.queue = 4,
				.ops = &fx_ops,
				.ops_ctx = &f->mqtt,
				.reply = no_reply,
				.wake = pump,
				.ctx = &e->resend};
	assert_int_equal(es_http_new(&ho, &e->http), ES_OK);
	assert_int_equal(agent_view_new(&e->view), ES_OK);
	agent_ingest_opts io = {
		.http = e->http, .journal = f->journal, .event_max_bytes = 65536, .max_batch = 10};
	assert_int_equal(agent_ingest_new(&io, &e->ingest), ES_OK);
	assert_int_equal(agent_resend_new(&ro, &e->resend), ES_OK);
	agent_api_opts ao = {.http = e->http,
			     .journal = f->journal,
			     .reader = e->reader,
			     .reader_lock = &e->reader_lock,
			     .view = e->view,
			     .ingest = e->ingest,
			     .resend = e->resend,
			     .node = FX_NODE,
			     .site = FX_SITE,
			     .source = "/" FX_SITE "/" FX_NODE,
			     .boot_id = "boot-1",
			     .broker_url = "mqtt://127.0.0.1:1",
			     .client_id = "cid-1",
			     .journal_path = f->path,
			     .journal_max_bytes = 1000000};
	assert_int_equal(agent_api_new(&ao, &e->api), ES_OK);
}

static int setup(void **state)
{
	env *e = calloc(1, sizeof *e);
	if (!e || fx_setup((void **)&e->f) || es_loop_new(&e->loop))
		return -1;
	pthread_mutex_init(&e->reader_lock, NULL);
	if (es_journal_reader_new(e->f->journal, &e->reader))
		return -1;
	make_parts(e);
	if (es_http_start(e->http) || pthread_create(&e->loop_thread, NULL, run_loop, e->loop))
		return -1;
	e->port = es_http_port(e->http);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;
	es_http_free(e->http); /* first: its workers use the parts */
	es_loop_post(e->loop, stop_loop, e->loop);
	pthread_join(e->loop_thread, NULL);
	agent_api_free(e->api);
	agent_resend_free(e->resend);
	agent_ingest_free(e->ingest);
	agent_view_free(e->view);
	es_journal_reader_free(e->reader);
	es_loop_free(e->loop);
	pthread_mutex_destroy(&e->reader_lock);
	fx_teardown((void **)&e->f);
	free(e);
	return 0;
}

static int post(env *e, const char *path, const char *ctype, const char *body)
{
	return fx_http(e->port, "POST", path, ctype, body, e->body, sizeof e->body);
}

static int get(env *e, const char *path)
{
	return fx_http(e->port, "GET", path, NULL, NULL, e->body, sizeof e->body);
}

static void has(const env *e, const char *text)
{
	if (!strstr(e->body, text))
		fail_msg("no %s in %s", text, e->body);
}

/* ---- ingest ------------------------------------------------------------------ */

static void events_are_journaled_before_the_answer(void **state)
{
	env *e = *state;
	assert_int_equal(post(e, "/api/events", JSON,
			      "[{\"type\":\"sensor.reading\",\"subject\":\"d1\",\"data\":{}},"
			      "{\"type\":\"alarm.raised\",\"subject\":\"d1\",\"data\":{}}]"),
			 202);
	has(e, "\"accepted\":2");
	has(e, "\"sequence\":2");
	es_journal_counters c;
	es_journal_counters_get(e->f->journal, &c);
	assert_int_equal(c.latest_seq, 2);
	agent_ingest_stats s;
	agent_ingest_stats_get(e->ingest, &s);
	assert_int_equal(s.accepted, 2);
}

static void refusals_are_answered_and_counted(void **state)
{
	env *e = *state;
	assert_int_equal(post(e, "/api/events", "text/plain", "{}"), 415);
	assert_int_equal(post(e, "/api/events", JSON, "{not json"), 400);
	assert_int_equal(post(e, "/api/events", JSON, "{\"subject\":\"d1\",\"data\":{}}"), 400);
	has(e, "type");
	agent_ingest_stats s;
	agent_ingest_stats_get(e->ingest, &s);
	assert_int_equal(s.accepted, 0);
	assert_int_equal(s.rejected[AGENT_INGEST_CONTENT_TYPE], 1);
	assert_int_equal(s.rejected[AGENT_INGEST_MALFORMED], 1);
	assert_int_equal(s.rejected[AGENT_INGEST_INVALID], 1);
	assert_string_equal(agent_ingest_reason_name(AGENT_INGEST_FULL), "journal_full");
	assert_int_equal(get(e, "/api/status"), 200);
	has(e, "\"rejected\":{\"malformed\":1,\"invalid\":1,\"too_big\":0,\"content_type\":1");
}

static void closed_ingest_answers_503(void **state)
{
	env *e = *state;
	agent_ingest_close(e->ingest);
	assert_int_equal(post(e, "/api/events", JSON,
			      "{\"type\":\"sensor.reading\",\"subject\":\"d1\",\"data\":{}}"),
			 503);
	es_journal_counters c;
	es_journal_counters_get(e->f->journal, &c);
	assert_int_equal(c.latest_seq, 0);
}

/* ---- the API and the view ------------------------------------------------------ */

static void status_shows_the_view(void **state)
{
	env *e = *state;
	/* Not started yet: alive, not ready. */
	assert_int_equal(get(e, "/healthz"), 200);
	assert_int_equal(get(e, "/readyz"), 503);
	assert_string_equal(e->body, "{\"ready\":false,\"checks\":{\"running\":false,"
				     "\"journal\":true}}");
	agent_view_data v = {.connected = true,
			     .running = true,
			     .connects = 3,
			     .published = 7,
			     .acked = 6,
			     .refused = 1,
			     .resent = 2,
			     .inflight = 1};
	agent_view_set(e->view, &v);
	assert_int_equal(get(e, "/api/status"), 200);
	has(e, "\"state\":\"running\"");
	has(e, "\"source\":\"/site-1/gw-7\"");
	has(e, "\"state\":\"connected\",\"connects\":3,\"failures\":0,\"inflight\":1,"
	       "\"published\":7,\"acked\":6,\"resent\":2,\"refused\":1");
	has(e, "\"client_id\":\"cid-1\"");
	assert_int_equal(get(e, "/healthz"), 200);
	has(e, "\"status\":\"ok\"");
	assert_int_equal(get(e, "/readyz"), 200);
	assert_string_equal(e->body, "{\"ready\":true,\"checks\":{\"running\":true,"
				     "\"journal\":true}}");

	v.stopping = true;
	agent_view_set(e->view, &v);
	assert_int_equal(get(e, "/readyz"), 503);
	assert_int_equal(get(e, "/healthz"), 503);
	has(e, "\"status\":\"stopping\"");
	assert_int_equal(get(e, "/api/status"), 200);
	has(e, "\"state\":\"stopping\"");
}

static void devices_without_links(void **state)
{
	env *e = *state;
	assert_int_equal(get(e, "/api/devices"), 200);
	assert_string_equal(e->body, "{\"devices\":[]}");
}

static void replay_goes_to_the_resend_service(void **state)
{
	env *e = *state;
	fx_append(e->f, 5, "sensor.reading");
	assert_int_equal(post(e, "/api/replay", JSON, "{\"from\":2,\"to\":4}"), 202);
	has(e, "\"replaying\":{\"from\":2,\"to\":4,\"events\":3,\"request_id\":\"http-");
	assert_int_equal(post(e, "/api/replay", JSON, "{\"from\":9,\"to\":9}"), 400);
	has(e, "after the latest");
	assert_int_equal(post(e, "/api/replay", JSON, "{\"from\":3}"), 400);
	has(e, "\"to\"");
	assert_int_equal(post(e, "/api/replay", JSON, "{\"from\":\"x\",\"to\":3}"), 400);
	has(e, "\"from\"");
	agent_resend_stop(e->resend);
	assert_int_equal(post(e, "/api/replay", JSON, "{\"from\":2,\"to\":4}"), 503);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(events_are_journaled_before_the_answer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(refusals_are_answered_and_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(closed_ingest_answers_503, setup, teardown),
		cmocka_unit_test_setup_teardown(status_shows_the_view, setup, teardown),
		cmocka_unit_test_setup_teardown(devices_without_links, setup, teardown),
		cmocka_unit_test_setup_teardown(replay_goes_to_the_resend_service, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
