/* bridge_upstatus_test.c - node statuses as the cloud sees them
 * (cloud-bridge/upstatus.c): acked_seq is what the cloud acknowledged,
 * never above the agent's own; the rest is the agent's; one a second per
 * node unless something urgent changed; a new epoch starts again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "upstatus.h"

typedef struct sent {
	char topic[128];
	es_status_msg m;
	int n;
	bool fail;
} sent;

static es_err fake_publish(void *ctx, const char *topic, const void *payload, size_t len)
{
	sent *s = ctx;
	char why[160];
	if (s->fail)
		return ES_EBUSY;
	snprintf(s->topic, sizeof s->topic, "%s", topic);
	assert_int_equal(es_status_decode(payload, len, &s->m, why, sizeof why), ES_OK);
	s->n++;
	return ES_OK;
}

static void agent_says(bridge_upstatus *u, const char *journal, const char *boot, bool online,
		       uint64_t latest, uint64_t acked)
{
	es_status_msg m = {.online = online,
			   .latest_seq = latest,
			   .boot_seq = 1,
			   .acked_seq = acked,
			   .oldest_seq = 1,
			   .pending = latest - acked,
			   .clock_synced = true,
			   .time_ms = 1796000000000};
	snprintf(m.journal_id, sizeof m.journal_id, "%s", journal);
	snprintf(m.boot_id, sizeof m.boot_id, "%s", boot);
	char *json;
	size_t len;
	assert_int_equal(es_status_encode(&m, &json, &len), ES_OK);
	bridge_upstatus_agent(u, "site-1/gw-1", json, len);
	free(json);
}

#define J1 "0190a0b0-0000-7000-8000-0000000000a1"
#define J2 "0190a0b0-0000-7000-8000-0000000000a2"
#define B1 "0190a0b0-0000-7000-8000-0000000000b1"

static void acked_is_what_the_cloud_acknowledged(void **state)
{
	(void)state;
	sent s = {0};
	bridge_upstatus *u;
	bridge_upstatus_deps d = {.ctx = &s, .publish = fake_publish};
	assert_int_equal(bridge_upstatus_new("edgespool", 1000, &d, &u), ES_OK);
	bridge_upstatus_tick(u, 10);
	assert_int_equal(s.n, 0); /* nothing heard yet */
	agent_says(u, J1, B1, true, 500, 480);
	bridge_upstatus_acked(u, "site-1/gw-1", 100);
	bridge_upstatus_tick(u, 5000);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.topic, "edgespool/site-1/gw-1/status");
	assert_int_equal(s.m.acked_seq, 100);
	assert_int_equal(s.m.pending, 400);
	assert_int_equal(s.m.latest_seq, 500);
	assert_string_equal(s.m.journal_id, J1);
	assert_true(s.m.online);

	/* Within the second: held back; then the newest mark goes. */
	bridge_upstatus_acked(u, "site-1/gw-1", 300);
	bridge_upstatus_acked(u, "site-1/gw-1", 200); /* an older ack moves nothing */
	bridge_upstatus_tick(u, 5500);
	assert_int_equal(s.n, 1);
	bridge_upstatus_tick(u, 6000);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.m.acked_seq, 300);

	/* Never above what the agent says the edge acknowledged. */
	bridge_upstatus_acked(u, "site-1/gw-1", 490);
	bridge_upstatus_tick(u, 7000);
	assert_int_equal(s.m.acked_seq, 480);

	/* Nothing changed: nothing goes. */
	bridge_upstatus_tick(u, 9000);
	assert_int_equal(s.n, 3);

	/* A status older than the one held (a retained copy, a will set at
	 * connect) is stale: ignored. */
	es_status_msg old = {
		.online = false, .latest_seq = 10, .clock_synced = true, .time_ms = 1795000000000};
	snprintf(old.journal_id, sizeof old.journal_id, "%s", J1);
	snprintf(old.boot_id, sizeof old.boot_id, "%s", B1);
	char *json;
	size_t len;
	assert_int_equal(es_status_encode(&old, &json, &len), ES_OK);
	bridge_upstatus_agent(u, "site-1/gw-1", json, len);
	free(json);
	bridge_upstatus_tick(u, 12000);
	assert_int_equal(s.n, 3);
	assert_true(s.m.online);
	bridge_upstatus_free(u);
}

static void urgent_changes_go_at_once_and_failures_are_retried(void **state)
{
	(void)state;
	sent s = {0};
	bridge_upstatus *u;
	bridge_upstatus_deps d = {.ctx = &s, .publish = fake_publish};
	assert_int_equal(bridge_upstatus_new("edgespool", 1000, &d, &u), ES_OK);
	agent_says(u, J1, B1, true, 50, 50);
	bridge_upstatus_acked(u, "site-1/gw-1", 50);
	bridge_upstatus_tick(u, 1000);
	assert_int_equal(s.n, 1);
	agent_says(u, J1, B1, false, 50, 50); /* offline: at once */
	bridge_upstatus_tick(u, 1001);
	assert_int_equal(s.n, 2);
	assert_false(s.m.online);

	/* A new journal: a new epoch, whose sequence starts again. */
	agent_says(u, J2, B1, true, 3, 0);
	bridge_upstatus_epoch(u, "site-1/gw-1");
	bridge_upstatus_tick(u, 1002);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.m.journal_id, J2);
	assert_int_equal(s.m.acked_seq, 0);

	/* A publish that fails goes again; the cloud link back: all again. */
	bridge_upstatus_acked(u, "site-1/gw-1", 3);
	agent_says(u, J2, B1, true, 3, 3);
	s.fail = true;
	bridge_upstatus_tick(u, 3000);
	s.fail = false;
	assert_int_equal(s.n, 3);
	bridge_upstatus_tick(u, 3100);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.m.acked_seq, 3);
	bridge_upstatus_resend(u);
	bridge_upstatus_tick(u, 3101);
	assert_int_equal(s.n, 5);

	/* A status that is not one is ignored. */
	bridge_upstatus_agent(u, "site-1/gw-2", "{nope", 5);
	bridge_upstatus_tick(u, 9000);
	assert_int_equal(s.n, 5);
	bridge_upstatus_free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(acked_is_what_the_cloud_acknowledged),
		cmocka_unit_test(urgent_changes_go_at_once_and_failures_are_retried),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
