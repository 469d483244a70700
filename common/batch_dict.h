/* batch_dict.h - edgespool's own compression dictionaries for batches
 * (batch.h), by id. Internal to batch.c and its tests.
 *
 * A dictionary is trained from our own generated sample events by
 * scripts/batch-dict.sh, which writes batch_dict_<id>.inc (generated,
 * committed; batch_dict.c includes it). An id, once released, names the same bytes forever: a
 * reader must be able to read what any writer sent with it. A new
 * dictionary gets a new id; old ones stay for reading.
 */
#ifndef ES_BATCH_DICT_H
#define ES_BATCH_DICT_H

#include <stddef.h>

typedef struct es_batch_dict {
	const char *id; /* "d1" */
	const unsigned char *bytes;
	size_t len;
} es_batch_dict;

/* The dictionary named id, or NULL when this build has none of that id. */
const es_batch_dict *es_batch_dict_find(const char *id);

/* The dictionary new writers use by default (the newest). */
const es_batch_dict *es_batch_dict_default(void);

#endif
