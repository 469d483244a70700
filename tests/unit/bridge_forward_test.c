/* bridge_forward_test.c - the bridge's forwarder (cloud-bridge/forward.c)
 * in-process: rows in a real SQLite inbox (a temporary folder), a fake
 * cloud link that records what was published and takes a window, and a
 * gap tracker's contiguous mark set by the test. */
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
#include <unistd.h>

#include "tmpdir.h"
#include "clock.h"
#include "forward.h"
#include "remap.h"
#include "journal.h"
#include "loop.h"

#define MAX_SENT 64

typedef struct sent {
	char topic[256];
	char body[256];
	uint64_t tag;
	bool props; /* published with MQTT 5 properties */
	char content_type[64];
} sent;

/* The fake cloud link, the gap tracker's mark and the metrics' calls. */
typedef struct fixture {
	char dir[64];
	es_journal *journal;
	es_loop *loop;
	bridge_forward *f;
	uint64_t next_id;
	/* the cloud */
	bool connected;
	size_t window, inflight;
	es_err refuse; /* publish answers this when set */
	sent sent[MAX_SENT];
	size_t nsent;
	/* the tracker */
	uint64_t contiguous;
	/* metrics */
	size_t nmetric_sent, nmetric_acked, nlost;
	/* batches acknowledged: "node#last" */
	char batch_acked[8][64];
	size_t nbatch_acked;
} fixture;

static es_err fake_publish(void *ctx, const char *topic, const void *payload, size_t len,
			   uint64_t tag, const es_mqtt_props *props)
{
	fixture *x = ctx;
	if (!x->connected)
		return ES_ENOTCONN;
	if (x->inflight >= x->window)
		return ES_EBUSY;
	if (x->refuse)
		return x->refuse;
	assert_true(x->nsent < MAX_SENT);
	sent *s = &x->sent[x->nsent++];
	snprintf(s->topic, sizeof s->topic, "%s", topic);
	snprintf(s->body, sizeof s->body, "%.*s", (int)len, (const char *)payload);
	s->tag = tag;
	s->props = props != NULL;
	snprintf(s->content_type, sizeof s->content_type, "%s",
		 props && props->content_type ? props->content_type : "");
	x->inflight++;
	return ES_OK;
}

static size_t fake_inflight(void *ctx)
{
	return ((fixture *)ctx)->inflight;
}

static size_t fake_window(void *ctx)
{
	return ((fixture *)ctx)->window;
}

static bool fake_connected(void *ctx)
{
	return ((fixture *)ctx)->connected;
}

static const bridge_cloud_ops fake_cloud = {fake_publish, fake_inflight, fake_window,
					    fake_connected};

static uint64_t fake_contiguous(void *ctx, const char *node)
{
	(void)node;
	return ((fixture *)ctx)->contiguous;
}

static void fake_sent(void *ctx, uint64_t seq, uint64_t journaled_ms)
{
	(void)seq;
	(void)journaled_ms;
	((fixture *)ctx)->nmetric_sent++;
}

static void fake_acked(void *ctx, uint64_t seq)
{
	(void)seq;
	((fixture *)ctx)->nmetric_acked++;
}

static void fake_lost(void *ctx)
{
	((fixture *)ctx)->nlost++;
}

static void fake_batch_acked(void *ctx, const char *node, uint64_t last_seq)
{
	fixture *x = ctx;
	assert_true(x->nbatch_acked < 8);
	snprintf(x->batch_acked[x->nbatch_acked++], sizeof x->batch_acked[0], "%s#%llu", node,
		 (unsigned long long)last_seq);
}

/* ---- fixture ---------------------------------------------------------------- */

