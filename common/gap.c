/* gap.c - consumer-side gap tracker (see gap.h for the model).
 *
 * Nodes live in an open-addressing hash table (linear probing, FNV-1a, load
 * at most 1/2, never shrinks: nodes are never forgotten). Each node keeps
 * its holes in an array sorted by sequence, non-overlapping, every one at or
 * below seen_max; lookups are binary searches, and the common cases (a new
 * hole at the tail, a re-sent event at a hole's lower end) touch one end.
 *
 * Rules beyond the header:
 *  - from_start false: a node's first event starts tracking at its sequence
 *    (`base`). An event below base was never tracked, so it is reported
 *    ES_GAP_NEW, not a duplicate: a consumer that drops duplicates must not
 *    drop an event nobody knows it has seen. Until its first event, a status
 *    only records the node's journal_id.
 *  - A new epoch (a changed journal_id: the node's journal was recreated;
 *    or a new boot announcing a newest sequence below one its journal
 *    already announced: it was restored from a backup) counts a reset: the
 *    old journal's open holes count as lost, and the node is tracked afresh:
 *    from sequence 1 whatever from_start says (its new journal began while
 *    we were subscribed), or, with catch-up, as a node first heard of.
 *  - Catch-up (opts.catchup > 0): a node's first online status starts
 *    tracking it; the newest `catchup` sequences it holds up to acked_seq
 *    ([max(oldest_seq, acked_seq - catchup + 1), acked_seq]) are a hole. A
 *    node holding nothing (oldest_seq 0) starts after its acked_seq.
 *  - What a node says it never had is void, not lost: es_gap_void drops the
 *    holes above its latest and brings seen_max (and base) back to it.
 *  - A status is stale, and ignored, when it is older than the newest one
 *    seen from the same journal (both times from synchronised clocks): a
 *    will set at connect time, a retained message the broker kept from
 *    before. Its values would read as a journal gone back.
 *  - Over max_holes, the two holes with the smallest gap between them merge,
 *    and the sequences between them, although seen, are missing again: they
 *    will be asked for and arrive as ES_GAP_FILLED a second time (so `filled`
 *    can count one sequence twice). The pair a split has just made is spared
 *    when another pair exists, so a "gone" range cut out of a hole is not
 *    merged back in and asked for forever.
 *  - A hole is asked for in rounds: a round starts when the hole is due
 *    (grace after detection, retry after the last round began) and hands out
 *    consecutive parts of at most max_span; if cap runs out mid-round the
 *    next call carries on where it stopped (`cursor`).
 *
 * The saved state (es_gap_save) is text, one line per node sorted by name,
 * after a header that counts them:
 *
 *     esgap 2 <nodes>
 *     <name> <journal_id> <boot_id> <epoch> <latest> <base> <seen_max>
 *         <nholes> <hole>...
 *
 * (on one line; version 1, still read, had no boot_id, epoch and latest),
 * a hole being "<from>-<to>", or "<from>" alone when it is one sequence;
 * base 0 marks a node still waiting for its first event; epoch 0, a node
 * never announced (its journal_id is then empty). Names and ids are written as words of
 * [A-Za-z0-9._/-], any other byte as %XX, and
 * "-" alone is the empty word. Every line ends in '\n' and the header
 * counts the lines, so a truncated text never loads. The loader accepts only
 * what the saver writes, checks every invariant the tracker relies on
 * (holes sorted, disjoint, within [base, seen_max]; names unique), and
 * builds the new state aside, so a bad text leaves the tracker as it was.
 */
#include "gap.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"

#define NODE_MAX   136 /* sizeof ((es_gap_request *)0)->node */
#define JID_MAX	   64
#define NONE	   SIZE_MAX
#define SLOTS_INIT 16

typedef struct hole {
	uint64_t from, to;
	uint64_t detected_ms;
	uint64_t asked_ms; /* when the last round began */
	uint64_t cursor;   /* next sequence of the round under way; 0: none */
	uint32_t asks;	   /* rounds begun */
} hole;

typedef struct node {
	char name[NODE_MAX];
	char journal_id[JID_MAX]; /* last one a status named; "" if none */
	char boot_id[JID_MAX];	  /* the last status's; "" if none */
	bool tracking;		  /* false: waiting for the first event */
	uint32_t epoch;		  /* 0: never announced */
	uint64_t base;		  /* the first sequence tracked */
	uint64_t seen_max;
	uint64_t latest;    /* the newest sequence the node said it has */
	uint64_t status_ms; /* time of its newest status with a synced clock */
	hole *holes;
	size_t nholes, cap;
} node;

struct es_gap {
	es_gap_opts o;
	node **slots;
	size_t nslots, nnodes;
	es_gap_stats st; /* the counters; the gauges are summed when asked */
};

/* ---- the node table ---- */

static uint64_t hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The slot holding name, or the empty slot where it would go. */
static size_t slot_of(node *const *slots, size_t nslots, const char *name)
{
	size_t i = (size_t)(hash(name) & (nslots - 1));
	while (slots[i] && strcmp(slots[i]->name, name) != 0)
		i = (i + 1) & (nslots - 1);
	return i;
}

