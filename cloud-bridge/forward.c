/* forward.c - the cloud side (forward.h).
 *
 * Rows are read from the inbox in its own order (arrival) into per-node,
 * per-lane lists sorted by the node's sequence. A lane's first row goes
 * when no row of its lane below it can still come: the rows below it are
 * all of other lanes or went (the lane's mark), or nothing below it is
 * missing any more (the gap tracker's contiguous mark) and the rows that
 * filled the hole are in memory, or it has waited order.hole_wait_ms for
 * the hole; a row older than what already went in its lane is counted out
 * of order. What is held in memory is bounded; the rest of a backlog stays
 * on disk.
 *
 * Rows that fill a hole arrive late, so they sit in the inbox after rows
 * already held (perhaps beyond what the bounded read has reached): they are
 * read for their node by origin sequence, out of inbox order, and skipped
 * when the inbox-order read comes to them (bridge_forward.taken: their inbox
 * sequences, not an origin-sequence mark, since a copy of a lower origin
 * sequence may still come later, from a re-send or a partner's share).
 * High-lane rows are read the same way when the bounded read is behind: a
 * scan ahead of it takes them, so an alarm never waits for a backlog to be
 * read (decision 69).
 */
#include "forward.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "grow.h"
#include "log.h"
#include "nodes.h"
#include "remap.h"
#include "seqset.h"
#include "topic.h"

#define TAG	       "forward"
#define READ_ROWS      512
#define HELD_MAX_ROWS  4096
#define HELD_MAX_BYTES (4u * 1024u * 1024u)
/* High-lane rows held beyond the bounds (so the scan ahead finds room). */
#define HIGH_EXTRA_ROWS 1024
/* Pages the scan ahead reads per pump at most. */
#define HIGH_SCAN_PAGES 64
/* The least in flight, whatever the measured rate (cloud.inflight_ms). */
#define INFLIGHT_MIN_BYTES 16384
/* How often each lane's backlog in the inbox is counted. */
#define BACKLOG_EVERY_MS 2000
/* A batch's publish tag: this bit and its number (inbox sequences, the
 * tags of single events, stay below 2^53; the bridge's answers use bit 63). */
#define BATCH_TAG (UINT64_C(1) << 62)
/* A single event's tag carries its lane + 1 in these bits. */
#define LANE_SHIFT 56
#define SEQ_MASK   ((UINT64_C(1) << LANE_SHIFT) - 1)

/* A row read from the inbox, waiting for its turn to go to the cloud. */
struct held {
	uint64_t seq, origin_seq;
	char *type, *body;
	size_t len;
	uint64_t since_ms;
	uint64_t journaled_ms; /* for the forward latency and the lane's TTL */
};

/* One lane of one node: its rows in memory, and what went. */
struct lane {
	struct held *held; /* held[first..first+nheld), sorted by origin_seq */
	size_t first, nheld, capheld;
	/* Every sequence up to mark is of another lane or went (or was never
	 * the node's: it went before this process); others holds the other
	 * lanes' sequences above it seen so far. */
	uint64_t mark;
	es_seqset others;
	uint64_t sent_max; /* the highest sequence of this lane that went */
};

/* What the forwarder knows of one source node (a record of `nodes`). */
struct node {
	struct lane lane[BRIDGE_LANES];
	/* Every sequence up to seen was read into memory since the node was
	 * first read (or had gone before: it was not pending then); seen_above
	 * holds those read above it. */
	bool seen_init;
	uint64_t seen;
	es_seqset seen_above;
	uint64_t acked_told; /* the cloud-acked mark last told (batch_acked) */
	bool active;	     /* on the active list */
	struct node *next_active;
};

/* A batch awaiting its PUBACK: the inbox rows it carries, and whose. */
struct flight {
	uint64_t tag;
	uint64_t *seqs;
	size_t n, bytes;
	int lane;
	char node[BRIDGE_NODE_MAX];
	uint64_t first_origin; /* the node's lowest sequence in it */
};

/* A (node, lane) whose first row may go, keyed by lane then inbox order. */
struct entry {
	struct node *x;
	int lane;
	uint64_t key;
};

/* Lock: `stats_lock` guards `shown`; the loop thread owns everything else. */
struct bridge_forward {
	bridge_forward_deps d;
	char *root;
	uint64_t hole_wait_ms;
	bridge_lanes lanes;
	uint64_t ttl_ms[BRIDGE_LANES];
	unsigned high_burst; /* high-lane sends in a row while others wait */
	unsigned high_run;
	bridge_remap *remap;
	es_journal_reader *reader;
	bridge_nodes *nodes;
	bool running;
	uint64_t cursor;      /* highest inbox sequence read */
	bool more;	      /* rows may wait beyond cursor */
	uint64_t hi_cursor;   /* the scan ahead for high-lane rows: how far it read */
	bool hi_more;	      /* high-lane rows may wait beyond hi_cursor */
	size_t rows, bytes;   /* held in memory */
	struct node *active;  /* nodes with held rows */
	uint64_t next_due_ms; /* a held row's wait ends */
	es_async *pump;	      /* one pump per batch of completions */
	struct entry *heap;   /* drain_nodes' scratch */
	size_t capheap;
	es_seqset taken;   /* inbox sequences above cursor read out of order */
	es_batch_enc *enc; /* cloud.format batch; NULL: events */
	es_batch_coding coding;
	uint64_t batch_no;	/* the last batch's number */
	struct flight *flights; /* batches in flight, oldest first */
	size_t nflights, capflights;
	/* What is in flight, bounded by the measured rate (cloud.inflight_ms). */
	uint64_t inflight_ms;
	size_t inflight_bytes;
	uint64_t rate_bps;	      /* acked bytes a second while busy; 0: not yet */
	uint64_t busy_since_ms;	      /* something in flight since (0: idle) */
	uint64_t busy_ms, busy_bytes; /* this sample's */
	uint64_t backlog_at_ms;	      /* lanes' backlogs last counted */
	uint64_t rate_at_ms;	      /* lanes' drain rates last sampled */
	uint64_t rate_acked[BRIDGE_LANES];
	bridge_forward_stats counts;
	pthread_mutex_t stats_lock;
	bridge_forward_stats shown;
};

