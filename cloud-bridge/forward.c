/* forward.c - the cloud side: rows from the inbox go to the cloud broker
 * per source node in sequence order, within the inflight window, and are
 * marked forwarded on PUBACK.
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
 * when the inbox-order read comes to them (node.taken_upto).
 */
#include <stdlib.h>
#include <string.h>

#include "bridge_internal.h"
#include "log.h"

#define TAG	       "forward"
#define READ_ROWS      512
#define HELD_MAX_ROWS  4096
#define HELD_MAX_BYTES (4u * 1024u * 1024u)

/* ---- the node table ------------------------------------------------------ */

static size_t hash(const char *s)
{
	size_t h = 5381;
	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static bool grow_table(struct forward *f)
{
	size_t n = f->nbuckets ? f->nbuckets * 2 : 64;
	struct node **t = calloc(n, sizeof *t);
	if (!t)
		return false;
	for (size_t i = 0; i < f->nbuckets; i++) {
		for (struct node *x = f->table[i], *next; x; x = next) {
			next = x->next_hash;
			size_t h = hash(x->name) % n;
			x->next_hash = t[h];
			t[h] = x;
		}
	}
	free(f->table);
	f->table = t;
	f->nbuckets = n;
	return true;
}

struct node *forward_node(bridge *b, const char *name)
{
	struct forward *f = &b->fw;
	if (f->nbuckets) {
		for (struct node *x = f->table[hash(name) % f->nbuckets]; x; x = x->next_hash)
			if (strcmp(x->name, name) == 0)
				return x;
	}
	if ((f->nnodes + 1 > f->nbuckets && !grow_table(f)))
		return NULL;
	struct node *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	snprintf(x->name, sizeof x->name, "%s", name);
	size_t h = hash(name) % f->nbuckets;
	x->next_hash = f->table[h];
	f->table[h] = x;
	f->nnodes++;
	return x;
}

static void pump_async(void *arg);

es_err forward_init(bridge *b)
{
	memset(&b->fw, 0, sizeof b->fw);
	b->fw.more = true;
	if (!grow_table(&b->fw))
		return ES_ENOMEM;
	return es_async_new(b->loop, pump_async, b, &b->fw.pump);
}

static void drop_held(struct forward *f, struct node *x)
{
	for (size_t i = x->first; i < x->first + x->nheld; i++) {
		f->bytes -= x->held[i].len;
		free(x->held[i].type);
		free(x->held[i].body);
	}
	f->rows -= x->nheld;
	x->nheld = x->first = 0;
}

void forward_free(bridge *b)
{
	struct forward *f = &b->fw;
	for (size_t i = 0; i < f->nbuckets; i++) {
		for (struct node *x = f->table[i], *next; x; x = next) {
			next = x->next_hash;
			drop_held(f, x);
			free(x->held);
			free(x);
		}
	}
	free(f->table);
	free(f->heap);
	es_async_free(f->pump);
	memset(f, 0, sizeof *f);
}

/* The connection dropped: what was in flight is lost; read again from the
 * oldest unforwarded row. */
void forward_reset(bridge *b)
{
	struct forward *f = &b->fw;
	for (struct node *x = f->active; x; x = x->next_active) {
		drop_held(f, x);
		x->active = false;
	}
	/* What goes again now is a re-send, not an event out of order; all of
	 * it is read again in inbox order. */
	for (size_t i = 0; i < f->nbuckets; i++)
		for (struct node *x = f->table[i]; x; x = x->next_hash)
			x->forwarded_max = x->taken_upto = 0;
	f->active = NULL;
	f->rows = f->bytes = 0;
	f->cursor = 0;
	f->more = true;
	bridge_metrics_reset(b);
}

/* ---- reading the inbox --------------------------------------------------- */

static void activate(struct forward *f, struct node *x)
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
	if (x->nheld == x->capheld) {
		size_t cap = x->capheld ? x->capheld * 2 : 16;
		struct held *grown = realloc(x->held, cap * sizeof *grown);
		if (!grown)
			return false;
		x->held = grown;
		x->capheld = cap;
	}
	size_t i = x->first + x->nheld;
	while (i > x->first && x->held[i - 1].origin_seq > h->origin_seq)
		i--;
	memmove(&x->held[i + 1], &x->held[i], (x->first + x->nheld - i) * sizeof *h);
	x->held[i] = *h;
	x->nheld++;
	return true;
}

