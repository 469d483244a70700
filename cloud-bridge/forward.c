/* forward.c - the cloud side (forward.h).
 *
 * Rows are read from the inbox in its own order (arrival) into per-node
 * lists sorted by the node's sequence. A node's first row goes when it is
 * the next after what went, or when nothing below it is missing any more
 * (the gap tracker's contiguous mark) and the rows that filled the hole are
 * in memory, or when it has waited order.hole_wait_ms for the hole; a row
 * older than what already went is counted out of order. What is held in
 * memory is bounded; the rest of a backlog stays on disk.
 *
 * Rows that fill a hole arrive late, so they sit in the inbox after rows
 * already held (perhaps beyond what the bounded read has reached): they are
 * read for their node by origin sequence, out of inbox order, and skipped
 * when the inbox-order read comes to them (bridge_forward.taken: their inbox
 * sequences, not an origin-sequence mark, since a copy of a lower origin
 * sequence may still come later, from a re-send or a partner's share).
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
/* A batch's publish tag: this bit and its number (inbox sequences, the
 * tags of single events, stay below 2^53; the bridge's answers use bit 63). */
#define BATCH_TAG (UINT64_C(1) << 62)

/* A row read from the inbox, waiting for its turn to go to the cloud. */
struct held {
	uint64_t seq, origin_seq;
	char *type, *body;
	size_t len;
	uint64_t since_ms;
	uint64_t journaled_ms; /* for the forward latency */
};

/* What the forwarder knows of one source node (a record of `nodes`). */
struct node {
	uint64_t forwarded_max; /* highest origin sequence forwarded */
	struct held *held;	/* held[first..first+nheld), sorted by origin_seq */
	size_t first, nheld, capheld;
	bool active; /* on the active list */
	struct node *next_active;
};

/* A batch awaiting its PUBACK: the inbox rows it carries, and whose. */
struct flight {
	uint64_t tag;
	uint64_t *seqs;
	size_t n;
	char node[BRIDGE_NODE_MAX];
	uint64_t last_origin; /* the node's last sequence in it */
};

/* Lock: `stats_lock` guards `shown`; the loop thread owns everything else. */
struct bridge_forward {
	bridge_forward_deps d;
	char *root;
	uint64_t hole_wait_ms;
	bridge_remap *remap;
	es_journal_reader *reader;
	bridge_nodes *nodes;
	bool running;
	uint64_t cursor;      /* highest inbox sequence read */
	bool more;	      /* rows may wait beyond cursor */
	size_t rows, bytes;   /* held in memory */
	struct node *active;  /* nodes with held rows */
	uint64_t next_due_ms; /* a held row's wait ends */
	es_async *pump;	      /* one pump per batch of completions */
	struct node **heap;   /* drain_nodes' scratch */
	size_t capheap;
	es_seqset taken;   /* inbox sequences above cursor read to fill a hole */
	es_batch_enc *enc; /* cloud.format batch; NULL: events */
	es_batch_coding coding;
	uint64_t batch_no;	/* the last batch's number */
	struct flight *flights; /* batches in flight, oldest first */
	size_t nflights, capflights;
	bridge_forward_stats counts;
	pthread_mutex_t stats_lock;
	bridge_forward_stats shown;
};

static void show(bridge_forward *f)
{
	f->counts.held = f->rows;
	pthread_mutex_lock(&f->stats_lock);
	f->shown = f->counts;
	pthread_mutex_unlock(&f->stats_lock);
}

static const char *name_of(const struct node *x)
{
	return bridge_nodes_name(x);
}

static void drop_held(bridge_forward *f, struct node *x)
{
	for (size_t i = x->first; i < x->first + x->nheld; i++) {
		f->bytes -= x->held[i].len;
		free(x->held[i].type);
		free(x->held[i].body);
	}
	f->rows -= x->nheld;
	x->nheld = x->first = 0;
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
	f->more = true;
	pthread_mutex_init(&f->stats_lock, NULL);
	es_err err = bridge_remap_new(o->cloud_topic, &f->remap, why, sizeof why);
	if (err)
		es_error(TAG, "cloud.topic %s", why);
	else if (!(f->root = strdup(o->root)))
		err = ES_ENOMEM;
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
	free(x->held);
}

