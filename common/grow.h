/* grow.h - room in a growing array: the one way this code makes it.
 *
 * Every dynamic array here is a pointer, a count and a capacity. es_grow
 * makes room for `need` elements: it doubles the capacity (starting at
 * `first`) until `need` fits, so appends cost amortised O(1), and it
 * refuses a size that would overflow. On failure the array is unchanged
 * and still the caller's, so a caller can report ES_ENOMEM and go on.
 *
 *	struct item *grown = es_grow(a->v, &a->cap, a->n + 1, sizeof *grown, 16);
 *	if (!grown)
 *		return ES_ENOMEM;
 *	a->v = grown;
 */
#ifndef ES_GROW_H
#define ES_GROW_H

#include <stddef.h>

/* p (capacity *cap elements of `size` bytes) with room for `need`: p itself
 * when it has room, else p reallocated and *cap updated; NULL when memory
 * is short or the size overflows (p and *cap unchanged). */
void *es_grow(void *p, size_t *cap, size_t need, size_t size, size_t first);

#endif