static size_t inflight_cap(const bridge_forward *f);

static void show(bridge_forward *f)
{
	f->counts.held = f->rows;
	f->counts.inflight_bytes = f->inflight_bytes;
	f->counts.inflight_cap = f->enc && f->inflight_ms ? inflight_cap(f) : 0;
	pthread_mutex_lock(&f->stats_lock);
	f->shown = f->counts;
	pthread_mutex_unlock(&f->stats_lock);
}

static const char *name_of(const struct node *x)
{
	return bridge_nodes_name(x);
}

static void drop_lane(bridge_forward *f, struct lane *q, int lane)
{
	for (size_t i = q->first; i < q->first + q->nheld; i++) {
		f->bytes -= q->held[i].len;
		free(q->held[i].type);
		free(q->held[i].body);
	}
	f->rows -= q->nheld;
	f->counts.lanes[lane].held -= q->nheld;
	q->nheld = q->first = 0;
}

static void drop_held(bridge_forward *f, struct node *x)
{
	for (int l = 0; l < BRIDGE_LANES; l++)
		drop_lane(f, &x->lane[l], l);
}

static bool has_rows(const struct node *x)
{
	for (int l = 0; l < BRIDGE_LANES; l++)
		if (x->lane[l].nheld)
			return true;
	return false;
}

/* ---- life ------------------------------------------------------------------ */

static void pump_async(void *arg);

es_err bridge_forward_new(const bridge_forward_opts *o, const bridge_forward_deps *d,
			  bridge_forward **out)
{
	char why[160];
	if (!o || !o->cloud_topic || !o->root || !d || !d->loop || !d->journal || !d->cloud ||
	    !d->contiguous || !d->sent || !d->acked || !d->lost || !out)
		return ES_EINVAL;
	bridge_forward *f = calloc(1, sizeof *f);
	if (!f)
		return ES_ENOMEM;
	f->d = *d;
	f->hole_wait_ms = o->hole_wait_ms;
	f->inflight_ms = o->inflight_ms;
	unsigned share = o->backlog_share ? o->backlog_share : 10;
	f->high_burst = share >= 100 ? 0 : (100 - share + share - 1) / share;
	f->more = f->hi_more = true;
	pthread_mutex_init(&f->stats_lock, NULL);
	es_err err = bridge_remap_new(o->cloud_topic, &f->remap, why, sizeof why);
	if (err)
		es_error(TAG, "cloud.topic %s", why);
	else if (!(f->root = strdup(o->root)))
		err = ES_ENOMEM;
	if (!err && o->lanes) {
		if ((err = bridge_lanes_parse(&f->lanes, o->lanes->high, o->lanes->low, why,
					      sizeof why)))
			es_error(TAG, "%s", why);
		for (int l = 0; l < BRIDGE_LANES; l++)
			f->ttl_ms[l] = o->lanes->ttl_ms[l];
	}
	if (!err && o->batch) {
		f->coding = o->batch->coding;
		err = es_batch_enc_new(o->batch, &f->enc);
	}
	if (err || (err = bridge_nodes_new(sizeof(struct node), &f->nodes)) ||
	    (err = es_journal_reader_new(d->journal, &f->reader)) ||
	    (err = es_async_new(d->loop, pump_async, f, &f->pump))) {
		bridge_forward_free(f);
		return err;
	}
	*out = f;
	return ES_OK;
}

static void drop_node(void *ctx, void *record)
{
	struct node *x = record;
	drop_held(ctx, x);
	for (int l = 0; l < BRIDGE_LANES; l++) {
		free(x->lane[l].held);
		es_seqset_free(&x->lane[l].others);
	}
	es_seqset_free(&x->seen_above);
}

/* Forgets the batches in flight (their rows are read again). */
static void drop_flights(bridge_forward *f)
{
	for (size_t i = 0; i < f->nflights; i++)
		free(f->flights[i].seqs);
	f->nflights = 0;
	f->inflight_bytes = 0;
	f->busy_since_ms = 0;
}

void bridge_forward_free(bridge_forward *f)
{
	if (!f)
		return;
	drop_flights(f);
	free(f->flights);
	es_batch_enc_free(f->enc);
	bridge_nodes_free(f->nodes, drop_node, f);
	free(f->heap);
	es_seqset_free(&f->taken);
	es_async_free(f->pump);
	es_journal_reader_free(f->reader);
	bridge_remap_free(f->remap);
	bridge_lanes_free(&f->lanes);
	free(f->root);
	pthread_mutex_destroy(&f->stats_lock);
	free(f);
}