/* Forgets the batches in flight (their rows are read again). */
static void drop_flights(bridge_forward *f)
{
	for (size_t i = 0; i < f->nflights; i++)
		free(f->flights[i].seqs);
	f->nflights = 0;
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
	x->forwarded_max = 0;
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
	f->cursor = 0;
	es_seqset_clear(&f->taken);
	drop_flights(f);
	f->more = true;
	f->d.lost(f->d.ctx);
	show(f);
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

/* Inserts h into x's list, sorted by origin sequence (rows mostly arrive in
 * order, so this is nearly always an append). */
static bool hold(struct node *x, const struct held *h)
{
	if (x->first + x->nheld == x->capheld && x->first) {
		memmove(x->held, x->held + x->first, x->nheld * sizeof *h); /* compact */
		x->first = 0;
	}
	struct held *grown = es_grow(x->held, &x->capheld, x->nheld + 1, sizeof *grown, 16);
	if (!grown)
		return false;
	x->held = grown;
	size_t i = x->first + x->nheld;
	while (i > x->first && x->held[i - 1].origin_seq > h->origin_seq)
		i--;
	memmove(&x->held[i + 1], &x->held[i], (x->first + x->nheld - i) * sizeof *h);
	x->held[i] = *h;
	x->nheld++;
	return true;
}

/* Holds one row read from the inbox; x its node (NULL: none; out of memory). */
static bool take(bridge_forward *f, struct node *x, const es_journal_row *row)
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
	if (!hold(x, &h)) {
		free(h.type);
		free(h.body);
		return false;
	}
	activate(f, x);
	f->rows++;
	f->bytes += h.len;
	return true;
}

/* A row in inbox order. */
static int take_row(void *ctx, const es_journal_row *row)
{
	bridge_forward *f = ctx;
	if (es_seqset_pass(&f->taken, row->seq)) { /* read already, to fill a hole */
		f->cursor = row->seq;
		return 0;
	}
	if (f->rows >= HELD_MAX_ROWS || f->bytes >= HELD_MAX_BYTES)
		return 1;
	struct node *x = row->origin ? bridge_nodes_get(f->nodes, row->origin) : NULL;
	if (!take(f, x, row))
		return 1;
	f->cursor = row->seq;
	return 0;
}

struct fill_ctx {
	bridge_forward *f;
	struct node *x;
	size_t n;
};

/* A row of one node, read by origin sequence to fill a hole. */
static int take_fill(void *ctx, const es_journal_row *row)
{
	struct fill_ctx *c = ctx;
	if (row->seq <= c->f->cursor || es_seqset_has(&c->f->taken, row->seq))
		return 0; /* read already: held, or sent */
	if (es_seqset_reserve(&c->f->taken) || !take(c->f, c->x, row))
		return 1;
	(void)es_seqset_add(&c->f->taken, row->seq); /* room reserved, no bound */
	c->n++;
	return 0;
}

/* x's first row is above the next one due and the gap tracker says nothing
 * below it is missing: reads what is pending below it for x (the rows that
 * filled the hole). True when nothing is (it went before a restart, say):
 * then the first row is the next one after all. */
static bool fill_below(bridge_forward *f, struct node *x)
{
	uint64_t first = x->held[x->first].origin_seq;
	struct fill_ctx c = {f, x, 0};
	if (es_journal_read_origin(f->reader, name_of(x), x->forwarded_max + 1, first - 1,
				   READ_ROWS, take_fill, &c))
		return false;
	if (c.n == 0)
		x->forwarded_max = first - 1; /* all below went earlier */
	return true;
}

