/* bridge_intake_test.c - the bridge's way in (cloud-bridge/intake.c)
 * in-process: messages as the edge links hand them over, the inbox thread
 * journaling into a real SQLite inbox in a temporary folder, and fakes for
 * the parts that take status messages, replies, reports and the results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "intake.h"
#include "journal.h"
#include "loop.h"

#define PEERS	 "edgespool/_bridge/g1/seen"
#define MAX_SEEN 16

typedef struct fixture {
	char dir[64];
	es_journal *journal;
	es_loop *loop;
	bridge_intake *in;
	bridge_stored stored[MAX_SEEN];
	char stored_node[MAX_SEEN][64];
	size_t nstored, nbatches;
	char control[MAX_SEEN][96]; /* "status site/node payload", ... */
	size_t ncontrol;
} fixture;

static void note(fixture *x, const char *what, const char *node, const void *payload, size_t len)
{
	assert_true(x->ncontrol < MAX_SEEN);
	snprintf(x->control[x->ncontrol++], sizeof x->control[0], "%s %s %.*s", what, node,
		 (int)len, (const char *)payload);
}

static void fake_status(void *ctx, const char *node, const void *payload, size_t len)
{
	note(ctx, "status", node, payload, len);
}

static void fake_reply(void *ctx, const char *node, const void *payload, size_t len)
{
	note(ctx, "reply", node, payload, len);
}

static void fake_peer(void *ctx, const void *payload, size_t len)
{
	note(ctx, "peer", "-", payload, len);
}

static void fake_stored(void *ctx, const bridge_stored *s)
{
	fixture *x = ctx;
	assert_true(x->nstored < MAX_SEEN);
	snprintf(x->stored_node[x->nstored], sizeof x->stored_node[0], "%s", s->node);
	x->stored[x->nstored++] = *s;
}

static void fake_batch(void *ctx)
{
	((fixture *)ctx)->nbatches++;
}

/* ---- fixture ---------------------------------------------------------------- */

