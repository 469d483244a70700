/* batch_dict.c - the registry of batch dictionaries (batch_dict.h): each
 * id and its bytes, from the generated batch_dict_<id>.c files. Add a line
 * for a new one; never change or remove a released one. */
#include "batch_dict.h"

#include <string.h>

/* d1: 4 KiB, zstd --train on 16,824 demo events (docs/decisions.md). */
static const unsigned char d1[] = {
#include "batch_dict_d1.inc"
};

static const es_batch_dict dicts[] = {
	{"d1", d1, sizeof d1},
	{NULL, NULL, 0},
};

const es_batch_dict *es_batch_dict_find(const char *id)
{
	for (const es_batch_dict *d = dicts; id && d->id; d++)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

const es_batch_dict *es_batch_dict_default(void)
{
	const es_batch_dict *d = dicts;
	while (d->id && d[1].id)
		d++;
	return d->id ? d : NULL;
}
