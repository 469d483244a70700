/* repair.c - the repair thread: holes asked for by the consumer's thread
 * fetched from the nodes' journals (fetch.c), the outcomes handed back.
 *
 * Lock: `mu` guards queue, qhead, qlen, current, busy, head, tail and held;
 * `cv` wakes the repair thread (work queued, room made, stop). The consumer's
 * thread never waits on anything but `mu`, which nobody holds across a
 * request. `stop` is atomic: it also cancels the HTTP request under way.
 */
#include "repair.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "log.h"

#define TAG	  "repair"
#define QUEUE_MAX 64   /* holes waiting to be fetched */
#define HELD_MAX  2048 /* fetched events the consumer has not taken yet */

struct outcome {
	struct outcome *next;
	fleet_repair_out o;
};

struct fleet_repair {
	char **nodes; /* SOURCE=URL */
	size_t nnodes;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	es_gap_request queue[QUEUE_MAX];
	size_t qhead, qlen;
	es_gap_request current; /* under way when busy */
	bool busy;
	struct outcome *head, *tail;
	size_t held; /* events in the outcomes */
	atomic_bool stop;
};

/* The URL configured for source, or NULL. */
static const char *url_of(const fleet_repair *r, const char *source)
{
	size_t n = strlen(source);
	for (size_t i = 0; i < r->nnodes; i++)
		if (strncmp(r->nodes[i], source, n) == 0 && r->nodes[i][n] == '=')
			return r->nodes[i] + n + 1;
	return NULL;
}

static bool same(const es_gap_request *a, const es_gap_request *b)
{
	return a->from == b->from && a->to == b->to && strcmp(a->node, b->node) == 0;
}

/* ---- outcomes (the repair thread adds, the consumer's takes) ------------ */

static void push(fleet_repair *r, struct outcome *o)
{
	pthread_mutex_lock(&r->mu);
	if (r->tail)
		r->tail->next = o;
	else
		r->head = o;
	r->tail = o;
	r->held += o->o.n;
	pthread_mutex_unlock(&r->mu);
}

/* Waits until the consumer has taken enough to make room for n events. */
static es_err wait_room(fleet_repair *r, size_t n)
{
	pthread_mutex_lock(&r->mu);
	while (r->held && r->held + n > HELD_MAX && !atomic_load(&r->stop))
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	return atomic_load(&r->stop) ? ES_ECLOSED : ES_OK;
}

/* The fetch's sink: the events moved into an outcome. */
static es_err on_events(void *arg, es_delivery *d, size_t n)
{
	fleet_repair *r = arg;
	es_err err = wait_room(r, n);
	if (err)
		return err;
	struct outcome *o = calloc(1, sizeof *o);
	es_delivery *v = o ? malloc(n * sizeof *v) : NULL;
	if (!v) {
		free(o);
		return ES_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		v[i] = d[i];
		memset(&d[i], 0, sizeof d[i]);
	}
	o->o = (fleet_repair_out){.kind = FLEET_REPAIR_EVENTS, .d = v, .n = n};
	memcpy(o->o.node, r->current.node, sizeof o->o.node);
	push(r, o);
	return ES_OK;
}

static es_err on_gone(void *arg, uint64_t from, uint64_t to)
{
	fleet_repair *r = arg;
	struct outcome *o = calloc(1, sizeof *o);
	if (!o)
		return ES_ENOMEM;
	o->o = (fleet_repair_out){.kind = FLEET_REPAIR_GONE, .from = from, .to = to};
	memcpy(o->o.node, r->current.node, sizeof o->o.node);
	push(r, o);
	return ES_OK;
}

/* ---- the repair thread -------------------------------------------------- */

/* Fetches the current hole (r->current is read-only while busy). */
static void serve(fleet_repair *r)
{
	const es_gap_request *q = &r->current;
	const char *url = url_of(r, q->node);
	fleet_fetch_sink sink = {
		.events = on_events, .gone = on_gone, .arg = r, .cancel = &r->stop};
	uint64_t read = 0;
	es_err err = fleet_fetch_range(url, q->from, q->to, &sink, &read);
	if (err == ES_ECLOSED)
		return;
	if (err)
		es_warn(TAG, "%s %llu..%llu from %s: %s (asked again later)", q->node,
			(unsigned long long)q->from, (unsigned long long)q->to, url,
			es_strerror(err));
	else
		es_info(TAG, "%s %llu..%llu from %s: %llu events read", q->node,
			(unsigned long long)q->from, (unsigned long long)q->to, url,
			(unsigned long long)read);
}

