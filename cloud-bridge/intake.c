/* intake.c - the edge side: messages from the edge brokers are sorted,
 * events checked, handed to the inbox thread, journaled there, and the
 * results handed back to the loop.
 *
 * Conflicts (intake.h) are looked for on the inbox thread, only for events
 * the loop marked `check`: a sequence the tracker has seen in the node's
 * epoch, or one at or below the highest the loop has queued for the node in
 * this epoch (`top`: two copies in flight at once). Such an event is
 * compared with the earlier events of its batch and with the inbox's rows of
 * the node's sequence after the epoch's start; batches are journaled in
 * order, so everything queued before is in the inbox by then. A new epoch
 * travels through the queue as a mark, so it takes effect between the
 * events that came before and after it; a mark starts a batch.
 *
 * Locks: `lock` guards queue..stop (the hand-off to the inbox thread and
 * back); `stats_lock` guards `shown`. The loop thread owns `counts` and
 * `tops`; the inbox thread owns `epochs` and `reader` once started.
 */
#include "intake.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "control.h"
#include "event.h"
#include "log.h"
#include "lograte.h"
#include "nodes.h"
#include "topic.h"

#define TAG   "intake"
#define BATCH 1000
/* Beyond this, events are let go and asked for again later. */
#define QUEUE_MAX_BYTES (64u * 1024u * 1024u)

/* An event on its way into the inbox, or (mark) a node's new epoch. */
struct item {
	char *body;
	size_t len;
	char *id, *type, *subject;
	char origin[BRIDGE_NODE_MAX];
	uint64_t origin_seq;
	bool check;	      /* look for a conflict before journaling it */
	bool mark, fresh;     /* an epoch mark (see bridge_intake_epoch) */
	uint32_t epoch;	      /* mark: the epoch */
	uint32_t gen;	      /* event: its node's `fresh` count when admitted */
	bool conflict;	      /* the inbox thread kept it aside */
	es_append_result res; /* filled by the inbox thread */
	struct item *next;
};

/* The loop's record of a node: the highest sequence queued this epoch, and
 * how many fresh epochs it began while this bridge ran. */
struct top {
	uint64_t seq;
	uint32_t fresh;
};

/* The inbox thread's record of a node: its epoch and where it began. */
struct epoch {
	uint32_t epoch;	   /* 0: none known (all rows are the first epoch's) */
	uint64_t boundary; /* rows with an inbox seq above it are this epoch's */
};

struct bridge_intake {
	bridge_intake_deps d;
	char *root, *peer_topic;
	size_t event_max_bytes;
	es_async *async;
	pthread_t thread;
	bool started;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct item *queue, *queue_tail; /* waiting to be journaled */
	size_t bytes;
	struct item *done, *done_tail; /* journaled (or failed), for the loop */
	es_err last_err;
	bool stop;

	bridge_intake_stats counts;   /* the loop's */
	es_lograte lograte;	      /* the loop's: dead letters, a few lines a second */
	es_lograte conflicts_lograte; /* the loop's: conflicts, the same */
	bridge_nodes *tops;	      /* the loop's: struct top */
	bridge_nodes *epochs;	      /* the inbox thread's: struct epoch */
	es_journal_reader *reader;    /* the inbox thread's */
	pthread_mutex_t stats_lock;
	bridge_intake_stats shown;
};

static void show(bridge_intake *in)
{
	pthread_mutex_lock(&in->stats_lock);
	in->shown = in->counts;
	pthread_mutex_unlock(&in->stats_lock);
}

static void free_item(struct item *it)
{
	free(it->body);
	free(it->id);
	free(it->type);
	free(it->subject);
	free(it);
}

static void free_chain(struct item *it)
{
	while (it) {
		struct item *next = it->next;
		free_item(it);
		it = next;
	}
}

/* ---- the inbox thread ---------------------------------------------------- */

/* Up to BATCH items; marks only at the front of a batch. */
static struct item *take(bridge_intake *in, size_t *n)
{
	struct item *first = in->queue, *last = NULL;
	bool events = false;
	*n = 0;
	for (struct item *it = first; it && *n < BATCH && !(it->mark && events); it = it->next) {
		events = !it->mark;
		last = it;
		(*n)++;
		in->bytes -= it->len;
	}
	in->queue = last ? last->next : NULL;
	if (!in->queue)
		in->queue_tail = NULL;
	if (last)
		last->next = NULL;
	return first;
}