static es_err make_forward_lanes(fixture *x, const char *tmpl, uint64_t hole_wait_ms,
				 const es_batch_enc_opts *batch, const bridge_forward_lanes *lanes,
				 unsigned share)
{
	bridge_forward_opts o = {.cloud_topic = tmpl,
				 .root = "edgespool",
				 .hole_wait_ms = hole_wait_ms,
				 .batch = batch,
				 .lanes = lanes,
				 .backlog_share = share};
	bridge_forward_deps d = {.loop = x->loop,
				 .journal = x->journal,
				 .cloud = &fake_cloud,
				 .cloud_ctx = x,
				 .ctx = x,
				 .contiguous = fake_contiguous,
				 .sent = fake_sent,
				 .acked = fake_acked,
				 .lost = fake_lost,
				 .batch_acked = fake_batch_acked};
	es_err err = bridge_forward_new(&o, &d, &x->f);
	if (!err)
		bridge_forward_start(x->f);
	return err;
}

static es_err make_forward_as(fixture *x, const char *tmpl, uint64_t hole_wait_ms,
			      const es_batch_enc_opts *batch)
{
	return make_forward_lanes(x, tmpl, hole_wait_ms, batch, NULL, 0);
}

static es_err make_forward(fixture *x, const char *tmpl, uint64_t hole_wait_ms)
{
	return make_forward_as(x, tmpl, hole_wait_ms, NULL);
}

static int setup(void **state)
{
	fixture *x = calloc(1, sizeof *x);
	if (!x)
		return -1;
	snprintf(x->dir, sizeof x->dir, "/tmp/es-forward-test-XXXXXX");
	char path[128];
	if (!mkdtemp(x->dir))
		return -1;
	snprintf(path, sizeof path, "%s/inbox.db", x->dir);
	es_journal_opts o = {.path = path, .sync = ES_SYNC_NORMAL, .source = "/site-0/bridge"};
	if (es_journal_open(&o, &x->journal) || es_loop_new(&x->loop))
		return -1;
	x->connected = true;
	x->window = 100;
	x->next_id = 1;
	*state = x;
	return make_forward(x, "{root}/{site}/{node}/ev/{type}", 60000) ? -1 : 0;
}

static int teardown(void **state)
{
	fixture *x = *state;
	bridge_forward_free(x->f);
	es_journal_close(x->journal);
	es_loop_free(x->loop);
	es_tmpdir_remove(x->dir);
	free(x);
	return 0;
}

/* Journals node's event node_seq of type as the intake would; its body
 * names it ("site-1/gw-1#3"). Returns its inbox sequence. */
static uint64_t store(fixture *x, const char *node, uint64_t node_seq, const char *type)
{
	char id[40], body[64];
	snprintf(id, sizeof id, "0190a0b0-0000-7000-8000-%012" PRIu64, x->next_id++);
	snprintf(body, sizeof body, "%s#%" PRIu64, node, node_seq);
	es_journal_item it = {.id = id,
			      .type = type,
			      .origin = node,
			      .origin_seq = node_seq,
			      .body = body,
			      .len = strlen(body)};
	es_append_result res;
	assert_int_equal(es_journal_append_items(x->journal, &it, 1, &res), ES_OK);
	assert_false(res.duplicate);
	return res.seq;
}

/* The cloud acknowledges every publish so far, in order. */
static void ack_all(fixture *x, size_t from)
{
	for (size_t i = from; i < x->nsent; i++) {
		x->inflight--;
		bridge_forward_published(x->f, x->sent[i].tag, ES_OK);
	}
}

static uint64_t pending(fixture *x)
{
	es_journal_counters c;
	assert_int_equal(es_journal_sync_acks(x->journal), ES_OK);
	es_journal_counters_get(x->journal, &c);
	return c.pending;
}

static void assert_sent(const fixture *x, size_t i, const char *body)
{
	assert_true(i < x->nsent);
	assert_string_equal(x->sent[i].body, body);
}

/* ---- tests -------------------------------------------------------------------- */

/* Rows of two nodes go in inbox order on their mapped topics; PUBACKs mark
 * them acked in the inbox and tell the metrics. */
