/* repair.h - fleet-state's repair of sequence holes from the nodes'
 * journals (repair.node: SOURCE=URL), on a thread of its own, so that a
 * slow or unreachable node never stalls the consumer's thread.
 *
 * The consumer's thread hands over the holes that are due
 * (fleet_repair_ask) and takes back what came of them (fleet_repair_take):
 * batches of events to apply, and ranges the node said it no longer holds.
 * The repair thread does the HTTP (fetch.h), one request at a time, and
 * holds at most a bounded number of fetched events that the consumer has
 * not taken yet (it waits for the consumer rather than grow).
 *
 * Threads: fleet_repair_new and fleet_repair_free on the owner's; ask and
 * take on the consumer's (the owner's may be the same). A mutex guards the
 * queues; the repair thread owns the HTTP client.
 */
#ifndef FLEET_REPAIR_H
#define FLEET_REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "gap.h"
#include "source.h"

typedef struct fleet_repair fleet_repair;

typedef enum fleet_repair_kind {
	FLEET_REPAIR_EVENTS, /* d[0..n): events the node holds, to apply */
	FLEET_REPAIR_GONE,   /* from..to: the node no longer holds them */
} fleet_repair_kind;

/* What came of a request. Owns d. */
typedef struct fleet_repair_out {
	fleet_repair_kind kind;
	char node[sizeof((es_gap_request *)0)->node];
	uint64_t from, to;
	es_delivery *d;
	size_t n;
} fleet_repair_out;

/* A repairer for the SOURCE=URL entries of nodes (checked by the settings;
 * copied), with its thread started. ES_ENOMEM, ES_ESYS (no thread). */
es_err fleet_repair_new(const es_strlist *nodes, fleet_repair **out);
/* Cancels the request under way, stops and joins the thread, frees what
 * was not taken. NULL is a no-op. */
void fleet_repair_free(fleet_repair *r);

/* Hands a due hole over. False when its source has no URL, when the same
 * range is queued or under way already, or when the queue is full (the gap
 * tracker hands it out again after its retry period). */
bool fleet_repair_ask(fleet_repair *r, const es_gap_request *q);

/* Takes the oldest outcome into *out; false when there is none. */
bool fleet_repair_take(fleet_repair *r, fleet_repair_out *out);
void fleet_repair_out_clear(fleet_repair_out *o);

#endif
