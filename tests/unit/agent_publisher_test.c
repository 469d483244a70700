/* agent_publisher_test.c - the agent's publisher (edge-agent/publisher.h)
 * in-process: the real journal on a temporary SQLite file, a fake MQTT
 * client behind its ops table. In order, within the window, again from the
 * oldest pending after a lost connection, acked on PUBACK; with batches
 * (mqtt.format batch), the rows ready as one batch, one PUBACK for all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "agent_fixture.h"
#include "batch.h"
#include "event.h"
#include "publisher.h"

#define BATCH_TOPIC "edgespool/site-1/gw-7/batch/ce=zstd,d1"

static agent_publisher *make(fx *f)
{
	agent_publisher_opts o = {.names = f->names,
				  .journal = f->journal,
				  .reader = f->reader,
				  .ops = &fx_ops,
				  .ops_ctx = &f->mqtt};
	agent_publisher *p = NULL;
	assert_int_equal(agent_publisher_new(&o, &p), ES_OK);
	return p;
}

/* The publisher's PUBACKs for everything the fake holds in flight. */
static void ack_sent(fx *f, agent_publisher *p, size_t from)
{
	for (size_t i = from; i < f->mqtt.nsent; i++)
		agent_publisher_acked(p, f->mqtt.sent[i].tag, ES_OK);
	f->mqtt.inflight = 0;
}

static void options_are_checked(void **state)
{
	fx *f = *state;
	agent_publisher_opts o = {.journal = f->journal, .reader = f->reader};
	agent_publisher *p = NULL;
	assert_int_equal(agent_publisher_new(&o, &p), ES_EINVAL);
	assert_null(p);
	assert_int_equal(agent_publisher_new(NULL, &p), ES_EINVAL);
	agent_publisher_free(NULL);
}

static void publishes_in_order_within_the_window(void **state)
{
	fx *f = *state;
	agent_publisher *p = make(f);
	uint64_t last = fx_append(f, 25, "sensor.reading");
	assert_int_equal(last, 25);
	agent_publisher_committed(p, last);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 10); /* the window */
	for (size_t i = 0; i < 10; i++) {
		const fx_msg *m = &f->mqtt.sent[i];
		assert_string_equal(m->topic, "edgespool/site-1/gw-7/ev/sensor.reading");
		assert_int_equal(m->tag, i + 1);
		assert_int_equal(fx_sequence(m), i + 1);
		assert_false(m->retain);
	}
	ack_sent(f, p, 0);
	agent_publisher_pump(p, 0);
	ack_sent(f, p, 10);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 25);
	assert_int_equal(f->mqtt.sent[24].tag, 25);
	agent_publisher_stats s;
	agent_publisher_stats_get(p, &s);
	assert_int_equal(s.published, 25);
	assert_int_equal(s.acked, 20);
	assert_int_equal(s.refused, 0);
	agent_publisher_free(p);
}

static void acks_reach_the_journal(void **state)
{
	fx *f = *state;
	agent_publisher *p = make(f);
	fx_append(f, 5, "alarm.raised");
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 5);
	ack_sent(f, p, 0);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	es_journal_counters c;
	es_journal_counters_get(f->journal, &c);
	assert_int_equal(c.acked_seq, 5);
	assert_int_equal(c.pending, 0);
	agent_publisher_free(p);
}

static void reserve_keeps_room(void **state)
{
	fx *f = *state;
	agent_publisher *p = make(f);
	fx_append(f, 20, "sensor.reading");
	agent_publisher_pump(p, 3);
	assert_int_equal(f->mqtt.nsent, 7);
	agent_publisher_free(p);
}

static void waits_for_the_next_commit_once_caught_up(void **state)
{
	fx *f = *state;
	agent_publisher *p = make(f);
	uint64_t last = fx_append(f, 3, "sensor.reading");
	agent_publisher_committed(p, last);
	agent_publisher_pump(p, 0);
	ack_sent(f, p, 0);
	agent_publisher_pump(p, 0); /* reads nothing more: caught up */
	assert_int_equal(f->mqtt.nsent, 3);

	last = fx_append(f, 2, "sensor.reading");
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 3); /* not told yet */
	agent_publisher_committed(p, last - 1);
	agent_publisher_committed(p, last);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 5);
	assert_int_equal(f->mqtt.sent[3].tag, 4);
	assert_int_equal(f->mqtt.sent[4].tag, 5);
	agent_publisher_free(p);
}

