/* fetch.h - a node's journal through its HTTP API: --rebuild-from, and the
 * repair of holes (see fetch.c). */
#ifndef FLEET_FETCH_H
#define FLEET_FETCH_H

#include <stdatomic.h>
#include <stdint.h>

#include "consumer.h"

/* Where a fetch hands what it found. Both may fail: the fetch stops with
 * their error. */
typedef struct fleet_fetch_sink {
	/* Events read, d[0..n): the sink may take their strings (moving each
	 * delivery out and zeroing it); what it leaves is freed. */
	es_err (*events)(void *arg, es_delivery *d, size_t n);
	/* Sequences from..to (within the range asked for) the node does not
	 * hold: its listing skips them, or ends (or goes past the range) before
	 * them, or the event answers 404. Ascending, each sequence once, as
	 * soon as that is known; never after a failed request for what it
	 * depends on. NULL: not wanted. */
	es_err (*gone)(void *arg, uint64_t from, uint64_t to);
	void *arg;
	const atomic_bool *cancel; /* NULL, or a flag that ends the fetch early */
} fleet_fetch_sink;

/* Reads the node's sequences from..to at base_url (http://host:port,
 * credentials may be in it) and hands them to sink in batches; *read: how
 * many were read (also on an error: those before it were handed over).
 * ES_EINVAL, ES_EIO (logged: no answer,
 * not 200, not JSON), ES_ECLOSED (cancelled), ES_ENOMEM, or the sink's. */
es_err fleet_fetch_range(const char *base_url, uint64_t from, uint64_t to,
			 const fleet_fetch_sink *sink, uint64_t *read);

/* Every event the node holds, applied through c in batches (--rebuild-from):
 * ids applied already are dropped. Errors as fleet_fetch_range's, or an
 * apply's. */
es_err fleet_fetch_node(es_consumer *c, const char *base_url, uint64_t *read);

#endif
