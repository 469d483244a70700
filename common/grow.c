/* grow.c - room in a growing array (grow.h). */
#include "grow.h"

#include <stdint.h>
#include <stdlib.h>

void *es_grow(void *p, size_t *cap, size_t need, size_t size, size_t first)
{
	if (need <= *cap && p)
		return p;
	size_t n = *cap ? *cap : (first ? first : 1);
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return NULL;
		n *= 2;
	}
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *grown = realloc(p, n * size);
	if (!grown)
		return NULL;
	*cap = n;
	return grown;
}
