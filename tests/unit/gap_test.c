/* gap_test.c - the consumer-side gap tracker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gap.h"

#define NODE	      "site-1/gw-7"
#define NODE_MAX_TEST 136 /* sizeof ((es_gap_request *)0)->node */

static es_gap *make(const es_gap_opts *o)
{
	es_gap *g = NULL;
	assert_int_equal(es_gap_new(o, &g), ES_OK);
	assert_non_null(g);
	return g;
}

static es_gap_verdict see(es_gap *g, const char *node, uint64_t seq, uint64_t now)
{
	es_gap_verdict v = (es_gap_verdict)-1;
	assert_int_equal(es_gap_seen(g, node, seq, now, &v), ES_OK);
	return v;
}

static es_gap_stats stats(const es_gap *g)
{
	es_gap_stats s;
	memset(&s, 0xa5, sizeof s);
	es_gap_stats_get(g, &s);
	return s;
}

/* Every due request at now, expected to be exactly the n ranges given. */
static void expect_due(es_gap *g, uint64_t now, size_t n, const uint64_t (*ranges)[2])
{
	es_gap_request r[16];
	size_t k = es_gap_due(g, now, r, 16);
	assert_int_equal(k, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(r[i].from, ranges[i][0]);
		assert_int_equal(r[i].to, ranges[i][1]);
	}
}

static void expect_none_due(es_gap *g, uint64_t now)
{
	expect_due(g, now, 0, NULL);
}

static void in_order_has_no_holes(void **state)
{
	es_gap *g = make(NULL);
	for (uint64_t s = 1; s <= 100; s++) {
		assert_int_equal(see(g, NODE, s, s), ES_GAP_NEW);
		assert_int_equal(es_gap_contiguous(g, NODE), s);
	}
	es_gap_stats st = stats(g);
	assert_int_equal(st.nodes, 1);
	assert_int_equal(st.holes_open, 0);
	assert_int_equal(st.missing, 0);
	assert_int_equal(st.holes_detected, 0);
	assert_int_equal(st.duplicates, 0);
	expect_none_due(g, 1000000);
	assert_int_equal(es_gap_contiguous(g, "other"), 0);
	es_gap_free(g);
}

static void hole_is_filled_by_resends(void **state)
{
	es_gap *g = make(NULL);
	see(g, NODE, 1, 0);
	see(g, NODE, 2, 0);
	assert_int_equal(see(g, NODE, 5, 10), ES_GAP_NEW);
	assert_int_equal(es_gap_contiguous(g, NODE), 2);
	es_gap_stats st = stats(g);
	assert_int_equal(st.holes_open, 1);
	assert_int_equal(st.missing, 2);
	assert_int_equal(st.holes_detected, 1);

	expect_due(g, 510, 1, (const uint64_t[][2]){{3, 4}});
	assert_int_equal(see(g, NODE, 3, 600), ES_GAP_FILLED);
	assert_int_equal(es_gap_contiguous(g, NODE), 3);
	assert_int_equal(see(g, NODE, 4, 600), ES_GAP_FILLED);
	assert_int_equal(es_gap_contiguous(g, NODE), 5);
	assert_int_equal(see(g, NODE, 4, 600), ES_GAP_DUP);

	st = stats(g);
	assert_int_equal(st.holes_open, 0);
	assert_int_equal(st.missing, 0);
	assert_int_equal(st.filled, 2);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.requests, 1);
	expect_none_due(g, 100000);
	es_gap_free(g);
}

static void fill_in_the_middle_splits(void **state)
{
	es_gap *g = make(NULL);
	see(g, NODE, 1, 0);
	see(g, NODE, 10, 0); /* [2, 9] */
	assert_int_equal(see(g, NODE, 5, 0), ES_GAP_FILLED);
	assert_int_equal(stats(g).holes_open, 2);
	assert_int_equal(stats(g).missing, 7);
	assert_int_equal(see(g, NODE, 5, 0), ES_GAP_DUP);
	assert_int_equal(see(g, NODE, 9, 0), ES_GAP_FILLED);
	expect_due(g, 500, 2, (const uint64_t[][2]){{2, 4}, {6, 8}});
	es_gap_free(g);
}

static void duplicates_are_counted(void **state)
{
	es_gap *g = make(NULL);
	for (uint64_t s = 1; s <= 5; s++)
		see(g, NODE, s, 0);
	assert_int_equal(see(g, NODE, 3, 0), ES_GAP_DUP);
	assert_int_equal(see(g, NODE, 5, 0), ES_GAP_DUP);
	assert_int_equal(see(g, NODE, 1, 0), ES_GAP_DUP);
	assert_int_equal(stats(g).duplicates, 3);
	assert_int_equal(stats(g).filled, 0);
	assert_int_equal(see(g, NODE, 6, 0), ES_GAP_NEW);
	es_gap_free(g);
}

static void grace_and_retry(void **state)
{
	es_gap *g = make(NULL); /* grace 500, retry 5000 */
	see(g, NODE, 1, 1000);
	see(g, NODE, 4, 1000);
	expect_none_due(g, 1000);
	expect_none_due(g, 1499);
	expect_due(g, 1500, 1, (const uint64_t[][2]){{2, 3}});
	expect_none_due(g, 1500);
	expect_none_due(g, 6499);
	expect_due(g, 6500, 1, (const uint64_t[][2]){{2, 3}});
	expect_none_due(g, 11499);
	/* A partly filled hole is asked again for what is left. */
	see(g, NODE, 2, 7000);
	expect_due(g, 11500, 1, (const uint64_t[][2]){{3, 3}});
	assert_int_equal(stats(g).requests, 3);
	/* A clock that went back asks for nothing. */
	expect_none_due(g, 10);
	es_gap_free(g);
}

static void custom_timing(void **state)
{
	es_gap_opts o = {.grace_ms = 100, .retry_ms = 1000};
	es_gap *g = make(&o);
	see(g, NODE, 1, 0);
	see(g, NODE, 3, 0);
	expect_none_due(g, 99);
	expect_due(g, 100, 1, (const uint64_t[][2]){{2, 2}});
	expect_none_due(g, 1099);
	expect_due(g, 1100, 1, (const uint64_t[][2]){{2, 2}});
	es_gap_free(g);
}

static void status_opens_a_tail_hole(void **state)
{
	es_gap *g = make(NULL);
	for (uint64_t s = 1; s <= 10; s++)
		see(g, NODE, s, 0);
	assert_int_equal(es_gap_status(g, NODE, NULL, 10, 1, 0), ES_OK);
	assert_int_equal(stats(g).holes_open, 0);
	assert_int_equal(es_gap_status(g, NODE, "", 15, 1, 100), ES_OK);
	assert_int_equal(es_gap_contiguous(g, NODE), 10);
	es_gap_stats st = stats(g);
	assert_int_equal(st.holes_open, 1);
	assert_int_equal(st.missing, 5);
	assert_int_equal(st.holes_detected, 1);
	expect_none_due(g, 599);
	expect_due(g, 600, 1, (const uint64_t[][2]){{11, 15}});
	/* seen_max rose to 15: 16 opens no hole, 12 fills one. */
	assert_int_equal(see(g, NODE, 16, 700), ES_GAP_NEW);
	assert_int_equal(stats(g).holes_open, 1);
	assert_int_equal(see(g, NODE, 12, 700), ES_GAP_FILLED);
	/* A lower acked_seq changes nothing. */
	assert_int_equal(es_gap_status(g, NODE, NULL, 3, 0, 800), ES_OK);
	assert_int_equal(stats(g).missing, 4);
	es_gap_free(g);
}

/* Holes [3,4], [8,9], [12,20] for NODE. */
static es_gap *three_holes(void)
{
	es_gap *g = make(NULL);
	const uint64_t seqs[] = {1, 2, 5, 6, 7, 10, 11, 21};
	for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++)
		see(g, NODE, seqs[i], 0);
	es_gap_stats st = stats(g);
	assert_int_equal(st.holes_open, 3);
	assert_int_equal(st.missing, 2 + 2 + 9);
	return g;
}

