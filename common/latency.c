/* latency.c - a FIFO of (tag, start) for work in flight. */
#include "latency.h"

#include <stdbool.h>
#include <stdlib.h>

#define MAX_DEFAULT 65536

struct entry {
	uint64_t tag, start_ms;
};

struct es_latency {
	es_metric *hist;
	struct entry *q; /* a ring: q[head..head+n) modulo cap */
	size_t head, n, cap, max;
};

es_err es_latency_new(es_metric *hist, size_t max, es_latency **out)
{
	if (!out)
		return ES_EINVAL;
	es_latency *l = calloc(1, sizeof *l);
	if (!l)
		return ES_ENOMEM;
	l->hist = hist;
	l->max = max ? max : MAX_DEFAULT;
	*out = l;
	return ES_OK;
}

void es_latency_free(es_latency *l)
{
	if (!l)
		return;
	free(l->q);
	free(l);
}

static bool grow(es_latency *l)
{
	size_t cap = l->cap ? l->cap * 2 : 64;
	if (cap > l->max)
		cap = l->max;
	if (cap <= l->cap)
		return false;
	struct entry *q = malloc(cap * sizeof *q);
	if (!q)
		return false;
	for (size_t i = 0; i < l->n; i++)
		q[i] = l->q[(l->head + i) % l->cap];
	free(l->q);
	l->q = q;
	l->cap = cap;
	l->head = 0;
	return true;
}

void es_latency_start(es_latency *l, uint64_t tag, uint64_t start_ms)
{
	if (!l || (l->n == l->cap && !grow(l)))
		return;
	l->q[(l->head + l->n) % l->cap] = (struct entry){tag, start_ms};
	l->n++;
}

void es_latency_done(es_latency *l, uint64_t tag, uint64_t now_ms)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		const struct entry *e = &l->q[(l->head + i) % l->cap];
		if (e->tag != tag)
			continue;
		uint64_t ms = now_ms > e->start_ms ? now_ms - e->start_ms : 0;
		es_metric_observe(l->hist, (double)ms / 1000.0);
		/* What started before it will not complete any more (completions
		 * come in start order): forget it with it. */
		l->head = (l->head + i + 1) % l->cap;
		l->n -= i + 1;
		return;
	}
}

void es_latency_clear(es_latency *l)
{
	if (l)
		l->head = l->n = 0;
}

size_t es_latency_size(const es_latency *l)
{
	return l ? l->n : 0;
}