void bridge_forward_start(bridge_forward *f)
{
	f->running = true;
}

void bridge_forward_stop(bridge_forward *f)
{
	f->running = false;
}

static void clear_marks(void *ctx, void *record)
{
	struct node *x = record;
	(void)ctx;
	for (int l = 0; l < BRIDGE_LANES; l++) {
		x->lane[l].mark = x->lane[l].sent_max = 0;
		es_seqset_clear(&x->lane[l].others);
	}
	x->seen_init = false;
	x->seen = 0;
	es_seqset_clear(&x->seen_above);
}

void bridge_forward_reset(bridge_forward *f)
{
	for (struct node *x = f->active; x; x = x->next_active) {
		drop_held(f, x);
		x->active = false;
	}
	/* What goes again now is a re-send, not an event out of order; all of
	 * it is read again in inbox order. */
	bridge_nodes_each(f->nodes, clear_marks, NULL);
	f->active = NULL;
	f->rows = f->bytes = 0;
	f->cursor = f->hi_cursor = 0;
	es_seqset_clear(&f->taken);
	drop_flights(f);
	f->more = f->hi_more = true;
	f->d.lost(f->d.ctx);
	show(f);
}

/* ---- a lane's mark ------------------------------------------------------------ */

/* Moves q's mark up over the other lanes' sequences that follow it. */
static void advance(struct lane *q)
{
	q->mark += es_seqset_take_run(&q->others, q->mark);
}

/* Every sequence of q's lane up to o went: q's mark moves up to it. */
static void lift(struct lane *q, uint64_t o)
{
	if (o <= q->mark)
		return;
	q->mark = o;
	(void)es_seqset_pass(&q->others, o);
	advance(q);
}

/* Sequence o is of another lane than q's: q need not wait for it. */
static void other_lane(struct lane *q, uint64_t o)
{
	if (o <= q->mark)
		return;
	if (o == q->mark + 1) {
		q->mark = o;
		advance(q);
	} else {
		(void)es_seqset_add(&q->others, o); /* at the bound: q waits longer */
	}
}

/* q's sequence o went (or expired): q's mark passes it. */
static void lane_went(struct lane *q, uint64_t o)
{
	if (o > q->sent_max)
		q->sent_max = o;
	lift(q, o);
}

/* Whether every sequence strictly between a and b is another lane's. */
static bool others_between(const struct lane *q, uint64_t a, uint64_t b)
{
	for (uint64_t o = a + 1; o < b; o++)
		if (o > q->mark && !es_seqset_has(&q->others, o))
			return false;
	return true;
}

/* ---- reading the inbox --------------------------------------------------- */

static void activate(bridge_forward *f, struct node *x)
{
	if (x->active)
		return;
	x->active = true;
	x->next_active = f->active;
	f->active = x;
}

/* Inserts h into q's list, sorted by origin sequence (rows mostly arrive
 * in order, so this is nearly always an append). */
static bool hold(struct lane *q, const struct held *h)
{
	if (q->first + q->nheld == q->capheld && q->first) {
		memmove(q->held, q->held + q->first, q->nheld * sizeof *h); /* compact */
		q->first = 0;
	}
	struct held *grown = es_grow(q->held, &q->capheld, q->nheld + 1, sizeof *grown, 16);
	if (!grown)
		return false;
	q->held = grown;
	size_t i = q->first + q->nheld;
	while (i > q->first && q->held[i - 1].origin_seq > h->origin_seq)
		i--;
	memmove(&q->held[i + 1], &q->held[i], (q->first + q->nheld - i) * sizeof *h);
	q->held[i] = *h;
	q->nheld++;
	return true;
}

struct anchor_ctx {
	const struct node *x;
	uint64_t first;	 /* the lowest pending sequence looked at */
	uint64_t lowest; /* the lowest pending sequence not read yet; 0: none */
	size_t n;
};

static int lowest_unread(void *ctx, const es_journal_row *row)
{
	struct anchor_ctx *c = ctx;
	if (!c->n++)
		c->first = row->origin_seq;
	if (es_seqset_has(&c->x->seen_above, row->origin_seq))
		return 0;
	c->lowest = row->origin_seq;
	return 1;
}

/* Moves x's seen mark up as far as the inbox allows up to upto: nothing up
 * to upto is missing (the gap tracker's contiguous mark), so what of it is
 * not pending went before; it stops below the lowest pending row not read
 * yet. */
static void anchor(bridge_forward *f, struct node *x, uint64_t upto)
{
	if (upto <= x->seen)
		return;
	struct anchor_ctx c = {x, 0, 0, 0};
	if (es_journal_read_origin(f->reader, name_of(x), x->seen + 1, upto, READ_ROWS,
				   lowest_unread, &c))
		return;
	uint64_t to = c.lowest		? c.lowest - 1 /* below the first one not read */
		      : c.n < READ_ROWS ? upto	       /* every pending one was read */
					: c.first - 1; /* below those looked at, none */
	if (to > x->seen) {
		x->seen = to;
		(void)es_seqset_pass(&x->seen_above, x->seen);
	}
}

/* Origin sequence o of x was read into memory. Every lane then knows that
 * its rows up to seen, and below its first held one, went: its mark moves
 * up there (a lane holding nothing does not wait on others' backlogs). */