static void status_oldest_makes_holes_lost(void **state)
{
	es_gap *g = three_holes();
	assert_int_equal(es_gap_status(g, NODE, NULL, 21, 9, 0), ES_OK);
	es_gap_stats st = stats(g);
	assert_int_equal(st.lost, 3); /* 3, 4, 8 */
	assert_int_equal(st.holes_open, 2);
	assert_int_equal(st.missing, 1 + 9);
	/* 8 is no longer held: nothing below 9 is missing any more. */
	assert_int_equal(es_gap_contiguous(g, NODE), 8);
	expect_due(g, 500, 2, (const uint64_t[][2]){{9, 9}, {12, 20}});
	/* Oldest beyond everything: all lost, none due. */
	assert_int_equal(es_gap_status(g, NODE, NULL, 21, 21, 600), ES_OK);
	assert_int_equal(stats(g).lost, 13);
	assert_int_equal(stats(g).missing, 0);
	assert_int_equal(es_gap_contiguous(g, NODE), 21);
	expect_none_due(g, 100000);
	es_gap_free(g);
}

static void gone_replies_make_holes_lost(void **state)
{
	es_gap *g = three_holes();
	/* Inside one hole: it splits. */
	assert_int_equal(es_gap_gone(g, NODE, 14, 15), ES_OK);
	assert_int_equal(stats(g).lost, 2);
	assert_int_equal(stats(g).holes_open, 4);
	/* Across holes and seen sequences. */
	assert_int_equal(es_gap_gone(g, NODE, 4, 8), ES_OK);
	assert_int_equal(stats(g).lost, 4);
	expect_due(g, 500, 4, (const uint64_t[][2]){{3, 3}, {9, 9}, {12, 13}, {16, 20}});
	assert_int_equal(es_gap_gone(g, NODE, 1, 100), ES_OK);
	es_gap_stats st = stats(g);
	assert_int_equal(st.lost, 4 + 1 + 1 + 2 + 5);
	assert_int_equal(st.holes_open, 0);
	assert_int_equal(es_gap_contiguous(g, NODE), 21);
	/* Again: nothing left to lose. */
	assert_int_equal(es_gap_gone(g, NODE, 1, 100), ES_OK);
	assert_int_equal(stats(g).lost, st.lost);
	assert_int_equal(es_gap_gone(g, "unknown", 1, 2), ES_OK);
	assert_int_equal(es_gap_gone(g, NODE, 0, 2), ES_EINVAL);
	assert_int_equal(es_gap_gone(g, NODE, 3, 2), ES_EINVAL);
	es_gap_free(g);
}

#define JID_A "0190f3a4-1111-7000-8000-000000000001"
#define JID_B "0190f3a4-2222-7000-8000-000000000002"

static void journal_change_resets_node(void **state)
{
	es_gap *g = make(NULL);
	assert_int_equal(es_gap_status(g, NODE, JID_A, 0, 0, 0), ES_OK);
	see(g, NODE, 1, 0);
	see(g, NODE, 5, 0); /* [2, 4] */
	assert_int_equal(es_gap_status(g, NODE, JID_A, 5, 1, 0), ES_OK);
	assert_int_equal(es_gap_status(g, NODE, NULL, 5, 1, 0), ES_OK);
	assert_int_equal(es_gap_status(g, NODE, "", 5, 1, 0), ES_OK);
	assert_int_equal(stats(g).resets, 0);

	assert_int_equal(es_gap_status(g, NODE, JID_B, 3, 1, 1000), ES_OK);
	es_gap_stats st = stats(g);
	assert_int_equal(st.resets, 1);
	assert_int_equal(st.lost, 3); /* the old journal's hole */
	/* Tracked from 1 again: the new journal's 1..3 are missing. */
	assert_int_equal(st.missing, 3);
	assert_int_equal(es_gap_contiguous(g, NODE), 0);
	expect_due(g, 1500, 1, (const uint64_t[][2]){{1, 3}});
	assert_int_equal(see(g, NODE, 1, 1600), ES_GAP_FILLED);
	/* The same id again is no reset. */
	assert_int_equal(es_gap_status(g, NODE, JID_B, 3, 1, 1700), ES_OK);
	assert_int_equal(stats(g).resets, 1);
	/* A node known only by its status (from_start false) that changes
	 * journal is tracked from 1 too: its new journal began while we watched. */
	assert_int_equal(es_gap_status(g, "n2", JID_A, 40, 1, 2000), ES_OK);
	assert_int_equal(es_gap_contiguous(g, "n2"), 0);
	assert_int_equal(es_gap_status(g, "n2", JID_B, 2, 1, 2000), ES_OK);
	assert_int_equal(stats(g).resets, 2);
	assert_int_equal(es_gap_contiguous(g, "n2"), 0);
	assert_int_equal(see(g, "n2", 2, 2000), ES_GAP_FILLED);
	assert_int_equal(see(g, "n2", 3, 2000), ES_GAP_NEW);
	es_gap_free(g);
}

static void from_start_true_asks_for_history(void **state)
{
	es_gap_opts o = {.from_start = true};
	es_gap *g = make(&o);
	assert_int_equal(see(g, NODE, 5, 0), ES_GAP_NEW);
	assert_int_equal(es_gap_contiguous(g, NODE), 0);
	expect_due(g, 500, 1, (const uint64_t[][2]){{1, 4}});
	assert_int_equal(see(g, NODE, 1, 0), ES_GAP_FILLED);
	/* A status before any event opens [1, acked]. */
	assert_int_equal(es_gap_status(g, "n2", NULL, 7, 3, 0), ES_OK);
	assert_int_equal(stats(g).lost, 2);
	assert_int_equal(stats(g).missing, 3 + 5);
	assert_int_equal(see(g, "n3", 1, 0), ES_GAP_NEW);
	assert_int_equal(es_gap_contiguous(g, "n3"), 1);
	es_gap_free(g);
}

static void from_start_false_starts_at_first_event(void **state)
{
	es_gap *g = make(NULL);
	/* Before the first event a status is only remembered. */
	assert_int_equal(es_gap_status(g, NODE, JID_A, 1000, 900, 0), ES_OK);
	assert_int_equal(stats(g).missing, 0);
	assert_int_equal(stats(g).nodes, 1);
	assert_int_equal(es_gap_contiguous(g, NODE), 0);
	assert_int_equal(see(g, NODE, 1005, 0), ES_GAP_NEW);
	assert_int_equal(es_gap_contiguous(g, NODE), 1005);
	assert_int_equal(stats(g).missing, 0);
	/* Below the first event: never tracked, so never called a duplicate. */
	assert_int_equal(see(g, NODE, 1003, 0), ES_GAP_NEW);
	assert_int_equal(see(g, NODE, 1003, 0), ES_GAP_NEW);
	assert_int_equal(stats(g).duplicates, 0);
	assert_int_equal(see(g, NODE, 1005, 0), ES_GAP_DUP);
	/* From there on, holes as usual. */
	assert_int_equal(see(g, NODE, 1008, 0), ES_GAP_NEW);
	assert_int_equal(stats(g).missing, 2);
	expect_none_due(g, 499);
	expect_due(g, 500, 1, (const uint64_t[][2]){{1006, 1007}});
	es_gap_free(g);
}