static void reset_starts_again_from_the_oldest_pending(void **state)
{
	fx *f = *state;
	agent_publisher *p = make(f);
	fx_append(f, 8, "sensor.reading");
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 8);
	/* 1..3 acked, then the connection is lost with 4..8 in flight. */
	for (size_t i = 0; i < 3; i++)
		agent_publisher_acked(p, f->mqtt.sent[i].tag, ES_OK);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	f->mqtt.connected = false;
	f->mqtt.inflight = 0;
	agent_publisher_reset(p);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 8);

	f->mqtt.connected = true;
	fx_clear(f);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(f->mqtt.sent[i].tag, 4 + i);
	agent_publisher_free(p);
}

static void busy_window_keeps_the_row(void **state)
{
	fx *f = *state;
	agent_publisher *p = make(f);
	fx_append(f, 4, "sensor.reading");
	f->mqtt.window = 2;
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 2);
	ack_sent(f, p, 0);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 4);
	assert_int_equal(f->mqtt.sent[2].tag, 3);
	agent_publisher_free(p);
}

static void refusal_is_counted_and_passed(void **state)
{
	fx *f = *state;
	agent_publisher *p = make(f);
	fx_append(f, 2, "sensor.reading");
	agent_publisher_pump(p, 0);
	agent_publisher_acked(p, 1, ES_EPROTO);
	agent_publisher_acked(p, 2, ES_OK);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	agent_publisher_stats s;
	agent_publisher_stats_get(p, &s);
	assert_int_equal(s.refused, 1);
	assert_int_equal(s.acked, 2);
	es_journal_counters c;
	es_journal_counters_get(f->journal, &c);
	assert_int_equal(c.acked_seq, 2); /* the refusal does not block the watermark */
	agent_publisher_free(p);
}

/* ---- batches ---------------------------------------------------------------- */

static agent_publisher *make_batching(fx *f, size_t max_events, size_t max_bytes)
{
	es_batch_enc_opts b = {.max_events = max_events, .max_bytes = max_bytes};
	const char *why;
	assert_int_equal(es_batch_coding_parse("zstd,d1", &b.coding, &why), ES_OK);
	agent_publisher_opts o = {.names = f->names,
				  .journal = f->journal,
				  .reader = f->reader,
				  .ops = &fx_ops,
				  .ops_ctx = &f->mqtt,
				  .batch = &b};
	agent_publisher *p = NULL;
	assert_int_equal(agent_publisher_new(&o, &p), ES_OK);
	return p;
}

/* Checks that m is a batch holding the events first..first+n-1, in order. */
static void assert_batch(const fx_msg *m, uint64_t first, size_t n)
{
	assert_string_equal(m->topic, BATCH_TOPIC);
	assert_string_equal(m->content_type, ES_BATCH_CONTENT_TYPE);
	assert_int_equal(m->tag, first);
	es_batch *b = NULL;
	char why[200];
	assert_int_equal(
		es_batch_read(m->topic, '/', NULL, m->payload, m->len, NULL, &b, why, sizeof why),
		ES_OK);
	assert_non_null(b);
	assert_int_equal(es_batch_count(b), n);
	for (size_t i = 0; i < n; i++) {
		es_event *ev = NULL;
		es_verr v;
		assert_int_equal(es_batch_event_decode(b, i, &ev, &v), ES_OK);
		assert_int_equal(es_event_seq(ev), first + i);
		es_event_free(ev);
	}
	es_batch_free(b);
}

static void batches_the_rows_ready(void **state)
{
	fx *f = *state;
	agent_publisher *p = make_batching(f, 0, 0);
	fx_append(f, 25, "sensor.reading");
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 1); /* all 25 ready: one batch, no waiting */
	assert_batch(&f->mqtt.sent[0], 1, 25);

	fx_append(f, 1, "alarm.raised");
	agent_publisher_committed(p, 26);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 2); /* one alone goes at once */
	assert_batch(&f->mqtt.sent[1], 26, 1);
	agent_publisher_stats s;
	agent_publisher_stats_get(p, &s);
	assert_int_equal(s.published, 26);
	assert_int_equal(s.batches, 2);
	agent_publisher_free(p);
}