/* Holds one row read from the inbox; x its node (NULL: none; out of memory). */
static bool take(bridge *b, struct node *x, const es_journal_row *row)
{
	struct forward *f = &b->fw;
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
	bridge *b = ctx;
	struct forward *f = &b->fw;
	if (f->rows >= HELD_MAX_ROWS || f->bytes >= HELD_MAX_BYTES)
		return 1;
	struct node *x = row->origin ? forward_node(b, row->origin) : NULL;
	if (x && row->origin_seq <= x->taken_upto) {
		f->cursor = row->seq; /* read already, to fill a hole */
		return 0;
	}
	if (!take(b, x, row))
		return 1;
	f->cursor = row->seq;
	return 0;
}

struct fill_ctx {
	bridge *b;
	struct node *x;
	size_t n;
};

/* A row of one node, read by origin sequence to fill a hole. */
static int take_fill(void *ctx, const es_journal_row *row)
{
	struct fill_ctx *c = ctx;
	if (row->seq <= c->b->fw.cursor)
		return 0; /* read in inbox order already: held, or sent */
	if (!take(c->b, c->x, row))
		return 1;
	c->x->taken_upto = row->origin_seq;
	c->n++;
	return 0;
}

/* x's first row is above the next one due and the gap tracker says nothing
 * below it is missing: reads what is pending below it for x (the rows that
 * filled the hole). True when nothing is (it went before a restart, say):
 * then the first row is the next one after all. */
static bool fill_below(bridge *b, struct node *x)
{
	uint64_t first = x->held[x->first].origin_seq;
	struct fill_ctx c = {b, x, 0};
	if (es_journal_read_origin(b->reader, x->name, x->forwarded_max + 1, first - 1, READ_ROWS,
				   take_fill, &c))
		return false;
	if (c.n == 0)
		x->forwarded_max = first - 1; /* all below went earlier */
	return true;
}

static void refill(bridge *b)
{
	struct forward *f = &b->fw;
	/* Only when a whole chunk fits: a query per freed row costs more than
	 * the row. */
	if (!f->more || f->rows + READ_ROWS > HELD_MAX_ROWS ||
	    f->bytes + HELD_MAX_BYTES / 8 > HELD_MAX_BYTES)
		return;
	uint64_t before = f->cursor;
	if (es_journal_read(b->reader, f->cursor + 1, UINT64_MAX, READ_ROWS, true, take_row, b))
		return;
	if (f->cursor == before)
		f->more = false; /* caught up: the next commit says when to look again */
}

/* ---- publishing ------------------------------------------------------------ */

static bool cloud_topic(bridge *b, const struct node *x, const char *type, char *buf, size_t cap)
{
	const char *slash = strchr(x->name, '/');
	es_topic_parts p = {.site = x->name,
			    .site_len = (size_t)(slash - x->name),
			    .node = slash + 1,
			    .node_len = strlen(slash + 1),
			    .kind = "ev",
			    .kind_len = 2,
			    .rest = type,
			    .rest_len = strlen(type)};
	return slash && bridge_remap_apply(b->remap, b->s->edge_root, &p, buf, cap) == ES_OK;
}

/* Whether x's first row may go now: it is the next one, nothing below it is
 * missing and what filled the hole is in memory, or it has waited long
 * enough for the hole. */
static bool ready(bridge *b, struct node *x, uint64_t now)
{
	const struct held *h = &x->held[x->first];
	if (h->origin_seq <= x->forwarded_max + 1)
		return true;
	if (h->origin_seq <= es_gap_contiguous(b->gap, x->name) + 1 && fill_below(b, x))
		return true; /* the first row now is the next one due */
	h = &x->held[x->first];
	uint64_t due = h->since_ms + (uint64_t)b->s->order_hole_wait_ms;
	if (now >= due)
		return true;
	if (!b->fw.next_due_ms || due < b->fw.next_due_ms)
		b->fw.next_due_ms = due;
	return false;
}