static void long_holes_are_split_by_max_span(void **state)
{
	es_gap *g = make(NULL); /* max_span 10000 */
	see(g, NODE, 1, 0);
	see(g, NODE, 25002, 0); /* [2, 25001] */
	es_gap_request r[4];
	assert_int_equal(es_gap_due(g, 500, r, 2), 2);
	assert_int_equal(r[0].from, 2);
	assert_int_equal(r[0].to, 10001);
	assert_int_equal(r[1].from, 10002);
	assert_int_equal(r[1].to, 20001);
	assert_string_equal(r[0].node, NODE);
	/* cap ran out: the round carries on at once, not after retry. */
	expect_due(g, 500, 1, (const uint64_t[][2]){{20002, 25001}});
	expect_none_due(g, 5499);
	/* The next round, interrupted; a gone reply moves its cursor. */
	assert_int_equal(es_gap_due(g, 5500, r, 1), 1);
	assert_int_equal(r[0].to, 10001);
	assert_int_equal(es_gap_gone(g, NODE, 9000, 15000), ES_OK);
	expect_due(g, 5500, 2, (const uint64_t[][2]){{15001, 25000}, {25001, 25001}});
	assert_int_equal(stats(g).requests, 6);
	es_gap_free(g);
}

static void exact_max_span(void **state)
{
	es_gap_opts o = {.max_span = 3};
	es_gap *g = make(&o);
	see(g, NODE, 1, 0);
	see(g, NODE, 8, 0); /* [2, 7] */
	expect_due(g, 500, 2, (const uint64_t[][2]){{2, 4}, {5, 7}});
	es_gap_free(g);
}

/* Asks for and re-sends everything until no hole is left; returns rounds. */
static int drain(es_gap *g, const char *node, uint64_t *now, uint8_t *asked, uint64_t n)
{
	int rounds = 0;
	es_gap_request r[8];
	size_t k;
	while (stats(g).holes_open) {
		assert_true(++rounds < 100);
		*now += 10000;
		while ((k = es_gap_due(g, *now, r, 8)) > 0) {
			for (size_t i = 0; i < k; i++) {
				assert_string_equal(r[i].node, node);
				assert_true(r[i].from >= 1 && r[i].to <= n);
				for (uint64_t s = r[i].from; s <= r[i].to; s++) {
					asked[s] = 1;
					assert_int_not_equal(see(g, node, s, *now), ES_GAP_NEW);
				}
			}
		}
	}
	return rounds;
}

static void max_holes_merges_closest(void **state)
{
	es_gap_opts o = {.max_holes = 3};
	es_gap *g = make(&o);
	const uint64_t seqs[] = {1, 3, 4, 5, 7, 9, 10, 20};
	for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++)
		see(g, NODE, seqs[i], 0);
	/* [2], [6], [8], [11,19]: 6 and 8 are closest; 7 is missing again. */
	es_gap_stats st = stats(g);
	assert_int_equal(st.holes_open, 3);
	assert_int_equal(st.missing, 1 + 3 + 9);
	expect_due(g, 500, 3, (const uint64_t[][2]){{2, 2}, {6, 8}, {11, 19}});
	assert_int_equal(see(g, NODE, 7, 600), ES_GAP_FILLED);

	uint8_t asked[21] = {0};
	uint64_t now = 1000;
	drain(g, NODE, &now, asked, 20);
	const uint64_t missing[] = {2, 6, 8, 11, 15, 19};
	for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
		assert_int_equal(asked[missing[i]], 1);
	assert_int_equal(es_gap_contiguous(g, NODE), 20);
	assert_int_equal(stats(g).missing, 0);
	es_gap_free(g);
}

static void gone_inside_a_hole_is_not_merged_back(void **state)
{
	es_gap_opts o = {.max_holes = 2};
	es_gap *g = make(&o);
	see(g, NODE, 1, 0);
	see(g, NODE, 11, 0); /* [2, 10] */
	see(g, NODE, 21, 0); /* [12, 20] */
	assert_int_equal(es_gap_gone(g, NODE, 5, 5), ES_OK);
	/* [2,4] [6,10] [12,20]: the pair the cut made is (first of) the
	 * closest, but merging it would ask for 5 again; the next one merges. */
	assert_int_equal(stats(g).holes_open, 2);
	assert_int_equal(stats(g).lost, 1);
	expect_due(g, 500, 2, (const uint64_t[][2]){{2, 4}, {6, 20}});
	es_gap_free(g);
}

static void merged_hole_is_due_when_either_was(void **state)
{
	es_gap_opts o = {.max_holes = 2, .max_span = 2};
	es_gap *g = make(&o);
	see(g, NODE, 1, 0);
	see(g, NODE, 4, 0);  /* A = [2, 3] */
	see(g, NODE, 10, 0); /* B = [5, 9] */
	/* A asked; B's round stops after its first part. */
	es_gap_request r[2];
	assert_int_equal(es_gap_due(g, 500, r, 2), 2);
	assert_int_equal(r[1].from, 5);
	assert_int_equal(r[1].to, 6);
	/* C = [11] merges A and B (the first of equal gaps): B's round
	 * carries on over the merged hole. */
	see(g, NODE, 12, 600);
	assert_int_equal(stats(g).holes_open, 2);
	expect_due(g, 600, 4, (const uint64_t[][2]){{2, 3}, {4, 5}, {6, 7}, {8, 9}});
	es_gap_free(g);
}

static void merged_hole_keeps_the_earliest_due_time(void **state)
{
	es_gap_opts o = {.max_holes = 2};
	es_gap *g = make(&o);
	see(g, NODE, 1, 0);
	see(g, NODE, 4, 0); /* A = [2, 3] */
	expect_due(g, 500, 1, (const uint64_t[][2]){{2, 3}});
	see(g, NODE, 6, 1000); /* B = [5]: A and B are closest */
	see(g, NODE, 9, 1000); /* C = [7, 8] */
	assert_int_equal(stats(g).holes_open, 2);
	/* A was asked at 500, B never: the merged hole takes the earliest of
	 * each timing (detected 0, never asked), so it is due at once, not
	 * after A's retry at 5500. */
	expect_due(g, 1000, 1, (const uint64_t[][2]){{2, 5}});
	expect_none_due(g, 1499);
	expect_due(g, 1500, 1, (const uint64_t[][2]){{7, 8}});
	es_gap_free(g);
}

static void max_holes_one(void **state)
{
	es_gap_opts o = {.max_holes = 1};
	es_gap *g = make(&o);
	for (uint64_t s = 1; s <= 50; s += 7)
		see(g, NODE, s, 0);
	assert_int_equal(stats(g).holes_open, 1);
	expect_due(g, 500, 1, (const uint64_t[][2]){{2, 49}});
	uint8_t asked[51] = {0};
	uint64_t now = 1000;
	drain(g, NODE, &now, asked, 50);
	assert_int_equal(es_gap_contiguous(g, NODE), 50);
	es_gap_free(g);
}

static void many_nodes(void **state)
{
	enum { NODES = 5000, EVENTS = 20 };
	es_gap *g = make(NULL);
	char name[32];
	for (uint64_t s = 1; s <= EVENTS; s++) {
		for (int i = 0; i < NODES; i++) {
			if (i % 7 == 0 && s == 10)
				continue; /* lost on the way */
			snprintf(name, sizeof name, "site-%d/gw-%d", i % 13, i);
			assert_int_equal(see(g, name, s, s), ES_GAP_NEW);
		}
	}
	es_gap_stats st = stats(g);
	assert_int_equal(st.nodes, NODES);
	assert_int_equal(st.holes_open, (NODES + 6) / 7);
	snprintf(name, sizeof name, "site-%d/gw-%d", 14 % 13, 14);
	assert_int_equal(es_gap_contiguous(g, name), 9);
	snprintf(name, sizeof name, "site-%d/gw-%d", 15 % 13, 15);
	assert_int_equal(es_gap_contiguous(g, name), EVENTS);

	es_gap_request *r = calloc(NODES, sizeof *r);
	assert_non_null(r);
	size_t k = es_gap_due(g, 10000, r, NODES);
	assert_int_equal(k, (NODES + 6) / 7);
	for (size_t i = 0; i < k; i++) {
		int id = atoi(strstr(r[i].node, "gw-") + 3);
		assert_int_equal(id % 7, 0);
		assert_int_equal(r[i].from, 10);
		assert_int_equal(r[i].to, 10);
		assert_int_equal(see(g, r[i].node, 10, 10001), ES_GAP_FILLED);
	}
	free(r);
	assert_int_equal(stats(g).missing, 0);
	es_gap_free(g);
}

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Delivery of 1..n dropped, duplicated and shuffled. */
static size_t scrambled(uint64_t n, uint64_t *seed, uint64_t *out)
{
	size_t k = 0;
	for (uint64_t s = 1; s <= n; s++) {
		uint64_t r = next_rand(seed) % 100;
		if (r >= 10)
			out[k++] = s;
		if (r >= 85)
			out[k++] = s;
	}
	for (size_t i = k - 1; i > 0; i--) {
		size_t j = (size_t)(next_rand(seed) % (i + 1));
		uint64_t t = out[i];
		out[i] = out[j];
		out[j] = t;
	}
	return k;
}