static void batches_keep_to_the_caps_and_the_window(void **state)
{
	fx *f = *state;
	agent_publisher *p = make_batching(f, 4, 0);
	fx_append(f, 10, "sensor.reading");
	f->mqtt.window = 2;
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 2);
	assert_batch(&f->mqtt.sent[0], 1, 4);
	assert_batch(&f->mqtt.sent[1], 5, 4);
	ack_sent(f, p, 0);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 3);
	assert_batch(&f->mqtt.sent[2], 9, 2);
	agent_publisher_free(p);
}

static void one_puback_acks_the_whole_batch(void **state)
{
	fx *f = *state;
	agent_publisher *p = make_batching(f, 3, 0);
	fx_append(f, 7, "sensor.reading");
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 3); /* 1..3, 4..6, 7 */
	agent_publisher_acked(p, f->mqtt.sent[1].tag, ES_OK);
	agent_publisher_acked(p, f->mqtt.sent[0].tag, ES_OK);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	es_journal_counters c;
	es_journal_counters_get(f->journal, &c);
	assert_int_equal(c.acked_seq, 6);
	assert_int_equal(c.pending, 1);
	agent_publisher_acked(p, f->mqtt.sent[2].tag, ES_EPROTO);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	es_journal_counters_get(f->journal, &c);
	assert_int_equal(c.acked_seq, 7);
	agent_publisher_stats s;
	agent_publisher_stats_get(p, &s);
	assert_int_equal(s.acked, 7);
	assert_int_equal(s.refused, 1);
	agent_publisher_free(p);
}

static void an_event_past_the_byte_cap_goes_alone(void **state)
{
	fx *f = *state;
	agent_publisher *p = make_batching(f, 0, 100); /* every event is larger */
	fx_append(f, 3, "sensor.reading");
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 3);
	for (size_t i = 0; i < 3; i++) {
		const fx_msg *m = &f->mqtt.sent[i];
		assert_string_equal(m->topic, "edgespool/site-1/gw-7/ev/sensor.reading");
		assert_string_equal(m->content_type, "");
		assert_int_equal(m->tag, i + 1);
		assert_int_equal(fx_sequence(m), i + 1);
	}
	ack_sent(f, p, 0);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	es_journal_counters c;
	es_journal_counters_get(f->journal, &c);
	assert_int_equal(c.acked_seq, 3);
	agent_publisher_free(p);
}

static void reset_forgets_batches_in_flight(void **state)
{
	fx *f = *state;
	agent_publisher *p = make_batching(f, 4, 0);
	fx_append(f, 10, "sensor.reading");
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 3); /* 1..4, 5..8, 9..10 */
	agent_publisher_acked(p, f->mqtt.sent[0].tag, ES_OK);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	f->mqtt.inflight = 0;
	agent_publisher_reset(p);
	/* A late PUBACK of a forgotten batch acks its first event only. */
	agent_publisher_acked(p, 5, ES_OK);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	fx_clear(f);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 2);
	assert_batch(&f->mqtt.sent[0], 6, 4);
	assert_batch(&f->mqtt.sent[1], 10, 1);
	agent_publisher_free(p);
}

static void nothing_while_disconnected_or_stopped(void **state)
{
	fx *f = *state;
	agent_publisher *p = make(f);
	fx_append(f, 3, "sensor.reading");
	f->mqtt.connected = false;
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 0);
	f->mqtt.connected = true;
	agent_publisher_stop(p);
	agent_publisher_pump(p, 0);
	assert_int_equal(f->mqtt.nsent, 0);
	agent_publisher_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(options_are_checked, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(publishes_in_order_within_the_window, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(acks_reach_the_journal, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(reserve_keeps_room, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(waits_for_the_next_commit_once_caught_up, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(reset_starts_again_from_the_oldest_pending,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(busy_window_keeps_the_row, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(refusal_is_counted_and_passed, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(nothing_while_disconnected_or_stopped, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(batches_the_rows_ready, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(batches_keep_to_the_caps_and_the_window, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(one_puback_acks_the_whole_batch, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(an_event_past_the_byte_cap_goes_alone, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(reset_forgets_batches_in_flight, fx_setup,
						fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
