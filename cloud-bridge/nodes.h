/* nodes.h - a table of source nodes by name ("site/node"), each with a
 * record of its owner's making (what forward.c holds for a node, which edge
 * link edge.c last heard it on). A chained hash table that doubles as it
 * fills. Not thread-safe: one thread owns a table.
 */
#ifndef BRIDGE_NODES_H
#define BRIDGE_NODES_H

#include <stddef.h>

#include "batch.h"
#include "err.h"
#include "topic.h"

/* The longest node name, "site/node", with its NUL. */
#define BRIDGE_NODE_MAX (2 * ES_TOPIC_ID_MAX + 2)

typedef struct bridge_nodes bridge_nodes;

/* A table whose records are record_size bytes (zeroed when made, aligned
 * for any type). ES_ENOMEM. */
es_err bridge_nodes_new(size_t record_size, bridge_nodes **out);

/* Calls drop (if not NULL) with each record, then frees the table. NULL ok. */
void bridge_nodes_free(bridge_nodes *t, void (*drop)(void *ctx, void *record), void *ctx);

/* name's record, or NULL when the table has none. */
void *bridge_nodes_find(const bridge_nodes *t, const char *name);

/* name's record, made (zeroed) when new; NULL when out of memory or when
 * name is longer than BRIDGE_NODE_MAX - 1. */
void *bridge_nodes_get(bridge_nodes *t, const char *name);

/* The name a record of a table was made for. */
const char *bridge_nodes_name(const void *record);

/* Calls fn with every record, in no particular order. fn must not add to t. */
void bridge_nodes_each(bridge_nodes *t, void (*fn)(void *ctx, void *record), void *ctx);

/* A topic of the node named "site/node": <root>/<site>/<node>/<kind>[/<rest>]
 * (es_topic_build), or its batch topic (es_batch_topic). ES_EINVAL when the
 * name has no '/', ES_ETOOBIG when a part or the topic does not fit. */
es_err bridge_node_topic(char *buf, size_t cap, const char *root, const char *name,
			 const char *kind, const char *rest);
es_err bridge_node_batch_topic(char *buf, size_t cap, const char *root, const char *name,
			       const es_batch_coding *coding);

#endif
