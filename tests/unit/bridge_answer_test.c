/* bridge_answer_test.c - re-send requests that come over the cloud
 * (cloud-bridge/answer.c) in-process: a real SQLite inbox in a temporary
 * folder, fakes for the cloud link (records what is published) and the
 * edge link (records what is relayed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tmpdir.h"
#include "answer.h"
#include "clock.h"
#include "control.h"
#include "journal.h"

#define NODE	 "site-1/gw-1"
#define CMD	 "edgespool/site-1/gw-1/cmd/resend"
#define REPLY	 "edgespool/site-1/gw-1/reply/resend"
#define MAX_MSGS 64

typedef struct msg {
	char node[64], topic[128], payload[512];
} msg;

typedef struct fixture {
	char dir[64];
	es_journal *journal;
	bridge_answer *a;
	msg pub[MAX_MSGS], relays[MAX_MSGS];
	size_t npub, nrelays;
} fixture;

static void keep(msg *m, const char *node, const char *topic, const void *payload, size_t len)
{
	snprintf(m->node, sizeof m->node, "%s", node ? node : "");
	snprintf(m->topic, sizeof m->topic, "%s", topic);
	snprintf(m->payload, sizeof m->payload, "%.*s", (int)len, (const char *)payload);
}

static es_err fake_publish(void *ctx, const char *topic, const void *payload, size_t len,
			   uint64_t tag)
{
	fixture *x = ctx;
	assert_true(tag & BRIDGE_ANSWER_TAG);
	assert_true(x->npub < MAX_MSGS);
	keep(&x->pub[x->npub++], NULL, topic, payload, len);
	return ES_OK;
}

static es_err fake_relay(void *ctx, const char *node, const char *topic, const void *payload,
			 size_t len)
{
	fixture *x = ctx;
	assert_true(x->nrelays < MAX_MSGS);
	keep(&x->relays[x->nrelays++], node, topic, payload, len);
	return ES_OK;
}

/* Only site-1's nodes are ours. */
static bool fake_knows(void *ctx, const char *node)
{
	(void)ctx;
	return strncmp(node, "site-1/", 7) == 0;
}

static es_err remake(fixture *x, uint32_t rate, size_t queue, uint64_t relay_ms, const char *topic)
{
	char why[160];
	bridge_answer_free(x->a);
	x->a = NULL;
	bridge_answer_opts o = {.root = "edgespool",
				.event_topic = "{root}/{site}/{node}/ev/{type}",
				.topic = topic,
				.reply_topic = BRIDGE_ANSWER_DEFAULT_REPLY,
				.client_id = "br-1",
				.rate = rate,
				.queue = queue,
				.relay_ms = relay_ms,
				.event_max_bytes = 65536};
	bridge_answer_deps d = {.journal = x->journal,
				.ctx = x,
				.publish = fake_publish,
				.relay = fake_relay,
				.knows = fake_knows};
	return bridge_answer_new(&o, &d, &x->a, why, sizeof why);
}

static int setup(void **state)
{
	fixture *x = calloc(1, sizeof *x);
	char path[128];
	if (!x || es_tmpdir_make(x->dir, sizeof x->dir, "answer-test"))
		return -1;
	snprintf(path, sizeof path, "%s/inbox.db", x->dir);
	es_journal_opts o = {.path = path, .sync = ES_SYNC_NORMAL, .source = "/site-0/bridge"};
	if (es_journal_open(&o, &x->journal))
		return -1;
	*state = x;
	return remake(x, 1000, 16, 60000, BRIDGE_ANSWER_DEFAULT_TOPIC) ? -1 : 0;
}

static int teardown(void **state)
{
	fixture *x = *state;
	bridge_answer_free(x->a);
	es_journal_close(x->journal);
	es_tmpdir_remove(x->dir);
	free(x);
	return 0;
}

/* NODE's event seq as the agent publishes it. */
static void event_json(uint64_t seq, const char *source, char *buf, size_t cap)
{
	snprintf(buf, cap,
		 "{\"specversion\":\"1.0\",\"id\":\"0190a0b0-0000-7000-8000-%012" PRIu64
		 "\",\"source\":\"%s\",\"type\":\"t\",\"time\":\"2026-11-27T00:44:12.763Z\","
		 "\"sequence\":\"%" PRIu64 "\"}",
		 seq, source, seq);
}

/* Journals NODE's events first..last as the intake would, and waits for
 * the commit. */
static void store(fixture *x, uint64_t first, uint64_t last)
{
	for (uint64_t s = first; s <= last; s++) {
		char id[40], body[400];
		snprintf(id, sizeof id, "0190a0b0-0000-7000-8000-%012" PRIu64, s);
		event_json(s, "/" NODE, body, sizeof body);
		es_journal_item it = {.id = id,
				      .type = "t",
				      .origin = NODE,
				      .origin_seq = s,
				      .body = body,
				      .len = strlen(body)};
		es_append_result res;
		assert_int_equal(es_journal_append_items(x->journal, &it, 1, &res), ES_OK);
	}
}