static void forwards_in_inbox_order_and_acks(void **state)
{
	fixture *x = *state;
	uint64_t s1 = store(x, "site-1/gw-1", 1, "sensor.reading");
	store(x, "site-1/gw-2", 1, "alarm.raised");
	store(x, "site-1/gw-1", 2, "sensor.reading");
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 3);
	assert_sent(x, 0, "site-1/gw-1#1");
	assert_string_equal(x->sent[0].topic, "edgespool/site-1/gw-1/ev/sensor.reading");
	assert_int_equal(x->sent[0].tag & ((UINT64_C(1) << 56) - 1), s1);
	assert_sent(x, 1, "site-1/gw-2#1");
	assert_string_equal(x->sent[1].topic, "edgespool/site-1/gw-2/ev/alarm.raised");
	assert_sent(x, 2, "site-1/gw-1#2");
	assert_int_equal(pending(x), 3);
	ack_all(x, 0);
	assert_int_equal(pending(x), 0);
	bridge_forward_pump(x->f);
	bridge_forward_stats st;
	bridge_forward_stats_get(x->f, &st);
	assert_int_equal(st.forwarded, 3);
	assert_int_equal(st.acked, 3);
	assert_int_equal(st.held, 0);
	assert_int_equal(st.out_of_order, 0);
	assert_int_equal(x->nmetric_sent, 3);
	assert_int_equal(x->nmetric_acked, 3);
}

/* The template decides the cloud topic. */
static void maps_topics_with_the_template(void **state)
{
	fixture *x = *state;
	bridge_forward_free(x->f);
	assert_int_equal(make_forward(x, "fleet/{site}/{node}/{type}", 60000), ES_OK);
	store(x, "site-9/gw-3", 1, "door.opened");
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 1);
	assert_string_equal(x->sent[0].topic, "fleet/site-9/gw-3/door.opened");
}

static void refuses_a_bad_template(void **state)
{
	fixture *x = *state;
	bridge_forward *f = NULL;
	bridge_forward_opts o = {.cloud_topic = "fleet/{nope}", .root = "edgespool"};
	bridge_forward_deps d = {.loop = x->loop,
				 .journal = x->journal,
				 .cloud = &fake_cloud,
				 .cloud_ctx = x,
				 .ctx = x,
				 .contiguous = fake_contiguous,
				 .sent = fake_sent,
				 .acked = fake_acked,
				 .lost = fake_lost};
	assert_int_equal(bridge_forward_new(&o, &d, &f), ES_EINVAL);
	assert_null(f);
	d.contiguous = NULL;
	o.cloud_topic = "{root}/{type}";
	assert_int_equal(bridge_forward_new(&o, &d, &f), ES_EINVAL);
}

/* A node's row above a hole waits; the late row that fills it goes first
 * once the tracker says nothing below is missing, and nothing counts as
 * out of order. */
static void holds_a_row_above_a_hole_until_it_fills(void **state)
{
	fixture *x = *state;
	store(x, "site-1/gw-1", 1, "t");
	store(x, "site-1/gw-1", 3, "t");
	x->contiguous = 1;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 1);
	assert_sent(x, 0, "site-1/gw-1#1");
	bridge_forward_stats st;
	bridge_forward_stats_get(x->f, &st);
	assert_int_equal(st.held, 1);

	store(x, "site-1/gw-1", 2, "t"); /* the re-sent one, later in the inbox */
	x->contiguous = 3;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 3);
	assert_sent(x, 1, "site-1/gw-1#2");
	assert_sent(x, 2, "site-1/gw-1#3");
	bridge_forward_stats_get(x->f, &st);
	assert_int_equal(st.out_of_order, 0);
	assert_int_equal(st.held, 0);
}

/* After a reconnect nothing counts as forwarded: a node's first row is
 * above the next one due, but the tracker says nothing below it is missing
 * and the inbox has nothing pending below it, so it goes at once. */
