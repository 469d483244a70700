/* agent_resend_test.c - the agent's re-send service (edge-agent/resend.h)
 * in-process: the real journal on a temporary SQLite file, a fake MQTT
 * client behind its ops table, and replies caught by the callback agent.c
 * would give. Every request is answered; events go again on their usual
 * topics with their own sequences, at the rate asked for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_fixture.h"
#include "control.h"
#include "loop.h"
#include "resend.h"

#define MAX_REPLIES 16

/* What the service gave its callbacks. */
typedef struct catcher {
	es_resend_reply replies[MAX_REPLIES];
	size_t nreplies;
	size_t wakes;
	agent_resend *rs; /* wake pumps it, as agent.c does */
} catcher;

typedef struct env {
	fx *f;
	es_loop *loop;
	catcher c;
	agent_resend *rs;
} env;

static void on_reply(void *ctx, const char *json, size_t len)
{
	catcher *c = ctx;
	char why[160];
	assert_true(c->nreplies < MAX_REPLIES);
	assert_int_equal(
		es_resend_reply_decode(json, len, &c->replies[c->nreplies++], why, sizeof why),
		ES_OK);
}

static void on_wake(void *ctx)
{
	catcher *c = ctx;
	c->wakes++;
	if (c->rs)
		agent_resend_pump(c->rs);
}

static agent_resend *make(env *e, uint64_t rate, uint64_t max_span, size_t queue)
{
	agent_resend_opts o = {.loop = e->loop,
			       .names = e->f->names,
			       .journal = e->f->journal,
			       .reader = e->f->reader,
			       .rate = rate,
			       .max_span = max_span,
			       .queue = queue,
			       .ops = &fx_ops,
			       .ops_ctx = &e->f->mqtt,
			       .reply = on_reply,
			       .wake = on_wake,
			       .ctx = &e->c};
	assert_int_equal(agent_resend_new(&o, &e->rs), ES_OK);
	e->c.rs = e->rs;
	return e->rs;
}

static int setup(void **state)
{
	env *e = calloc(1, sizeof *e);
	if (!e || fx_setup((void **)&e->f) || es_loop_new(&e->loop))
		return -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	env *e = *state;
	agent_resend_free(e->rs);
	es_loop_free(e->loop);
	fx_teardown((void **)&e->f);
	free(e);
	return 0;
}

static void request(agent_resend *rs, uint64_t from, uint64_t to, const char *id)
{
	char json[160];
	int n = snprintf(json, sizeof json, "{\"from\":%llu,\"to\":%llu,\"request_id\":\"%s\"}",
			 (unsigned long long)from, (unsigned long long)to, id);
	agent_resend_request(rs, json, (size_t)n);
}

static void options_are_checked(void **state)
{
	env *e = *state;
	agent_resend_opts o = {.loop = e->loop, .journal = e->f->journal};
	agent_resend *rs = NULL;
	assert_int_equal(agent_resend_new(&o, &rs), ES_EINVAL);
	assert_null(rs);
	agent_resend_free(NULL);
}

static void serves_a_held_range_and_answers_ok(void **state)
{
	env *e = *state;
	fx_append(e->f, 10, "sensor.reading");
	agent_resend *rs = make(e, 1000, 100, 4);
	request(rs, 3, 6, "r1");
	assert_true(e->c.wakes > 0);
	assert_int_equal(e->f->mqtt.nsent, 4);
	for (size_t i = 0; i < 4; i++) {
		const fx_msg *m = &e->f->mqtt.sent[i];
		assert_string_equal(m->topic, "edgespool/site-1/gw-7/ev/sensor.reading");
		assert_int_equal(m->tag, AGENT_TAG_RESEND | (3 + i));
		assert_int_equal(fx_sequence(m), 3 + i);
	}
	assert_int_equal(e->c.nreplies, 1);
	const es_resend_reply *r = &e->c.replies[0];
	assert_int_equal(r->status, ES_RESEND_OK);
	assert_string_equal(r->request_id, "r1");
	assert_int_equal(r->sent_from, 3);
	assert_int_equal(r->sent_to, 6);
	assert_false(agent_resend_active(rs));
	agent_resend_stats s;
	agent_resend_stats_get(rs, &s);
	assert_int_equal(s.served, 1);
	assert_int_equal(s.events, 4);
}

static void past_the_latest_is_partial(void **state)
{
	env *e = *state;
	fx_append(e->f, 5, "sensor.reading");
	agent_resend *rs = make(e, 1000, 100, 4);
	request(rs, 4, 9, "r2");
	assert_int_equal(e->f->mqtt.nsent, 2);
	assert_int_equal(e->c.nreplies, 1);
	assert_int_equal(e->c.replies[0].status, ES_RESEND_PARTIAL);
	assert_int_equal(e->c.replies[0].sent_to, 5);
}