static void note_seen(bridge_forward *f, struct node *x, uint64_t o)
{
	if (o == x->seen + 1) {
		x->seen = o;
	} else if (o > x->seen) {
		(void)es_seqset_add(&x->seen_above, o); /* at the bound: lanes wait longer */
		/* on the node's first read, and now and then while its mark is
		 * stuck (it was first read above a hole) */
		if (!x->seen_init || es_seqset_count(&x->seen_above) % 256 == 0) {
			uint64_t c = f->d.contiguous(f->d.ctx, name_of(x));
			anchor(f, x, c < o - 1 ? c : o - 1);
		}
	}
	x->seen_init = true;
	x->seen += es_seqset_take_run(&x->seen_above, x->seen);
	for (int l = 0; l < BRIDGE_LANES; l++) {
		struct lane *q = &x->lane[l];
		uint64_t upto = q->nheld ? q->held[q->first].origin_seq - 1 : x->seen;
		lift(q, upto < x->seen ? upto : x->seen);
	}
}

static int lane_of(const bridge_forward *f, const char *type)
{
	return bridge_lane_of(&f->lanes, type);
}

/* Holds one row read from the inbox; x its node (NULL: none; out of
 * memory). *lane_out: the lane it went to. */
static bool take(bridge_forward *f, struct node *x, const es_journal_row *row, int *lane_out)
{
	struct held h = {.seq = row->seq,
			 .origin_seq = row->origin_seq,
			 .len = row->body_len,
			 .since_ms = es_clock_mono_ms(),
			 .journaled_ms = row->journaled_ms};
	if (!x || !(h.type = strdup(row->type)) || !(h.body = malloc(row->body_len))) {
		free(h.type);
		return false; /* out of memory: try again on the next pump */
	}
	memcpy(h.body, row->body, row->body_len);
	int lane = lane_of(f, row->type);
	if (!hold(&x->lane[lane], &h)) {
		free(h.type);
		free(h.body);
		return false;
	}
	for (int l = 0; l < BRIDGE_LANES; l++)
		if (l != lane)
			other_lane(&x->lane[l], row->origin_seq);
	note_seen(f, x, row->origin_seq);
	activate(f, x);
	f->rows++;
	f->bytes += h.len;
	f->counts.lanes[lane].held++;
	if (lane_out)
		*lane_out = lane;
	return true;
}

/* A row in inbox order. */
static int take_row(void *ctx, const es_journal_row *row)
{
	bridge_forward *f = ctx;
	if (es_seqset_pass(&f->taken, row->seq)) { /* read already, out of order */
		f->cursor = row->seq;
		return 0;
	}
	if (f->rows >= HELD_MAX_ROWS || f->bytes >= HELD_MAX_BYTES)
		return 1;
	struct node *x = row->origin ? bridge_nodes_get(f->nodes, row->origin) : NULL;
	if (!take(f, x, row, NULL))
		return 1;
	f->cursor = row->seq;
	return 0;
}

/* Takes a row read out of inbox order (above the cursor), marking it
 * taken; false when there is no room. */
static bool take_ahead(bridge_forward *f, struct node *x, const es_journal_row *row, int *lane)
{
	if (es_seqset_reserve(&f->taken) || !take(f, x, row, lane))
		return false;
	(void)es_seqset_add(&f->taken, row->seq); /* room reserved, no bound */
	return true;
}

struct fill_ctx {
	bridge_forward *f;
	struct node *x;
	int lane;
	size_t seen, n; /* rows read; of them, rows of the lane taken */
};

/* A row of one node, read by origin sequence to fill a hole. */
static int take_fill(void *ctx, const es_journal_row *row)
{
	struct fill_ctx *c = ctx;
	int lane;
	c->seen++;
	if (row->seq <= c->f->cursor || es_seqset_has(&c->f->taken, row->seq))
		return 0; /* read already: held, or sent */
	if (!take_ahead(c->f, c->x, row, &lane))
		return 1;
	if (lane == c->lane)
		c->n++;
	return 0;
}

/* The lane's first row is above its mark and the gap tracker says nothing
 * below it is missing: reads what is pending below it for x (the rows that
 * filled the hole, of any lane). True when none of them is of this lane
 * (they went before a restart, say): then the first row is the next one of
 * its lane after all. */
static bool fill_below(bridge_forward *f, struct node *x, int lane)
{
	struct lane *q = &x->lane[lane];
	uint64_t first = q->held[q->first].origin_seq;
	struct fill_ctx c = {f, x, lane, 0, 0};
	if (es_journal_read_origin(f->reader, name_of(x), q->mark + 1, first - 1, READ_ROWS,
				   take_fill, &c))
		return false;
	if (c.n || c.seen >= READ_ROWS)
		return false;	   /* rows of the lane came below it, or more may be there */
	if (first - 1 > q->mark) { /* nothing of the lane is left below */
		q->mark = first - 1;
		(void)es_seqset_pass(&q->others, q->mark);
		advance(q);
	}
	return true;
}