/* ---- epochs and conflicts (inbox thread) ------------------------------------ */

static void save_epoch(bridge_intake *in, const char *node, const struct epoch *e)
{
	char key[sizeof BRIDGE_EPOCH_KEY + BRIDGE_NODE_MAX], value[48];
	snprintf(key, sizeof key, BRIDGE_EPOCH_KEY "%s", node);
	int n = snprintf(value, sizeof value, "%" PRIu32 " %" PRIu64, e->epoch, e->boundary);
	if (es_journal_put(in->d.journal, key, value, (size_t)n))
		es_error(TAG, "cannot keep where %s's epoch %" PRIu32 " began", node, e->epoch);
}

/* A mark: the node's epoch begins after every row journaled so far (a
 * fresh one always; at start only one the inbox does not know yet). */
static void take_mark(bridge_intake *in, const struct item *m)
{
	struct epoch *e = bridge_nodes_get(in->epochs, m->origin);
	if (!e || (!m->fresh && m->epoch <= (e->epoch ? e->epoch : 1)))
		return;
	es_journal_counters c;
	es_journal_counters_get(in->d.journal, &c);
	e->epoch = m->epoch > e->epoch ? m->epoch : e->epoch + 1;
	e->boundary = c.latest_seq;
	save_epoch(in, m->origin, e);
	es_info(TAG, "%s: epoch %" PRIu32 " begins after inbox row %" PRIu64, m->origin, e->epoch,
		e->boundary);
}

struct found {
	char id[ES_EVENT_ID_MAX + 1];
	bool any;
};

static int found_row(void *ctx, const es_journal_row *row)
{
	struct found *f = ctx;
	snprintf(f->id, sizeof f->id, "%s", row->id);
	f->any = true;
	return 1;
}

/* The id already held for its node and sequence in this epoch: an earlier
 * event of the batch, else the inbox's row. */
static bool held_id(bridge_intake *in, const struct item *batch, const struct item *it,
		    struct found *f)
{
	f->any = false;
	for (const struct item *b = batch; b != it; b = b->next) {
		if (!b->mark && !b->conflict && b->origin_seq == it->origin_seq &&
		    strcmp(b->origin, it->origin) == 0) {
			snprintf(f->id, sizeof f->id, "%s", b->id);
			return f->any = true;
		}
	}
	const struct epoch *e = bridge_nodes_find(in->epochs, it->origin);
	if (in->reader && es_journal_find_origin(in->reader, it->origin, it->origin_seq,
						 e ? e->boundary : 0, 1, found_row, f))
		es_warn(TAG, "cannot look for a conflict of %s %" PRIu64, it->origin,
			it->origin_seq);
	return f->any;
}

/* Keeps a second id for a stored sequence aside, naming both. */
static void keep_conflict(bridge_intake *in, struct item *it, const char *held)
{
	char topic[ES_TOPIC_MAX], why[BRIDGE_NODE_MAX + 2 * ES_EVENT_ID_MAX + 96];
	snprintf(topic, sizeof topic, "%s/%s/ev/%s", in->root, it->origin, it->type);
	snprintf(why, sizeof why,
		 "conflict: %s sequence %" PRIu64 " is held as id %s; this event is id %s",
		 it->origin, it->origin_seq, held, it->id);
	it->conflict = true;
	if (es_journal_dead_letter(in->d.journal, topic, why, it->body, it->len))
		es_error(TAG, "could not keep the conflicting event %s", it->id);
}

/* Marks, then conflicts: what is left is journaled. */
static size_t sort_batch(bridge_intake *in, struct item *batch)
{
	size_t n = 0;
	struct found f;
	for (struct item *it = batch; it; it = it->next) {
		if (it->mark)
			take_mark(in, it);
		else if (it->check && held_id(in, batch, it, &f) && strcmp(f.id, it->id) != 0)
			keep_conflict(in, it, f.id);
		else
			n++;
	}
	return n;
}