static node *lookup(const es_gap *g, const char *name)
{
	return g->slots[slot_of(g->slots, g->nslots, name)];
}

static es_err grow_table(es_gap *g)
{
	size_t n = g->nslots * 2;
	node **slots = calloc(n, sizeof *slots);
	if (!slots)
		return ES_ENOMEM;
	for (size_t i = 0; i < g->nslots; i++) {
		if (g->slots[i])
			slots[slot_of(slots, n, g->slots[i]->name)] = g->slots[i];
	}
	free(g->slots);
	g->slots = slots;
	g->nslots = n;
	return ES_OK;
}

/* The node called name, made (untracked unless from_start) if new. */
static es_err node_get(es_gap *g, const char *name, node **out)
{
	node *n = lookup(g, name);
	if (n) {
		*out = n;
		return ES_OK;
	}
	if ((g->nnodes + 1) * 2 > g->nslots && grow_table(g) != ES_OK)
		return ES_ENOMEM;
	n = calloc(1, sizeof *n);
	if (!n)
		return ES_ENOMEM;
	memcpy(n->name, name, strlen(name) + 1);
	n->tracking = g->o.from_start;
	n->base = 1;
	g->slots[slot_of(g->slots, g->nslots, name)] = n;
	g->nnodes++;
	*out = n;
	return ES_OK;
}

static bool name_ok(const char *name)
{
	return name && name[0] && strnlen(name, NODE_MAX) < NODE_MAX;
}

/* ---- one node's holes ---- */

static uint64_t span(const hole *h)
{
	return h->to - h->from + 1;
}

/* Index of the hole holding seq, or NONE. */
static size_t find_hole(const node *n, uint64_t seq)
{
	size_t lo = 0, hi = n->nholes; /* the first hole with from > seq is in [lo, hi] */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (n->holes[mid].from > seq)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo > 0 && n->holes[lo - 1].to >= seq ? lo - 1 : NONE;
}