static void bad_requests_are_answered_invalid(void **state)
{
	env *e = *state;
	fx_append(e->f, 5, "sensor.reading");
	agent_resend *rs = make(e, 1000, 3, 4);
	agent_resend_request(rs, "{not json", 9);
	request(rs, 1, 4, "too-long"); /* max_span 3 */
	request(rs, 6, 6, "ahead");    /* after the latest */
	assert_int_equal(e->c.nreplies, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(e->c.replies[i].status, ES_RESEND_INVALID);
	assert_string_equal(e->c.replies[1].request_id, "too-long");
	assert_int_equal(e->f->mqtt.nsent, 0);
	agent_resend_stats s;
	agent_resend_stats_get(rs, &s);
	assert_int_equal(s.invalid, 3);
}

static void a_full_queue_answers_busy(void **state)
{
	env *e = *state;
	fx_append(e->f, 5, "sensor.reading");
	e->f->mqtt.connected = false; /* nothing is served: requests wait */
	agent_resend *rs = make(e, 1000, 100, 1);
	request(rs, 1, 2, "first");
	request(rs, 3, 4, "second");
	assert_true(agent_resend_active(rs));
	assert_int_equal(e->c.nreplies, 1);
	assert_int_equal(e->c.replies[0].status, ES_RESEND_BUSY);
	assert_string_equal(e->c.replies[0].request_id, "second");

	e->f->mqtt.connected = true;
	agent_resend_pump(rs);
	assert_int_equal(e->c.nreplies, 2);
	assert_int_equal(e->c.replies[1].status, ES_RESEND_OK);
	assert_string_equal(e->c.replies[1].request_id, "first");
}

static void retention_makes_gone_and_partial(void **state)
{
	env *e = *state;
	fx_reopen(e->f, 1);
	fx_append(e->f, 10, "sensor.reading");
	fx_ack(e->f, 1, 4);
	assert_true(fx_wait_oldest(e->f, 5));
	agent_resend *rs = make(e, 1000, 100, 4);
	request(rs, 1, 3, "gone");
	request(rs, 2, 6, "partial");
	assert_int_equal(e->c.nreplies, 2);
	assert_int_equal(e->c.replies[0].status, ES_RESEND_GONE);
	assert_int_equal(e->c.replies[0].gone_from, 1);
	assert_int_equal(e->c.replies[0].gone_to, 3);
	const es_resend_reply *r = &e->c.replies[1];
	assert_int_equal(r->status, ES_RESEND_PARTIAL);
	assert_int_equal(r->gone_from, 2);
	assert_int_equal(r->gone_to, 4);
	assert_int_equal(r->sent_from, 5);
	assert_int_equal(r->sent_to, 6);
	assert_int_equal(e->f->mqtt.nsent, 2);
}

static void the_rate_holds_and_the_window_is_shared(void **state)
{
	env *e = *state;
	fx_append(e->f, 10, "sensor.reading");
	agent_resend *rs = make(e, 3, 100, 4);
	request(rs, 1, 10, "slow");
	assert_int_equal(e->f->mqtt.nsent, 3); /* a second's worth */
	assert_true(agent_resend_active(rs));
	assert_int_equal(e->c.nreplies, 0);

	e->f->mqtt.inflight = e->f->mqtt.window; /* no room: nothing, whatever the rate */
	agent_resend_pump(rs);
	assert_int_equal(e->f->mqtt.nsent, 3);
	agent_resend_stop(rs);
	e->f->mqtt.inflight = 0;
	agent_resend_pump(rs);
	assert_int_equal(e->f->mqtt.nsent, 3); /* stopped */
}

static agent_resend_stats rstats(agent_resend *rs)
{
	agent_resend_stats s;
	agent_resend_stats_get(rs, &s);
	return s;
}

/* Overlapping requests are merged: each sequence goes once, and every
 * request is answered once nothing of its range waits any more. */
static void overlapping_requests_are_merged(void **state)
{
	env *e = *state;
	fx_append(e->f, 10, "sensor.reading");
	e->f->mqtt.connected = false;
	agent_resend *rs = make(e, 1000, 100, 8);
	request(rs, 1, 5, "a-1");
	request(rs, 3, 8, "b-1");
	request(rs, 2, 4, "c-1");
	assert_int_equal(rstats(rs).pending, 8);
	assert_int_equal(rstats(rs).merged, 3 + 3);
	e->f->mqtt.connected = true;
	agent_resend_pump(rs);
	assert_int_equal(e->f->mqtt.nsent, 8);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(fx_sequence(&e->f->mqtt.sent[i]), 1 + i);
	assert_int_equal(e->c.nreplies, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(e->c.replies[i].status, ES_RESEND_OK);
		assert_int_equal(e->c.replies[i].latest_seq, 10);
	}
	assert_int_equal(rstats(rs).pending, 0);
	assert_false(agent_resend_active(rs));
	/* asked again once sent: sent again */
	request(rs, 4, 4, "a-2");
	assert_int_equal(e->f->mqtt.nsent, 9);
}

/* One asker holds at most a quarter of the queue; all askers together at
 * most max_span waiting sequences; what overlaps what waits is free. */
static void requests_are_bounded_per_asker_and_in_all(void **state)
{
	env *e = *state;
	fx_append(e->f, 20, "sensor.reading");
	e->f->mqtt.connected = false;
	agent_resend *rs = make(e, 1000, 10, 8); /* 2 per asker, 10 waiting */
	request(rs, 1, 2, "x-1");
	request(rs, 3, 4, "x-2");
	request(rs, 5, 6, "x-3"); /* a third from x */
	request(rs, 5, 10, "y-1");
	request(rs, 11, 12, "z-1"); /* 12 would wait */
	request(rs, 2, 9, "z-2");   /* waiting already */
	request(rs, 1, 1, "");	    /* no id: the anonymous asker */
	assert_int_equal(e->c.nreplies, 2);
	assert_int_equal(e->c.replies[0].status, ES_RESEND_BUSY);
	assert_string_equal(e->c.replies[0].request_id, "x-3");
	assert_string_equal(e->c.replies[0].reason,
			    "too many re-send requests queued by this asker");
	assert_int_equal(e->c.replies[1].status, ES_RESEND_BUSY);
	assert_string_equal(e->c.replies[1].request_id, "z-1");
	assert_string_equal(e->c.replies[1].reason, "too many events waiting to be re-sent");
	assert_int_equal(rstats(rs).pending, 10);
	assert_int_equal(rstats(rs).busy, 2);
	e->f->mqtt.connected = true;
	agent_resend_pump(rs);
	assert_int_equal(e->f->mqtt.nsent, 10);
	assert_int_equal(e->c.nreplies, 2 + 5);
}

/* What cannot be read is answered all the same, with the asker's id when it
 * can be read, as valid JSON. */
static void unreadable_requests_are_answered(void **state)
{
	env *e = *state;
	fx_append(e->f, 5, "sensor.reading");
	agent_resend *rs = make(e, 1000, 100, 4);
	agent_resend_oversized(rs, 30000000);
	const char bad[] = "{\"from\":1,\"to\":2,\"request_id\":\"id-\xff\xfe\"}";
	agent_resend_request(rs, bad, sizeof bad - 1);
	const char range[] = "{\"from\":3,\"to\":1,\"request_id\":\"r-9\"}";
	agent_resend_request(rs, range, sizeof range - 1);
	assert_int_equal(e->c.nreplies, 3); /* on_reply decoded each: valid JSON */
	const es_resend_reply *r = e->c.replies;
	assert_int_equal(r[0].status, ES_RESEND_INVALID);
	assert_string_equal(r[0].request_id, "");
	assert_string_equal(r[0].reason, "json: message of 30000000 bytes; the limit is 4096");
	assert_string_equal(r[1].request_id, "id-\xef\xbf\xbd\xef\xbf\xbd");
	assert_string_equal(r[2].request_id, "r-9");
	assert_string_equal(r[2].reason, "from: greater than to");
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(r[i].latest_seq, 5);
	assert_int_equal(rstats(rs).invalid, 3);
	assert_int_equal(e->f->mqtt.nsent, 0);
}

/* ---- asks from another thread ---------------------------------------------- */

static void *run_loop(void *arg)
{
	es_loop_run(arg);
	return NULL;
}

static void stop_loop(void *arg)
{
	es_loop_stop(arg);
}

static void asks_are_answered_from_the_loop(void **state)
{
	env *e = *state;
	fx_append(e->f, 10, "sensor.reading");
	agent_resend *rs = make(e, 1000, 100, 4);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, run_loop, e->loop), 0);
	agent_resend_answer a;
	assert_int_equal(agent_resend_ask(rs, 2, 5, &a), ES_OK);
	assert_int_equal(a.status, ES_RESEND_OK);
	assert_int_equal(a.events, 4);
	assert_memory_equal(a.request_id, "http-", 5);
	assert_int_equal(agent_resend_ask(rs, 20, 30, &a), ES_OK);
	assert_int_equal(a.status, ES_RESEND_INVALID);
	assert_string_equal(a.why, "range starts after the latest sequence");
	es_loop_post(e->loop, stop_loop, e->loop);
	pthread_join(t, NULL);
	assert_int_equal(e->f->mqtt.nsent, 4); /* sent by the loop, woken by the ask */
	assert_int_equal(e->c.nreplies, 1);    /* served; an ask's answer is its own */
	assert_int_equal(e->c.replies[0].status, ES_RESEND_OK);

	agent_resend_stop(rs);
	assert_int_equal(agent_resend_ask(rs, 2, 5, &a), ES_ECLOSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(options_are_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(serves_a_held_range_and_answers_ok, setup,
						teardown),
		cmocka_unit_test_setup_teardown(past_the_latest_is_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_requests_are_answered_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(a_full_queue_answers_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(retention_makes_gone_and_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(the_rate_holds_and_the_window_is_shared, setup,
						teardown),
		cmocka_unit_test_setup_teardown(asks_are_answered_from_the_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(overlapping_requests_are_merged, setup, teardown),
		cmocka_unit_test_setup_teardown(requests_are_bounded_per_asker_and_in_all, setup,
						teardown),
		cmocka_unit_test_setup_teardown(unreadable_requests_are_answered, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