static es_err journal_batch(bridge_intake *in, struct item *first)
{
	size_t n = sort_batch(in, first), i = 0;
	if (n == 0)
		return ES_OK;
	es_journal_item *items = calloc(n, sizeof *items);
	es_append_result *res = calloc(n, sizeof *res);
	es_err err = items && res ? ES_OK : ES_ENOMEM;
	for (struct item *it = first; !err && it; it = it->next) {
		if (!it->mark && !it->conflict)
			items[i++] = (es_journal_item){.id = it->id,
						       .type = it->type,
						       .subject = it->subject,
						       .origin = it->origin,
						       .origin_seq = it->origin_seq,
						       .body = it->body,
						       .len = it->len};
	}
	if (!err)
		err = es_journal_append_items(in->d.journal, items, n, res);
	i = 0;
	for (struct item *it = first; !err && it; it = it->next) {
		if (!it->mark && !it->conflict)
			it->res = res[i++];
	}
	free(items);
	free(res);
	return err;
}

/* Appends a journaled batch to the done list and wakes the loop. */
static void hand_back(bridge_intake *in, struct item *batch, es_err err)
{
	if (err)
		in->last_err = err; /* nothing of the batch stored: holes, asked for later */
	for (struct item *it = batch; it; it = it->next)
		it->res.seq = err ? 0 : it->res.seq;
	if (in->done_tail)
		in->done_tail->next = batch;
	else
		in->done = batch;
	while (batch->next)
		batch = batch->next;
	in->done_tail = batch;
	es_async_send(in->async);
}

static void *inbox_main(void *arg)
{
	bridge_intake *in = arg;
	pthread_mutex_lock(&in->lock);
	for (;;) {
		while (!in->queue && !in->stop)
			pthread_cond_wait(&in->cond, &in->lock);
		if (!in->queue)
			break;
		size_t n;
		struct item *batch = take(in, &n);
		pthread_mutex_unlock(&in->lock);
		es_err err = journal_batch(in, batch);
		pthread_mutex_lock(&in->lock);
		hand_back(in, batch, err);
	}
	pthread_mutex_unlock(&in->lock);
	return NULL;
}

/* ---- back on the loop ---------------------------------------------------- */

static void report(bridge_intake *in, const struct item *it)
{
	if (it->mark)
		return;
	if (it->conflict) {
		in->counts.conflicts++;
		in->counts.invalid++;
		if (es_lograte_line(&in->conflicts_lograte, TAG, "conflicts"))
			es_error(TAG,
				 "%s sequence %" PRIu64
				 ": a second id (%s); kept aside as a dead letter",
				 it->origin, it->origin_seq, it->id);
		return;
	}
	const struct top *t = bridge_nodes_find(in->tops, it->origin);
	bridge_stored s = {.node = it->origin,
			   .node_seq = it->origin_seq,
			   .seq = it->res.seq,
			   .duplicate = it->res.duplicate,
			   .earlier_epoch = t && t->fresh != it->gen};
	if (s.duplicate)
		in->counts.duplicates++;
	if (s.duplicate || s.seq)
		in->d.stored(in->d.ctx, &s);
}

static void on_journaled(void *arg)
{
	bridge_intake *in = arg;
	pthread_mutex_lock(&in->lock);
	struct item *done = in->done;
	es_err err = in->last_err;
	in->done = in->done_tail = NULL;
	in->last_err = ES_OK;
	pthread_mutex_unlock(&in->lock);
	if (err) {
		in->counts.errors++;
		es_error(TAG, "the inbox refused a batch (%s); its events will be asked for again",
			 es_strerror(err));
	}
	for (struct item *it = done; it; it = it->next)
		report(in, it);
	free_chain(done);
	show(in);
	in->d.batch_done(in->d.ctx);
}

/* ---- life ------------------------------------------------------------------ */

es_err bridge_intake_new(const bridge_intake_opts *o, const bridge_intake_deps *d,
			 bridge_intake **out)
{
	if (!o || !o->root || !d || !d->loop || !d->journal || !d->status || !d->reply ||
	    !d->peer || !d->admit || !d->stored || !d->batch_done || !out)
		return ES_EINVAL;
	bridge_intake *in = calloc(1, sizeof *in);
	if (!in)
		return ES_ENOMEM;
	in->d = *d;
	in->event_max_bytes = o->event_max_bytes;
	pthread_mutex_init(&in->lock, NULL);
	pthread_mutex_init(&in->stats_lock, NULL);
	pthread_cond_init(&in->cond, NULL);
	if (!(in->root = strdup(o->root)) ||
	    (o->peer_topic && !(in->peer_topic = strdup(o->peer_topic))) ||
	    bridge_nodes_new(sizeof(struct top), &in->tops) ||
	    bridge_nodes_new(sizeof(struct epoch), &in->epochs)) {
		bridge_intake_free(in);
		return ES_ENOMEM;
	}
	*out = in;
	return ES_OK;
}