/* Index of the first hole ending at or after seq (nholes if none). */
static size_t first_ending_from(const node *n, uint64_t seq)
{
	size_t lo = 0, hi = n->nholes;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (n->holes[mid].to < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Room for one more hole. */
static es_err reserve(node *n)
{
	hole *h = es_grow(n->holes, &n->cap, n->nholes + 1, sizeof *h, 4);
	if (!h)
		return ES_ENOMEM;
	n->holes = h;
	return ES_OK;
}

/* Inserts h at index i; the caller has reserved room. */
static void insert_at(node *n, size_t i, const hole *h)
{
	assert(n->nholes < n->cap && i <= n->nholes);
	memmove(&n->holes[i + 1], &n->holes[i], (n->nholes - i) * sizeof *h);
	n->holes[i] = *h;
	n->nholes++;
}

static void remove_at(node *n, size_t i)
{
	assert(i < n->nholes);
	memmove(&n->holes[i], &n->holes[i + 1], (n->nholes - i - 1) * sizeof(hole));
	n->nholes--;
}

/* Keeps a round under way inside a hole whose ends moved. */
static void clamp_cursor(hole *h)
{
	if (h->cursor && h->cursor < h->from)
		h->cursor = h->from;
	if (h->cursor > h->to)
		h->cursor = 0;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Merges holes i and i + 1 into one that is due no later than either. */
static void merge_at(node *n, size_t i)
{
	hole *a = &n->holes[i], *b = &n->holes[i + 1];
	a->cursor = a->cursor ? a->cursor : b->cursor ? a->from : 0;
	a->to = b->to;
	a->detected_ms = min64(a->detected_ms, b->detected_ms);
	a->asked_ms = min64(a->asked_ms, b->asked_ms);
	a->asks = a->asks < b->asks ? a->asks : b->asks;
	remove_at(n, i + 1);
}

/* Over max_holes, merges the closest pair, sparing the pair (keep,
 * keep + 1) unless it is the only one. */
static void bound_holes(const es_gap *g, node *n, size_t keep)
{
	while (n->nholes > g->o.max_holes && n->nholes >= 2) {
		size_t best = NONE;
		uint64_t best_gap = UINT64_MAX;
		for (size_t i = 0; i + 1 < n->nholes; i++) {
			uint64_t gap = n->holes[i + 1].from - n->holes[i].to;
			if (gap < best_gap && (i != keep || n->nholes == 2)) {
				best = i;
				best_gap = gap;
			}
		}
		merge_at(n, best);
		keep = NONE;
	}
}

/* Opens [from, to] above every existing hole. */
static es_err open_hole(es_gap *g, node *n, uint64_t from, uint64_t to, uint64_t now)
{
	if (reserve(n) != ES_OK)
		return ES_ENOMEM;
	hole h = {.from = from, .to = to, .detected_ms = now};
	insert_at(n, n->nholes, &h);
	g->st.holes_detected++;
	bound_holes(g, n, NONE);
	return ES_OK;
}

/* Removes seq from hole i, splitting it when seq is inside. */
static es_err fill(es_gap *g, node *n, size_t i, uint64_t seq)
{
	hole *h = &n->holes[i];
	if (h->from == h->to) {
		remove_at(n, i);
		return ES_OK;
	}
	if (seq == h->from || seq == h->to) {
		if (seq == h->from)
			h->from++;
		else
			h->to--;
		clamp_cursor(h);
		return ES_OK;
	}
	if (reserve(n) != ES_OK)
		return ES_ENOMEM;
	h = &n->holes[i]; /* reserve may have moved the array */
	hole right = *h;
	right.from = seq + 1;
	h->to = seq - 1;
	clamp_cursor(h);
	clamp_cursor(&right);
	insert_at(n, i + 1, &right);
	bound_holes(g, n, i);
	return ES_OK;
}

/* Cuts [lo, hi] out of hole i, which holds it strictly inside. */
static es_err cut_inside(es_gap *g, node *n, size_t i, uint64_t lo, uint64_t hi)
{
	if (reserve(n) != ES_OK)
		return ES_ENOMEM;
	hole *h = &n->holes[i];
	hole right = *h;
	right.from = hi + 1;
	h->to = lo - 1;
	clamp_cursor(h);
	clamp_cursor(&right);
	insert_at(n, i + 1, &right);
	g->st.lost += hi - lo + 1;
	bound_holes(g, n, i);
	return ES_OK;
}

/* Removes every missing sequence in [lo, hi], counting it lost. */
static es_err lose(es_gap *g, node *n, uint64_t lo, uint64_t hi)
{
	size_t i = first_ending_from(n, lo);
	if (i < n->nholes && n->holes[i].from < lo && n->holes[i].to > hi)
		return cut_inside(g, n, i, lo, hi);
	while (i < n->nholes && n->holes[i].from <= hi) {
		hole *h = &n->holes[i];
		uint64_t a = h->from > lo ? h->from : lo, b = min64(h->to, hi);
		g->st.lost += b - a + 1;
		if (a == h->from && b == h->to) {
			remove_at(n, i);
			continue;
		}
		if (a == h->from)
			h->from = b + 1;
		else
			h->to = a - 1;
		clamp_cursor(h);
		i++;
	}
	return ES_OK;
}

/* A new epoch: what was missing of the old journal is lost; tracked from 1,
 * or with catch-up from the node's next status. */
static void reset(es_gap *g, node *n)
{
	for (size_t i = 0; i < n->nholes; i++)
		g->st.lost += span(&n->holes[i]);
	n->nholes = 0;
	n->seen_max = 0;
	n->base = 1;
	n->tracking = g->o.catchup == 0;
	n->latest = 0;
	n->status_ms = 0;
	n->boot_id[0] = '\0';
	n->epoch++;
	g->st.resets++;
}

/* Removes everything missing above latest, counted void. */
static void void_above(es_gap *g, node *n, uint64_t latest)
{
	size_t i = first_ending_from(n, latest + 1);
	while (i < n->nholes) {
		hole *h = &n->holes[i];
		uint64_t a = h->from > latest ? h->from : latest + 1;
		g->st.voided += h->to - a + 1;
		if (a == h->from) {
			remove_at(n, i);
			continue;
		}
		h->to = a - 1;
		clamp_cursor(h);
		i++;
	}
}

/* ---- the API ---- */

/* Makes a tracker with opts (NULL or zero fields: the defaults).
 * ES_EINVAL for a NULL out; ES_ENOMEM. */
es_err es_gap_new(const es_gap_opts *opts, es_gap **out)
{
	if (!out)
		return ES_EINVAL;
	es_gap *g = calloc(1, sizeof *g);
	if (!g)
		return ES_ENOMEM;
	g->slots = calloc(SLOTS_INIT, sizeof *g->slots);
	if (!g->slots) {
		free(g);
		return ES_ENOMEM;
	}
	g->nslots = SLOTS_INIT;
	if (opts)
		g->o = *opts;
	g->o.grace_ms = g->o.grace_ms ? g->o.grace_ms : 500;
	g->o.retry_ms = g->o.retry_ms ? g->o.retry_ms : 5000;
	g->o.max_span = g->o.max_span ? g->o.max_span : 10000;
	g->o.max_holes = g->o.max_holes ? g->o.max_holes : 4096;
	*out = g;
	return ES_OK;
}

/* Frees g and everything it holds; NULL is a no-op. */
void es_gap_free(es_gap *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nslots; i++) {
		if (g->slots[i])
			free(g->slots[i]->holes);
		free(g->slots[i]);
	}
	free(g->slots);
	free(g);
}

static es_err record(es_gap *g, node *n, uint64_t seq, uint64_t now, es_gap_verdict *v)
{
	*v = ES_GAP_NEW;
	if (!n->tracking) {
		n->tracking = true;
		n->base = n->seen_max = seq;
		return ES_OK;
	}
	if (seq > n->seen_max) {
		if (seq - n->seen_max > 1 && open_hole(g, n, n->seen_max + 1, seq - 1, now))
			return ES_ENOMEM;
		n->seen_max = seq;
		return ES_OK;
	}
	if (seq < n->base)
		return ES_OK;
	size_t i = find_hole(n, seq);
	if (i == NONE) {
		*v = ES_GAP_DUP;
		g->st.duplicates++;
		return ES_OK;
	}
	if (fill(g, n, i, seq))
		return ES_ENOMEM;
	*v = ES_GAP_FILLED;
	g->st.filled++;
	return ES_OK;
}

/* Records node's event seq at now_ms and says whether it is new, filled a
 * hole or was a duplicate. ES_EINVAL for a NULL g or verdict, seq 0, or a
 * node name empty or longer than 135 bytes; ES_ENOMEM (nothing recorded). */
es_err es_gap_seen(es_gap *g, const char *node_name, uint64_t seq, uint64_t now_ms,
		   es_gap_verdict *verdict)
{
	if (!g || !name_ok(node_name) || seq == 0 || !verdict)
		return ES_EINVAL;
	node *n;
	es_gap_verdict v;
	if (node_get(g, node_name, &n) || record(g, n, seq, now_ms, &v))
		return ES_ENOMEM;
	*verdict = v;
	return ES_OK;
}

/* What a status says of a tracked node: up to acked_seq should have come
 * (the rest is a hole), below oldest_seq nothing is held. */
static es_err apply_acked(es_gap *g, node *n, uint64_t acked_seq, uint64_t oldest_seq, uint64_t now)
{
	if (acked_seq > n->seen_max) {
		if (open_hole(g, n, n->seen_max + 1, acked_seq, now))
			return ES_ENOMEM;
		n->seen_max = acked_seq;
	}
	return oldest_seq > 1 ? lose(g, n, 1, oldest_seq - 1) : ES_OK;
}

/* Applies node's status (see gap.h); a journal_id longer than 63 bytes is
 * ES_EINVAL. ES_ENOMEM may leave the status half applied; the next status
 * applies it again. */
es_err es_gap_status(es_gap *g, const char *node_name, const char *journal_id, uint64_t acked_seq,
		     uint64_t oldest_seq, uint64_t now_ms)
{
	const char *jid = journal_id ? journal_id : "";
	if (!g || !name_ok(node_name) || strnlen(jid, JID_MAX) >= JID_MAX)
		return ES_EINVAL;
	node *n;
	if (node_get(g, node_name, &n))
		return ES_ENOMEM;
	if (jid[0] && n->journal_id[0] && strcmp(jid, n->journal_id) != 0)
		reset(g, n);
	if (jid[0]) {
		memcpy(n->journal_id, jid, strlen(jid) + 1);
		n->epoch = n->epoch ? n->epoch : 1;
	}
	if (!n->tracking)
		return ES_OK;
	return apply_acked(g, n, acked_seq, oldest_seq, now_ms);
}

/* A status from another journal, or from a new boot of this one that
 * announces less than it already did (restored from a backup). */
static bool new_epoch_of(const node *n, const es_status_msg *m)
{
	if (!n->epoch)
		return false;
	if (strcmp(n->journal_id, m->journal_id) != 0)
		return true;
	/* What the node had: the most it announced, or more if its events said
	 * so (it may stop before announcing what it published last). A latest
	 * of 0 may be a status that does not say; only an announcement counts
	 * against it. */
	uint64_t had = n->latest;
	if (m->latest_seq && n->tracking && n->seen_max > had)
		had = n->seen_max;
	/* What its journal held when this boot began, not its latest: events
	 * journaled before it connected would hide a journal that went back. */
	return n->boot_id[0] && strcmp(n->boot_id, m->boot_id) != 0 && m->boot_seq < had;
}

static bool stale(const node *n, const es_status_msg *m)
{
	return n->epoch && m->clock_synced && n->status_ms && m->time_ms < n->status_ms &&
	       strcmp(n->journal_id, m->journal_id) == 0;
}

/* Starts tracking n at its status (see the top of this file). */
static es_err catch_up(es_gap *g, node *n, uint64_t acked, uint64_t oldest, uint64_t now)
{
	uint64_t lo = oldest ? oldest : acked + 1;
	if (acked >= g->o.catchup && acked - g->o.catchup + 1 > lo)
		lo = acked - g->o.catchup + 1;
	n->tracking = true;
	if (acked < lo) {
		n->base = acked + 1;
		n->seen_max = acked;
		return ES_OK;
	}
	n->base = lo;
	n->seen_max = lo - 1;
	return apply_acked(g, n, acked, 0, now);
}

/* Announces the node (see gap.h). A bad journal_id or boot_id cannot come
 * from es_status_decode; they are ES_EINVAL here. */
es_err es_gap_announce(es_gap *g, const char *node_name, const es_status_msg *m, uint64_t now_ms,
		       bool *new_epoch)
{
	node *n;
	if (!g || !name_ok(node_name) || !m || !m->journal_id[0] ||
	    strnlen(m->journal_id, JID_MAX) >= JID_MAX || strnlen(m->boot_id, JID_MAX) >= JID_MAX)
		return ES_EINVAL;
	if (node_get(g, node_name, &n))
		return ES_ENOMEM;
	bool fresh = new_epoch_of(n, m);
	if (new_epoch)
		*new_epoch = fresh;
	if (!fresh && stale(n, m))
		return ES_OK;
	if (fresh)
		reset(g, n);
	n->epoch = n->epoch ? n->epoch : 1;
	memcpy(n->journal_id, m->journal_id, strlen(m->journal_id) + 1);
	memcpy(n->boot_id, m->boot_id, strlen(m->boot_id) + 1);
	n->latest = m->latest_seq > n->latest ? m->latest_seq : n->latest;
	n->status_ms = m->clock_synced ? m->time_ms : n->status_ms;
	if (!m->online)
		return ES_OK;
	if (!n->tracking)
		return g->o.catchup ? catch_up(g, n, m->acked_seq, m->oldest_seq, now_ms) : ES_OK;
	return apply_acked(g, n, m->acked_seq, m->oldest_seq, now_ms);
}

/* The node says latest is its newest sequence (see gap.h). */
es_err es_gap_void(es_gap *g, const char *node_name, uint64_t latest)
{
	if (!g || !name_ok(node_name) || latest == 0)
		return ES_EINVAL;
	node *n = lookup(g, node_name);
	if (!n)
		return ES_OK;
	n->latest = latest > n->latest ? latest : n->latest;
	if (!n->tracking || n->seen_max <= latest)
		return ES_OK;
	void_above(g, n, latest);
	n->seen_max = latest;
	if (n->base > latest + 1)
		n->base = latest + 1;
	return ES_OK;
}

/* True when seq is at or below seen_max, at or above base, in no hole. */
bool es_gap_has(const es_gap *g, const char *node_name, uint64_t seq)
{
	if (!g || !name_ok(node_name))
		return false;
	const node *n = lookup(g, node_name);
	return n && n->tracking && seq >= n->base && seq <= n->seen_max &&
	       find_hole(n, seq) == NONE;
}

static void info_of(const node *n, es_gap_node_info *out)
{
	*out = (es_gap_node_info){.announced = n->epoch > 0,
				  .tracking = n->tracking,
				  .epoch = n->epoch,
				  .latest = n->latest,
				  .seen_max = n->seen_max};
}

bool es_gap_node_get(const es_gap *g, const char *node_name, es_gap_node_info *out)
{
	const node *n = g && name_ok(node_name) && out ? lookup(g, node_name) : NULL;
	if (n)
		info_of(n, out);
	return n != NULL;
}

void es_gap_each(const es_gap *g,
		 void (*fn)(void *ctx, const char *node, const es_gap_node_info *info), void *ctx)
{
	es_gap_node_info info;
	for (size_t i = 0; g && fn && i < g->nslots; i++) {
		if (!g->slots[i])
			continue;
		info_of(g->slots[i], &info);
		fn(ctx, g->slots[i]->name, &info);
	}
}

/* Counts what is missing of [from, to] at node as lost. An unknown node is
 * no error. ES_EINVAL for from 0, from > to or a bad node; ES_ENOMEM. */
es_err es_gap_gone(es_gap *g, const char *node_name, uint64_t from, uint64_t to)
{
	if (!g || !name_ok(node_name) || from == 0 || from > to)
		return ES_EINVAL;
	node *n = lookup(g, node_name);
	return n ? lose(g, n, from, to) : ES_OK;
}

static bool waited(uint64_t since, uint64_t now, uint64_t wait)
{
	return now >= since && now - since >= wait;
}

static bool hole_due(const es_gap_opts *o, const hole *h, uint64_t now)
{
	if (h->cursor)
		return true;
	return h->asks ? waited(h->asked_ms, now, o->retry_ms)
		       : waited(h->detected_ms, now, o->grace_ms);
}

/* Hands out the next part of h's round, starting a round if none is on. */
static void ask(const es_gap_opts *o, const node *n, hole *h, uint64_t now, es_gap_request *r)
{
	if (!h->cursor) {
		h->cursor = h->from;
		h->asked_ms = now;
		h->asks++;
	}
	uint64_t end = h->to - h->cursor >= o->max_span ? h->cursor + o->max_span - 1 : h->to;
	memcpy(r->node, n->name, strlen(n->name) + 1);
	r->from = h->cursor;
	r->to = end;
	h->cursor = end == h->to ? 0 : end + 1;
}

static size_t node_due(const es_gap_opts *o, node *n, uint64_t now, es_gap_request *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n->nholes && k < cap; i++) {
		if (!hole_due(o, &n->holes[i], now))
			continue;
		do
			ask(o, n, &n->holes[i], now, &out[k++]);
		while (n->holes[i].cursor && k < cap);
	}
	return k;
}

/* Writes up to cap due requests into out (asked in rounds: see the top
 * of this file) and returns how many; 0 for a NULL g or out. */
size_t es_gap_due(es_gap *g, uint64_t now_ms, es_gap_request *out, size_t cap)
{
	if (!g || !out)
		return 0;
	size_t k = 0;
	for (size_t i = 0; i < g->nslots && k < cap; i++) {
		if (g->slots[i])
			k += node_due(&g->o, g->slots[i], now_ms, out + k, cap - k);
	}
	g->st.requests += k;
	return k;
}

/* The highest sequence with nothing missing at or below it for node: below
 * its first hole, else seen_max; 0 for an unknown or untracked node. */
uint64_t es_gap_contiguous(const es_gap *g, const char *node_name)
{
	if (!g || !name_ok(node_name))
		return 0;
	const node *n = lookup(g, node_name);
	if (!n)
		return 0;
	return n->nholes ? n->holes[0].from - 1 : n->seen_max;
}

/* Fills *out with the counters and the current holes and missing totals. */
void es_gap_stats_get(const es_gap *g, es_gap_stats *out)
{
	if (!g || !out)
		return;
	es_gap_stats s = g->st;
	s.nodes = g->nnodes;
	s.holes_open = s.missing = 0;
	for (size_t i = 0; i < g->nslots; i++) {
		const node *n = g->slots[i];
		for (size_t j = 0; n && j < n->nholes; j++)
			s.missing += span(&n->holes[j]);
		s.holes_open += n ? n->nholes : 0;
	}
	*out = s;
}

/* ---- saving ---- */

#define SAVE_MAGIC    "esgap 2" /* what is written; "esgap 1" is still read */
#define SAVE_MAGIC_V1 "esgap 1"

/* A growing text; after a failed allocation it only records oom. */
typedef struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	char *p = n < SIZE_MAX - b->len ? es_grow(b->p, &b->cap, b->len + n + 1, 1, 256) : NULL;
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Writes sep then v in decimal. */
static void sb_u64(sbuf *b, char sep, uint64_t v)
{
	char t[24];
	int n = snprintf(t, sizeof t, "%c%" PRIu64, sep, v);
	sb_put(b, t, (size_t)n);
}

static bool word_byte(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '/' || c == '-';
}

/* Writes sep then s as a word (see the top of this file). */
static void sb_word(sbuf *b, char sep, const char *s)
{
	char t[4];
	sb_put(b, &sep, 1);
	if (!s[0] || strcmp(s, "-") == 0) {
		sb_put(b, s[0] ? "%2D" : "-", s[0] ? 3 : 1);
		return;
	}
	for (; *s; s++) {
		if (word_byte(*s)) {
			sb_put(b, s, 1);
			continue;
		}
		snprintf(t, sizeof t, "%%%02X", (unsigned)(unsigned char)*s);
		sb_put(b, t, 3);
	}
}

static void save_node(sbuf *b, const node *n)
{
	sb_word(b, '\n', n->name);
	sb_word(b, ' ', n->journal_id);
	sb_word(b, ' ', n->boot_id);
	sb_u64(b, ' ', n->epoch);
	sb_u64(b, ' ', n->latest);
	sb_u64(b, ' ', n->tracking ? n->base : 0);
	sb_u64(b, ' ', n->seen_max);
	sb_u64(b, ' ', n->nholes);
	for (size_t i = 0; i < n->nholes; i++) {
		sb_u64(b, ' ', n->holes[i].from);
		if (n->holes[i].to != n->holes[i].from)
			sb_u64(b, '-', n->holes[i].to);
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(node *const *)a)->name, (*(node *const *)b)->name);
}

