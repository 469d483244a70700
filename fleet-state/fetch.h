/* fetch.h - --rebuild-from: a node's journal through its HTTP API, applied
 * through the consumer (see fetch.c). */
#ifndef FLEET_FETCH_H
#define FLEET_FETCH_H

#include <stdint.h>

#include "consumer.h"

/* Reads every event the node at base_url (http://host:port) holds and
 * applies them in batches through c; *read: how many were read (also on an
 * error: those before it were applied). ES_EIO (logged), ES_ENOMEM, or an
 * apply's error. */
es_err fleet_fetch_node(es_consumer *c, const char *base_url, uint64_t *read);

/* The same for the node's sequences from..to only (a hole). */
es_err fleet_fetch_range(es_consumer *c, const char *base_url, uint64_t from, uint64_t to,
			 uint64_t *read);

#endif
