/* fleet.h - the fleet-state service: a consumer (consumer.h) that keeps a
 * projection of every device (projection.h) and serves it over HTTP.
 *
 * A thread of its own runs the consumer from fleet_start() until
 * fleet_shutdown() (or a failure), then stops the loop the service was made
 * on; civetweb's workers serve /healthz, /metrics, /api/devices and
 * /api/stats, reading the SQLite file through connections of their own and
 * the consumer's atomic counters. With repair.node, a repair thread
 * (repair.h) fetches the holes from the nodes while the consumer applies.
 */
#ifndef FLEET_H
#define FLEET_H

#include <stdbool.h>

#include "consumer.h"
#include "err.h"
#include "loop.h"
#include "settings.h"

typedef struct fleet fleet;

/* s and loop must outlive the service. Errors are logged with their cause. */
es_err fleet_new(const fleet_settings *s, es_loop *loop, fleet **out);
/* Starts consuming; es_loop_stop(loop) when the consumer has ended. */
es_err fleet_start(fleet *f);
/* Stops the consumer (what it took is applied first). Any thread. */
void fleet_shutdown(fleet *f);
/* After the loop returned: ES_OK when the consumer was stopped, else why
 * it failed. */
es_err fleet_outcome(fleet *f);
/* Stops the consumer if it runs, and frees. NULL is a no-op. */
void fleet_free(fleet *f);

/* --rebuild: the projection from the latest snapshot and the event log
 * after it, or (from_scratch, or no snapshot) emptied and rebuilt from the
 * whole log; no broker, no HTTP. *out: what it did. */
es_err fleet_rebuild(const fleet_settings *s, bool from_scratch, es_consumer_rebuilt *out);

/* --rebuild-from URL: applies the events of the node at url (its journal,
 * through its HTTP API); ids applied already are dropped. *read: events
 * read; *applied: how many of them were new. */
es_err fleet_rebuild_from(const fleet_settings *s, const char *url, uint64_t *read,
			  uint64_t *applied);

#endif