static void trusts_the_tracker_after_a_reconnect(void **state)
{
	fixture *x = *state;
	store(x, "site-1/gw-1", 1, "t");
	store(x, "site-1/gw-1", 2, "t");
	bridge_forward_committed(x->f);
	ack_all(x, 0);
	assert_int_equal(pending(x), 0);
	bridge_forward_reset(x->f); /* the connection came back */
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 2);
	store(x, "site-1/gw-1", 3, "t");
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 2); /* 1 and 2 might still be on their way */
	x->contiguous = 3;
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 3);
	assert_sent(x, 2, "site-1/gw-1#3");
}

/* Bridges sharing a subscription: the partner holds #2, so the tracker has
 * nothing missing below #4 once #3 is in. #3 is read out of inbox order to
 * fill the hole (committed, but not yet announced). A copy of #2 re-sent
 * later, to this bridge this time, comes after it in the inbox: it must
 * still go (out of order), or it would sit in the backlog for good. */
static void sends_a_late_row_below_one_read_to_fill_a_hole(void **state)
{
	fixture *x = *state;
	store(x, "site-1/gw-1", 1, "t");
	store(x, "site-1/gw-1", 4, "t");
	x->contiguous = 1;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 1);
	store(x, "site-1/gw-1", 3, "t");
	x->contiguous = 4;
	bridge_forward_pump(x->f); /* a PUBACK's pump, before the commit's */
	assert_int_equal(x->nsent, 3);
	assert_sent(x, 1, "site-1/gw-1#3");
	assert_sent(x, 2, "site-1/gw-1#4");
	store(x, "site-1/gw-1", 2, "t");
	bridge_forward_committed(x->f); /* #3's commit, then #2's */
	assert_int_equal(x->nsent, 4);
	assert_sent(x, 3, "site-1/gw-1#2");
	ack_all(x, 0);
	assert_int_equal(pending(x), 0);
	bridge_forward_stats st;
	bridge_forward_stats_get(x->f, &st);
	assert_int_equal(st.out_of_order, 1);
	assert_int_equal(st.forwarded, 4);
}

/* With no wait for holes, the row above one goes at once; the late row is
 * then out of order. */
static void sends_out_of_order_after_the_hole_wait(void **state)
{
	fixture *x = *state;
	bridge_forward_free(x->f);
	assert_int_equal(make_forward(x, "{root}/{site}/{node}/ev/{type}", 0), ES_OK);
	store(x, "site-1/gw-1", 1, "t");
	store(x, "site-1/gw-1", 3, "t");
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 2);
	assert_sent(x, 1, "site-1/gw-1#3");
	store(x, "site-1/gw-1", 2, "t");
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 3);
	assert_sent(x, 2, "site-1/gw-1#2");
	bridge_forward_stats st;
	bridge_forward_stats_get(x->f, &st);
	assert_int_equal(st.out_of_order, 1);
}

/* A full window stops the pump; each batch of PUBACKs lets more go. */
static void keeps_within_the_window(void **state)
{
	fixture *x = *state;
	x->window = 2;
	for (uint64_t i = 1; i <= 5; i++)
		store(x, "site-1/gw-1", i, "t");
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 2);
	ack_all(x, 0);
	bridge_forward_pump(x->f); /* what the pump's async would run */
	assert_int_equal(x->nsent, 4);
	ack_all(x, 2);
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 5);
	assert_sent(x, 4, "site-1/gw-1#5");
}

/* A publish lost with its connection: everything unacknowledged goes
 * again, read anew from the inbox; the metrics forget what was in flight. */
