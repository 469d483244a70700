/* seqset.h - a sorted set of sequence numbers in one growing array.
 *
 * For the sets kept beside a watermark that moves up: acknowledgements
 * that came above the journal's acked mark, rows read ahead of a cursor.
 * Members are mostly added in ascending order (an append) and leave from
 * the low end, so both are cheap: adding is a binary search and a move of
 * what is above, dropping from the front moves a start index, and the
 * array is compacted only when it must grow. Pure state, no I/O, one owner.
 */
#ifndef ES_SEQSET_H
#define ES_SEQSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct es_seqset {
	uint64_t *v; /* members v[first..end), ascending */
	size_t first, end, cap;
	size_t max; /* at most this many members; 0: no bound */
} es_seqset;

/* An empty set of at most max members (0: no bound); nothing allocated. */
void es_seqset_init(es_seqset *s, size_t max);
void es_seqset_free(es_seqset *s);  /* empty, its memory freed; the bound stays */
void es_seqset_clear(es_seqset *s); /* empty, its memory kept */
size_t es_seqset_count(const es_seqset *s);
/* Room for one more member: after ES_OK, the next add of a member below
 * the bound cannot fail. ES_ENOMEM when out of memory. */
es_err es_seqset_reserve(es_seqset *s);
/* Adds x (already there: ES_OK). ES_ENOMEM when out of memory or at the
 * bound; the set is then unchanged. */
es_err es_seqset_add(es_seqset *s, uint64_t x);
bool es_seqset_has(const es_seqset *s, uint64_t x);
/* Drops every member below x, and x itself; returns whether x was one. */
bool es_seqset_pass(es_seqset *s, uint64_t x);
/* Drops the run mark+1, mark+2, ... from the low end; returns its length
 * (0 when mark+1 is not the smallest member). */
size_t es_seqset_take_run(es_seqset *s, uint64_t mark);

#endif