static void ask(fixture *x, const char *topic, const char *json)
{
	bridge_answer_request(x->a, topic, json, strlen(json));
}

static es_resend_reply reply_at(const fixture *x, size_t i)
{
	es_resend_reply r;
	char why[160];
	assert_true(i < x->npub);
	assert_string_equal(x->pub[i].topic, REPLY);
	const char *p = x->pub[i].payload;
	assert_int_equal(es_resend_reply_decode(p, strlen(p), &r, why, sizeof why), ES_OK);
	return r;
}

/* ---- tests -------------------------------------------------------------------- */

/* A range the inbox holds goes to the cloud on the events' topics, then the
 * answer "ok" with the asker's request id. */
static void answers_from_the_inbox(void **state)
{
	fixture *x = *state;
	store(x, 1, 5);
	ask(x, CMD, "{\"from\":2,\"to\":4,\"request_id\":\"fleet-7\"}");
	bridge_answer_tick(x->a);
	assert_int_equal(x->npub, 4);
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(x->pub[i].topic, "edgespool/site-1/gw-1/ev/t");
		char want[32];
		snprintf(want, sizeof want, "\"sequence\":\"%zu\"", i + 2);
		assert_non_null(strstr(x->pub[i].payload, want));
	}
	es_resend_reply r = reply_at(x, 3);
	assert_string_equal(r.request_id, "fleet-7");
	assert_int_equal(r.status, ES_RESEND_OK);
	assert_int_equal(r.sent_from, 2);
	assert_int_equal(r.sent_to, 4);
	assert_int_equal(x->nrelays, 0);
	bridge_answer_stats st;
	bridge_answer_stats_get(x->a, &st);
	assert_int_equal(st.from_inbox, 3);
	assert_int_equal(st.ok, 1);
}

/* What the inbox lacks is relayed to the agent; while the relay waits the
 * agent's copies of that range pass (not others, not another node's); its
 * reply goes back under the asker's id, covering the whole range. */
static void relays_what_the_inbox_lacks(void **state)
{
	fixture *x = *state;
	char ev[400];
	store(x, 1, 2);
	ask(x, CMD, "{\"from\":1,\"to\":4,\"request_id\":\"fleet-8\"}");
	bridge_answer_tick(x->a);
	assert_int_equal(x->npub, 2); /* 1 and 2, from the inbox */
	assert_int_equal(x->nrelays, 1);
	assert_string_equal(x->relays[0].node, NODE);
	assert_string_equal(x->relays[0].topic, CMD);
	es_resend_req req;
	char why[160];
	const char *p = x->relays[0].payload;
	assert_int_equal(es_resend_req_decode(p, strlen(p), &req, why, sizeof why), ES_OK);
	assert_int_equal(req.from, 3);
	assert_int_equal(req.to, 4);
	assert_string_equal(req.request_id, "br-1.relay-1");

	event_json(3, "/" NODE, ev, sizeof ev);
	bridge_answer_event(x->a, "edgespool/site-1/gw-1/ev/t", ev, strlen(ev));
	assert_int_equal(x->npub, 3);
	assert_string_equal(x->pub[2].topic, "edgespool/site-1/gw-1/ev/t");
	event_json(9, "/" NODE, ev, sizeof ev); /* outside the range */
	bridge_answer_event(x->a, "edgespool/site-1/gw-1/ev/t", ev, strlen(ev));
	event_json(4, "/site-1/gw-2", ev, sizeof ev); /* another node's source */
	bridge_answer_event(x->a, "edgespool/site-1/gw-1/ev/t", ev, strlen(ev));
	assert_int_equal(x->npub, 3);

	const char *other = "{\"request_id\":\"br-1-5\",\"from\":3,\"to\":4,\"status\":\"ok\","
			    "\"sent_from\":3,\"sent_to\":4,\"gone_from\":0,\"gone_to\":0}";
	assert_false(bridge_answer_reply(x->a, NODE, other, strlen(other)));
	const char *ag = "{\"request_id\":\"br-1.relay-1\",\"from\":3,\"to\":4,\"status\":\"ok\","
			 "\"sent_from\":3,\"sent_to\":4,\"gone_from\":0,\"gone_to\":0,"
			 "\"latest_seq\":9}";
	assert_true(bridge_answer_reply(x->a, NODE, ag, strlen(ag)));
	es_resend_reply r = reply_at(x, 3);
	assert_string_equal(r.request_id, "fleet-8");
	assert_int_equal(r.status, ES_RESEND_OK);
	assert_int_equal(r.from, 1);
	assert_int_equal(r.to, 4);
	assert_int_equal(r.sent_from, 1);
	assert_int_equal(r.sent_to, 4);
	assert_int_equal(r.latest_seq, 9);
	/* Answered: a late copy no longer passes. */
	event_json(4, "/" NODE, ev, sizeof ev);
	bridge_answer_event(x->a, "edgespool/site-1/gw-1/ev/t", ev, strlen(ev));
	assert_int_equal(x->npub, 4);
}