void bridge_intake_free(bridge_intake *in)
{
	if (!in)
		return;
	bridge_intake_stop(in);
	free_chain(in->queue);
	es_async_free(in->async);
	es_journal_reader_free(in->reader);
	bridge_nodes_free(in->tops, NULL, NULL);
	bridge_nodes_free(in->epochs, NULL, NULL);
	free(in->root);
	free(in->peer_topic);
	pthread_cond_destroy(&in->cond);
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_destroy(&in->stats_lock);
	free(in);
}

bool bridge_epoch_parse(const void *value, size_t len, uint32_t *epoch, uint64_t *boundary)
{
	char text[48];
	snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text ? len : sizeof text - 1),
		 (const char *)value);
	unsigned long long e, b;
	if (sscanf(text, "%llu %llu", &e, &b) != 2 || e > UINT32_MAX)
		return false;
	*epoch = (uint32_t)e;
	*boundary = b;
	return true;
}

/* Where each node's epoch began (BRIDGE_EPOCH_KEY records). */
static int load_epoch(void *ctx, const char *key, const void *value, size_t len)
{
	bridge_intake *in = ctx;
	struct epoch *e = bridge_nodes_get(in->epochs, key + strlen(BRIDGE_EPOCH_KEY));
	if (e)
		(void)bridge_epoch_parse(value, len, &e->epoch, &e->boundary);
	return 0;
}

es_err bridge_intake_start(bridge_intake *in)
{
	if (in->started || in->stop)
		return ES_EINVAL;
	/* The inbox thread's reader, made here (before the thread, which alone
	 * uses it from then on) so that a failure is the start's. */
	es_err rerr = es_journal_reader_new(in->d.journal, &in->reader);
	if (rerr || (rerr = es_journal_scan(in->reader, BRIDGE_EPOCH_KEY, load_epoch, in)))
		return rerr;
	/* Made here, last of the loop's asyncs, so the loop takes the inbox's
	 * results before the links' news in each turn (asyncs run newest
	 * first): the commits reach repair and forward as early as can be. */
	es_err err = es_async_new(in->d.loop, on_journaled, in, &in->async);
	if (err)
		return err;
	if (pthread_create(&in->thread, NULL, inbox_main, in) != 0)
		return ES_ESYS;
	in->started = true;
	return ES_OK;
}

void bridge_intake_stop(bridge_intake *in)
{
	if (!in->started)
		return;
	pthread_mutex_lock(&in->lock);
	in->stop = true;
	pthread_cond_signal(&in->cond);
	pthread_mutex_unlock(&in->lock);
	pthread_join(in->thread, NULL);
	in->started = false;
	on_journaled(in);
}

void bridge_intake_stats_get(bridge_intake *in, bridge_intake_stats *out)
{
	pthread_mutex_lock(&in->stats_lock);
	*out = in->shown;
	pthread_mutex_unlock(&in->stats_lock);
}

/* ---- from the edge brokers ----------------------------------------------- */

/* Keeps a payload that cannot be forwarded, with why; counted and logged. */
static void dead_letter(bridge_intake *in, const char *topic, const char *why, const void *payload,
			size_t len)
{
	in->counts.invalid++;
	if (es_lograte_line(&in->lograte, TAG, "dead letters"))
		es_warn(TAG, "not forwarded, kept as a dead letter: %s: %s", topic, why);
	if (es_journal_dead_letter(in->d.journal, topic, why, payload, len))
		es_error(TAG, "could not keep the dead letter from %s", topic);
}

static bool dup_str(char **dst, const char *src)
{
	return !src || (*dst = strdup(src)) != NULL;
}