/* What the model delivered, and the verdicts it got. */
typedef struct model_state {
	uint8_t *got; /* got[seq]: delivered at least once */
	bool exact;   /* no merges: every verdict and request is exact */
	size_t firsts, verdicts[3];
	uint64_t seed;
} model_state;

/* Feeds seq and checks the verdict against what was really delivered. */
static void feed(es_gap *g, model_state *m, uint64_t seq, uint64_t now)
{
	es_gap_verdict v = see(g, NODE, seq, now);
	assert_true(v <= ES_GAP_DUP);
	m->verdicts[v]++;
	if (!m->got[seq]) {
		assert_int_not_equal(v, ES_GAP_DUP); /* never miss a real one */
		m->firsts++;
	} else if (m->exact) {
		assert_int_equal(v, ES_GAP_DUP);
	}
	m->got[seq] = 1;
}

/* The node answers every request, losing some answers in early rounds. */
static void answer(es_gap *g, model_state *m, int round, uint64_t now)
{
	es_gap_request r[32];
	size_t k;
	while ((k = es_gap_due(g, now, r, 32)) > 0) {
		for (size_t i = 0; i < k; i++) {
			for (uint64_t s = r[i].from; s <= r[i].to; s++) {
				if (m->exact) /* asks only for what is missing */
					assert_int_equal(m->got[s], 0);
				if (round < 3 && next_rand(&m->seed) % 5 == 0)
					continue;
				feed(g, m, s, now);
			}
		}
	}
}

/* A fully shuffled stream opens up to N/2 holes at once: exact checks need
 * max_holes above that, so that no merge happens. */
#define NO_MERGES 100000

static void model(uint64_t seed, size_t max_holes)
{
	enum { N = 20000 };
	es_gap_opts o = {.from_start = true, .max_holes = max_holes};
	es_gap *g = make(&o);
	model_state m = {.got = calloc(N + 1, 1), .exact = max_holes == NO_MERGES, .seed = seed};
	uint64_t *seqs = calloc(2 * N, sizeof *seqs);
	assert_true(seqs && m.got);
	size_t n = scrambled(N, &m.seed, seqs);
	uint64_t now = 0;
	for (size_t i = 0; i < n; i++)
		feed(g, &m, seqs[i], ++now);
	assert_true(stats(g).holes_open > 0);
	assert_int_equal(es_gap_status(g, NODE, NULL, N, 1, now), ES_OK);
	for (int round = 0; stats(g).holes_open; round++) {
		assert_true(round < 50);
		now += 10000;
		answer(g, &m, round, now);
	}
	for (uint64_t s = 1; s <= N; s++)
		assert_int_equal(m.got[s], 1);
	es_gap_stats st = stats(g);
	assert_int_equal(es_gap_contiguous(g, NODE), N);
	assert_int_equal(st.missing, 0);
	assert_int_equal(st.lost, 0);
	assert_int_equal(m.firsts, N);
	assert_int_equal(st.filled, m.verdicts[ES_GAP_FILLED]);
	assert_int_equal(st.duplicates, m.verdicts[ES_GAP_DUP]);
	if (m.exact)
		assert_int_equal(m.verdicts[ES_GAP_NEW] + m.verdicts[ES_GAP_FILLED], N);
	free(seqs);
	free(m.got);
	es_gap_free(g);
}

static void random_model(void **state)
{
	model(0x9e3779b97f4a7c15ULL, NO_MERGES);
	model(12345, NO_MERGES);
}

static void random_model_with_merges(void **state)
{
	model(0x9e3779b97f4a7c15ULL, 8);
	model(777, 64);
	model(4242, 0); /* the default, 4096 */
}