static int setup(void **state)
{
	fixture *x = calloc(1, sizeof *x);
	char path[128];
	if (!x)
		return -1;
	snprintf(x->dir, sizeof x->dir, "/tmp/es-intake-test-XXXXXX");
	if (!mkdtemp(x->dir))
		return -1;
	snprintf(path, sizeof path, "%s/inbox.db", x->dir);
	es_journal_opts o = {.path = path, .sync = ES_SYNC_NORMAL, .source = "/site-0/bridge"};
	if (es_journal_open(&o, &x->journal) || es_loop_new(&x->loop))
		return -1;
	bridge_intake_opts io = {.root = "edgespool", .peer_topic = PEERS, .event_max_bytes = 4096};
	bridge_intake_deps d = {.loop = x->loop,
				.journal = x->journal,
				.ctx = x,
				.status = fake_status,
				.reply = fake_reply,
				.peer = fake_peer,
				.stored = fake_stored,
				.batch_done = fake_batch};
	if (bridge_intake_new(&io, &d, &x->in) || bridge_intake_start(x->in))
		return -1;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	fixture *x = *state;
	bridge_intake_free(x->in);
	es_journal_close(x->journal);
	es_loop_free(x->loop);
	DIR *d = opendir(x->dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		char p[400];
		snprintf(p, sizeof p, "%s/%s", x->dir, e->d_name);
		if (e->d_name[0] != '.')
			unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(x->dir);
	free(x);
	return 0;
}

/* A CloudEvent as an agent publishes it: id, source, sequence seq (0: none). */
static char *event_json(const char *id, uint64_t seq, size_t *len)
{
	es_event *ev;
	es_verr v;
	char *json;
	assert_int_equal(es_event_new("sensor.reading", "dev-1", "{\"t\":21}", &ev, &v), ES_OK);
	assert_int_equal(es_event_stamp(ev, id, "/site-1/gw-1", es_clock_wall_ms(), seq), ES_OK);
	assert_int_equal(es_event_encode(ev, 0, &json, len), ES_OK);
	es_event_free(ev);
	return json;
}

static void arrive(fixture *x, const char *topic, const char *payload, size_t len)
{
	bridge_intake_message(x->in, topic, payload, len);
}

static bridge_intake_stats stats(fixture *x)
{
	bridge_intake_stats st;
	bridge_intake_stats_get(x->in, &st);
	return st;
}

static es_journal_stats inbox(fixture *x)
{
	es_journal_reader *r;
	es_journal_stats st;
	assert_int_equal(es_journal_reader_new(x->journal, &r), ES_OK);
	assert_int_equal(es_journal_stats_get(r, &st), ES_OK);
	es_journal_reader_free(r);
	return st;
}

/* The inbox once it holds want dead letters: they are written in the
 * writer's next transaction, not by the call that kept them (5 s at most). */
static es_journal_stats inbox_with_deadletters(fixture *x, uint64_t want)
{
	uint64_t deadline = es_clock_mono_ms() + 5000;
	es_journal_stats st = inbox(x);
	while (st.deadletters < want && es_clock_mono_ms() < deadline) {
		nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
		st = inbox(x);
	}
	return st;
}

struct body {
	char text[512];
	char origin[64];
	uint64_t origin_seq;
};

static int read_body(void *ctx, const es_journal_row *row)
{
	struct body *b = ctx;
	snprintf(b->text, sizeof b->text, "%.*s", (int)row->body_len, row->body);
	snprintf(b->origin, sizeof b->origin, "%s", row->origin ? row->origin : "");
	b->origin_seq = row->origin_seq;
	return 0;
}

/* ---- tests -------------------------------------------------------------------- */

/* An event is journaled verbatim with its node and sequence and reported
 * stored; its copy is reported as a duplicate, counted. */
static void journals_events_and_reports_them(void **state)
{
	fixture *x = *state;
	size_t len;
	char *json = event_json("0190a0b0-0000-7000-8000-000000000001", 7, &len);
	arrive(x, "edgespool/site-1/gw-1/ev/sensor.reading", json, len);
	arrive(x, "edgespool/site-1/gw-1/ev/sensor.reading", json, len);
	bridge_intake_stop(x->in); /* journals what is queued, hands back */
	assert_int_equal(x->nstored, 2);
	assert_string_equal(x->stored_node[0], "site-1/gw-1");
	assert_int_equal(x->stored[0].node_seq, 7);
	assert_int_equal(x->stored[0].seq, 1);
	assert_false(x->stored[0].duplicate);
	assert_true(x->stored[1].duplicate);
	assert_true(x->nbatches >= 1);
	assert_int_equal(stats(x).duplicates, 1);
	assert_int_equal(stats(x).received, 2);

	es_journal_reader *r;
	struct body b = {0};
	assert_int_equal(es_journal_reader_new(x->journal, &r), ES_OK);
	assert_int_equal(es_journal_read(r, 1, 1, 1, false, read_body, &b), ES_OK);
	es_journal_reader_free(r);
	assert_string_equal(b.text, json);
	assert_string_equal(b.origin, "site-1/gw-1");
	assert_int_equal(b.origin_seq, 7);
	free(json);
}

/* Status messages, re-send replies and the group's reports go to their
 * callbacks with their node; they are counted as received. */
static void hands_control_messages_on(void **state)
{
	fixture *x = *state;
	arrive(x, "edgespool/site-1/gw-2/status", "S", 1);
	arrive(x, "edgespool/site-1/gw-2/reply/resend", "R", 1);
	arrive(x, PEERS, "P", 1);
	assert_int_equal(x->ncontrol, 3);
	assert_string_equal(x->control[0], "status site-1/gw-2 S");
	assert_string_equal(x->control[1], "reply site-1/gw-2 R");
	assert_string_equal(x->control[2], "peer - P");
	assert_int_equal(stats(x).received, 3);
	bridge_intake_stop(x->in);
	assert_int_equal(x->nstored, 0);
}

/* What cannot be forwarded is kept as a dead letter and counted, never
 * journaled as an event. */
static void keeps_dead_letters(void **state)
{
	fixture *x = *state;
	size_t len;
	char *nosq = event_json("0190a0b0-0000-7000-8000-000000000002", 0, &len);
	arrive(x, "other/site-1/gw-1/ev/t", "{}", 2);			 /* outside the root */
	arrive(x, "edgespool/site-1/gw-1/what", "{}", 2);		 /* unknown kind */
	arrive(x, "edgespool/site-1/gw-1/ev/t", "{not json", 9);	 /* no CloudEvent */
	arrive(x, "edgespool/site-1/gw-1/ev/sensor.reading", nosq, len); /* no sequence */
	free(nosq);
	bridge_intake_stop(x->in);
	assert_int_equal(x->nstored, 0);
	assert_int_equal(x->ncontrol, 0);
	bridge_intake_stats st = stats(x);
	assert_int_equal(st.invalid, 4);
	assert_int_equal(st.received, 4);
	es_journal_stats js = inbox_with_deadletters(x, 4);
	assert_int_equal(js.deadletters, 4);
	assert_int_equal(js.count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(journals_events_and_reports_them, setup, teardown),
		cmocka_unit_test_setup_teardown(hands_control_messages_on, setup, teardown),
		cmocka_unit_test_setup_teardown(keeps_dead_letters, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