/* An item for a valid event; NULL when out of memory. */
static struct item *make_item(const char *node, const es_event *ev, const void *payload, size_t len)
{
	struct item *it = calloc(1, sizeof *it);
	if (!it)
		return NULL;
	snprintf(it->origin, sizeof it->origin, "%s", node);
	it->origin_seq = es_event_seq(ev);
	it->len = len;
	if (!(it->body = malloc(len)) || !dup_str(&it->id, es_event_id(ev)) ||
	    !dup_str(&it->type, es_event_type(ev)) ||
	    !dup_str(&it->subject, es_event_subject(ev))) {
		free_item(it);
		return NULL;
	}
	memcpy(it->body, payload, len);
	return it;
}

/* Queues it for the inbox thread; too much queued lets it go (a hole the
 * gap tracker will have re-sent). */
static void enqueue(bridge_intake *in, struct item *it)
{
	pthread_mutex_lock(&in->lock);
	bool full = in->bytes + it->len > QUEUE_MAX_BYTES;
	if (!full) {
		if (in->queue_tail)
			in->queue_tail->next = it;
		else
			in->queue = it;
		in->queue_tail = it;
		in->bytes += it->len;
		pthread_cond_signal(&in->cond);
	}
	pthread_mutex_unlock(&in->lock);
	if (full) {
		in->counts.overload++;
		free_item(it);
	}
}

/* Why an event cannot be node's by its form (true, and why), or false. */
static bool not_nodes(const char *node, const es_event *ev, char *why, size_t cap)
{
	const char *src = es_event_source(ev);
	uint64_t seq = es_event_seq(ev);
	if (seq == 0) {
		snprintf(why, cap, "no sequence attribute: not from an edgespool node");
		return true;
	}
	if (seq > ES_CONTROL_SEQ_MAX) {
		snprintf(why, cap, "sequence %" PRIu64 " above 2^53-1: no node sends one", seq);
		return true;
	}
	if (!src || src[0] != '/' || strcmp(src + 1, node) != 0) {
		snprintf(why, cap, "source '%.100s' is not the topic's node /%s", src ? src : "",
			 node);
		return true;
	}
	return false;
}

/* Queues an event the tracker admitted, marked for a conflict check when
 * its sequence may be held already (the tracker saw it, or one as high is
 * in flight). */
static void take_valid(bridge_intake *in, const char *node, const es_event *ev, bool seen,
		       const void *payload, size_t len)
{
	uint64_t seq = es_event_seq(ev);
	struct top *t = bridge_nodes_get(in->tops, node);
	struct item *it = t ? make_item(node, ev, payload, len) : NULL;
	if (!it) {
		in->counts.overload++; /* out of memory: a hole, asked for again */
		return;
	}
	it->check = seen || seq <= t->seq;
	it->gen = t->fresh;
	t->seq = seq > t->seq ? seq : t->seq;
	enqueue(in, it);
}

/* A decoded event (text payload[0..len)) that came on topic: the node's,
 * and admitted by the tracker, or a dead letter. */
static void take_decoded(bridge_intake *in, const char *topic, const char *node, const es_event *ev,
			 const void *payload, size_t len)
{
	char whynot[200];
	bridge_admit a = BRIDGE_ADMIT_REFUSE;
	if (!not_nodes(node, ev, whynot, sizeof whynot))
		a = in->d.admit(in->d.ctx, node, es_event_seq(ev), whynot, sizeof whynot);
	if (a == BRIDGE_ADMIT_REFUSE)
		dead_letter(in, topic, whynot, payload, len);
	else
		take_valid(in, node, ev, a == BRIDGE_ADMIT_SEEN, payload, len);
}

/* What failed to decode as a CloudEvent is a dead letter saying why. */
static void not_an_event(bridge_intake *in, const char *topic, const es_verr *v,
			 const void *payload, size_t len)
{
	char why[sizeof v->field + sizeof v->reason + 32];
	snprintf(why, sizeof why, "not a valid CloudEvent: %s%s%s", v->field,
		 v->field[0] ? ": " : "", v->reason);
	dead_letter(in, topic, why, payload, len);
}

static void take_event(bridge_intake *in, const char *topic, const char *node, const void *payload,
		       size_t len)
{
	es_event *ev;
	es_verr v;
	if (es_event_decode(payload, len, in->event_max_bytes, &ev, &v)) {
		not_an_event(in, topic, &v, payload, len);
		return;
	}
	take_decoded(in, topic, node, ev, payload, len);
	es_event_free(ev);
}

/* A batch (batch.h): each of its events is taken as if it came alone. A
 * batch that cannot be read (bad compression, truncated, not a JSON array,
 * past the limits) is kept whole as a dead letter; a bad event inside a
 * readable batch is kept alone, and the others go on. */