static void bad_arguments(void **state)
{
	es_gap *g = make(NULL);
	es_gap_verdict v = ES_GAP_DUP;
	char long_name[200];
	memset(long_name, 'x', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	assert_int_equal(es_gap_seen(g, NODE, 0, 0, &v), ES_EINVAL);
	assert_int_equal(es_gap_seen(g, NULL, 1, 0, &v), ES_EINVAL);
	assert_int_equal(es_gap_seen(g, "", 1, 0, &v), ES_EINVAL);
	assert_int_equal(es_gap_seen(g, long_name, 1, 0, &v), ES_EINVAL);
	assert_int_equal(es_gap_seen(g, NODE, 1, 0, NULL), ES_EINVAL);
	assert_int_equal(es_gap_seen(NULL, NODE, 1, 0, &v), ES_EINVAL);
	assert_int_equal(v, ES_GAP_DUP); /* untouched on failure */
	long_name[135] = '\0';
	assert_int_equal(es_gap_seen(g, long_name, 1, 0, &v), ES_OK);
	long_name[135] = 'x';
	assert_int_equal(es_gap_status(g, long_name, NULL, 1, 0, 0), ES_EINVAL);
	assert_int_equal(es_gap_status(g, NODE, long_name, 1, 0, 0), ES_EINVAL);
	assert_int_equal(stats(g).nodes, 1);
	assert_int_equal(es_gap_new(NULL, NULL), ES_EINVAL);
	es_gap_request r[1];
	assert_int_equal(es_gap_due(NULL, 0, r, 1), 0);
	assert_int_equal(es_gap_contiguous(NULL, NODE), 0);
	es_gap_free(NULL);
	es_gap_free(g);
}

/* ---- saving and loading ---- */

static char *save(const es_gap *g, size_t *len)
{
	char *text = NULL;
	size_t n = SIZE_MAX;
	assert_int_equal(es_gap_save(g, &text, &n), ES_OK);
	assert_non_null(text);
	assert_int_equal(strlen(text), n);
	if (len)
		*len = n;
	return text;
}

static void load(es_gap *g, const char *text, uint64_t now)
{
	assert_int_equal(es_gap_load(g, text, strlen(text), now), ES_OK);
}

/* A tracker of every kind of node, all holes detected at 0, none asked. */
static es_gap *varied(void)
{
	es_gap *g = make(NULL);
	/* Two holes, a journal id. */
	assert_int_equal(es_gap_status(g, "site-1/gw-1", "jid-a", 0, 0, 0), ES_OK);
	const uint64_t s1[] = {1, 2, 5, 6, 10, 11};
	for (size_t i = 0; i < sizeof s1 / sizeof s1[0]; i++)
		see(g, "site-1/gw-1", s1[i], 0);
	/* Started late (from_start false): base 100, then single holes. */
	const uint64_t s2[] = {100, 102, 104, 105, 20000};
	for (size_t i = 0; i < sizeof s2 / sizeof s2[0]; i++)
		see(g, "site-1/gw-2", s2[i], 0);
	/* A status before any event: waits for its first one. */
	assert_int_equal(es_gap_status(g, "site-2/gw-3", "jid-c", 50, 10, 0), ES_OK);
	/* No holes at all. */
	for (uint64_t s = 7; s <= 9; s++)
		see(g, "site-2/gw-4", s, 0);
	/* A tail hole opened by a status; names and ids that need escaping. */
	see(g, "odd name/100%", 3, 0);
	assert_int_equal(es_gap_status(g, "odd name/100%", "-", 8, 0, 0), ES_OK);
	see(g, "-", 1, 0);
	assert_int_equal(es_gap_status(g, "-", "a b\n%", 1, 0, 0), ES_OK);
	return g;
}

/* The same calls on a and b give the same answers. */
static void same_behaviour(es_gap *a, es_gap *b)
{
	static const struct {
		const char *node;
		uint64_t seq;
	} feed[] = {{"site-1/gw-1", 3},	  {"site-1/gw-1", 3},
		    {"site-1/gw-1", 8},	  {"site-1/gw-1", 12},
		    {"site-1/gw-2", 99},  {"site-1/gw-2", 101},
		    {"site-1/gw-2", 104}, {"site-1/gw-2", 200},
		    {"site-2/gw-3", 70},  {"site-2/gw-3", 75},
		    {"site-2/gw-3", 70},  {"site-2/gw-4", 8},
		    {"odd name/100%", 5}, {"-", 1},
		    {"new/node", 4}};
	es_gap_request ra[64], rb[64];
	assert_int_equal(es_gap_due(a, 499, ra, 64), 0);
	assert_int_equal(es_gap_due(b, 499, rb, 64), 0);
	size_t k = es_gap_due(a, 500, ra, 64);
	assert_true(k > 0);
	assert_int_equal(es_gap_due(b, 500, rb, 64), k);
	for (size_t i = 0; i < k; i++) {
		assert_string_equal(ra[i].node, rb[i].node);
		assert_int_equal(ra[i].from, rb[i].from);
		assert_int_equal(ra[i].to, rb[i].to);
	}
	for (size_t i = 0; i < sizeof feed / sizeof feed[0]; i++)
		assert_int_equal(see(a, feed[i].node, feed[i].seq, 600),
				 see(b, feed[i].node, feed[i].seq, 600));
	for (size_t i = 0; i < sizeof feed / sizeof feed[0]; i++)
		assert_int_equal(es_gap_contiguous(a, feed[i].node),
				 es_gap_contiguous(b, feed[i].node));
	/* The journal ids came along: the same one is no reset, another is. */
	uint64_t resets = stats(b).resets;
	assert_int_equal(es_gap_status(b, "site-1/gw-1", "jid-a", 0, 0, 700), ES_OK);
	assert_int_equal(es_gap_status(b, "odd name/100%", "-", 0, 0, 700), ES_OK);
	assert_int_equal(es_gap_status(b, "-", "a b\n%", 0, 0, 700), ES_OK);
	assert_int_equal(stats(b).resets, resets);
	assert_int_equal(es_gap_status(b, "site-2/gw-3", "jid-other", 0, 0, 700), ES_OK);
	assert_int_equal(stats(b).resets, resets + 1);
}

static void save_load_round_trip(void **state)
{
	es_gap *a = varied();
	size_t len;
	char *text = save(a, &len);
	assert_memory_equal(text, "esgap 2 6\n", 10);
	es_gap *b = make(NULL);
	load(b, text, 0);
	/* The same state: the same text, the same gauges. */
	char *again = save(b, NULL);
	assert_string_equal(again, text);
	es_gap_stats sa = stats(a), sb = stats(b);
	assert_int_equal(sb.nodes, sa.nodes);
	assert_int_equal(sb.holes_open, sa.holes_open);
	assert_int_equal(sb.missing, sa.missing);
	assert_int_equal(sb.holes_detected, 0); /* counters are not state */
	assert_int_equal(es_gap_contiguous(b, "site-1/gw-1"), 2);
	assert_int_equal(es_gap_contiguous(b, "site-1/gw-2"), 100);
	assert_int_equal(es_gap_contiguous(b, "odd name/100%"), 3);
	same_behaviour(a, b);
	free(again);
	free(text);
	es_gap_free(a);
	es_gap_free(b);
}

static void load_after_restart_fills_holes(void **state)
{
	es_gap *g = make(NULL);
	see(g, NODE, 1, 0);
	see(g, NODE, 5, 0); /* [2, 4] */
	see(g, NODE, 9, 0); /* [6, 8] */
	expect_due(g, 500, 2, (const uint64_t[][2]){{2, 4}, {6, 8}});
	see(g, NODE, 3, 600); /* [2] [4] [6, 8] */
	char *text = save(g, NULL);
	es_gap_free(g);

	/* The restart: a new tracker, its clock elsewhere. */
	g = make(NULL);
	load(g, text, 100000);
	free(text);
	assert_int_equal(stats(g).missing, 5);
	assert_int_equal(stats(g).holes_open, 3);
	expect_none_due(g, 100499);
	expect_due(g, 100500, 3, (const uint64_t[][2]){{2, 2}, {4, 4}, {6, 8}});
	const uint64_t resent[] = {2, 4, 6, 7, 8};
	for (size_t i = 0; i < sizeof resent / sizeof resent[0]; i++)
		assert_int_equal(see(g, NODE, resent[i], 100600), ES_GAP_FILLED);
	assert_int_equal(see(g, NODE, 3, 100600), ES_GAP_DUP);
	assert_int_equal(see(g, NODE, 10, 100600), ES_GAP_NEW);
	assert_int_equal(es_gap_contiguous(g, NODE), 10);
	assert_int_equal(stats(g).missing, 0);
	assert_int_equal(stats(g).filled, 5);
	expect_none_due(g, 1000000);
	es_gap_free(g);
}

static void empty_tracker_round_trip(void **state)
{
	es_gap *g = make(NULL);
	size_t len;
	char *text = save(g, &len);
	assert_string_equal(text, "esgap 2 0\n");
	es_gap *h = make(NULL);
	see(h, NODE, 1, 0);
	see(h, NODE, 3, 0);
	load(h, text, 0); /* replaces what h had */
	assert_int_equal(stats(h).nodes, 0);
	assert_int_equal(stats(h).missing, 0);
	assert_int_equal(es_gap_contiguous(h, NODE), 0);
	expect_none_due(h, 1000000);
	assert_int_equal(see(h, NODE, 5, 0), ES_GAP_NEW);
	free(text);
	es_gap_free(g);
	es_gap_free(h);
}

/* Loading text of len bytes in a buffer of exactly that size (so that a
 * read past it is caught by the sanitizers) into g; g must stay as before
 * (its save was before) on failure. */
static es_err load_exact(es_gap *g, const char *text, size_t len, const char *before)
{
	char *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, text, len);
	es_err err = es_gap_load(g, copy, len, 0);
	free(copy);
	if (err) {
		char *now = save(g, NULL);
		assert_string_equal(now, before);
		free(now);
	}
	return err;
}

/* A target tracker with a state of its own, and its saved text. */
static es_gap *target(char **before)
{
	es_gap *g = make(NULL);
	see(g, "keep/me", 1, 0);
	see(g, "keep/me", 4, 0);
	*before = save(g, NULL);
	return g;
}

static void every_truncation_is_rejected(void **state)
{
	es_gap *a = varied();
	size_t len;
	char *text = save(a, &len);
	char *before;
	es_gap *g = target(&before);
	for (size_t k = 0; k < len; k++) {
		if (load_exact(g, text, k, before) != ES_EINVAL)
			fail_msg("a truncation to %zu of %zu bytes loaded", k, len);
	}
	assert_int_equal(load_exact(g, text, len, before), ES_OK);
	assert_int_equal(stats(g).missing, stats(a).missing);
	free(before);
	free(text);
	es_gap_free(a);
	es_gap_free(g);
}

