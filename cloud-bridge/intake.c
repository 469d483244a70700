/* intake.c - the edge side: events from the edge brokers are checked,
 * handed to the inbox thread, journaled there (blocking on the group commit
 * is fine on that thread, never on the loop), and handed back to the loop.
 *
 * paho acknowledges an incoming QoS 1 message before we have stored it; what
 * is lost between that PUBACK and our commit (a crash, an overload) shows as
 * a hole to the gap tracker, which asks the agent for it again.
 */
#include <stdlib.h>
#include <string.h>

#include "bridge_internal.h"
#include "event.h"
#include "log.h"

#define TAG   "intake"
#define BATCH 1000
/* Beyond this, events are let go and asked for again later. */
#define QUEUE_MAX_BYTES (64u * 1024u * 1024u)

static void free_item(struct item *it)
{
	free(it->topic);
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

static struct item *take(struct intake *in, size_t *n)
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
	in->nqueue -= *n;
	return first;
}

static es_err journal_batch(bridge *b, struct item *first, size_t n)
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
		err = es_journal_append_items(b->journal, items, n, res);
	i = 0;
	for (struct item *it = first; !err && it; it = it->next, i++)
		it->res = res[i];
	free(items);
	free(res);
	return err;
}

static void *inbox_main(void *arg)
{
	bridge *b = arg;
	struct intake *in = &b->in;
	pthread_mutex_lock(&in->lock);
	for (;;) {
		while (!in->queue && !in->stop)
			pthread_cond_wait(&in->cond, &in->lock);
		if (!in->queue)
			break;
		size_t n;
		struct item *batch = take(in, &n);
		pthread_mutex_unlock(&in->lock);
		es_err err = journal_batch(b, batch, n);
		pthread_mutex_lock(&in->lock);
		if (err)
			in->last_err =
				err; /* nothing of the batch stored: holes, asked for later */
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
	pthread_mutex_unlock(&in->lock);
	return NULL;
}

/* ---- back on the loop ---------------------------------------------------- */

static void on_journaled(void *arg)
{
	bridge *b = arg;
	struct intake *in = &b->in;
	pthread_mutex_lock(&in->lock);
	struct item *done = in->done;
	es_err err = in->last_err;
	in->done = in->done_tail = NULL;
	in->last_err = ES_OK;
	pthread_mutex_unlock(&in->lock);
	if (err) {
		b->inbox_errors++;
		es_error(TAG, "the inbox refused a batch (%s); its events will be asked for again",
			 es_strerror(err));
	}
	for (struct item *it = done; it; it = it->next) {
		if (it->res.duplicate) {
			b->duplicates++;
			repair_duplicate(b, it);
		} else if (it->res.seq)
			repair_committed(b, it);
	}
	free_chain(done);
	b->fw.more = true;
	forward_pump(b);
}

es_err intake_start(bridge *b)
{
	struct intake *in = &b->in;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cond, NULL);
	es_err err = es_async_new(b->loop, on_journaled, b, &in->async);
	if (err)
		return err;
	if (pthread_create(&in->thread, NULL, inbox_main, b) != 0)
		return ES_ESYS;
	in->started = true;
	return ES_OK;
}

/* Journals what is queued, stops the thread, hands back the last results. */
void intake_stop(bridge *b)
{
	struct intake *in = &b->in;
	if (!in->started)
		return;
	pthread_mutex_lock(&in->lock);
	in->stop = true;
	pthread_cond_signal(&in->cond);
	pthread_mutex_unlock(&in->lock);
	pthread_join(in->thread, NULL);
	in->started = false;
	on_journaled(b);
}

/* ---- from the edge brokers ----------------------------------------------- */