static void refill(bridge_forward *f)
{
	/* Only when a whole chunk fits: a query per freed row costs more than
	 * the row. */
	if (!f->more || f->rows + READ_ROWS > HELD_MAX_ROWS ||
	    f->bytes + HELD_MAX_BYTES / 8 > HELD_MAX_BYTES)
		return;
	uint64_t before = f->cursor;
	if (es_journal_read(f->reader, f->cursor + 1, UINT64_MAX, READ_ROWS, true, take_row, f))
		return;
	if (f->cursor == before)
		f->more = false; /* caught up: the next commit says when to look again */
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

/* Whether x's first row may go now: it is the next one, nothing below it is
 * missing and what filled the hole is in memory, or it has waited long
 * enough for the hole. */
static bool ready(bridge_forward *f, struct node *x, uint64_t now)
{
	const struct held *h = &x->held[x->first];
	if (h->origin_seq <= x->forwarded_max + 1)
		return true;
	if (h->origin_seq <= f->d.contiguous(f->d.ctx, name_of(x)) + 1 && fill_below(f, x))
		return true; /* the first row now is the next one due */
	h = &x->held[x->first];
	uint64_t due = h->since_ms + f->hole_wait_ms;
	if (now >= due)
		return true;
	if (!f->next_due_ms || due < f->next_due_ms)
		f->next_due_ms = due;
	return false;
}

static void pop(bridge_forward *f, struct node *x)
{
	f->bytes -= x->held[x->first].len;
	free(x->held[x->first].type);
	free(x->held[x->first].body);
	x->first = --x->nheld ? x->first + 1 : 0;
	f->rows--;
}

/* x's first row went: counted, timed, let go. */
static void went(bridge_forward *f, struct node *x)
{
	struct held *h = &x->held[x->first];
	if (h->origin_seq < x->forwarded_max)
		f->counts.out_of_order++;
	else
		x->forwarded_max = h->origin_seq;
	f->counts.forwarded++;
	f->d.sent(f->d.ctx, h->seq, h->journaled_ms);
	pop(f, x);
}

/* Publishes x's first row; false when the window or connection says stop. */
static bool send_first(bridge_forward *f, struct node *x)
{
	struct held *h = &x->held[x->first];
	char topic[ES_TOPIC_MAX];
	if (!cloud_topic(f, x, h->type, topic, sizeof topic)) {
		es_journal_dead_letter(f->d.journal, name_of(x), "cannot map to a cloud topic",
				       h->body, h->len);
		es_journal_ack(f->d.journal, h->seq); /* never forwardable: out of the way */
		f->counts.refused++;
		pop(f, x);
		return true;
	}
	es_err err = f->d.cloud->publish(f->d.cloud_ctx, topic, h->body, h->len, h->seq, NULL);
	if (err == ES_EBUSY || err == ES_ENOTCONN)
		return false;
	went(f, x);
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

/* Puts x's rows into the encoder from its first on, while each follows the
 * one before (a hole ends the batch: what is after it waits its turn) and
 * the caps take it; returns how many (0: the first alone passes a cap). */
static size_t fill_batch(bridge_forward *f, const struct node *x)
{
	size_t n = 0;
	uint64_t prev = 0;
	es_batch_enc_reset(f->enc);
	for (size_t i = x->first; i < x->first + x->nheld; i++) {
		const struct held *h = &x->held[i];
		if (n && h->origin_seq > prev + 1)
			break;
		if (es_batch_enc_add(f->enc, h->body, h->len))
			break; /* full (or this one alone too big: it goes as an event) */
		prev = h->origin_seq;
		n++;
	}
	return n;
}

static bool batch_topic(bridge_forward *f, const struct node *x, char *buf, size_t cap)
{
	const char *name = name_of(x);
	const char *slash = strchr(name, '/');
	char site[ES_TOPIC_ID_MAX + 1];
	if (!slash || (size_t)(slash - name) >= sizeof site)
		return false;
	memcpy(site, name, (size_t)(slash - name));
	site[slash - name] = '\0';
	return es_batch_topic(buf, cap, f->root, site, slash + 1, &f->coding) == ES_OK;
}

/* Publishes what of x may go now as one batch; false when the window or
 * connection says stop. What cannot be a batch (a row alone past the caps,
 * a compressor's failure, no memory) goes as an event. */
static bool send_batch(bridge_forward *f, struct node *x)
{
	char topic[ES_TOPIC_MAX];
	size_t n = fill_batch(f, x);
	const void *payload;
	size_t len;
	uint64_t *seqs = n ? malloc(n * sizeof *seqs) : NULL;
	if (!seqs || !flight_room(f) || !batch_topic(f, x, topic, sizeof topic) ||
	    es_batch_enc_finish(f->enc, &payload, &len)) {
		free(seqs);
		return send_first(f, x);
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
	struct flight *fl = &f->flights[f->nflights++];
	*fl = (struct flight){.tag = tag, .seqs = seqs, .n = n};
	snprintf(fl->node, sizeof fl->node, "%s", name_of(x));
	for (size_t i = 0; i < n; i++) {
		seqs[i] = x->held[x->first].seq;
		fl->last_origin = x->held[x->first].origin_seq;
		went(f, x);
	}
	f->counts.batches++;
	f->counts.batch_bytes += len;
	return true;
}

/* ---- which node goes next: a merge by inbox sequence ------------------------ */

static uint64_t key(const struct node *x)
{
	return x->held[x->first].seq;
}

static void sift_down(struct node **h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && key(h[l]) < key(h[m]))
			m = l;
		if (l + 1 < n && key(h[l + 1]) < key(h[m]))
			m = l + 1;
		if (m == i)
			return;
		struct node *t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static bool heap_push(bridge_forward *f, size_t *n, struct node *x)
{
	struct node **grown = es_grow(f->heap, &f->capheap, *n + 1, sizeof *grown, 64);
	if (!grown)
		return false;
	f->heap = grown;
	f->heap[(*n)++] = x;
	return true;
}

/* The ready nodes, as a min-heap on their first row's inbox sequence;
 * drops emptied nodes from the active list. false when out of memory. */
static bool build_heap(bridge_forward *f, uint64_t now, size_t *n)
{
	*n = 0;
	for (struct node **pp = &f->active; *pp;) {
		struct node *x = *pp;
		if (!x->nheld) {
			x->active = false;
			*pp = x->next_active;
			continue;
		}
		if (ready(f, x, now) && !heap_push(f, n, x))
			return false;
		pp = &x->next_active;
	}
	for (size_t i = *n / 2; i-- > 0;)
		sift_down(f->heap, *n, i);
	return true;
}

/* Sends while the window has room, always the ready node whose first row
 * came into the inbox first: the cloud gets the events in (about) the order
 * they arrived, no node waits behind another's backlog, and acks come in
 * inbox order, so the inbox's ack watermark keeps up (a crash then re-sends
 * little). */
static void drain_nodes(bridge_forward *f, uint64_t now)
{
	size_t n;
	if (!build_heap(f, now, &n))
		return;
	while (n && f->d.cloud->connected(f->d.cloud_ctx)) {
		struct node *x = f->heap[0];
		if (!(f->enc ? send_batch(f, x) : send_first(f, x)))
			return;
		if (!x->nheld || !ready(f, x, now))
			f->heap[0] = f->heap[--n];
		sift_down(f->heap, n, 0);
	}
}

static void pump(bridge_forward *f)
{
	const bridge_cloud_ops *c = f->d.cloud;
	f->next_due_ms = 0;
	for (int round = 0; round < 4 && c->connected(f->d.cloud_ctx); round++) {
		size_t before = f->rows;
		refill(f);
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
	show(f);
}

void bridge_forward_committed(bridge_forward *f)
{
	f->more = true;
	bridge_forward_pump(f);
}

void bridge_forward_epoch(bridge_forward *f, const char *node)
{
	struct node *x = bridge_nodes_find(f->nodes, node);
	if (x)
		x->forwarded_max = 0;
}

/* One row's PUBACK (or refusal). */
static void row_done(bridge_forward *f, uint64_t tag, es_err err)
{
	if (err == ES_EPROTO) {
		/* The cloud broker will never take it: keep it aside, move on. */
		f->counts.refused++;
		es_error(TAG, "the cloud broker refused inbox event %llu; kept as a dead letter",
			 (unsigned long long)tag);
		es_journal_dead_letter(f->d.journal, "cloud", "refused by the cloud broker", "", 0);
	} else {
		f->counts.acked++;
		f->d.acked(f->d.ctx, tag);
	}
	es_journal_ack(f->d.journal, tag);
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
	for (size_t k = 0; k < fl.n; k++)
		row_done(f, fl.seqs[k], err);
	free(fl.seqs);
	if (!err && f->d.batch_acked)
		f->d.batch_acked(f->d.ctx, fl.node, fl.last_origin);
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
		row_done(f, tag, err);
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
