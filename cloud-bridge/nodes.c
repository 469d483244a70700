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

/* Copies name's site into site (ES_TOPIC_ID_MAX + 1 bytes); its node. */
static const char *split(const char *name, char *site, es_err *err)
{
	const char *slash = name ? strchr(name, '/') : NULL;
	if (!slash) {
		*err = ES_EINVAL;
		return NULL;
	}
	if ((size_t)(slash - name) > ES_TOPIC_ID_MAX) {
		*err = ES_ETOOBIG;
		return NULL;
	}
	memcpy(site, name, (size_t)(slash - name));
	site[slash - name] = '\0';
	return slash + 1;
}

es_err bridge_node_topic(char *buf, size_t cap, const char *root, const char *name,
			 const char *kind, const char *rest)
{
	char site[ES_TOPIC_ID_MAX + 1];
	es_err err = ES_OK;
	const char *node = split(name, site, &err);
	return node ? es_topic_build(buf, cap, root, site, node, kind, rest) : err;
}

es_err bridge_node_batch_topic(char *buf, size_t cap, const char *root, const char *name,
			       const es_batch_coding *coding)
{
	char site[ES_TOPIC_ID_MAX + 1];
	es_err err = ES_OK;
	const char *node = split(name, site, &err);
	return node ? es_batch_topic(buf, cap, root, site, node, coding) : err;
}