static void bad_texts_are_rejected(void **state)
{
	static const char *const bad[] = {
		"",
		"esgap 1",
		"esgap 1 0",
		"esgap 3 0\n",
		"ESGAP 1 0\n",
		/* version 2: announced exactly when a journal is named */
		"esgap 2 1\na jid - 0 0 1 5 0\n",
		"esgap 2 1\na - - 1 0 1 5 0\n",
		"esgap 2 1\na jid b 4294967296 0 1 5 0\n",
		"esgap 2 1\na jid b 1 0 1 5\n",
		"esgap 2 1\na jid b 1 1 5 0\n",
		"esgap 2 1\na - 1 5 0\n", /* a version 1 line */
		"esgap 1 0\n\n",
		"esgap 1 0\nx",
		"esgap 1  0\n",
		"esgap 1 -1\n",
		"esgap 1 1\n",
		"esgap 1 2\na - 1 5 0\n",
		"esgap 1 1\na - 1 5 0\nb - 1 5 0\n",
		"esgap 1 1\na - 1 5 0 \n",
		"esgap 1 1\na - 1 5 1\n",
		"esgap 1 1\na - 1 5 1 2 3\n",
		"esgap 1 1\na - 1 5 1 6\n",	  /* above seen_max */
		"esgap 1 1\na - 3 5 1 2\n",	  /* below base */
		"esgap 1 1\na - 1 5 1 0\n",	  /* sequence 0 */
		"esgap 1 1\na - 1 5 1 4-3\n",	  /* from > to */
		"esgap 1 1\na - 1 9 2 2-4 4-5\n", /* overlapping */
		"esgap 1 1\na - 1 9 2 6 2\n",	  /* out of order */
		"esgap 1 1\na - 1 9 1 2-\n",
		"esgap 1 1\na - 1 9 1 -2\n",
		"esgap 1 1\na - 0 5 0\n",	     /* untracked with seen_max */
		"esgap 1 1\na - 0 0 1 1\n",	     /* untracked with a hole */
		"esgap 1 1\na - 9 5 0\n",	     /* seen_max far below base */
		"esgap 1 2\na - 1 5 0\na - 1 5 0\n", /* one node twice */
		"esgap 1 1\n- - 1 5 0\n",	     /* empty name */
		"esgap 1 1\n - 1 5 0\n",
		"esgap 1 1\na  1 5 0\n",
		"esgap 1 1\na%00b - 1 5 0\n",
		"esgap 1 1\na%2 - 1 5 0\n",
		"esgap 1 1\na%G0 - 1 5 0\n",
		"esgap 1 1\na%",
		"esgap 1 1\na b c 1 5 0\n",
		"esgap 1 1\na\tb - 1 5 0\n",
		"esgap 1 1\na - 1 18446744073709551616 0\n",
		"esgap 1 1\na - 1 5 99999999999999999999\n",
		"esgap 1 1\na - 1 5 1000000000\n",
		"esgap 1 1\na - 1 18446744073709551615 2 18446744073709551615 5\n",
		"esgap 1 1\na - 1 18446744073709551615 2 5 18446744073709551615 "
		"18446744073709551615\n",
	};
	char *before;
	es_gap *g = target(&before);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (load_exact(g, bad[i], strlen(bad[i]), before) != ES_EINVAL)
			fail_msg("loaded: \"%s\"", bad[i]);
	}
	/* Text made by hand that is a valid state. */
	load(g, "esgap 1 1\na - 1 18446744073709551615 2 5 18446744073709551615\n", 0);
	assert_int_equal(stats(g).missing, 2);
	assert_int_equal(see(g, "a", UINT64_MAX, 0), ES_GAP_FILLED);
	char long_name[NODE_MAX_TEST + 32];
	memset(long_name, 'n', sizeof long_name);
	snprintf(long_name + 135, sizeof long_name - 135, " - 1 1 0\n");
	char text[sizeof long_name + 16];
	snprintf(text, sizeof text, "esgap 1 1\n%s", long_name);
	load(g, text, 0); /* a name of 135 bytes */
	snprintf(long_name + 136, sizeof long_name - 136, " - 1 1 0\n");
	snprintf(text, sizeof text, "esgap 1 1\n%s", long_name);
	assert_int_equal(es_gap_load(g, text, strlen(text), 0), ES_EINVAL);
	assert_int_equal(es_gap_save(NULL, &(char *){NULL}, &(size_t){0}), ES_EINVAL);
	assert_int_equal(es_gap_save(g, NULL, &(size_t){0}), ES_EINVAL);
	assert_int_equal(es_gap_load(NULL, "esgap 1 0\n", 10, 0), ES_EINVAL);
	assert_int_equal(es_gap_load(g, NULL, 0, 0), ES_EINVAL);
	free(before);
	es_gap_free(g);
}

static void random_bytes_are_rejected(void **state)
{
	uint64_t seed = 0x2545f4914f6cdd1dULL;
	char *before;
	es_gap *g = target(&before);
	char buf[512];
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(next_rand(&seed) % sizeof buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = (char)next_rand(&seed);
		assert_int_equal(load_exact(g, buf, len, before), ES_EINVAL);
	}
	free(before);
	es_gap_free(g);
}

/* A real save with bytes changed, dropped or repeated: never a crash, and
 * what loads is a state the tracker can save and load again. */
static void damaged_saves_never_crash(void **state)
{
	uint64_t seed = 0x853c49e6748fea9bULL;
	es_gap *a = varied();
	size_t len;
	char *text = save(a, &len);
	char *buf = malloc(len + 1);
	assert_non_null(buf);
	static const char alphabet[] = "0123456789- \n%aZ/";
	for (int round = 0; round < 20000; round++) {
		memcpy(buf, text, len);
		size_t n = len, at = (size_t)(next_rand(&seed) % len);
		uint64_t how = next_rand(&seed) % 3;
		char c = alphabet[next_rand(&seed) % (sizeof alphabet - 1)];
		if (how == 0) {
			buf[at] = c;
		} else if (how == 1) {
			memmove(buf + at, buf + at + 1, len - at - 1);
			n--;
		} else {
			memmove(buf + at + 1, buf + at, len - at);
			buf[at] = c;
			n++;
		}
		es_gap *g = make(NULL);
		es_err err = es_gap_load(g, buf, n, 0);
		assert_true(err == ES_OK || err == ES_EINVAL);
		if (err == ES_OK) {
			char *again = save(g, NULL);
			es_gap *h = make(NULL);
			load(h, again, 0);
			free(again);
			es_gap_free(h);
		}
		es_gap_free(g);
	}
	free(buf);
	free(text);
	es_gap_free(a);
}

static void load_merges_past_max_holes(void **state)
{
	es_gap *a = make(NULL);
	const uint64_t seqs[] = {1, 3, 4, 5, 7, 9, 10, 20};
	for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++)
		see(a, NODE, seqs[i], 0);
	char *text = save(a, NULL); /* [2] [6] [8] [11, 19] */
	assert_int_equal(stats(a).holes_open, 4);
	es_gap_opts o = {.max_holes = 3};
	es_gap *g = make(&o);
	load(g, text, 0);
	/* As max_holes_merges_closest: 6 and 8 are closest, 7 is asked again. */
	assert_int_equal(stats(g).holes_open, 3);
	assert_int_equal(stats(g).missing, 1 + 3 + 9);
	expect_due(g, 500, 3, (const uint64_t[][2]){{2, 2}, {6, 8}, {11, 19}});
	es_gap_opts one = {.max_holes = 1};
	es_gap *h = make(&one);
	load(h, text, 0);
	expect_due(h, 500, 1, (const uint64_t[][2]){{2, 19}});
	free(text);
	es_gap_free(a);
	es_gap_free(g);
	es_gap_free(h);
}