/* The nodes sorted by name, in a malloc'd array of g->nnodes. */
static es_err sorted_nodes(const es_gap *g, node ***out)
{
	node **v = malloc((g->nnodes ? g->nnodes : 1) * sizeof *v);
	if (!v)
		return ES_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < g->nslots; i++) {
		if (g->slots[i])
			v[k++] = g->slots[i];
	}
	assert(k == g->nnodes);
	qsort(v, k, sizeof *v, by_name);
	*out = v;
	return ES_OK;
}

/* Writes g's nodes, holes and journal ids as text (the format is at the top
 * of this file) into a malloc'd, NUL-terminated *out of *len bytes.
 * ES_EINVAL for a NULL argument; ES_ENOMEM. */
es_err es_gap_save(const es_gap *g, char **out, size_t *len)
{
	node **v;
	if (!g || !out || !len)
		return ES_EINVAL;
	if (sorted_nodes(g, &v))
		return ES_ENOMEM;
	sbuf b = {0};
	sb_put(&b, SAVE_MAGIC, strlen(SAVE_MAGIC));
	sb_u64(&b, ' ', g->nnodes);
	for (size_t i = 0; i < g->nnodes; i++)
		save_node(&b, v[i]);
	sb_put(&b, "\n", 1);
	free(v);
	if (b.oom) {
		free(b.p);
		return ES_ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return ES_OK;
}

/* ---- loading ---- */

/* The text being read: p moves towards end, never past it. */
typedef struct reader {
	const char *p, *end;
	uint64_t now;
	int version;
} reader;

static bool rd_char(reader *r, char c)
{
	if (r->p == r->end || *r->p != c)
		return false;
	r->p++;
	return true;
}

/* A decimal number of at most 64 bits (ES_EINVAL past that). */
static bool rd_u64(reader *r, uint64_t *out)
{
	const char *start = r->p;
	uint64_t v = 0;
	for (; r->p < r->end && *r->p >= '0' && *r->p <= '9'; r->p++) {
		unsigned d = (unsigned)(*r->p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return r->p > start;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One byte of a word: a word byte, or %XX for any byte but NUL. */
static bool rd_word_byte(reader *r, char *c)
{
	if (*r->p != '%') {
		*c = *r->p++;
		return word_byte(*c);
	}
	if (r->end - r->p < 3)
		return false;
	int hi = hex_value(r->p[1]), lo = hex_value(r->p[2]);
	if (hi < 0 || lo < 0 || (hi | lo) == 0)
		return false;
	*c = (char)(hi * 16 + lo);
	r->p += 3;
	return true;
}

/* A word (see the top of this file) of fewer than cap bytes into out. */
static bool rd_word(reader *r, char *out, size_t cap)
{
	size_t k = 0;
	if (r->end - r->p >= 2 && r->p[0] == '-' && (r->p[1] == ' ' || r->p[1] == '\n')) {
		r->p++;
		out[0] = '\0';
		return true;
	}
	while (r->p < r->end && *r->p != ' ' && *r->p != '\n') {
		if (k + 1 >= cap || !rd_word_byte(r, &out[k++]))
			return false;
	}
	out[k] = '\0';
	return k > 0;
}

/* " <from>[-<to>]" into h, which must lie above the previous hole (at
 * least from lo) and at or below seen. */
static bool rd_hole(reader *r, uint64_t lo, uint64_t seen, hole *h)
{
	*h = (hole){.detected_ms = r->now};
	if (!rd_char(r, ' ') || !rd_u64(r, &h->from))
		return false;
	h->to = h->from;
	if (rd_char(r, '-') && !rd_u64(r, &h->to))
		return false;
	return h->from >= lo && h->from <= h->to && h->to <= seen;
}

/* The holes of a node whose other fields are set. */
static es_err rd_holes(reader *r, node *n, uint64_t count)
{
	/* Each hole takes two bytes at least: never allocate for more. */
	if (count > (uint64_t)(r->end - r->p) / 2)
		return ES_EINVAL;
	if (count > SIZE_MAX / sizeof *n->holes)
		return ES_ENOMEM;
	if (count && !(n->holes = malloc((size_t)count * sizeof *n->holes)))
		return ES_ENOMEM;
	n->cap = (size_t)count;
	uint64_t lo = n->base;
	for (; n->nholes < count; n->nholes++) {
		hole *h = &n->holes[n->nholes];
		if (!rd_hole(r, lo, n->seen_max, h))
			return ES_EINVAL;
		if (h->to == UINT64_MAX && n->nholes + 1 < count)
			return ES_EINVAL; /* nothing can lie above it */
		lo = h->to + 1;
	}
	return ES_OK;
}

typedef struct gapref {
	uint64_t gap;
	size_t i; /* between holes i and i + 1 */
} gapref;

static int by_gap(const void *a, const void *b)
{
	const gapref *x = a, *y = b;
	if (x->gap != y->gap)
		return x->gap < y->gap ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

static int by_index(const void *a, const void *b)
{
	const gapref *x = a, *y = b;
	return (x->i > y->i) - (x->i < y->i);
}

/* Over max_holes, merges across the smallest gaps (the leftmost first among
 * equals), as bound_holes would one at a time, but in n log n: a hostile
 * text must not make a load quadratic. Loaded holes share their timing, so
 * a merge only joins their ends. */
static es_err bound_loaded(const es_gap *g, node *n)
{
	if (n->nholes <= g->o.max_holes)
		return ES_OK;
	size_t ngaps = n->nholes - 1, drop = n->nholes - g->o.max_holes, w = 0, k = 0;
	gapref *v = malloc(ngaps * sizeof *v);
	if (!v)
		return ES_ENOMEM;
	for (size_t i = 0; i < ngaps; i++)
		v[i] = (gapref){n->holes[i + 1].from - n->holes[i].to, i};
	qsort(v, ngaps, sizeof *v, by_gap);
	qsort(v, drop, sizeof *v, by_index);
	for (size_t i = 0; i < n->nholes; i++) {
		if (k < drop && i > 0 && v[k].i == i - 1) {
			n->holes[w - 1].to = n->holes[i].to;
			k++;
		} else {
			n->holes[w++] = n->holes[i];
		}
	}
	n->nholes = w;
	free(v);
	return ES_OK;
}

/* The fields of one node line after its name. */
/* Version 2's " <boot_id> <epoch> <latest>"; version 1 had none (a node
 * with a journal_id is then in its first epoch). */
static bool rd_epoch(reader *r, node *n)
{
	uint64_t epoch = n->journal_id[0] ? 1 : 0;
	if (r->version >= 2 &&
	    (!rd_char(r, ' ') || !rd_word(r, n->boot_id, sizeof n->boot_id) || !rd_char(r, ' ') ||
	     !rd_u64(r, &epoch) || !rd_char(r, ' ') || !rd_u64(r, &n->latest)))
		return false;
	n->epoch = (uint32_t)epoch;
	/* announced exactly when a journal is named */
	return epoch <= UINT32_MAX && (epoch == 0) == (n->journal_id[0] == '\0');
}

static es_err rd_node_fields(reader *r, node *n)
{
	uint64_t base, count;
	if (!rd_word(r, n->journal_id, sizeof n->journal_id) || !rd_epoch(r, n) ||
	    !rd_char(r, ' ') || !rd_u64(r, &base) || !rd_char(r, ' ') || !rd_u64(r, &n->seen_max) ||
	    !rd_char(r, ' ') || !rd_u64(r, &count))
		return ES_EINVAL;
	/* Untracked: nothing seen yet. Tracked: seen_max can only be below
	 * base before the first event (base 1, seen_max 0). */
	if (base == 0 ? n->seen_max != 0 || count != 0 : n->seen_max < base - 1)
		return ES_EINVAL;
	n->tracking = base != 0;
	n->base = base ? base : 1;
	return rd_holes(r, n, count);
}

/* "\n<name> ..." : one node, added to t. */
static es_err rd_node(es_gap *t, reader *r)
{
	char name[NODE_MAX];
	node *n;
	if (!rd_char(r, '\n') || !rd_word(r, name, sizeof name) || !rd_char(r, ' ') ||
	    !name_ok(name) || lookup(t, name))
		return ES_EINVAL;
	if (node_get(t, name, &n))
		return ES_ENOMEM;
	es_err err = rd_node_fields(r, n);
	return err ? err : bound_loaded(t, n);
}

static es_err rd_all(es_gap *t, reader *r)
{
	size_t magic = strlen(SAVE_MAGIC);
	uint64_t count;
	if ((size_t)(r->end - r->p) < magic)
		return ES_EINVAL;
	if (memcmp(r->p, SAVE_MAGIC, magic) == 0)
		r->version = 2;
	else if (memcmp(r->p, SAVE_MAGIC_V1, magic) == 0)
		r->version = 1;
	else
		return ES_EINVAL;
	r->p += magic;
	if (!rd_char(r, ' ') || !rd_u64(r, &count))
		return ES_EINVAL;
	for (uint64_t i = 0; i < count; i++) {
		es_err err = rd_node(t, r);
		if (err)
			return err;
	}
	return rd_char(r, '\n') && r->p == r->end ? ES_OK : ES_EINVAL;
}

/* Gives g the nodes of t, and t those of g. */
static void swap_nodes(es_gap *g, es_gap *t)
{
	node **slots = g->slots;
	size_t nslots = g->nslots, nnodes = g->nnodes;
	g->slots = t->slots;
	g->nslots = t->nslots;
	g->nnodes = t->nnodes;
	t->slots = slots;
	t->nslots = nslots;
	t->nnodes = nnodes;
}

/* Reads a state written by es_gap_save into a tracker made aside, and on
 * success swaps it in (see gap.h). ES_EINVAL for a NULL g or text, or a
 * text that is not exactly a saved state; ES_ENOMEM. */
es_err es_gap_load(es_gap *g, const char *text, size_t len, uint64_t now_ms)
{
	es_gap *t;
	if (!g || !text)
		return ES_EINVAL;
	es_err err = es_gap_new(&g->o, &t);
	if (err)
		return err;
	reader r = {text, text + len, now_ms, 0};
	err = rd_all(t, &r);
	if (!err)
		swap_nodes(g, t);
	es_gap_free(t);
	return err;
}

/* One node's part, as es_gap_save writes it (see gap.h). */
es_err es_gap_save_node(const es_gap *g, const char *node_name, char **out, size_t *len)
{
	if (!g || !node_name || !out || !len)
		return ES_EINVAL;
	const node *n = lookup(g, node_name);
	if (!n)
		return ES_ENOTFOUND;
	sbuf b = {0};
	save_node(&b, n);
	if (b.oom) {
		free(b.p);
		return ES_ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return ES_OK;
}

/* Node parts concatenated, read as rd_all reads them after its header. */
es_err es_gap_load_nodes(es_gap *g, const char *parts, size_t len, uint64_t now_ms)
{
	es_gap *t;
	if (!g || (len && !parts))
		return ES_EINVAL;
	es_err err = es_gap_new(&g->o, &t);
	if (err)
		return err;
	/* Parts have no header: they are always save_node's current format. */
	reader r = {parts, parts + len, now_ms, 2};
	while (!err && r.p < r.end)
		err = rd_node(t, &r);
	if (!err)
		swap_nodes(g, t);
	es_gap_free(t);
	return err;
}