/* Reads the next chunk in inbox order; true when the bounds stopped it. */
static bool refill(bridge_forward *f)
{
	/* Only when a whole chunk fits: a query per freed row costs more than
	 * the row. */
	if (f->rows + READ_ROWS > HELD_MAX_ROWS || f->bytes + HELD_MAX_BYTES / 8 > HELD_MAX_BYTES)
		return f->more;
	if (!f->more)
		return false;
	uint64_t before = f->cursor;
	if (es_journal_read(f->reader, f->cursor + 1, UINT64_MAX, READ_ROWS, true, take_row, f))
		return false;
	if (f->cursor == before)
		f->more = false; /* caught up: the next commit says when to look again */
	return false;
}

/* A row seen by the scan ahead: taken when it is of the high lane. */
static int take_high(void *ctx, const es_journal_row *row)
{
	bridge_forward *f = ctx;
	if (lane_of(f, row->type) == BRIDGE_LANE_HIGH && !es_seqset_has(&f->taken, row->seq)) {
		if (f->rows >= HELD_MAX_ROWS + HIGH_EXTRA_ROWS)
			return 1;
		struct node *x = row->origin ? bridge_nodes_get(f->nodes, row->origin) : NULL;
		if (!take_ahead(f, x, row, NULL))
			return 1;
	}
	f->hi_cursor = row->seq;
	return 0;
}

/* The bounded read is behind: reads ahead of it for high-lane rows. */
static void scan_high(bridge_forward *f)
{
	if (!f->lanes.nhigh)
		return;
	if (f->hi_cursor < f->cursor)
		f->hi_cursor = f->cursor;
	for (int page = 0; page < HIGH_SCAN_PAGES && f->hi_more; page++) {
		uint64_t before = f->hi_cursor;
		if (es_journal_read(f->reader, f->hi_cursor + 1, UINT64_MAX, READ_ROWS, true,
				    take_high, f))
			return;
		if (f->hi_cursor == before)
			f->hi_more = false; /* caught up, or no room: the next commit says */
	}
}

/* ---- publishing ------------------------------------------------------------ */

static bool cloud_topic(bridge_forward *f, const struct node *x, const char *type, char *buf,
			size_t cap)
{
	const char *name = name_of(x);
	const char *slash = strchr(name, '/');
	es_topic_parts p = {.site = name,
			    .site_len = (size_t)(slash - name),
			    .node = slash + 1,
			    .node_len = strlen(slash + 1),
			    .kind = "ev",
			    .kind_len = 2,
			    .rest = type,
			    .rest_len = strlen(type)};
	return slash && bridge_remap_apply(f->remap, f->root, &p, buf, cap) == ES_OK;
}

static void pop(bridge_forward *f, struct node *x, int lane)
{
	struct lane *q = &x->lane[lane];
	f->bytes -= q->held[q->first].len;
	free(q->held[q->first].type);
	free(q->held[q->first].body);
	q->first = --q->nheld ? q->first + 1 : 0;
	f->rows--;
	f->counts.lanes[lane].held--;
}

static bool expired(const bridge_forward *f, int lane, const struct held *h, uint64_t wall)
{
	return f->ttl_ms[lane] && wall > h->journaled_ms &&
	       wall - h->journaled_ms > f->ttl_ms[lane];
}

/* Lets the lane's first rows past their time to live go unsent: acked in
 * the inbox (kept until retention), counted. */
static void expire_front(bridge_forward *f, struct node *x, int lane)
{
	struct lane *q = &x->lane[lane];
	if (!f->ttl_ms[lane] || !q->nheld)
		return;
	uint64_t wall = es_clock_wall_ms();
	while (q->nheld && expired(f, lane, &q->held[q->first], wall)) {
		const struct held *h = &q->held[q->first];
		es_journal_ack(f->d.journal, h->seq);
		lane_went(q, h->origin_seq);
		f->counts.lanes[lane].expired++;
		pop(f, x, lane);
	}
}

/* Whether the lane's first row may go now: nothing of its lane is below
 * it, nothing below it is missing and what filled the hole is in memory,
 * or it has waited long enough for the hole. */
static bool ready(bridge_forward *f, struct node *x, int lane, uint64_t now)
{
	struct lane *q = &x->lane[lane];
	expire_front(f, x, lane);
	if (!q->nheld)
		return false;
	const struct held *h = &q->held[q->first];
	if (h->origin_seq <= q->mark + 1)
		return true;
	if (h->origin_seq <= f->d.contiguous(f->d.ctx, name_of(x)) + 1) {
		/* Every high-lane row of the inbox is in memory once the scan
		 * ahead has caught up; other lanes look below the first. */
		if (lane == BRIDGE_LANE_HIGH ? !f->more || !f->hi_more : fill_below(f, x, lane))
			return true;
	}
	h = &q->held[q->first];
	uint64_t due = h->since_ms + f->hole_wait_ms;
	if (now >= due)
		return true;
	if (!f->next_due_ms || due < f->next_due_ms)
		f->next_due_ms = due;
	return false;
}

/* The lane's first row went: counted, timed, let go. */
static void went(bridge_forward *f, struct node *x, int lane)
{
	struct lane *q = &x->lane[lane];
	struct held *h = &q->held[q->first];
	if (h->origin_seq < q->sent_max)
		f->counts.out_of_order++;
	lane_went(q, h->origin_seq);
	f->counts.forwarded++;
	f->counts.lanes[lane].sent++;
	f->d.sent(f->d.ctx, h->seq, h->journaled_ms);
	pop(f, x, lane);
}

/* Publishes the lane's first row; false when the window or connection
 * says stop. */
