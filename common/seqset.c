/* seqset.c - a sorted set of sequence numbers (seqset.h). */
#include "seqset.h"

#include <stdlib.h>
#include <string.h>

#include "grow.h"

#define FIRST_CAP 64

void es_seqset_init(es_seqset *s, size_t max)
{
	*s = (es_seqset){.max = max};
}

void es_seqset_free(es_seqset *s)
{
	free(s->v);
	es_seqset_init(s, s->max);
}

void es_seqset_clear(es_seqset *s)
{
	s->first = s->end = 0;
}

size_t es_seqset_count(const es_seqset *s)
{
	return s->end - s->first;
}

/* The index of the first member >= x (end: none). */
static size_t lower_bound(const es_seqset *s, uint64_t x)
{
	size_t lo = s->first, hi = s->end;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Room at the end for one more: compacts what left from the front, else
 * doubles the array. */
es_err es_seqset_reserve(es_seqset *s)
{
	if (s->end < s->cap)
		return ES_OK;
	if (s->first) {
		s->end -= s->first;
		memmove(s->v, s->v + s->first, s->end * sizeof *s->v);
		s->first = 0;
		return ES_OK;
	}
	uint64_t *grown = es_grow(s->v, &s->cap, s->end + 1, sizeof *grown, FIRST_CAP);
	if (!grown)
		return ES_ENOMEM;
	s->v = grown;
	return ES_OK;
}

es_err es_seqset_add(es_seqset *s, uint64_t x)
{
	size_t at = s->end > s->first && s->v[s->end - 1] < x ? s->end : lower_bound(s, x);
	if (at < s->end && s->v[at] == x)
		return ES_OK;
	if (s->max && es_seqset_count(s) >= s->max)
		return ES_ENOMEM;
	size_t shift = s->first;
	if (es_seqset_reserve(s))
		return ES_ENOMEM;
	at -= shift - s->first; /* compacting moved the members down */
	memmove(&s->v[at + 1], &s->v[at], (s->end - at) * sizeof *s->v);
	s->v[at] = x;
	s->end++;
	return ES_OK;
}

bool es_seqset_has(const es_seqset *s, uint64_t x)
{
	size_t at = lower_bound(s, x);
	return at < s->end && s->v[at] == x;
}

/* Back to the start of the array once empty. */
static void settle(es_seqset *s)
{
	if (s->first == s->end)
		s->first = s->end = 0;
}

bool es_seqset_pass(es_seqset *s, uint64_t x)
{
	while (s->first < s->end && s->v[s->first] < x)
		s->first++;
	bool hit = s->first < s->end && s->v[s->first] == x;
	if (hit)
		s->first++;
	settle(s);
	return hit;
}

size_t es_seqset_take_run(es_seqset *s, uint64_t mark)
{
	size_t n = 0;
	while (s->first + n < s->end && s->v[s->first + n] == mark + n + 1)
		n++;
	s->first += n;
	settle(s);
	return n;
}
