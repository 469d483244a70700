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

#include "tmpdir.h"
#include "batch.h"
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
	uint64_t seen[MAX_SEEN]; /* what the fake tracker says it has seen */
	size_t nseen;
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

/* The tracker: gw-9 is not a known node; x->seen were seen. */
static bridge_admit fake_admit(void *ctx, const char *node, uint64_t seq, char *why, size_t cap)
{
	fixture *x = ctx;
	if (strcmp(node, "site-1/gw-9") == 0) {
		snprintf(why, cap, "not a known node");
		return BRIDGE_ADMIT_REFUSE;
	}
	for (size_t i = 0; i < x->nseen; i++) {
		if (x->seen[i] == seq)
			return BRIDGE_ADMIT_SEEN;
	}
	return BRIDGE_ADMIT_NEW;
}

static void fake_batch(void *ctx)
{
	((fixture *)ctx)->nbatches++;
}

/* ---- fixture ---------------------------------------------------------------- */

/* An intake on x's inbox, started. */
static int start(fixture *x)
{
	bridge_intake_opts io = {.root = "edgespool", .peer_topic = PEERS, .event_max_bytes = 4096};
	bridge_intake_deps d = {.loop = x->loop,
				.journal = x->journal,
				.ctx = x,
				.status = fake_status,
				.reply = fake_reply,
				.peer = fake_peer,
				.admit = fake_admit,
				.stored = fake_stored,
				.batch_done = fake_batch};
	return bridge_intake_new(&io, &d, &x->in) || bridge_intake_start(x->in) ? -1 : 0;
}

static int setup(void **state)
{
	fixture *x = calloc(1, sizeof *x);
	char path[128];
	if (!x)
		return -1;
	if (es_tmpdir_make(x->dir, sizeof x->dir, "intake-test"))
		return -1;
	snprintf(path, sizeof path, "%s/inbox.db", x->dir);
	es_journal_opts o = {.path = path, .sync = ES_SYNC_NORMAL, .source = "/site-0/bridge"};
	if (es_journal_open(&o, &x->journal) || es_loop_new(&x->loop) || start(x))
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
	es_tmpdir_remove(x->dir);
	free(x);
	return 0;
}

/* A CloudEvent as an agent publishes it: id, source, sequence seq (0: none). */
static char *event_from(const char *source, const char *id, uint64_t seq, size_t *len)
{
	es_event *ev;
	es_verr v;
	char *json;
	assert_int_equal(es_event_new("sensor.reading", "dev-1", "{\"t\":21}", &ev, &v), ES_OK);
	assert_int_equal(es_event_stamp(ev, id, source, es_clock_wall_ms(), seq), ES_OK);
	assert_int_equal(es_event_encode(ev, 0, &json, len), ES_OK);
	es_event_free(ev);
	return json;
}

static char *event_json(const char *id, uint64_t seq, size_t *len)
{
	return event_from("/site-1/gw-1", id, seq, len);
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

struct reasons {
	char text[8][200];
	size_t n, lens[8];
};

static int read_reason(void *ctx, const es_journal_deadletter *d)
{
	struct reasons *r = ctx;
	if (r->n < 8) {
		r->lens[r->n] = d->len;
		snprintf(r->text[r->n++], sizeof r->text[0], "%s", d->reason);
	}
	return 0;
}

static struct reasons dead_reasons(fixture *x, uint64_t want)
{
	struct reasons r = {.n = 0};
	es_journal_reader *rd;
	inbox_with_deadletters(x, want);
	assert_int_equal(es_journal_reader_new(x->journal, &rd), ES_OK);
	assert_int_equal(es_journal_read_deadletters(rd, 0, 8, read_reason, &r), ES_OK);
	es_journal_reader_free(rd);
	return r;
}

static void arrive_event(fixture *x, const char *node, const char *source, const char *id,
			 uint64_t seq)
{
	size_t len;
	char topic[128];
	char *json = event_from(source, id, seq, &len);
	snprintf(topic, sizeof topic, "edgespool/%s/ev/sensor.reading", node);
	arrive(x, topic, json, len);
	free(json);
}

/* An event that does not speak for its topic's node, carries a sequence no
 * node sends, or that the tracker refuses, is a dead letter saying why. */
static void refuses_what_is_not_the_nodes(void **state)
{
	fixture *x = *state;
	arrive_event(x, "site-1/gw-2", "/site-1/gw-1", "0190a0b0-0000-7000-8000-000000000011", 3);
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-000000000012",
		     9007199254740992ULL);
	arrive_event(x, "site-1/gw-9", "/site-1/gw-9", "0190a0b0-0000-7000-8000-000000000013", 1);
	bridge_intake_oversized(x->in, "edgespool/site-1/gw-1/cmd/resend", 30000000);
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-000000000014", 4);
	bridge_intake_stop(x->in);
	assert_int_equal(x->nstored, 1);
	assert_int_equal(x->stored[0].node_seq, 4);
	assert_int_equal(stats(x).invalid, 4);
	assert_int_equal(stats(x).received, 5);
	struct reasons r = dead_reasons(x, 4);
	assert_int_equal(r.n, 4);
	assert_non_null(
		strstr(r.text[0], "source '/site-1/gw-1' is not the topic's node /site-1/gw-2"));
	assert_non_null(strstr(r.text[1], "above 2^53-1"));
	assert_string_equal(r.text[2], "not a known node");
	assert_non_null(strstr(r.text[3], "message of 30000000 bytes"));
	assert_int_equal(r.lens[3], 0); /* not kept */
}