static void sends_again_after_a_lost_connection(void **state)
{
	fixture *x = *state;
	store(x, "site-1/gw-1", 1, "t");
	store(x, "site-1/gw-1", 2, "t");
	x->contiguous = 2; /* the tracker has both */
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 2);
	x->inflight--;
	bridge_forward_published(x->f, x->sent[0].tag, ES_OK);
	assert_int_equal(es_journal_sync_acks(x->journal), ES_OK);
	x->inflight = 0;
	bridge_forward_published(x->f, x->sent[1].tag, ES_ENOTCONN);
	assert_int_equal(x->nlost, 1);
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 3);
	assert_sent(x, 2, "site-1/gw-1#2");
}

/* cloud.format batch: what of a node may go at once goes as one batch (at
 * most max_events), never past a hole; one PUBACK acks its rows; a lost
 * connection sends them again, and an old batch's late PUBACK is nothing. */
static void batches_what_may_go_together(void **state)
{
	fixture *x = *state;
	bridge_forward_free(x->f);
	es_batch_enc_opts b = {.coding = {.codec = ES_BATCH_IDENTITY}, .max_events = 2};
	assert_int_equal(make_forward_as(x, BRIDGE_REMAP_DEFAULT, 60000, &b), ES_OK);
	store(x, "site-1/gw-1", 1, "t");
	store(x, "site-1/gw-1", 2, "t");
	store(x, "site-1/gw-1", 3, "t");
	store(x, "site-1/gw-2", 1, "t");
	store(x, "site-1/gw-1", 5, "t"); /* 4 is missing */
	x->contiguous = 3;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 3);
	assert_sent(x, 0, "[site-1/gw-1#1,site-1/gw-1#2]");
	assert_string_equal(x->sent[0].topic, "edgespool/site-1/gw-1/batch/ce=identity");
	assert_true(x->sent[0].props);
	assert_string_equal(x->sent[0].content_type, ES_BATCH_CONTENT_TYPE);
	assert_true(x->sent[0].tag > (UINT64_C(1) << 53)); /* not an inbox sequence */
	assert_sent(x, 1, "[site-1/gw-1#3]");
	assert_sent(x, 2, "[site-1/gw-2#1]");
	assert_string_equal(x->sent[2].topic, "edgespool/site-1/gw-2/batch/ce=identity");
	assert_int_equal(pending(x), 5);

	x->inflight--;
	bridge_forward_published(x->f, x->sent[0].tag, ES_OK);
	assert_int_equal(pending(x), 3);
	assert_int_equal(x->nmetric_acked, 2);
	/* The node's mark of what the cloud acknowledged (upstatus.h). */
	assert_int_equal(x->nbatch_acked, 1);
	assert_string_equal(x->batch_acked[0], "site-1/gw-1#2");
	x->inflight = 0;
	bridge_forward_published(x->f, x->sent[1].tag, ES_ENOTCONN);
	bridge_forward_published(x->f, x->sent[2].tag, ES_OK); /* the old connection's */
	assert_int_equal(pending(x), 3);
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 5);
	assert_sent(x, 3, "[site-1/gw-1#3]");
	assert_sent(x, 4, "[site-1/gw-2#1]");
	ack_all(x, 3);
	assert_int_equal(pending(x), 1); /* 5 waits for 4 */
	/* A lost connection's PUBACK marks nothing; the batches sent again do. */
	assert_int_equal(x->nbatch_acked, 3);
	assert_string_equal(x->batch_acked[1], "site-1/gw-1#3");
	assert_string_equal(x->batch_acked[2], "site-1/gw-2#1");
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 5);
	bridge_forward_stats st;
	bridge_forward_stats_get(x->f, &st);
	assert_int_equal(st.batches, 5);
	assert_int_equal(st.forwarded, 6);
	assert_int_equal(st.acked, 4);
}

/* Nothing goes while the link is down or after stop. */
static void sends_nothing_when_down_or_stopped(void **state)
{
	fixture *x = *state;
	store(x, "site-1/gw-1", 1, "t");
	x->connected = false;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 0);
	x->connected = true;
	bridge_forward_stop(x->f);
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 0);
	bridge_forward_start(x->f);
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 1);
}

