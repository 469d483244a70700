/* intake.c - the edge side: messages from the edge brokers are sorted,
 * events checked, handed to the inbox thread, journaled there, and the
 * results handed back to the loop.
 *
 * Locks: `lock` guards queue..stop (the hand-off to the inbox thread and
 * back); `stats_lock` guards `shown`. The loop thread owns the rest.
 */
#include "intake.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "log.h"
#include "nodes.h"
#include "topic.h"

#define TAG   "intake"
#define BATCH 1000
/* Beyond this, events are let go and asked for again later. */
#define QUEUE_MAX_BYTES (64u * 1024u * 1024u)

/* An event on its way into the inbox. */
struct item {
	char *body;
	size_t len;
	char *id, *type, *subject;
	char origin[BRIDGE_NODE_MAX];
	uint64_t origin_seq;
	es_append_result res; /* filled by the inbox thread */
	struct item *next;
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

	bridge_intake_stats counts; /* the loop's */
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

static struct item *take(bridge_intake *in, size_t *n)
{
	struct item *first = in->queue, *last = NULL;
	*n = 0;
	for (struct item *it = first; it && *n < BATCH; it = it->next) {
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

static es_err journal_batch(bridge_intake *in, struct item *first, size_t n)
{
	es_journal_item *items = calloc(n, sizeof *items);
	es_append_result *res = calloc(n, sizeof *res);
	es_err err = items && res ? ES_OK : ES_ENOMEM;
	size_t i = 0;
	for (struct item *it = first; !err && it; it = it->next, i++)
		items[i] = (es_journal_item){.id = it->id,
					     .type = it->type,
					     .subject = it->subject,
					     .origin = it->origin,
					     .origin_seq = it->origin_seq,
					     .body = it->body,
					     .len = it->len};
	if (!err)
		err = es_journal_append_items(in->d.journal, items, n, res);
	i = 0;
	for (struct item *it = first; !err && it; it = it->next, i++)
		it->res = res[i];
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
		es_err err = journal_batch(in, batch, n);
		pthread_mutex_lock(&in->lock);
		hand_back(in, batch, err);
	}
	pthread_mutex_unlock(&in->lock);
	return NULL;
}

/* ---- back on the loop ---------------------------------------------------- */

static void report(bridge_intake *in, const struct item *it)
{
	bridge_stored s = {.node = it->origin,
			   .node_seq = it->origin_seq,
			   .seq = it->res.seq,
			   .duplicate = it->res.duplicate};
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
	    !d->peer || !d->stored || !d->batch_done || !out)
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
	    (o->peer_topic && !(in->peer_topic = strdup(o->peer_topic)))) {
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
	free(in->root);
	free(in->peer_topic);
	pthread_cond_destroy(&in->cond);
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_destroy(&in->stats_lock);
	free(in);
}

es_err bridge_intake_start(bridge_intake *in)
{
	if (in->started || in->stop)
		return ES_EINVAL;
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

static void take_event(bridge_intake *in, const char *topic, const char *node, const void *payload,
		       size_t len)
{
	es_event *ev;
	es_verr v;
	char why[sizeof v.field + sizeof v.reason + 32];
	if (es_event_decode(payload, len, in->event_max_bytes, &ev, &v)) {
		snprintf(why, sizeof why, "not a valid CloudEvent: %s%s%s", v.field,
			 v.field[0] ? ": " : "", v.reason);
		dead_letter(in, topic, why, payload, len);
		return;
	}
	if (es_event_seq(ev) == 0) {
		dead_letter(in, topic, "no sequence attribute: not from an edgespool node", payload,
			    len);
	} else {
		struct item *it = make_item(node, ev, payload, len);
		if (it)
			enqueue(in, it);
		else
			in->counts.overload++;
	}
	es_event_free(ev);
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
