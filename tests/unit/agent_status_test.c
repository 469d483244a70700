/* agent_status_test.c - the agent's status message and control outbox
 * (edge-agent/status.h) in-process: the real journal on a temporary SQLite
 * file, a fake MQTT client behind the ops table. Control messages wait in
 * order for the connection and the window; a newer status replaces a queued
 * one; the status says what the journal holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent_fixture.h"
#include "control.h"
#include "status.h"

#define STATUS_TOPIC "edgespool/site-1/gw-7/status"
#define REPLY_TOPIC  "edgespool/site-1/gw-7/reply/resend"
#define BOOT_ID	     "0190a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b"

static agent_status *make(fx *f)
{
	agent_status_opts o = {.topic = STATUS_TOPIC,
			       .boot_id = BOOT_ID,
			       .journal = f->journal,
			       .reader = f->reader,
			       .ops = &fx_ops,
			       .ops_ctx = &f->mqtt};
	agent_status *st = NULL;
	assert_int_equal(agent_status_new(&o, &st), ES_OK);
	return st;
}

static es_status_msg decode(const fx_msg *m)
{
	es_status_msg s;
	char why[160];
	assert_int_equal(es_status_decode(m->payload, m->len, &s, why, sizeof why), ES_OK);
	return s;
}

static void options_are_checked(void **state)
{
	fx *f = *state;
	agent_status_opts o = {.topic = STATUS_TOPIC, .journal = f->journal};
	agent_status *st = NULL;
	assert_int_equal(agent_status_new(&o, &st), ES_EINVAL);
	assert_null(st);
	agent_status_free(NULL);
}

static void status_says_what_the_journal_holds(void **state)
{
	fx *f = *state;
	fx_append(f, 6, "sensor.reading");
	fx_ack(f, 1, 2);
	agent_status *st = make(f);
	agent_status_publish(st);
	assert_int_equal(f->mqtt.nsent, 1);
	const fx_msg *m = &f->mqtt.sent[0];
	assert_string_equal(m->topic, STATUS_TOPIC);
	assert_true(m->retain);
	assert_int_equal(m->tag, AGENT_TAG_CONTROL);
	es_status_msg s = decode(m);
	assert_true(s.online);
	assert_string_equal(s.boot_id, BOOT_ID);
	assert_string_equal(s.journal_id, es_journal_id(f->journal));
	assert_int_equal(s.latest_seq, 6);
	assert_int_equal(s.acked_seq, 2);
	assert_int_equal(s.oldest_seq, 1);
	assert_int_equal(s.pending, 4);
	agent_status_free(st);
}

static void messages_wait_in_order_for_the_connection(void **state)
{
	fx *f = *state;
	agent_status *st = make(f);
	f->mqtt.connected = false;
	agent_status_send(st, REPLY_TOPIC, "{\"a\":1}", 7, false);
	agent_status_publish(st);
	agent_status_send(st, REPLY_TOPIC, "{\"a\":2}", 7, false);
	fx_append(f, 3, "sensor.reading");
	agent_status_publish(st); /* replaces the queued status, keeps its place */
	assert_int_equal(agent_status_queued(st), 3);
	assert_int_equal(f->mqtt.nsent, 0);

	f->mqtt.connected = true;
	agent_status_pump(st);
	assert_int_equal(agent_status_queued(st), 0);
	assert_int_equal(f->mqtt.nsent, 3);
	assert_string_equal(f->mqtt.sent[0].payload, "{\"a\":1}");
	assert_false(f->mqtt.sent[0].retain);
	assert_string_equal(f->mqtt.sent[1].topic, STATUS_TOPIC);
	assert_int_equal(decode(&f->mqtt.sent[1]).latest_seq, 3);
	assert_string_equal(f->mqtt.sent[2].payload, "{\"a\":2}");
	agent_status_free(st);
}

static void a_full_window_keeps_them_queued(void **state)
{
	fx *f = *state;
	agent_status *st = make(f);
	f->mqtt.window = 1;
	agent_status_send(st, REPLY_TOPIC, "{\"a\":1}", 7, false);
	agent_status_send(st, REPLY_TOPIC, "{\"a\":2}", 7, false);
	assert_int_equal(f->mqtt.nsent, 1);
	assert_int_equal(agent_status_queued(st), 1);
	f->mqtt.inflight = 0; /* its PUBACK */
	agent_status_pump(st);
	assert_int_equal(f->mqtt.nsent, 2);
	assert_string_equal(f->mqtt.sent[1].payload, "{\"a\":2}");
	agent_status_free(st); /* nothing left queued */
}

static void a_message_that_cannot_be_published_is_dropped(void **state)
{
	fx *f = *state;
	agent_status *st = make(f);
	f->mqtt.fail = ES_EINVAL;
	agent_status_send(st, REPLY_TOPIC, "{}", 2, false);
	assert_int_equal(agent_status_queued(st), 0);
	f->mqtt.fail = ES_OK;
	agent_status_free(st);
}

static void the_outbox_is_bounded(void **state)
{
	fx *f = *state;
	agent_status *st = make(f);
	f->mqtt.connected = false;
	for (int i = 0; i < 300; i++)
		agent_status_send(st, REPLY_TOPIC, "{}", 2, false);
	assert_int_equal(agent_status_queued(st), 256);
	agent_status_free(st); /* frees what is queued */
}

static void offline_goes_ahead_of_the_outbox(void **state)
{
	fx *f = *state;
	agent_status *st = make(f);
	f->mqtt.connected = false;
	agent_status_send(st, REPLY_TOPIC, "{}", 2, false);
	assert_int_equal(agent_status_publish_offline(st), ES_ENOTCONN);
	f->mqtt.connected = true;
	assert_int_equal(agent_status_publish_offline(st), ES_OK);
	assert_int_equal(f->mqtt.nsent, 1);
	assert_true(f->mqtt.sent[0].retain);
	assert_false(decode(&f->mqtt.sent[0]).online);
	assert_int_equal(agent_status_queued(st), 1);

	char *json;
	size_t len;
	assert_int_equal(agent_status_encode(st, false, &json, &len), ES_OK);
	assert_non_null(strstr(json, BOOT_ID));
	free(json);
	agent_status_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(options_are_checked, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(status_says_what_the_journal_holds, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(messages_wait_in_order_for_the_connection, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(a_full_window_keeps_them_queued, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(a_message_that_cannot_be_published_is_dropped,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(the_outbox_is_bounded, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(offline_goes_ahead_of_the_outbox, fx_setup,
						fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