static size_t deadletters(fixture *x)
{
	es_journal_reader *r;
	es_journal_stats st;
	assert_int_equal(es_journal_sync_acks(x->journal), ES_OK);
	assert_int_equal(es_journal_reader_new(x->journal, &r), ES_OK);
	assert_int_equal(es_journal_stats_get(r, &st), ES_OK);
	es_journal_reader_free(r);
	return (size_t)st.deadletters;
}

/* An MQTT 5 refusal is final: counted, kept as a dead letter, out of the
 * inbox's backlog; so is a row that maps to no valid topic. */
static void keeps_refused_and_unmappable_rows_aside(void **state)
{
	fixture *x = *state;
	store(x, "site-1/gw-1", 1, "t");
	store(x, "site-1/gw-1", 2, "bad+type"); /* '+' is no topic name's */
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 1);
	x->inflight--;
	bridge_forward_published(x->f, x->sent[0].tag, ES_EPROTO);
	assert_int_equal(pending(x), 0);
	assert_int_equal(deadletters(x), 2);
	bridge_forward_pump(x->f);
	bridge_forward_stats st;
	bridge_forward_stats_get(x->f, &st);
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.acked, 0);
}

/* ---- lanes ------------------------------------------------------------------ */

/* Alarms as the high lane, readings as the low one. */
static void use_lanes(fixture *x, const es_batch_enc_opts *batch, uint64_t low_ttl_ms,
		      unsigned share)
{
	bridge_forward_free(x->f);
	bridge_forward_lanes l = {.high = "alarm.#", .low = "reading.#"};
	l.ttl_ms[BRIDGE_LANE_LOW] = low_ttl_ms;
	assert_int_equal(make_forward_lanes(x, BRIDGE_REMAP_DEFAULT, 60000, batch, &l, share),
			 ES_OK);
}

/* Journals node's events from..to as readings, in one commit. */
static void store_readings(fixture *x, const char *node, uint64_t from, uint64_t to)
{
	size_t n = (size_t)(to - from + 1);
	es_journal_item *it = calloc(n, sizeof *it);
	char(*ids)[40] = calloc(n, sizeof *ids);
	char(*bodies)[64] = calloc(n, sizeof *bodies);
	es_append_result *res = calloc(n, sizeof *res);
	assert_non_null(it);
	assert_non_null(ids);
	assert_non_null(bodies);
	assert_non_null(res);
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i], sizeof ids[i], "0190a0b0-0000-7000-8000-%012" PRIu64,
			 x->next_id++);
		snprintf(bodies[i], sizeof bodies[i], "%s#%" PRIu64, node, from + i);
		it[i] = (es_journal_item){.id = ids[i],
					  .type = "reading.temp",
					  .origin = node,
					  .origin_seq = from + i,
					  .body = bodies[i],
					  .len = strlen(bodies[i])};
	}
	assert_int_equal(es_journal_append_items(x->journal, it, n, res), ES_OK);
	free(it);
	free(ids);
	free(bodies);
	free(res);
}

/* An alarm goes before the readings queued ahead of it; each lane keeps
 * its node's order. */
static void the_high_lane_goes_first(void **state)
{
	fixture *x = *state;
	use_lanes(x, NULL, 0, 10);
	store(x, "site-1/gw-1", 1, "reading.temp");
	store(x, "site-1/gw-1", 2, "reading.temp");
	store(x, "site-1/gw-1", 3, "alarm.raised");
	store(x, "site-1/gw-1", 4, "device.online");
	store(x, "site-1/gw-1", 5, "alarm.cleared");
	x->contiguous = 5;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 5);
	assert_sent(x, 0, "site-1/gw-1#3");
	assert_sent(x, 1, "site-1/gw-1#5");
	assert_sent(x, 2, "site-1/gw-1#4"); /* normal before low */
	assert_sent(x, 3, "site-1/gw-1#1");
	assert_sent(x, 4, "site-1/gw-1#2");
	ack_all(x, 0);
	bridge_forward_pump(x->f);
	bridge_forward_stats st;
	bridge_forward_stats_get(x->f, &st);
	assert_int_equal(st.out_of_order, 0);
	assert_int_equal(st.lanes[BRIDGE_LANE_HIGH].sent, 2);
	assert_int_equal(st.lanes[BRIDGE_LANE_HIGH].acked, 2);
	assert_int_equal(st.lanes[BRIDGE_LANE_NORMAL].sent, 1);
	assert_int_equal(st.lanes[BRIDGE_LANE_LOW].acked, 2);
	assert_int_equal(pending(x), 0);
}