/* A second id for a sequence already held, in flight together or stored
 * before (the tracker saw it), is kept aside naming both; never stored. */
static void a_second_id_is_a_conflict(void **state)
{
	fixture *x = *state;
	const char *a = "0190a0b0-0000-7000-8000-0000000000a1";
	const char *b = "0190a0b0-0000-7000-8000-0000000000b2";
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", a, 5);
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", b, 5); /* in flight with a */
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", a, 5); /* a copy: a duplicate */
	bridge_intake_stop(x->in);
	assert_int_equal(x->nstored, 2);
	assert_false(x->stored[0].duplicate);
	assert_true(x->stored[1].duplicate);
	assert_int_equal(stats(x).conflicts, 1);
	assert_int_equal(stats(x).invalid, 1);
	struct reasons r = dead_reasons(x, 1);
	assert_int_equal(r.n, 1);
	char want[200];
	snprintf(want, sizeof want,
		 "conflict: site-1/gw-1 sequence 5 is held as id %s; this event is id %s", a, b);
	assert_string_equal(r.text[0], want);
	assert_int_equal(inbox(x).count, 1);

	/* After a restart: nothing in flight, the tracker says 5 was seen. */
	bridge_intake_free(x->in);
	x->nstored = 0;
	assert_int_equal(start(x), 0);
	x->seen[x->nseen++] = 5;
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-0000000000c3", 5);
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-0000000000d4", 6);
	bridge_intake_stop(x->in);
	assert_int_equal(stats(x).conflicts, 1);
	assert_int_equal(x->nstored, 1);
	assert_int_equal(x->stored[0].node_seq, 6);
}

/* A node's new epoch starts its sequence again: the old epoch's rows are
 * no conflict; the new epoch's are, and the inbox remembers where the epoch
 * began across a restart. */
static void a_new_epoch_starts_again(void **state)
{
	fixture *x = *state;
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-0000000000e1", 1);
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-0000000000e2", 2);
	bridge_intake_epoch(x->in, "site-1/gw-1", 2, true);
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-0000000000f1", 1);
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-0000000000f9", 1);
	bridge_intake_stop(x->in);
	assert_int_equal(x->nstored, 3);
	assert_int_equal(stats(x).conflicts, 1);
	/* The old journal's 1 and 2 came back after the new epoch began: the
	 * tracker must not take them as the new epoch's. */
	assert_true(x->stored[0].earlier_epoch && x->stored[1].earlier_epoch);
	assert_false(x->stored[2].earlier_epoch);
	struct reasons r = dead_reasons(x, 1);
	assert_non_null(strstr(r.text[0], "held as id 0190a0b0-0000-7000-8000-0000000000f1"));

	/* Restarted: the saved tracker's epoch 2 is known already (no new
	 * boundary); epoch 2's row 1 is still what a second id conflicts with. */
	bridge_intake_free(x->in);
	x->nstored = 0;
	assert_int_equal(start(x), 0);
	bridge_intake_epoch(x->in, "site-1/gw-1", 2, false);
	x->seen[x->nseen++] = 1;
	x->seen[x->nseen++] = 2;
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-0000000000e2", 2);
	arrive_event(x, "site-1/gw-1", "/site-1/gw-1", "0190a0b0-0000-7000-8000-0000000000fa", 1);
	bridge_intake_stop(x->in);
	assert_int_equal(x->nstored, 1); /* 2 is a copy of the old epoch's... */
	assert_true(x->stored[0].duplicate);
	assert_false(x->stored[0].earlier_epoch); /* a restart begins no epoch */
	assert_int_equal(stats(x).conflicts, 1);  /* ...and 1 conflicts with the new one */
}

