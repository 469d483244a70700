/* nodes.c - a table of source nodes: chained hashing (djb2), doubled when
 * there are as many nodes as buckets. */
#include "nodes.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *next;
	char name[BRIDGE_NODE_MAX];
	alignas(max_align_t) unsigned char record[];
};

struct bridge_nodes {
	struct entry **buckets;
	size_t nbuckets, count, record_size;
};

static size_t hash(const char *s)
{
	size_t h = 5381;
	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static bool grow(bridge_nodes *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
	struct entry **b = calloc(n, sizeof *b);
	if (!b)
		return false;
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct entry *e = t->buckets[i], *next; e; e = next) {
			next = e->next;
			size_t h = hash(e->name) % n;
			e->next = b[h];
			b[h] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
	return true;
}

es_err bridge_nodes_new(size_t record_size, bridge_nodes **out)
{
	bridge_nodes *t = calloc(1, sizeof *t);
	if (!t || !grow(t)) {
		free(t);
		return ES_ENOMEM;
	}
	t->record_size = record_size;
	*out = t;
	return ES_OK;
}

void bridge_nodes_free(bridge_nodes *t, void (*drop)(void *ctx, void *record), void *ctx)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct entry *e = t->buckets[i], *next; e; e = next) {
			next = e->next;
			if (drop)
				drop(ctx, e->record);
			free(e);
		}
	}
	free(t->buckets);
	free(t);
}

void *bridge_nodes_find(const bridge_nodes *t, const char *name)
{
	for (struct entry *e = t->buckets[hash(name) % t->nbuckets]; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e->record;
	return NULL;
}

void *bridge_nodes_get(bridge_nodes *t, const char *name)
{
	void *found = bridge_nodes_find(t, name);
	size_t len = strlen(name);
	if (found)
		return found;
	if (len >= BRIDGE_NODE_MAX || (t->count + 1 > t->nbuckets && !grow(t)))
		return NULL;
	struct entry *e = calloc(1, sizeof *e + t->record_size);
	if (!e)
		return NULL;
	memcpy(e->name, name, len + 1);
	size_t h = hash(name) % t->nbuckets;
	e->next = t->buckets[h];
	t->buckets[h] = e;
	t->count++;
	return e->record;
}

const char *bridge_nodes_name(const void *record)
{
	const struct entry *e =
		(const struct entry *)(const void *)((const char *)record -
						     offsetof(struct entry, record));
	return e->name;
}

void bridge_nodes_each(bridge_nodes *t, void (*fn)(void *ctx, void *record), void *ctx)
{
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct entry *e = t->buckets[i]; e; e = e->next)
			fn(ctx, e->record);
}