/* A lane's row above a hole of its node waits for it like any row: the
 * missing sequence may be of its lane. */
static void a_lane_waits_for_a_hole_below_it(void **state)
{
	fixture *x = *state;
	use_lanes(x, NULL, 0, 10);
	store(x, "site-1/gw-1", 1, "reading.temp");
	store(x, "site-1/gw-1", 3, "alarm.raised"); /* 2 is missing */
	x->contiguous = 1;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 1);
	assert_sent(x, 0, "site-1/gw-1#1");
	store(x, "site-1/gw-1", 2, "alarm.raised");
	x->contiguous = 3;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 3);
	assert_sent(x, 1, "site-1/gw-1#2");
	assert_sent(x, 2, "site-1/gw-1#3");
}

/* With more readings waiting than memory holds, an alarm behind them is
 * found by the scan ahead of the bounded read and goes first. */
static void an_alarm_behind_a_long_backlog_goes_first(void **state)
{
	fixture *x = *state;
	use_lanes(x, NULL, 0, 10);
	x->connected = false;
	store_readings(x, "site-1/gw-1", 1, 6000);
	store(x, "site-1/gw-1", 6001, "alarm.raised");
	x->contiguous = 6001;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 0);
	x->connected = true;
	x->window = 1;
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 1);
	assert_sent(x, 0, "site-1/gw-1#6001");
	ack_all(x, 0);
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 2);
	assert_sent(x, 1, "site-1/gw-1#1");
}

/* While alarms wait, the other lanes still get their share. */
static void the_backlog_keeps_its_share(void **state)
{
	fixture *x = *state;
	use_lanes(x, NULL, 0, 50); /* one alarm, then one of the others */
	store(x, "site-1/gw-1", 1, "reading.temp");
	store(x, "site-1/gw-1", 2, "reading.temp");
	store(x, "site-1/gw-2", 1, "alarm.raised");
	store(x, "site-1/gw-2", 2, "alarm.raised");
	store(x, "site-1/gw-2", 3, "alarm.raised");
	x->contiguous = 3;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 5);
	assert_sent(x, 0, "site-1/gw-2#1");
	assert_sent(x, 1, "site-1/gw-1#1");
	assert_sent(x, 2, "site-1/gw-2#2");
	assert_sent(x, 3, "site-1/gw-1#2");
	assert_sent(x, 4, "site-1/gw-2#3");
}

/* Rows past their lane's TTL are not sent, but counted and let go (acked
 * in the inbox, kept until retention); others of the node still go. */