/* Keeps a payload that cannot be forwarded, with why; counted and logged. */
static void dead_letter(bridge *b, const char *topic, const char *why, const void *payload,
			size_t len)
{
	b->invalid++;
	es_warn(TAG, "not forwarded, kept as a dead letter: %s: %s", topic, why);
	if (es_journal_dead_letter(b->journal, topic, why, payload, len))
		es_error(TAG, "could not keep the dead letter from %s", topic);
}

static bool dup_str(char **dst, const char *src)
{
	return !src || (*dst = strdup(src)) != NULL;
}

/* An item for a valid event; NULL when out of memory. */
static struct item *make_item(const char *topic, const char *key, const es_event *ev,
			      const void *payload, size_t len, size_t link)
{
	struct item *it = calloc(1, sizeof *it);
	if (!it)
		return NULL;
	snprintf(it->origin, sizeof it->origin, "%s", key);
	it->origin_seq = es_event_seq(ev);
	it->link = link;
	it->len = len;
	if (!dup_str(&it->topic, topic) || !(it->body = malloc(len)) ||
	    !dup_str(&it->id, es_event_id(ev)) || !dup_str(&it->type, es_event_type(ev)) ||
	    !dup_str(&it->subject, es_event_subject(ev))) {
		free_item(it);
		return NULL;
	}
	memcpy(it->body, payload, len);
	return it;
}

/* Queues it for the inbox thread; too much queued lets it go (a hole the
 * gap tracker will have re-sent). */
static void enqueue(bridge *b, struct item *it)
{
	struct intake *in = &b->in;
	pthread_mutex_lock(&in->lock);
	bool full = in->bytes + it->len > QUEUE_MAX_BYTES;
	if (!full) {
		if (in->queue_tail)
			in->queue_tail->next = it;
		else
			in->queue = it;
		in->queue_tail = it;
		in->nqueue++;
		in->bytes += it->len;
		pthread_cond_signal(&in->cond);
	}
	pthread_mutex_unlock(&in->lock);
	if (full) {
		b->overload++;
		free_item(it);
	}
}

static void take_event(bridge *b, size_t link, const char *topic, const char *key,
		       const void *payload, size_t len)
{
	es_event *ev;
	es_verr v;
	char why[sizeof v.field + sizeof v.reason + 32];
	if (es_event_decode(payload, len, (size_t)b->s->event_max_bytes, &ev, &v)) {
		snprintf(why, sizeof why, "not a valid CloudEvent: %s%s%s", v.field,
			 v.field[0] ? ": " : "", v.reason);
		dead_letter(b, topic, why, payload, len);
		return;
	}
	if (es_event_seq(ev) == 0) {
		dead_letter(b, topic, "no sequence attribute: not from an edgespool node", payload,
			    len);
	} else {
		struct item *it = make_item(topic, key, ev, payload, len, link);
		if (it)
			enqueue(b, it);
		else
			b->overload++;
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

void intake_message(bridge *b, size_t link, const char *topic, const void *payload, size_t len)
{
	es_topic_parts p;
	char key[NODE_KEY_MAX];
	b->received++;
	if (b->peer_topic[0] && strcmp(topic, b->peer_topic) == 0) {
		repair_peer(b, payload, len);
		return;
	}
	if (es_topic_split(topic, b->s->edge_root, &p) ||
	    (size_t)snprintf(key, sizeof key, "%.*s/%.*s", (int)p.site_len, p.site, (int)p.node_len,
			     p.node) >= sizeof key) {
		dead_letter(b, topic, "topic outside <root>/<site>/<node>/...", payload, len);
		return;
	}
	struct node *n = forward_node(b, key); /* re-send requests go back this way */
	if (n)
		n->link = link;
	if (is_kind(&p, "ev", NULL) && p.rest_len)
		take_event(b, link, topic, key, payload, len);
	else if (is_kind(&p, "status", NULL))
		repair_status(b, key, payload, len);
	else if (is_kind(&p, "reply", "resend"))
		repair_reply(b, key, payload, len);
	else
		dead_letter(b, topic, "unexpected topic kind", payload, len);
}