/* The agent's "gone" after part came from the inbox is "partial"; with
 * nothing from the inbox it stays "gone". */
static void gone_at_the_agent(void **state)
{
	fixture *x = *state;
	ask(x, CMD, "{\"from\":1,\"to\":3,\"request_id\":\"fleet-9\"}");
	bridge_answer_tick(x->a);
	assert_int_equal(x->nrelays, 1);
	const char *ag = "{\"request_id\":\"br-1.relay-1\",\"from\":1,\"to\":3,\"status\":\"gone\","
			 "\"sent_from\":0,\"sent_to\":0,\"gone_from\":1,\"gone_to\":3}";
	assert_true(bridge_answer_reply(x->a, NODE, ag, strlen(ag)));
	es_resend_reply r = reply_at(x, 0);
	assert_int_equal(r.status, ES_RESEND_GONE);
	assert_int_equal(r.gone_from, 1);
	assert_int_equal(r.gone_to, 3);

	store(x, 5, 5);
	ask(x, CMD, "{\"from\":5,\"to\":6,\"request_id\":\"fleet-10\"}");
	bridge_answer_tick(x->a);
	const char *ag2 = "{\"request_id\":\"br-1.relay-2\",\"from\":6,\"to\":6,\"status\":"
			  "\"gone\",\"sent_from\":0,\"sent_to\":0,\"gone_from\":6,\"gone_to\":6}";
	assert_true(bridge_answer_reply(x->a, NODE, ag2, strlen(ag2)));
	r = reply_at(x, x->npub - 1);
	assert_string_equal(r.request_id, "fleet-10");
	assert_int_equal(r.status, ES_RESEND_PARTIAL);
	assert_int_equal(r.sent_from, 5);
	assert_int_equal(r.sent_to, 5);
	assert_int_equal(r.gone_from, 6);
}

/* Only the run the inbox lacks is relayed; after the agent's answer the
 * inbox serves the rest: what it holds is never answered gone. */
static void relays_only_the_missing_run(void **state)
{
	fixture *x = *state;
	store(x, 1, 1);
	store(x, 3, 3);
	ask(x, CMD, "{\"from\":1,\"to\":3,\"request_id\":\"fleet-11\"}");
	bridge_answer_tick(x->a);
	assert_int_equal(x->npub, 1);
	assert_int_equal(x->nrelays, 1);
	es_resend_req req;
	char why[160];
	const char *p = x->relays[0].payload;
	assert_int_equal(es_resend_req_decode(p, strlen(p), &req, why, sizeof why), ES_OK);
	assert_int_equal(req.from, 2);
	assert_int_equal(req.to, 2);
	const char *ag = "{\"request_id\":\"br-1.relay-1\",\"from\":2,\"to\":2,\"status\":"
			 "\"gone\",\"sent_from\":0,\"sent_to\":0,\"gone_from\":2,\"gone_to\":2}";
	assert_true(bridge_answer_reply(x->a, NODE, ag, strlen(ag)));
	assert_int_equal(x->npub, 3); /* 3 from the inbox, then the answer */
	assert_non_null(strstr(x->pub[1].payload, "\"sequence\":\"3\""));
	es_resend_reply r = reply_at(x, 2);
	assert_string_equal(r.request_id, "fleet-11");
	assert_int_equal(r.status, ES_RESEND_PARTIAL);
	assert_int_equal(r.sent_from, 1);
	assert_int_equal(r.sent_to, 3);
	assert_int_equal(r.gone_from, 2);
	assert_int_equal(r.gone_to, 2);
}

/* Bounds: a quarter of the queue per asker, then "busy"; what cannot be
 * read is "invalid" with a reason; a topic not ours is ignored. */
