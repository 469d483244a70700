/* journal_append.c - the producers' side: events made ready in the
 * caller's thread (id, source, time, encoding: everything but the sequence,
 * which only the writer knows), queued for the writer, and waited for until
 * their transaction committed; and the queue of side writes (dead letters,
 * state values) that ride with the next transaction without waiting.
 */
#include "journal_int.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* In the producer's thread: an id if it has none, the source and time, and
 * the encoding. */
static es_err prepare_one(es_journal *j, es_event *ev, uint64_t now, struct prepared *p)
{
	char id[ES_UUID_STR] = "";
	p->fresh = es_event_id(ev) == NULL;
	if (p->fresh) {
		es_uuid u;
		pthread_mutex_lock(&j->id_lock);
		es_err err = es_uuid7_next(j->ids, now, &u);
		pthread_mutex_unlock(&j->id_lock);
		if (err)
			return err;
		es_uuid_format(&u, id);
	}
	es_err err = es_event_stamp(ev, p->fresh ? id : "unused", j->source, now, 0);
	if (!err)
		err = es_event_encode_open(ev, j->o.max_event_bytes, &p->owned, &p->len);
	if (err)
		return err;
	p->body = p->owned;
	p->open = true;
	p->id = es_event_id(ev);
	p->type = es_event_type(ev);
	p->subject = es_event_subject(ev);
	return ES_OK;
}

static void free_prepared(struct prepared *prep, size_t n)
{
	for (size_t i = 0; prep && i < n; i++)
		free(prep[i].owned);
	free(prep);
}

static es_err prepare(es_journal *j, es_event **evs, size_t n, struct prepared **out)
{
	struct prepared *prep = calloc(n, sizeof *prep);
	if (!prep)
		return ES_ENOMEM;
	uint64_t now = es_clock_wall_ms();
	for (size_t i = 0; i < n; i++) {
		es_err err = prepare_one(j, evs[i], now, &prep[i]);
		if (err) {
			free_prepared(prep, n);
			return err;
		}
	}
	*out = prep;
	return ES_OK;
}

/* Queues r for the writer and waits for its commit. Takes prep. */
static es_err submit(es_journal *j, struct request *r)
{
	pthread_mutex_lock(&j->lock);
	if (j->closing) {
		pthread_mutex_unlock(&j->lock);
		free_prepared(r->prep, r->n);
		return ES_ECLOSED;
	}
	j->appenders++;
	for (size_t i = 0; i < r->n; i++)
		r->bytes += r->prep[i].len;
	for (size_t i = 0; i < r->nkv; i++)
		r->bytes += r->kv[i].len;
	r->queued_us = es_jnl_now_us();
	j->queued_bytes += r->bytes;
	if (j->tail)
		j->tail->next = r;
	else
		j->head = r;
	j->tail = r;
	pthread_cond_signal(&j->work);
	while (!r->done)
		pthread_cond_wait(&j->done, &j->lock);
	if (--j->appenders == 0 && j->closing)
		pthread_cond_broadcast(&j->done); /* es_journal_close waits for this */
	pthread_mutex_unlock(&j->lock);
	free_prepared(r->prep, r->n);
	return r->err;
}

es_err es_journal_append(es_journal *j, es_event **evs, size_t n, es_append_result *res)
{
	if (!j || (n && (!evs || !res)))
		return ES_EINVAL;
	if (n == 0)
		return ES_OK;
	struct request r = {.n = n, .res = res};
	es_err err = prepare(j, evs, n, &r.prep);
	return err ? err : submit(j, &r);
}

static bool kv_valid(const es_journal_kv *kv, size_t nkv)
{
	for (size_t i = 0; i < nkv; i++)
		if (!kv[i].key || strncmp(kv[i].key, "x.", 2) != 0 || (kv[i].len && !kv[i].value) ||
		    kv[i].len > ES_JOURNAL_KV_MAX)
			return false;
	return true;
}

es_err es_journal_append_kv(es_journal *j, es_event **evs, size_t n, es_append_result *res,
			    const es_journal_kv *kv, size_t nkv)
{
	if (!j || (n && (!evs || !res)) || (nkv && !kv) || !kv_valid(kv, nkv))
		return ES_EINVAL;
	if (n == 0 && nkv == 0)
		return ES_OK;
	struct request r = {.n = n, .res = res, .kv = kv, .nkv = nkv};
	es_err err = n ? prepare(j, evs, n, &r.prep) : ES_OK;
	return err ? err : submit(j, &r);
}

es_err es_journal_append_items(es_journal *j, const es_journal_item *items, size_t n,
			       es_append_result *res)
{
	if (!j || (n && (!items || !res)))
		return ES_EINVAL;
	if (n == 0)
		return ES_OK;
	struct request r = {.n = n, .res = res, .prep = calloc(n, sizeof *r.prep)};
	if (!r.prep)
		return ES_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const es_journal_item *it = &items[i];
		if (!it->id || !it->type || !it->body || !it->origin) {
			free(r.prep);
			return ES_EINVAL;
		}
		r.prep[i] = (struct prepared){.id = it->id,
					      .type = it->type,
					      .subject = it->subject,
					      .origin = it->origin,
					      .origin_seq = it->origin_seq,
					      .body = it->body,
					      .len = it->len};
	}
	return submit(j, &r);
}

/* ---- side writes -------------------------------------------------------- */

static void free_op(struct op *o)
{
	free(o->topic);
	free(o->reason);
	free(o->key);
	free(o->blob);
	free(o);
}

void es_jnl_ops_free(struct op *o)
{
	while (o) {
		struct op *next = o->next;
		free_op(o);
		o = next;
	}
}

/* A side write holding a copy of blob[0..len), stamped with the time. */
es_err es_jnl_op_new(struct op **out, const void *blob, size_t len)
{
	struct op *o = calloc(1, sizeof *o);
	if (!o || !(o->blob = malloc(len ? len : 1))) {
		free(o);
		return ES_ENOMEM;
	}
	if (len)
		memcpy(o->blob, blob, len);
	o->len = len;
	o->ms = es_clock_wall_ms();
	*out = o;
	return ES_OK;
}

/* Caller holds the lock. */
static void queue_op(es_journal *j, struct op *o)
{
	struct op **pp = &j->ops;
	while (*pp)
		pp = &(*pp)->next;
	*pp = o;
	pthread_cond_signal(&j->work);
}

es_err es_jnl_op_enqueue(es_journal *j, struct op *o)
{
	pthread_mutex_lock(&j->lock);
	bool closed = j->closing;
	if (!closed)
		queue_op(j, o);
	pthread_mutex_unlock(&j->lock);
	if (closed)
		free_op(o);
	return closed ? ES_ECLOSED : ES_OK;
}