static bool send_first(bridge_forward *f, struct node *x, int lane)
{
	struct lane *q = &x->lane[lane];
	struct held *h = &q->held[q->first];
	char topic[ES_TOPIC_MAX];
	if (!cloud_topic(f, x, h->type, topic, sizeof topic)) {
		es_journal_dead_letter(f->d.journal, name_of(x), "cannot map to a cloud topic",
				       h->body, h->len);
		es_journal_ack(f->d.journal, h->seq); /* never forwardable: out of the way */
		f->counts.refused++;
		lane_went(q, h->origin_seq);
		pop(f, x, lane);
		return true;
	}
	uint64_t tag = h->seq | (uint64_t)(lane + 1) << LANE_SHIFT;
	es_err err = f->d.cloud->publish(f->d.cloud_ctx, topic, h->body, h->len, tag, NULL);
	if (err == ES_EBUSY || err == ES_ENOTCONN)
		return false;
	f->counts.lanes[lane].bytes += h->len;
	went(f, x, lane);
	return true;
}

/* ---- batches (cloud.format batch) ------------------------------------------- */

/* Room for one more batch in flight. */
static bool flight_room(bridge_forward *f)
{
	struct flight *grown =
		es_grow(f->flights, &f->capflights, f->nflights + 1, sizeof *grown, 16);
	if (!grown)
		return false;
	f->flights = grown;
	return true;
}

/* What may be in flight now: cloud.inflight_ms of the measured rate. */
static size_t inflight_cap(const bridge_forward *f)
{
	if (!f->inflight_ms)
		return SIZE_MAX;
	uint64_t cap = f->rate_bps ? f->rate_bps * f->inflight_ms / 1000 : 4 * INFLIGHT_MIN_BYTES;
	return cap < INFLIGHT_MIN_BYTES ? INFLIGHT_MIN_BYTES : (size_t)cap;
}

/* Puts the lane's rows into the encoder from its first on, while each
 * follows the one before in the lane (a hole ends the batch: what is after
 * it waits its turn) and the caps take it; returns how many (0: the first
 * alone passes a cap). */
static size_t fill_batch(bridge_forward *f, const struct node *x, int lane)
{
	const struct lane *q = &x->lane[lane];
	size_t n = 0;
	uint64_t prev = 0;
	uint64_t wall = f->ttl_ms[lane] ? es_clock_wall_ms() : 0;
	es_batch_enc_reset(f->enc);
	for (size_t i = q->first; i < q->first + q->nheld; i++) {
		const struct held *h = &q->held[i];
		if (n && (h->origin_seq == prev ||
			  (h->origin_seq > prev + 1 && !others_between(q, prev, h->origin_seq))))
			break;
		if (n && wall && expired(f, lane, h, wall))
			break; /* the next round lets it go */
		if (es_batch_enc_add(f->enc, h->body, h->len))
			break; /* full (or this one alone too big: it goes as an event) */
		prev = h->origin_seq;
		n++;
	}
	return n;
}

static bool batch_topic(bridge_forward *f, const struct node *x, char *buf, size_t cap)
{
	return bridge_node_batch_topic(buf, cap, f->root, name_of(x), &f->coding) == ES_OK;
}

/* Publishes what of the lane may go now as one batch; false when the
 * window, the bytes in flight or the connection say stop. What cannot be a
 * batch (a row alone past the caps, a compressor's failure, no memory)
 * goes as an event. */
static bool send_batch(bridge_forward *f, struct node *x, int lane)
{
	if (f->nflights && f->inflight_bytes >= inflight_cap(f))
		return false; /* a PUBACK makes room */
	char topic[ES_TOPIC_MAX];
	size_t n = fill_batch(f, x, lane);
	const void *payload;
	size_t len;
	uint64_t *seqs = n ? malloc(n * sizeof *seqs) : NULL;
	if (!seqs || !flight_room(f) || !batch_topic(f, x, topic, sizeof topic) ||
	    es_batch_enc_finish(f->enc, &payload, &len)) {
		free(seqs);
		return send_first(f, x, lane);
	}
	es_mqtt_prop pairs[2];
	es_mqtt_props props;
	es_batch_props(&f->coding, pairs, &props);
	uint64_t tag = BATCH_TAG | (f->batch_no + 1);
	es_err err = f->d.cloud->publish(f->d.cloud_ctx, topic, payload, len, tag, &props);
	if (err == ES_EBUSY || err == ES_ENOTCONN) {
		free(seqs);
		return false;
	}
	f->batch_no++;
	struct lane *q = &x->lane[lane];
	struct flight *fl = &f->flights[f->nflights++];
	*fl = (struct flight){.tag = tag,
			      .seqs = seqs,
			      .n = n,
			      .bytes = len,
			      .lane = lane,
			      .first_origin = q->held[q->first].origin_seq};
	snprintf(fl->node, sizeof fl->node, "%s", name_of(x));
	if (!f->inflight_bytes)
		f->busy_since_ms = es_clock_mono_ms();
	f->inflight_bytes += len;
	for (size_t i = 0; i < n; i++) {
		seqs[i] = q->held[q->first].seq;
		went(f, x, lane);
	}
	f->counts.batches++;
	f->counts.batch_bytes += len;
	f->counts.lanes[lane].bytes += len;
	return true;
}

/* ---- which lane of which node goes next ---------------------------------------- */