static void expired_rows_are_counted_not_sent(void **state)
{
	fixture *x = *state;
	use_lanes(x, NULL, 1, 10);
	x->connected = false;
	store(x, "site-1/gw-1", 1, "reading.temp");
	store(x, "site-1/gw-1", 2, "reading.temp");
	store(x, "site-1/gw-1", 3, "alarm.raised");
	bridge_forward_committed(x->f);
	/* the wall clock passes the 1 ms TTL (a deadline, not a guess) */
	for (uint64_t until = es_clock_wall_ms() + 3; es_clock_wall_ms() < until;)
		;
	x->contiguous = 3;
	x->connected = true;
	bridge_forward_pump(x->f);
	assert_int_equal(x->nsent, 1);
	assert_sent(x, 0, "site-1/gw-1#3");
	ack_all(x, 0);
	assert_int_equal(pending(x), 0);
	bridge_forward_pump(x->f);
	bridge_forward_stats st;
	bridge_forward_stats_get(x->f, &st);
	assert_int_equal(st.lanes[BRIDGE_LANE_LOW].expired, 2);
	assert_int_equal(st.lanes[BRIDGE_LANE_LOW].sent, 0);
	assert_int_equal(st.lanes[BRIDGE_LANE_HIGH].sent, 1);
}

/* The cloud-acked mark told for a node (upstatus.h) only goes up to where
 * every lane's rows were acknowledged: an alarm acked ahead of readings in
 * flight does not move it past them. */
static void the_acked_mark_waits_for_every_lane(void **state)
{
	fixture *x = *state;
	es_batch_enc_opts b = {.coding = {.codec = ES_BATCH_IDENTITY}, .max_events = 10};
	use_lanes(x, &b, 0, 10);
	store(x, "site-1/gw-1", 1, "reading.temp");
	store(x, "site-1/gw-1", 2, "reading.temp");
	store(x, "site-1/gw-1", 3, "reading.temp");
	store(x, "site-1/gw-1", 4, "alarm.raised");
	x->contiguous = 4;
	bridge_forward_committed(x->f);
	assert_int_equal(x->nsent, 2);
	assert_sent(x, 0, "[site-1/gw-1#4]");
	assert_sent(x, 1, "[site-1/gw-1#1,site-1/gw-1#2,site-1/gw-1#3]");
	x->inflight--;
	bridge_forward_published(x->f, x->sent[0].tag, ES_OK);
	assert_int_equal(x->nbatch_acked, 0); /* 1..3 are still in flight */
	x->inflight--;
	bridge_forward_published(x->f, x->sent[1].tag, ES_OK);
	assert_int_equal(x->nbatch_acked, 1);
	assert_string_equal(x->batch_acked[0], "site-1/gw-1#4");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(forwards_in_inbox_order_and_acks, setup, teardown),
		cmocka_unit_test_setup_teardown(maps_topics_with_the_template, setup, teardown),
		cmocka_unit_test_setup_teardown(refuses_a_bad_template, setup, teardown),
		cmocka_unit_test_setup_teardown(holds_a_row_above_a_hole_until_it_fills, setup,
						teardown),
		cmocka_unit_test_setup_teardown(trusts_the_tracker_after_a_reconnect, setup,
						teardown),
		cmocka_unit_test_setup_teardown(sends_out_of_order_after_the_hole_wait, setup,
						teardown),
		cmocka_unit_test_setup_teardown(sends_a_late_row_below_one_read_to_fill_a_hole,
						setup, teardown),
		cmocka_unit_test_setup_teardown(keeps_within_the_window, setup, teardown),
		cmocka_unit_test_setup_teardown(sends_again_after_a_lost_connection, setup,
						teardown),
		cmocka_unit_test_setup_teardown(batches_what_may_go_together, setup, teardown),
		cmocka_unit_test_setup_teardown(the_high_lane_goes_first, setup, teardown),
		cmocka_unit_test_setup_teardown(a_lane_waits_for_a_hole_below_it, setup, teardown),
		cmocka_unit_test_setup_teardown(an_alarm_behind_a_long_backlog_goes_first, setup,
						teardown),
		cmocka_unit_test_setup_teardown(the_backlog_keeps_its_share, setup, teardown),
		cmocka_unit_test_setup_teardown(expired_rows_are_counted_not_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(the_acked_mark_waits_for_every_lane, setup,
						teardown),
		cmocka_unit_test_setup_teardown(sends_nothing_when_down_or_stopped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(keeps_refused_and_unmappable_rows_aside, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
