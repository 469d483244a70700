/* bridge_repair_test.c - the bridge's gap tracking (cloud-bridge/repair.c)
 * in-process: a real SQLite inbox in a temporary folder (the tracker is
 * saved in it and restored from it), and fakes for the edge links that
 * record the re-send requests and share-group reports. */
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
#include "clock.h"
#include "control.h"
#include "journal.h"
#include "repair.h"

#define NODE	 "site-1/gw-1"
#define PEERS	 "edgespool/_bridge/g1/seen"
#define WAIT_MS	 5000
#define MAX_MSGS 16

typedef struct msg {
	char node[64], topic[128], payload[512];
} msg;

typedef struct fixture {
	char dir[64];
	es_journal *journal;
	bridge_repair *r;
	uint64_t next_id;
	msg requests[MAX_MSGS], reports[MAX_MSGS];
	size_t nrequests, nreports;
	char epochs[MAX_MSGS][80]; /* "site/node <epoch> fresh|known" */
	size_t nepochs;
	uint64_t catchup, max_ahead;
} fixture;

static void keep(msg *m, const char *node, const char *topic, const void *payload, size_t len)
{
	snprintf(m->node, sizeof m->node, "%s", node ? node : "");
	snprintf(m->topic, sizeof m->topic, "%s", topic);
	snprintf(m->payload, sizeof m->payload, "%.*s", (int)len, (const char *)payload);
}

static es_err fake_request(void *ctx, const char *node, const char *topic, const void *payload,
			   size_t len)
{
	fixture *x = ctx;
	assert_true(x->nrequests < MAX_MSGS);
	keep(&x->requests[x->nrequests++], node, topic, payload, len);
	return ES_OK;
}

static void fake_report(void *ctx, const char *topic, const void *payload, size_t len)
{
	fixture *x = ctx;
	assert_true(x->nreports < MAX_MSGS);
	keep(&x->reports[x->nreports++], NULL, topic, payload, len);
}

static void fake_epoch(void *ctx, const char *node, uint32_t epoch, bool fresh)
{
	fixture *x = ctx;
	assert_true(x->nepochs < MAX_MSGS);
	snprintf(x->epochs[x->nepochs++], sizeof x->epochs[0], "%s %" PRIu32 " %s", node, epoch,
		 fresh ? "fresh" : "known");
}

/* ---- fixture ---------------------------------------------------------------- */

static es_err make_repair(fixture *x, const char *peer_topic)
{
	bridge_repair_opts o = {.gap = {.grace_ms = 1, .retry_ms = 60000, .catchup = x->catchup},
				.max_ahead = x->max_ahead,
				.root = "edgespool",
				.client_id = "br-1",
				.peer_topic = peer_topic};
	bridge_repair_deps d = {.journal = x->journal,
				.ctx = x,
				.request = fake_request,
				.report = fake_report,
				.epoch = fake_epoch};
	return bridge_repair_new(&o, &d, &x->r);
}

static void remake(fixture *x, uint64_t catchup, uint64_t max_ahead)
{
	bridge_repair_free(x->r);
	x->catchup = catchup;
	x->max_ahead = max_ahead;
	assert_int_equal(make_repair(x, NULL), ES_OK);
}