static void many_nodes_and_holes_round_trip(void **state)
{
	enum { NODES = 3000, BIG = 3, BIG_HOLES = 4000 };
	es_gap *a = make(NULL);
	char name[32];
	for (int i = 0; i < NODES; i++) {
		snprintf(name, sizeof name, "site-%d/gw-%d", i % 13, i);
		for (uint64_t s = 1; s <= 20; s += 1 + (uint64_t)(i % 3))
			see(a, name, s, 0);
	}
	for (int i = 0; i < BIG; i++) {
		snprintf(name, sizeof name, "big/gw-%d", i);
		for (uint64_t s = 1; s <= 2 * BIG_HOLES + 1; s += 2)
			see(a, name, s, 0);
	}
	es_gap_stats sa = stats(a);
	assert_true(sa.holes_open >= BIG * BIG_HOLES);
	size_t len;
	char *text = save(a, &len);
	es_gap *b = make(NULL);
	assert_int_equal(es_gap_load(b, text, len, 0), ES_OK);
	es_gap_stats sb = stats(b);
	assert_int_equal(sb.nodes, NODES + BIG);
	assert_int_equal(sb.holes_open, sa.holes_open);
	assert_int_equal(sb.missing, sa.missing);
	char *again = save(b, NULL);
	assert_string_equal(again, text);
	/* Every hole is asked for, once. */
	size_t holes = (size_t)sa.holes_open;
	es_gap_request *r = calloc(holes + 1, sizeof *r);
	assert_non_null(r);
	assert_int_equal(es_gap_due(b, 500, r, holes + 1), holes);
	free(r);
	free(again);
	free(text);
	es_gap_free(a);
	es_gap_free(b);
}

/* ---- statuses, epochs, what a node never had ---------------------------------- */

#define JID_1 "0190f3a4-0000-7000-8000-00000000000a"
#define JID_2 "0190f3a4-0000-7000-8000-00000000000b"
#define BOOT1 "0190f3a4-0000-7000-8000-000000000001"
#define BOOT2 "0190f3a4-0000-7000-8000-000000000002"

static es_status_msg status_of(const char *jid, const char *boot, uint64_t oldest, uint64_t acked,
			       uint64_t latest, uint64_t time_ms)
{
	es_status_msg m = {.online = true,
			   .oldest_seq = oldest,
			   .acked_seq = acked,
			   .latest_seq = latest,
			   .boot_seq = latest,
			   .clock_synced = true,
			   .time_ms = time_ms};
	snprintf(m.journal_id, sizeof m.journal_id, "%s", jid);
	snprintf(m.boot_id, sizeof m.boot_id, "%s", boot);
	return m;
}

static bool announce(es_gap *g, const es_status_msg *m, uint64_t now)
{
	bool fresh = true;
	assert_int_equal(es_gap_announce(g, NODE, m, now, &fresh), ES_OK);
	return fresh;
}

static es_gap_node_info info(const es_gap *g)
{
	es_gap_node_info i;
	assert_true(es_gap_node_get(g, NODE, &i));
	return i;
}

/* A bridge first hearing of a node asks for what it holds up to acked_seq,
 * within the bound; with none, a status only records the node. */
static void catch_up_asks_for_what_the_node_holds(void **state)
{
	es_gap *g = make(&(es_gap_opts){.catchup = UINT64_MAX});
	es_gap_node_info i;
	assert_false(es_gap_node_get(g, NODE, &i));
	es_status_msg m = status_of(JID_1, BOOT1, 3, 40, 45, 1000);
	assert_false(announce(g, &m, 0));
	i = info(g);
	assert_true(i.announced && i.tracking);
	assert_int_equal(i.epoch, 1);
	assert_int_equal(i.latest, 45);
	expect_due(g, 500, 1, (const uint64_t[][2]){{3, 40}});
	assert_int_equal(see(g, NODE, 41, 600), ES_GAP_NEW);
	assert_int_equal(see(g, NODE, 3, 600), ES_GAP_FILLED);
	assert_true(es_gap_has(g, NODE, 3));
	assert_false(es_gap_has(g, NODE, 4));
	assert_false(es_gap_has(g, NODE, 2)); /* below what was tracked */
	es_gap_free(g);

	g = make(&(es_gap_opts){.catchup = 10});
	announce(g, &m, 0);
	expect_due(g, 500, 1, (const uint64_t[][2]){{31, 40}});
	es_gap_free(g);

	/* A node holding nothing (retention emptied it): nothing to ask for. */
	g = make(&(es_gap_opts){.catchup = UINT64_MAX});
	m = status_of(JID_1, BOOT1, 0, 40, 40, 1000);
	announce(g, &m, 0);
	expect_none_due(g, 100000);
	assert_int_equal(see(g, NODE, 41, 0), ES_GAP_NEW);
	assert_int_equal(stats(g).missing, 0);
	es_gap_free(g);

	/* Offline: announced, not tracked; without catch-up, online neither. */
	g = make(&(es_gap_opts){.catchup = UINT64_MAX});
	m = status_of(JID_1, BOOT1, 1, 0, 40, 1000);
	m.online = false;
	announce(g, &m, 0);
	assert_true(info(g).announced);
	assert_false(info(g).tracking);
	es_gap_free(g);
	g = make(NULL);
	m.online = true;
	m.acked_seq = 40;
	announce(g, &m, 0);
	assert_false(info(g).tracking);
	expect_none_due(g, 100000);
	es_gap_free(g);
}

/* A journal restored to a state older than what its node published last,
 * though never announced (the node stopped before its next status), is a new
 * epoch too: the events received say what the node had. */
static void a_journal_behind_its_events_is_a_new_epoch(void **state)
{
	(void)state;
	es_gap *g = make(&(es_gap_opts){.catchup = UINT64_MAX});
	es_status_msg m = status_of(JID_1, BOOT1, 1, 10, 10, 1000);
	announce(g, &m, 0);
	for (uint64_t s = 11; s <= 30; s++)
		assert_int_equal(see(g, NODE, s, 0), ES_GAP_NEW);
	m = status_of(JID_1, BOOT2, 1, 20, 20, 3000); /* restored: 21..30 again */
	assert_true(announce(g, &m, 0));
	assert_int_equal(info(g).epoch, 2);
	assert_int_equal(see(g, NODE, 21, 0), ES_GAP_NEW);
	/* a restart that has all it published is no new epoch */
	for (uint64_t s = 22; s <= 40; s++)
		see(g, NODE, s, 0);
	m = status_of(JID_1, BOOT1, 1, 40, 40, 4000);
	assert_false(announce(g, &m, 0));
	assert_int_equal(info(g).epoch, 2);
	es_gap_free(g);
}

/* A restored journal may journal as much again before its first status
 * (events posted while it connects): its latest then looks like what it
 * had. What it held when the boot began (boot_seq) still says it went back;
 * a plain restart that journaled more before connecting is no new epoch. */
static void a_journal_gone_back_is_known_by_what_its_boot_began_with(void **state)
{
	(void)state;
	es_gap *g = make(&(es_gap_opts){.catchup = UINT64_MAX});
	es_status_msg m = status_of(JID_1, BOOT1, 1, 2000, 2000, 1000);
	announce(g, &m, 0);
	for (uint64_t s = 2001; s <= 2300; s++)
		see(g, NODE, s, 0);
	m = status_of(JID_1, BOOT2, 1, 2000, 2300, 2000); /* restored at 2000, 300 new */
	m.boot_seq = 2000;
	assert_true(announce(g, &m, 0));
	assert_int_equal(info(g).epoch, 2);
	assert_int_equal(see(g, NODE, 2001, 0), ES_GAP_NEW);
	for (uint64_t s = 2002; s <= 2300; s++)
		see(g, NODE, s, 0);
	m = status_of(JID_1, BOOT1, 1, 2300, 2400, 3000); /* a plain restart, 100 new */
	m.boot_seq = 2300;
	assert_false(announce(g, &m, 0));
	assert_int_equal(info(g).epoch, 2);
	es_gap_free(g);
}

/* A replaced journal, or one restored from a backup, is a new epoch; a
 * stale status and a plain restart are not. */