static void bounds_each_asker(void **state)
{
	fixture *x = *state;
	assert_int_equal(remake(x, 1000, 4, 60000, BRIDGE_ANSWER_DEFAULT_TOPIC), ES_OK);
	ask(x, CMD, "{\"from\":1,\"to\":3,\"request_id\":\"flood-1\"}");
	ask(x, CMD, "{\"from\":1,\"to\":3,\"request_id\":\"flood-2\"}");
	ask(x, CMD, "{\"from\":1,\"to\":3,\"request_id\":\"calm-1\"}");
	assert_int_equal(x->npub, 1);
	es_resend_reply r = reply_at(x, 0);
	assert_string_equal(r.request_id, "flood-2");
	assert_int_equal(r.status, ES_RESEND_BUSY);
	ask(x, CMD, "not json");
	r = reply_at(x, 1);
	assert_int_equal(r.status, ES_RESEND_INVALID);
	assert_true(r.reason[0] != '\0');
	ask(x, "edgespool/site-1/gw-1/cmd/other", "{\"from\":1,\"to\":3}");
	ask(x, "other/site-1/gw-1/cmd/resend", "{\"from\":1,\"to\":3}");
	ask(x, "edgespool/site-2/gw-1/cmd/resend", "{\"from\":1,\"to\":3}"); /* not ours */
	assert_int_equal(x->npub, 2);
	bridge_answer_stats st;
	bridge_answer_stats_get(x->a, &st);
	assert_int_equal(st.requests, 4);
	assert_int_equal(st.busy, 1);
	assert_int_equal(st.invalid, 1);
}

/* The rate bounds what goes out a tick; the rest goes later. */
static void keeps_to_the_rate(void **state)
{
	fixture *x = *state;
	assert_int_equal(remake(x, 2, 16, 60000, BRIDGE_ANSWER_DEFAULT_TOPIC), ES_OK);
	store(x, 1, 5);
	ask(x, CMD, "{\"from\":1,\"to\":5,\"request_id\":\"fleet-1\"}");
	bridge_answer_tick(x->a);
	assert_true(x->npub <= 2);
	uint64_t deadline = es_clock_mono_ms() + 10000;
	struct timespec pause = {0, 20 * 1000 * 1000};
	while (x->npub < 6 && es_clock_mono_ms() < deadline) {
		bridge_answer_tick(x->a);
		nanosleep(&pause, NULL);
	}
	assert_int_equal(x->npub, 6);
	assert_int_equal(reply_at(x, 5).status, ES_RESEND_OK);
}

/* A relay the agent does not answer in time is answered "busy". */
static void relay_times_out_busy(void **state)
{
	fixture *x = *state;
	assert_int_equal(remake(x, 1000, 16, 1, BRIDGE_ANSWER_DEFAULT_TOPIC), ES_OK);
	ask(x, CMD, "{\"from\":1,\"to\":2,\"request_id\":\"fleet-2\"}");
	bridge_answer_tick(x->a);
	assert_int_equal(x->nrelays, 1);
	uint64_t deadline = es_clock_mono_ms() + 5000;
	struct timespec pause = {0, 2 * 1000 * 1000};
	while (x->npub == 0 && es_clock_mono_ms() < deadline) {
		nanosleep(&pause, NULL);
		bridge_answer_tick(x->a);
	}
	es_resend_reply r = reply_at(x, 0);
	assert_string_equal(r.request_id, "fleet-2");
	assert_int_equal(r.status, ES_RESEND_BUSY);
}

/* A remapped request topic: the filter and the match follow it; templates
 * that do not name a whole {site} and {node} level are refused. */
static void follows_the_template(void **state)
{
	fixture *x = *state;
	char why[160];
	assert_int_equal(remake(x, 1000, 16, 60000, "fleet/{site}/{node}/resend"), ES_OK);
	assert_string_equal(bridge_answer_filter(x->a), "fleet/+/+/resend");
	store(x, 1, 1);
	ask(x, CMD, "{\"from\":1,\"to\":1,\"request_id\":\"a-1\"}"); /* not the template */
	ask(x, "fleet/site-1/gw-1/resend", "{\"from\":1,\"to\":1,\"request_id\":\"a-2\"}");
	bridge_answer_tick(x->a);
	assert_int_equal(x->npub, 2);
	assert_string_equal(reply_at(x, 1).request_id, "a-2");
	assert_int_equal(bridge_answer_check_topic("{root}/{node}/cmd", why, sizeof why),
			 ES_EINVAL);
	assert_int_equal(bridge_answer_check_topic("a/{site}x/{node}", why, sizeof why), ES_EINVAL);
	assert_int_equal(bridge_answer_check_topic("a/+/{site}/{node}", why, sizeof why),
			 ES_EINVAL);
	assert_int_equal(bridge_answer_check_topic("{site}/{node}", why, sizeof why), ES_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(answers_from_the_inbox, setup, teardown),
		cmocka_unit_test_setup_teardown(relays_what_the_inbox_lacks, setup, teardown),
		cmocka_unit_test_setup_teardown(gone_at_the_agent, setup, teardown),
		cmocka_unit_test_setup_teardown(relays_only_the_missing_run, setup, teardown),
		cmocka_unit_test_setup_teardown(bounds_each_asker, setup, teardown),
		cmocka_unit_test_setup_teardown(keeps_to_the_rate, setup, teardown),
		cmocka_unit_test_setup_teardown(relay_times_out_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(follows_the_template, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