static void take_batch(bridge_intake *in, const char *topic, const char *node, const void *payload,
		       size_t len)
{
	es_batch_limits lim = {.event_max_bytes = in->event_max_bytes};
	es_batch *b = NULL;
	char why[300];
	es_err err = es_batch_read(topic, '/', NULL, payload, len, &lim, &b, why, sizeof why);
	if (err || !b) {
		char reason[sizeof why + 32];
		snprintf(reason, sizeof reason, "a batch that cannot be read: %s",
			 err ? why : "its topic names no coding");
		dead_letter(in, topic, reason, payload, len);
		return;
	}
	in->counts.batches++;
	for (size_t i = 0; i < es_batch_count(b); i++) {
		size_t n;
		const char *json = es_batch_json(b, i, &n);
		es_event *ev;
		es_verr v;
		if (es_batch_event_decode(b, i, &ev, &v)) {
			not_an_event(in, topic, &v, json, n);
			continue;
		}
		take_decoded(in, topic, node, ev, json, n);
		es_event_free(ev);
	}
	es_batch_free(b);
}

static bool is_kind(const es_topic_parts *p, const char *kind, const char *rest)
{
	size_t k = strlen(kind);
	if (p->kind_len != k || memcmp(p->kind, kind, k) != 0)
		return false;
	if (!rest)
		return true;
	return p->rest_len == strlen(rest) && memcmp(p->rest, rest, p->rest_len) == 0;
}

/* A message on <root>/<site>/<node>/<kind>..., node being "site/node". */
static void sort(bridge_intake *in, const char *topic, const es_topic_parts *p, const char *node,
		 const void *payload, size_t len)
{
	if (is_kind(p, "ev", NULL) && p->rest_len)
		take_event(in, topic, node, payload, len);
	else if (is_kind(p, ES_BATCH_KIND, NULL) && p->rest_len)
		take_batch(in, topic, node, payload, len);
	else if (is_kind(p, "status", NULL))
		in->d.status(in->d.ctx, node, payload, len);
	else if (is_kind(p, "reply", "resend"))
		in->d.reply(in->d.ctx, node, payload, len);
	else
		dead_letter(in, topic, "unexpected topic kind", payload, len);
}

void bridge_intake_message(bridge_intake *in, const char *topic, const void *payload, size_t len)
{
	es_topic_parts p;
	char node[BRIDGE_NODE_MAX];
	in->counts.received++;
	if (in->peer_topic && strcmp(topic, in->peer_topic) == 0)
		in->d.peer(in->d.ctx, payload, len);
	else if (es_topic_split(topic, in->root, &p) ||
		 (size_t)snprintf(node, sizeof node, "%.*s/%.*s", (int)p.site_len, p.site,
				  (int)p.node_len, p.node) >= sizeof node)
		dead_letter(in, topic, "topic outside <root>/<site>/<node>/...", payload, len);
	else
		sort(in, topic, &p, node, payload, len);
	show(in);
}

void bridge_intake_oversized(bridge_intake *in, const char *topic, size_t len)
{
	char why[120];
	in->counts.received++;
	snprintf(why, sizeof why,
		 "message of %zu bytes, larger than event.max_bytes (%zu): not read", len,
		 in->event_max_bytes);
	dead_letter(in, topic, why, "", 0);
	show(in);
}

void bridge_intake_epoch(bridge_intake *in, const char *node, uint32_t epoch, bool fresh)
{
	struct top *t = bridge_nodes_get(in->tops, node);
	struct item *m = calloc(1, sizeof *m);
	if (!t || !m) {
		free(m);
		es_error(TAG, "out of memory marking %s's epoch %" PRIu32, node, epoch);
		return;
	}
	if (fresh) {
		t->seq = 0;
		t->fresh++;
	}
	snprintf(m->origin, sizeof m->origin, "%s", node);
	m->mark = true;
	m->fresh = fresh;
	m->epoch = epoch;
	pthread_mutex_lock(&in->lock);
	if (in->queue_tail)
		in->queue_tail->next = m;
	else
		in->queue = m;
	in->queue_tail = m;
	pthread_cond_signal(&in->cond);
	pthread_mutex_unlock(&in->lock);
}