static void pop(struct forward *f, struct node *x)
{
	f->bytes -= x->held[x->first].len;
	free(x->held[x->first].type);
	free(x->held[x->first].body);
	x->first = --x->nheld ? x->first + 1 : 0;
	f->rows--;
}

/* Publishes x's first row; false when the window or connection says stop. */
static bool send_first(bridge *b, struct node *x)
{
	struct held *h = &x->held[x->first];
	char topic[ES_TOPIC_MAX];
	if (!cloud_topic(b, x, h->type, topic, sizeof topic)) {
		es_journal_dead_letter(b->journal, x->name, "cannot map to a cloud topic", h->body,
				       h->len);
		es_journal_ack(b->journal, h->seq); /* never forwardable: out of the way */
		b->fw.refused++;
		pop(&b->fw, x);
		return true;
	}
	es_err err = es_mqtt_publish(b->cloud, topic, h->body, h->len, 1, false, h->seq);
	if (err == ES_EBUSY || err == ES_ENOTCONN)
		return false;
	if (h->origin_seq < x->forwarded_max)
		b->fw.out_of_order++;
	else
		x->forwarded_max = h->origin_seq;
	b->fw.forwarded++;
	bridge_metrics_forwarded(b, h->seq, h->journaled_ms);
	pop(&b->fw, x);
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

/* The ready nodes, as a min-heap on their first row's inbox sequence;
 * drops emptied nodes from the active list. false when out of memory. */
static bool build_heap(bridge *b, uint64_t now, size_t *n)
{
	struct forward *f = &b->fw;
	*n = 0;
	for (struct node **pp = &f->active; *pp;) {
		struct node *x = *pp;
		if (!x->nheld) {
			x->active = false;
			*pp = x->next_active;
			continue;
		}
		if (ready(b, x, now)) {
			if (*n == f->capheap) {
				size_t cap = f->capheap ? f->capheap * 2 : 64;
				struct node **grown = realloc(f->heap, cap * sizeof *grown);
				if (!grown)
					return false;
				f->heap = grown;
				f->capheap = cap;
			}
			f->heap[(*n)++] = x;
		}
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
static void drain_nodes(bridge *b, uint64_t now)
{
	struct forward *f = &b->fw;
	size_t n;
	if (!build_heap(b, now, &n))
		return;
	while (n && es_mqtt_is_connected(b->cloud)) {
		struct node *x = f->heap[0];
		if (!send_first(b, x))
			return;
		if (!x->nheld || !ready(b, x, now))
			f->heap[0] = f->heap[--n];
		sift_down(f->heap, n, 0);
	}
}

void forward_pump(bridge *b)
{
	if (b->phase != B_RUNNING && b->phase != B_DRAINING)
		return;
	uint64_t now = es_clock_mono_ms();
	b->fw.next_due_ms = 0;
	for (int round = 0; round < 4 && es_mqtt_is_connected(b->cloud); round++) {
		size_t before = b->fw.rows;
		refill(b);
		drain_nodes(b, now);
		if (b->fw.rows == before && !b->fw.more)
			break;
		if (es_mqtt_inflight(b->cloud) >= es_mqtt_window(b->cloud))
			break;
	}
}

void forward_published(bridge *b, uint64_t tag, es_err err)
{
	if (err == ES_ENOTCONN) {
		forward_reset(b); /* lost with the connection: sent again */
		return;
	}
	if (err == ES_EPROTO) {
		/* The cloud broker will never take it: keep it aside, move on. */
		b->fw.refused++;
		es_error(TAG, "the cloud broker refused inbox event %llu; kept as a dead letter",
			 (unsigned long long)tag);
		es_journal_dead_letter(b->journal, "cloud", "refused by the cloud broker", "", 0);
	} else {
		b->fw.acked++;
		bridge_metrics_acked(b, tag);
	}
	es_journal_ack(b->journal, tag);
	es_async_send(b->fw.pump); /* after the whole batch of PUBACKs */
}

static void pump_async(void *arg)
{
	forward_pump(arg);
}