/* A batch of events (a site bridge's read by the cloud role, or an agent's
 * read by the site role: the intake is the same): each event
 * is taken as if it came alone; a batch that cannot be read is one dead
 * letter saying why; a bad event inside a good batch is a dead letter of
 * its own and the others are journaled. */
static void reads_batches_event_by_event(void **state)
{
	fixture *x = *state;
	es_batch_enc_opts o = {.coding = {.codec = ES_BATCH_ZSTD, .dict = "d1"}};
	es_batch_enc *enc;
	assert_int_equal(es_batch_enc_new(&o, &enc), ES_OK);
	const char *topic = "edgespool/site-1/gw-1/batch/ce=zstd,d1";
	char id[64];
	size_t len;
	for (uint64_t seq = 1; seq <= 3; seq++) {
		snprintf(id, sizeof id, "0190a0b0-0000-7000-8000-00000000010%" PRIu64, seq);
		char *json = event_json(id, seq, &len);
		assert_int_equal(es_batch_enc_add(enc, json, len), ES_OK);
		free(json);
	}
	const void *payload;
	size_t plen;
	assert_int_equal(es_batch_enc_finish(enc, &payload, &plen), ES_OK);
	arrive(x, topic, payload, plen);
	/* Bad compressed data, a truncated frame, and a coding nobody has. */
	arrive(x, topic, "not zstd at all", 15);
	arrive(x, topic, payload, plen / 2);
	arrive(x, "edgespool/site-1/gw-1/batch/ce=lz4", payload, plen);

	/* One good event and one that is not a CloudEvent, uncompressed. */
	es_batch_enc_free(enc);
	o.coding = (es_batch_coding){.codec = ES_BATCH_IDENTITY};
	assert_int_equal(es_batch_enc_new(&o, &enc), ES_OK);
	char *good = event_json("0190a0b0-0000-7000-8000-000000000104", 4, &len);
	assert_int_equal(es_batch_enc_add(enc, good, len), ES_OK);
	free(good);
	assert_int_equal(es_batch_enc_add(enc, "{\"specversion\":\"1.0\"}", 21), ES_OK);
	assert_int_equal(es_batch_enc_finish(enc, &payload, &plen), ES_OK);
	arrive(x, "edgespool/site-1/gw-1/batch/ce=identity", payload, plen);
	arrive(x, "edgespool/site-1/gw-1/batch/ce=identity", "{\"not\":\"an array\"}", 18);
	es_batch_enc_free(enc);

	bridge_intake_stop(x->in);
	assert_int_equal(x->nstored, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(x->stored_node[i], "site-1/gw-1");
		assert_int_equal(x->stored[i].node_seq, i + 1);
		assert_false(x->stored[i].duplicate);
	}
	bridge_intake_stats st = stats(x);
	assert_int_equal(st.received, 6);
	assert_int_equal(st.batches, 2);
	assert_int_equal(st.invalid, 5);
	struct reasons r = dead_reasons(x, 5);
	assert_int_equal(r.n, 5);
	size_t unreadable = 0, bad_event = 0;
	for (size_t i = 0; i < r.n; i++) {
		unreadable += strncmp(r.text[i], "a batch that cannot be read: ", 29) == 0;
		bad_event += strncmp(r.text[i], "not a valid CloudEvent: [1]", 27) == 0;
	}
	assert_int_equal(unreadable, 4);
	assert_int_equal(bad_event, 1);
	assert_int_equal(inbox(x).count, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(journals_events_and_reports_them, setup, teardown),
		cmocka_unit_test_setup_teardown(hands_control_messages_on, setup, teardown),
		cmocka_unit_test_setup_teardown(keeps_dead_letters, setup, teardown),
		cmocka_unit_test_setup_teardown(refuses_what_is_not_the_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(a_second_id_is_a_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(a_new_epoch_starts_again, setup, teardown),
		cmocka_unit_test_setup_teardown(reads_batches_event_by_event, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