static void *run(void *arg)
{
	fleet_repair *r = arg;
	pthread_mutex_lock(&r->mu);
	while (!atomic_load(&r->stop)) {
		if (!r->qlen) {
			pthread_cond_wait(&r->cv, &r->mu);
			continue;
		}
		r->current = r->queue[r->qhead];
		r->qhead = (r->qhead + 1) % QUEUE_MAX;
		r->qlen--;
		r->busy = true;
		pthread_mutex_unlock(&r->mu);
		serve(r);
		pthread_mutex_lock(&r->mu);
		r->busy = false;
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* ---- the API ------------------------------------------------------------ */

static void free_nodes(fleet_repair *r)
{
	for (size_t i = 0; r->nodes && i < r->nnodes; i++)
		free(r->nodes[i]);
	free(r->nodes);
}

static es_err copy_nodes(fleet_repair *r, const es_strlist *nodes)
{
	r->nodes = calloc(nodes->n ? nodes->n : 1, sizeof *r->nodes);
	if (!r->nodes)
		return ES_ENOMEM;
	for (r->nnodes = 0; r->nnodes < nodes->n; r->nnodes++)
		if (!(r->nodes[r->nnodes] = strdup(nodes->v[r->nnodes])))
			return ES_ENOMEM;
	return ES_OK;
}

es_err fleet_repair_new(const es_strlist *nodes, fleet_repair **out)
{
	if (!nodes || !out)
		return ES_EINVAL;
	fleet_repair *r = calloc(1, sizeof *r);
	if (!r)
		return ES_ENOMEM;
	es_err err = copy_nodes(r, nodes);
	if (err)
		goto fail_nodes;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (pthread_create(&r->thread, NULL, run, r) != 0) {
		es_error(TAG, "cannot start the repair thread");
		err = ES_ESYS;
		goto fail_thread;
	}
	*out = r;
	return ES_OK;
fail_thread:
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
fail_nodes:
	free_nodes(r);
	free(r);
	return err;
}

void fleet_repair_free(fleet_repair *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	atomic_store(&r->stop, true);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	fleet_repair_out o;
	while (fleet_repair_take(r, &o))
		fleet_repair_out_clear(&o);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free_nodes(r);
	free(r);
}

/* True when q is queued or under way. Under mu. */
static bool asked(const fleet_repair *r, const es_gap_request *q)
{
	if (r->busy && same(&r->current, q))
		return true;
	for (size_t i = 0; i < r->qlen; i++)
		if (same(&r->queue[(r->qhead + i) % QUEUE_MAX], q))
			return true;
	return false;
}

bool fleet_repair_ask(fleet_repair *r, const es_gap_request *q)
{
	if (!r || !q || !url_of(r, q->node))
		return false;
	pthread_mutex_lock(&r->mu);
	bool ok = r->qlen < QUEUE_MAX && !asked(r, q);
	if (ok) {
		r->queue[(r->qhead + r->qlen) % QUEUE_MAX] = *q;
		r->qlen++;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	return ok;
}

bool fleet_repair_take(fleet_repair *r, fleet_repair_out *out)
{
	if (!r || !out)
		return false;
	pthread_mutex_lock(&r->mu);
	struct outcome *o = r->head;
	if (o) {
		r->head = o->next;
		if (!r->head)
			r->tail = NULL;
		r->held -= o->o.n;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	if (!o)
		return false;
	*out = o->o;
	free(o);
	return true;
}

void fleet_repair_out_clear(fleet_repair_out *o)
{
	for (size_t i = 0; o && i < o->n; i++)
		es_delivery_clear(&o->d[i]);
	if (o) {
		free(o->d);
		memset(o, 0, sizeof *o);
	}
}