static void new_journals_are_new_epochs(void **state)
{
	es_gap *g = make(&(es_gap_opts){.catchup = UINT64_MAX});
	es_status_msg m = status_of(JID_1, BOOT1, 1, 100, 100, 1000);
	announce(g, &m, 0);
	see(g, NODE, 100, 0); /* [1, 99] open */
	for (uint64_t s = 1; s < 95; s++)
		see(g, NODE, s, 0);
	assert_int_equal(stats(g).missing, 5);
	/* older, same journal (a will set at connect): ignored */
	m = status_of(JID_1, BOOT1, 1, 0, 10, 999);
	assert_false(announce(g, &m, 0));
	assert_int_equal(info(g).latest, 100);
	/* a restart of the same journal */
	m = status_of(JID_1, BOOT2, 1, 120, 120, 2000);
	assert_false(announce(g, &m, 0));
	assert_int_equal(info(g).epoch, 1);
	assert_int_equal(info(g).latest, 120);
	/* the journal went back: a new boot announcing less than before */
	m = status_of(JID_1, BOOT1, 1, 7, 8, 3000);
	assert_true(announce(g, &m, 0));
	es_gap_node_info i = info(g);
	assert_int_equal(i.epoch, 2);
	assert_int_equal(i.latest, 8);
	es_gap_stats st = stats(g);
	assert_int_equal(st.resets, 1);
	assert_int_equal(st.lost, 5 + 20); /* the old epoch's holes */
	expect_due(g, 1000, 1, (const uint64_t[][2]){{1, 7}});
	assert_int_equal(see(g, NODE, 8, 1000), ES_GAP_NEW);
	assert_int_equal(see(g, NODE, 5, 1000), ES_GAP_FILLED);
	/* another journal */
	m = status_of(JID_2, BOOT2, 0, 0, 0, 4000);
	assert_true(announce(g, &m, 0));
	assert_int_equal(info(g).epoch, 3);
	assert_int_equal(see(g, NODE, 1, 1000), ES_GAP_NEW);
	assert_int_equal(es_gap_contiguous(g, NODE), 1);
	/* the epoch and the boot survive a save */
	char *text = save(g, NULL);
	es_gap *h = make(&(es_gap_opts){.catchup = UINT64_MAX});
	load(h, text, 0);
	assert_int_equal(info(h).epoch, 3);
	m = status_of(JID_2, BOOT1, 1, 0, 0, 5000); /* new boot, nothing less: same epoch */
	assert_false(announce(h, &m, 0));
	free(text);
	es_gap_free(h);
	es_gap_free(g);
}

/* A forged sequence far ahead opens a hole the node says cannot exist: it
 * is void, never asked for again, and the real sequences are new. */
static void what_a_node_never_had_is_void(void **state)
{
	es_gap *g = make(NULL);
	es_status_msg m = status_of(JID_1, BOOT1, 1, 50, 50, 1000);
	for (uint64_t s = 1; s <= 50; s++)
		see(g, NODE, s, 0);
	announce(g, &m, 0);
	see(g, NODE, 60, 0);		      /* [51, 59] */
	see(g, NODE, 9007199254740000ULL, 0); /* forged: [61, ...] */
	assert_int_equal(stats(g).holes_open, 2);
	assert_int_equal(es_gap_void(g, NODE, 55), ES_OK);
	es_gap_stats st = stats(g);
	assert_int_equal(st.holes_open, 1);
	assert_int_equal(st.missing, 5);
	assert_int_equal(st.voided, 4 + 9007199254740000ULL - 61);
	assert_int_equal(st.lost, 0);
	assert_int_equal(info(g).seen_max, 55);
	assert_int_equal(info(g).latest, 55);
	assert_false(es_gap_has(g, NODE, 60));
	assert_int_equal(see(g, NODE, 56, 0), ES_GAP_NEW);
	assert_int_equal(see(g, NODE, 60, 0), ES_GAP_NEW);
	expect_due(g, 500, 2, (const uint64_t[][2]){{51, 55}, {57, 59}});
	assert_int_equal(es_gap_void(g, "other/node", 5), ES_OK);
	assert_int_equal(es_gap_void(g, NODE, 0), ES_EINVAL);

	/* A forged first event: tracking comes back to what the node has. */
	es_gap *h = make(NULL);
	see(h, NODE, 1000000, 0);
	es_gap_void(h, NODE, 3);
	assert_int_equal(see(h, NODE, 4, 0), ES_GAP_NEW);
	assert_int_equal(stats(h).missing, 0);
	es_gap_free(h);
	es_gap_free(g);
}

static void count_node(void *ctx, const char *node, const es_gap_node_info *i)
{
	size_t *n = ctx;
	*n += strcmp(node, NODE) == 0 && i->epoch == 1 ? 100 : 1;
}

static void nodes_are_listed_and_old_saves_load(void **state)
{
	es_gap *g = make(NULL);
	/* version 1: a node with a journal id is in its first epoch */
	load(g, "esgap 1 2\n" NODE " jid 1 5 1 3\nx/y - 2 4 0\n", 0);
	size_t n = 0;
	es_gap_each(g, count_node, &n);
	assert_int_equal(n, 101);
	assert_true(info(g).announced);
	assert_int_equal(stats(g).missing, 1);
	char *text = save(g, NULL);
	assert_string_equal(text, "esgap 2 2\n" NODE " jid - 1 0 1 5 1 3\nx/y - - 0 0 2 4 0\n");
	free(text);
	es_gap_each(g, NULL, NULL);
	es_gap_each(NULL, count_node, &n);
	assert_false(es_gap_has(NULL, NODE, 1));
	assert_int_equal(es_gap_announce(g, NODE, NULL, 0, NULL), ES_EINVAL);
	es_gap_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(in_order_has_no_holes),
		cmocka_unit_test(hole_is_filled_by_resends),
		cmocka_unit_test(fill_in_the_middle_splits),
		cmocka_unit_test(duplicates_are_counted),
		cmocka_unit_test(grace_and_retry),
		cmocka_unit_test(custom_timing),
		cmocka_unit_test(status_opens_a_tail_hole),
		cmocka_unit_test(status_oldest_makes_holes_lost),
		cmocka_unit_test(gone_replies_make_holes_lost),
		cmocka_unit_test(journal_change_resets_node),
		cmocka_unit_test(from_start_true_asks_for_history),
		cmocka_unit_test(from_start_false_starts_at_first_event),
		cmocka_unit_test(long_holes_are_split_by_max_span),
		cmocka_unit_test(exact_max_span),
		cmocka_unit_test(max_holes_merges_closest),
		cmocka_unit_test(gone_inside_a_hole_is_not_merged_back),
		cmocka_unit_test(merged_hole_is_due_when_either_was),
		cmocka_unit_test(merged_hole_keeps_the_earliest_due_time),
		cmocka_unit_test(max_holes_one),
		cmocka_unit_test(many_nodes),
		cmocka_unit_test(random_model),
		cmocka_unit_test(random_model_with_merges),
		cmocka_unit_test(bad_arguments),
		cmocka_unit_test(save_load_round_trip),
		cmocka_unit_test(load_after_restart_fills_holes),
		cmocka_unit_test(empty_tracker_round_trip),
		cmocka_unit_test(every_truncation_is_rejected),
		cmocka_unit_test(bad_texts_are_rejected),
		cmocka_unit_test(random_bytes_are_rejected),
		cmocka_unit_test(damaged_saves_never_crash),
		cmocka_unit_test(load_merges_past_max_holes),
		cmocka_unit_test(many_nodes_and_holes_round_trip),
		cmocka_unit_test(catch_up_asks_for_what_the_node_holds),
		cmocka_unit_test(new_journals_are_new_epochs),
		cmocka_unit_test(a_journal_gone_back_is_known_by_what_its_boot_began_with),
		cmocka_unit_test(a_journal_behind_its_events_is_a_new_epoch),
		cmocka_unit_test(what_a_node_never_had_is_void),
		cmocka_unit_test(nodes_are_listed_and_old_saves_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