/* By lane, then by inbox sequence: high first; within a lane the cloud
 * gets the events in (about) the order they arrived, no node waits behind
 * another's backlog, and acks come in inbox order, so the inbox's ack
 * watermark keeps up (a crash then re-sends little). */
static uint64_t key_of(const struct node *x, int lane)
{
	const struct lane *q = &x->lane[lane];
	return (uint64_t)lane << 60 | q->held[q->first].seq;
}

static void swap(struct entry *a, struct entry *b)
{
	struct entry t = *a;
	*a = *b;
	*b = t;
}

static void sift_down(struct entry *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && h[l].key < h[m].key)
			m = l;
		if (l + 1 < n && h[l + 1].key < h[m].key)
			m = l + 1;
		if (m == i)
			return;
		swap(&h[i], &h[m]);
		i = m;
	}
}

static void sift_up(struct entry *h, size_t i)
{
	while (i && h[(i - 1) / 2].key > h[i].key) {
		swap(&h[i], &h[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
}

static bool heap_push(bridge_forward *f, size_t *n, struct node *x, int lane)
{
	struct entry *grown = es_grow(f->heap, &f->capheap, *n + 1, sizeof *grown, 64);
	if (!grown)
		return false;
	f->heap = grown;
	f->heap[(*n)++] = (struct entry){x, lane, key_of(x, lane)};
	return true;
}

/* The ready lanes, as a min-heap on their keys; drops emptied nodes from
 * the active list. false when out of memory. */
static bool build_heap(bridge_forward *f, uint64_t now, size_t *n)
{
	*n = 0;
	for (struct node **pp = &f->active; *pp;) {
		struct node *x = *pp;
		for (int l = 0; l < BRIDGE_LANES; l++)
			if (x->lane[l].nheld && ready(f, x, l, now) && !heap_push(f, n, x, l))
				return false;
		if (!has_rows(x)) {
			x->active = false;
			*pp = x->next_active;
			continue;
		}
		pp = &x->next_active;
	}
	for (size_t i = *n / 2; i-- > 0;)
		sift_down(f->heap, *n, i);
	return true;
}

/* Which entry goes next: the top, unless the high lane has had its run
 * while others wait (lanes.backlog_share): then the best of the others. */
static size_t pick(bridge_forward *f, size_t n)
{
	if (f->heap[0].lane != BRIDGE_LANE_HIGH || f->high_run < f->high_burst)
		return 0;
	size_t best = 0;
	for (size_t i = 1; i < n; i++)
		if (f->heap[i].lane != BRIDGE_LANE_HIGH &&
		    (!best || f->heap[i].key < f->heap[best].key))
			best = i;
	return best;
}

/* Sends while the window has room, always the ready lane that comes first
 * (key_of), with the backlog's share. */
static void drain_nodes(bridge_forward *f, uint64_t now)
{
	size_t n;
	if (!build_heap(f, now, &n))
		return;
	while (n && f->d.cloud->connected(f->d.cloud_ctx)) {
		size_t i = pick(f, n);
		struct entry *e = &f->heap[i];
		if (!(f->enc ? send_batch(f, e->x, e->lane) : send_first(f, e->x, e->lane)))
			return;
		f->high_run = e->lane == BRIDGE_LANE_HIGH ? f->high_run + 1 : 0;
		if (!e->x->lane[e->lane].nheld || !ready(f, e->x, e->lane, now)) {
			f->heap[i] = f->heap[--n];
			if (i == n)
				continue;
		} else {
			e->key = key_of(e->x, e->lane);
		}
		sift_up(f->heap, i);
		sift_down(f->heap, n, i);
	}
}

/* ---- each lane's backlog --------------------------------------------------------- */

struct backlog_ctx {
	bridge_forward *f;
	uint64_t count[BRIDGE_LANES], oldest[BRIDGE_LANES];
};

static int count_type(void *ctx, const char *type, uint64_t count, uint64_t oldest_ms)
{
	struct backlog_ctx *c = ctx;
	int l = lane_of(c->f, type);
	c->count[l] += count;
	if (!c->oldest[l] || oldest_ms < c->oldest[l])
		c->oldest[l] = oldest_ms;
	return 0;
}

/* Each lane's pending rows in the inbox and the oldest's age, counted every
 * BACKLOG_EVERY_MS; its drain rate (acks a second) beside them. */
static void count_backlog(bridge_forward *f, uint64_t now)
{
	if (now - f->backlog_at_ms < BACKLOG_EVERY_MS && f->backlog_at_ms)
		return;
	struct backlog_ctx c = {.f = f};
	if (es_journal_pending_types(f->reader, count_type, &c) == ES_OK)
		for (int l = 0; l < BRIDGE_LANES; l++) {
			f->counts.lanes[l].backlog = c.count[l];
			f->counts.lanes[l].oldest_ms = c.oldest[l];
		}
	if (f->rate_at_ms) {
		uint64_t dt = now - f->rate_at_ms;
		for (int l = 0; l < BRIDGE_LANES; l++) {
			uint64_t done = f->counts.lanes[l].acked + f->counts.lanes[l].expired;
			double inst =
				dt ? (double)(done - f->rate_acked[l]) * 1000.0 / (double)dt : 0;
			/* smoothed over a few samples: a backlog's ETA should not jump */
			double r = (f->counts.lanes[l].drain_per_s + inst) / 2.0;
			f->counts.lanes[l].drain_per_s = r < 0.01 ? 0 : r; /* decays to 0 */
			f->rate_acked[l] = done;
		}
	}
	f->rate_at_ms = f->backlog_at_ms = now;
}

static void pump(bridge_forward *f)
{
	const bridge_cloud_ops *c = f->d.cloud;
	f->next_due_ms = 0;
	for (int round = 0; round < 4 && c->connected(f->d.cloud_ctx); round++) {
		size_t before = f->rows;
		refill(f);
		if (f->more)
			scan_high(f); /* the read is behind: high-lane rows come first */
		/* after refill: a row taken now must not look younger than now */
		drain_nodes(f, es_clock_mono_ms());
		if (f->rows == before && !f->more)
			break;
		if (c->inflight(f->d.cloud_ctx) >= c->window(f->d.cloud_ctx))
			break;
	}
}

void bridge_forward_pump(bridge_forward *f)
{
	if (f->running)
		pump(f);
	count_backlog(f, es_clock_mono_ms());
	show(f);
}

void bridge_forward_committed(bridge_forward *f)
{
	f->more = f->hi_more = true;
	bridge_forward_pump(f);
}

void bridge_forward_epoch(bridge_forward *f, const char *node)
{
	struct node *x = bridge_nodes_find(f->nodes, node);
	if (x) {
		clear_marks(NULL, x);
		x->acked_told = 0;
	}
}

/* One row's PUBACK (or refusal). */
static void row_done(bridge_forward *f, uint64_t tag, es_err err, int lane)
{
	if (err == ES_EPROTO) {
		/* The cloud broker will never take it: keep it aside, move on. */
		f->counts.refused++;
		es_error(TAG, "the cloud broker refused inbox event %llu; kept as a dead letter",
			 (unsigned long long)tag);
		es_journal_dead_letter(f->d.journal, "cloud", "refused by the cloud broker", "", 0);
	} else {
		f->counts.acked++;
		if (lane >= 0)
			f->counts.lanes[lane].acked++;
		f->d.acked(f->d.ctx, tag);
	}
	es_journal_ack(f->d.journal, tag);
}

/* The node's cloud-acked mark: every sequence up to it went in each lane
 * and is not in flight. */
static uint64_t acked_mark(const bridge_forward *f, const struct node *x)
{
	uint64_t m = UINT64_MAX;
	for (int l = 0; l < BRIDGE_LANES; l++)
		if (x->lane[l].mark < m)
			m = x->lane[l].mark;
	for (size_t i = 0; i < f->nflights; i++)
		if (f->flights[i].first_origin <= m && !strcmp(f->flights[i].node, name_of(x)))
			m = f->flights[i].first_origin - 1;
	return m;
}

/* Samples the link's rate from what a PUBACK freed: bytes acked over the
 * time something was in flight. */
static void sample_rate(bridge_forward *f, size_t bytes)
{
	uint64_t now = es_clock_mono_ms();
	if (f->busy_since_ms) {
		f->busy_ms += now - f->busy_since_ms;
		f->busy_since_ms = f->inflight_bytes ? now : 0;
	}
	f->busy_bytes += bytes;
	if (f->busy_ms >= 500) {
		uint64_t inst = f->busy_bytes * 1000 / f->busy_ms;
		f->rate_bps = f->rate_bps ? (f->rate_bps + inst) / 2 : inst;
		f->busy_ms = f->busy_bytes = 0;
	}
}

/* A batch's PUBACK is each of its rows'. */
static void batch_done(bridge_forward *f, uint64_t tag, es_err err)
{
	size_t i = 0;
	while (i < f->nflights && f->flights[i].tag != tag)
		i++;
	if (i == f->nflights)
		return; /* an earlier connection's: its rows were read again */
	struct flight fl = f->flights[i];
	memmove(&f->flights[i], &f->flights[i + 1], (f->nflights - i - 1) * sizeof fl);
	f->nflights--;
	f->inflight_bytes -= fl.bytes;
	sample_rate(f, fl.bytes);
	for (size_t k = 0; k < fl.n; k++)
		row_done(f, fl.seqs[k], err, fl.lane);
	free(fl.seqs);
	struct node *x = bridge_nodes_find(f->nodes, fl.node);
	if (!err && x && f->d.batch_acked) {
		uint64_t m = acked_mark(f, x);
		if (m > x->acked_told && m != UINT64_MAX) {
			x->acked_told = m;
			f->d.batch_acked(f->d.ctx, fl.node, m);
		}
	}
}

void bridge_forward_published(bridge_forward *f, uint64_t tag, es_err err)
{
	if (err == ES_ENOTCONN) {
		bridge_forward_reset(f); /* lost with the connection: sent again */
		return;
	}
	if (tag & BATCH_TAG)
		batch_done(f, tag, err);
	else
		row_done(f, tag & SEQ_MASK, err, (int)(tag >> LANE_SHIFT & 3) - 1);
	es_async_send(f->pump); /* after the whole batch of PUBACKs */
}

static void pump_async(void *arg)
{
	bridge_forward_pump(arg);
}

void bridge_forward_stats_get(bridge_forward *f, bridge_forward_stats *out)
{
	pthread_mutex_lock(&f->stats_lock);
	*out = f->shown;
	pthread_mutex_unlock(&f->stats_lock);
}