static int setup(void **state)
{
	fixture *x = calloc(1, sizeof *x);
	char path[128];
	if (!x)
		return -1;
	if (es_tmpdir_make(x->dir, sizeof x->dir, "repair-test"))
		return -1;
	snprintf(path, sizeof path, "%s/inbox.db", x->dir);
	es_journal_opts o = {.path = path, .sync = ES_SYNC_NORMAL, .source = "/site-0/bridge"};
	if (es_journal_open(&o, &x->journal))
		return -1;
	x->next_id = 1;
	*state = x;
	return make_repair(x, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
	fixture *x = *state;
	bridge_repair_free(x->r);
	es_journal_close(x->journal);
	es_tmpdir_remove(x->dir);
	free(x);
	return 0;
}

/* Journals NODE's event node_seq as the intake would, and, when tell, says
 * so to the tracker as bridge.c does after the commit. */
static void store(fixture *x, uint64_t node_seq, bool tell)
{
	char id[40], body[32];
	snprintf(id, sizeof id, "0190a0b0-0000-7000-8000-%012" PRIu64, x->next_id++);
	snprintf(body, sizeof body, "{\"n\":%" PRIu64 "}", node_seq);
	es_journal_item it = {.id = id,
			      .type = "t",
			      .origin = NODE,
			      .origin_seq = node_seq,
			      .body = body,
			      .len = strlen(body)};
	es_append_result res;
	assert_int_equal(es_journal_append_items(x->journal, &it, 1, &res), ES_OK);
	if (tell)
		bridge_repair_stored(x->r, NODE, node_seq, res.seq);
}

static bridge_repair_stats stats(fixture *x)
{
	bridge_repair_stats st;
	bridge_repair_tick(x->r, false); /* the stats are the tick's */
	bridge_repair_stats_get(x->r, &st);
	return st;
}

/* Ticks (asking) until a request is out or WAIT_MS passed. */
static void tick_until_asked(fixture *x)
{
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	struct timespec pause = {0, 2 * 1000 * 1000};
	while (x->nrequests == 0 && es_clock_mono_ms() < deadline) {
		bridge_repair_tick(x->r, true);
		nanosleep(&pause, NULL);
	}
}

/* ---- tests -------------------------------------------------------------------- */

/* A hole among what the inbox committed is asked for, after the grace
 * period, on the node's cmd/resend topic; not while the bridge stops. */
static void asks_for_a_hole_on_the_nodes_topic(void **state)
{
	fixture *x = *state;
	store(x, 1, true);
	store(x, 2, true);
	store(x, 4, true);
	assert_int_equal(bridge_repair_contiguous(x->r, NODE), 2);
	bridge_repair_stats st = stats(x);
	assert_int_equal(st.gap.holes_open, 1);
	assert_int_equal(st.gap.missing, 1);
	assert_int_equal(x->nrequests, 0); /* ask was false */

	tick_until_asked(x);
	assert_int_equal(x->nrequests, 1);
	assert_string_equal(x->requests[0].node, NODE);
	assert_string_equal(x->requests[0].topic, "edgespool/site-1/gw-1/cmd/resend");
	es_resend_req req;
	char why[160];
	const char *p = x->requests[0].payload;
	assert_int_equal(es_resend_req_decode(p, strlen(p), &req, why, sizeof why), ES_OK);
	assert_int_equal(req.from, 3);
	assert_int_equal(req.to, 3);
	assert_memory_equal(req.request_id, "br-1-", 5);
	assert_int_equal(stats(x).gap.requests, 1);
}

/* The tracker saved in the inbox comes back in a new repair, with what the
 * inbox committed after the save (a crash between the two) replayed. */
static void restores_from_the_inbox(void **state)
{
	fixture *x = *state;
	store(x, 1, true);
	store(x, 2, true);
	store(x, 4, true);
	bridge_repair_save(x->r);
	store(x, 6, false); /* committed, then the bridge died before a save */
	bridge_repair_free(x->r);
	x->r = NULL;
	assert_int_equal(es_journal_sync_acks(x->journal), ES_OK); /* the put is committed */
	assert_int_equal(make_repair(x, NULL), ES_OK);
	bridge_repair_stats st = stats(x);
	assert_int_equal(st.gap.holes_open, 2); /* 3 and 5 */
	assert_int_equal(st.gap.missing, 2);
	assert_int_equal(bridge_repair_contiguous(x->r, NODE), 2);
}

/* A saved state that cannot be read is rebuilt from every inbox row. */
static void rebuilds_an_unreadable_state(void **state)
{
	fixture *x = *state;
	store(x, 1, true);
	store(x, 3, true);
	assert_int_equal(es_journal_put(x->journal, "x.gap", "7\nnot a state", 13), ES_OK);
	assert_int_equal(es_journal_sync_acks(x->journal), ES_OK);
	bridge_repair_free(x->r);
	x->r = NULL;
	assert_int_equal(make_repair(x, NULL), ES_OK);
	assert_int_equal(stats(x).gap.holes_open, 1);
	assert_int_equal(bridge_repair_contiguous(x->r, NODE), 1);
}

/* In a share group each tick reports what was stored since the last one
 * (duplicates too: a partner may wait for them), under our client id. */
static void reports_what_it_stored_to_the_group(void **state)
{
	fixture *x = *state;
	bridge_repair_free(x->r);
	x->r = NULL;
	assert_int_equal(make_repair(x, PEERS), ES_OK);
	store(x, 1, true);
	store(x, 2, true);
	bridge_repair_duplicate(x->r, NODE, 2);
	bridge_repair_tick(x->r, false);
	assert_int_equal(x->nreports, 1);
	assert_string_equal(x->reports[0].topic, PEERS);
	assert_string_equal(x->reports[0].payload,
			    "from br-1\nsite-1/gw-1 1\nsite-1/gw-1 2\nsite-1/gw-1 2\n");
	bridge_repair_tick(x->r, false);
	assert_int_equal(x->nreports, 1); /* nothing new: nothing sent */
}

/* A partner's report fills our holes; our own report and bad lines are
 * ignored. */
static void takes_in_the_partners_reports(void **state)
{
	fixture *x = *state;
	bridge_repair_free(x->r);
	x->r = NULL;
	assert_int_equal(make_repair(x, PEERS), ES_OK);
	store(x, 1, true);
	store(x, 3, true);
	assert_int_equal(stats(x).gap.holes_open, 1);
	const char *own = "from br-1\nsite-1/gw-1 9\n";
	bridge_repair_peer(x->r, own, strlen(own));
	const char *bad = "from br-2\nsite-1/gw-1\nsite-1/gw-1 x\nnoslash 2\nsite-1/gw-1 0\n";
	bridge_repair_peer(x->r, bad, strlen(bad));
	assert_int_equal(bridge_repair_contiguous(x->r, NODE), 1);
	const char *theirs = "from br-2\nsite-1/gw-1 2";
	bridge_repair_peer(x->r, theirs, strlen(theirs));
	assert_int_equal(bridge_repair_contiguous(x->r, NODE), 3);
	bridge_repair_stats st = stats(x);
	assert_int_equal(st.gap.holes_open, 0);
	assert_int_equal(st.gap.filled, 1);
}

/* A node's status says what it acknowledged: what we miss of it is a hole;
 * a "gone" reply makes the hole lost, counted. */
static void status_opens_holes_and_gone_closes_them(void **state)
{
	fixture *x = *state;
	char *json;
	size_t len;
	store(x, 1, true);
	es_status_msg m = {.online = true, .latest_seq = 5, .acked_seq = 5, .oldest_seq = 1};
	snprintf(m.journal_id, sizeof m.journal_id, "0190a0b0-0000-7000-8000-000000000001");
	snprintf(m.boot_id, sizeof m.boot_id, "0190a0b0-0000-7000-8000-000000000002");
	assert_int_equal(es_status_encode(&m, &json, &len), ES_OK);
	bridge_repair_status(x->r, NODE, json, len);
	free(json);
	bridge_repair_stats st = stats(x);
	assert_int_equal(st.gap.missing, 4);

	es_resend_reply rep = {
		.from = 2, .to = 5, .status = ES_RESEND_GONE, .gone_from = 2, .gone_to = 5};
	assert_int_equal(es_resend_reply_encode(&rep, &json, &len), ES_OK);
	bridge_repair_reply(x->r, NODE, json, len);
	free(json);
	bridge_repair_reply(x->r, NODE, "{", 1); /* logged, ignored */
	st = stats(x);
	assert_int_equal(st.gone_replies, 1);
	assert_int_equal(st.gap.lost, 4);
	assert_int_equal(st.gap.missing, 0);
}

#define JID_1 "0190a0b0-0000-7000-8000-000000000001"
#define JID_2 "0190a0b0-0000-7000-8000-0000000000f2"
#define BOOT  "0190a0b0-0000-7000-8000-000000000002"

static void status(fixture *x, const char *jid, uint64_t oldest, uint64_t acked, uint64_t latest)
{
	char *json;
	size_t len;
	es_status_msg m = {
		.online = true, .latest_seq = latest, .acked_seq = acked, .oldest_seq = oldest};
	snprintf(m.journal_id, sizeof m.journal_id, "%s", jid);
	snprintf(m.boot_id, sizeof m.boot_id, BOOT);
	assert_int_equal(es_status_encode(&m, &json, &len), ES_OK);
	bridge_repair_status(x->r, NODE, json, len);
	free(json);
}

static void reply(fixture *x, const char *request_id, es_resend_status st, uint64_t from,
		  uint64_t to, uint64_t latest)
{
	char *json;
	size_t len;
	es_resend_reply rep = {.from = from, .to = to, .status = st, .latest_seq = latest};
	snprintf(rep.request_id, sizeof rep.request_id, "%s", request_id);
	assert_int_equal(es_resend_reply_encode(&rep, &json, &len), ES_OK);
	bridge_repair_reply(x->r, NODE, json, len);
	free(json);
}

static bridge_repair_verdict admit(fixture *x, const char *node, uint64_t seq, char *why)
{
	return bridge_repair_admit(x->r, node, seq, why, 200);
}

/* Events are taken from nodes that announced themselves, and not beyond
 * what they could have sent. */
static void admits_known_nodes_within_reach(void **state)
{
	fixture *x = *state;
	char why[200] = "";
	remake(x, 0, 1000);
	assert_int_equal(admit(x, NODE, 1, why), BRIDGE_REPAIR_REFUSED);
	assert_string_equal(why, "no status message seen from site-1/gw-1: not a known node");
	status(x, JID_1, 1, 5, 10);
	store(x, 1, true);
	assert_int_equal(admit(x, NODE, 1, why), BRIDGE_REPAIR_SEEN);
	assert_int_equal(admit(x, NODE, 2, why), BRIDGE_REPAIR_NEW);
	assert_int_equal(admit(x, NODE, 1010, why), BRIDGE_REPAIR_NEW);
	assert_int_equal(admit(x, NODE, 1011, why), BRIDGE_REPAIR_REFUSED);
	assert_string_equal(why, "sequence 1011 is more than gap.max_ahead (1000) beyond "
				 "site-1/gw-1's latest (10)");
	assert_int_equal(admit(x, "site-1/gw-2", 1, why), BRIDGE_REPAIR_REFUSED);
}

/* First heard of, a node is asked for what it holds and we never got. */
static void catches_up_with_a_node_first_heard_of(void **state)
{
	fixture *x = *state;
	remake(x, UINT64_MAX, 0);
	status(x, JID_1, 3, 40, 45);
	tick_until_asked(x);
	assert_int_equal(x->nrequests, 1);
	es_resend_req req;
	char why[160];
	const char *p = x->requests[0].payload;
	assert_int_equal(es_resend_req_decode(p, strlen(p), &req, why, sizeof why), ES_OK);
	assert_int_equal(req.from, 3);
	assert_int_equal(req.to, 40);
	assert_int_equal(x->nepochs, 0); /* a first epoch is no news */
}

/* Our requests' answers are final: what the node never had is void, a
 * range it refused is given up; others' answers do not decide for us. */
static void answers_to_our_requests_are_final(void **state)
{
	fixture *x = *state;
	remake(x, 0, 0);
	status(x, JID_1, 1, 5, 5);
	for (uint64_t s = 1; s <= 5; s++)
		store(x, s, true);
	store(x, 9007199254740000ULL, true); /* forged */
	assert_int_equal(stats(x).gap.holes_open, 1);
	reply(x, "someone-else-1", ES_RESEND_INVALID, 6, 10005, 5);
	assert_int_equal(stats(x).gap.holes_open, 1);
	reply(x, "br-1-1234", ES_RESEND_INVALID, 6, 10005, 5);
	bridge_repair_stats st = stats(x);
	assert_int_equal(st.gap.holes_open, 0);
	assert_int_equal(st.gap.voided, 9007199254740000ULL - 6);
	assert_int_equal(st.gap.lost, 0);
	char why[200];
	assert_int_equal(admit(x, NODE, 6, why), BRIDGE_REPAIR_NEW);

	store(x, 6, true);
	store(x, 9, true);				   /* [7, 8] */
	reply(x, "br-1-1235", ES_RESEND_INVALID, 7, 8, 9); /* refused: given up */
	st = stats(x);
	assert_int_equal(st.gap.holes_open, 0);
	assert_int_equal(st.gap.lost, 2);
	reply(x, "br-1-1236", ES_RESEND_BUSY, 7, 8, 9); /* busy: nothing final */
	assert_int_equal(stats(x).gap.lost, 2);
}

/* A new journal of a node is a new epoch, told fresh; at start every known
 * node's epoch is told. The inbox's copy of an event is a stored sequence. */
static void tells_new_epochs(void **state)
{
	fixture *x = *state;
	remake(x, UINT64_MAX, 0);
	status(x, JID_1, 0, 0, 0);
	store(x, 1, true);
	store(x, 2, true);
	status(x, JID_2, 1, 3, 3);
	assert_int_equal(x->nepochs, 1);
	assert_string_equal(x->epochs[0], "site-1/gw-1 2 fresh");
	bridge_repair_stats st = stats(x);
	assert_int_equal(st.gap.resets, 1);
	assert_int_equal(st.gap.missing, 3);	/* the new journal's 1..3 */
	bridge_repair_duplicate(x->r, NODE, 2); /* a copy the inbox had */
	assert_int_equal(stats(x).gap.missing, 2);
	bridge_repair_epochs(x->r);
	assert_int_equal(x->nepochs, 2);
	assert_string_equal(x->epochs[1], "site-1/gw-1 2 known");
}

/* Restarted after a crash: the rows committed since the tracker's save are
 * replayed each into its own epoch. The old journal's rows that were still
 * on their way into the inbox when the new epoch began (below the intake's
 * boundary) are not the new epoch's: no hole of the new epoch from them. */
static void replays_each_row_into_its_epoch(void **state)
{
	fixture *x = *state;
	remake(x, UINT64_MAX, 0);
	status(x, JID_1, 0, 0, 0);
	for (uint64_t s = 1; s <= 3; s++)
		store(x, s, true);
	status(x, JID_2, 0, 0, 0); /* epoch 2 */
	bridge_repair_save(x->r);
	for (uint64_t s = 4; s <= 10; s++)
		store(x, s, false); /* the old journal's, inbox rows 4..10 */
	const char *bound = "2 10";
	assert_int_equal(es_journal_put(x->journal, "x.epoch." NODE, bound, strlen(bound)), ES_OK);
	store(x, 1, false); /* the new journal's */
	store(x, 2, false);
	assert_int_equal(es_journal_sync_acks(x->journal), ES_OK);
	bridge_repair_free(x->r);
	x->r = NULL;
	assert_int_equal(make_repair(x, NULL), ES_OK);
	bridge_repair_stats st = stats(x);
	assert_int_equal(st.gap.holes_open, 0);
	assert_int_equal(st.gap.missing, 0);
	assert_int_equal(bridge_repair_contiguous(x->r, NODE), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(asks_for_a_hole_on_the_nodes_topic, setup,
						teardown),
		cmocka_unit_test_setup_teardown(restores_from_the_inbox, setup, teardown),
		cmocka_unit_test_setup_teardown(replays_each_row_into_its_epoch, setup, teardown),
		cmocka_unit_test_setup_teardown(rebuilds_an_unreadable_state, setup, teardown),
		cmocka_unit_test_setup_teardown(reports_what_it_stored_to_the_group, setup,
						teardown),
		cmocka_unit_test_setup_teardown(takes_in_the_partners_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(status_opens_holes_and_gone_closes_them, setup,
						teardown),
		cmocka_unit_test_setup_teardown(admits_known_nodes_within_reach, setup, teardown),
		cmocka_unit_test_setup_teardown(catches_up_with_a_node_first_heard_of, setup,
						teardown),
		cmocka_unit_test_setup_teardown(answers_to_our_requests_are_final, setup, teardown),
		cmocka_unit_test_setup_teardown(tells_new_epochs, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
