/* fleet.h - the fleet-state service: a consumer (consumer.h) that keeps a
 * projection of every device (projection.h) and serves it over HTTP.
 *
 * The main thread runs the consumer (fleet_run) until fleet_stop (which a
 * signal handler may call: it only sets a flag); civetweb's workers serve
 * /healthz, /metrics, /api/devices and /api/stats, reading the SQLite file
 * through connections of their own and the consumer's atomic counters.
 */
#ifndef FLEET_H
#define FLEET_H

#include "err.h"
#include "settings.h"

typedef struct fleet fleet;

es_err fleet_new(const fleet_settings *s, fleet **out);
void fleet_free(fleet *f);

/* Connects and applies events until fleet_stop(); ES_OK when stopped. */
es_err fleet_run(fleet *f);
/* Async-signal-safe. */
void fleet_stop(fleet *f);

/* --rebuild: empties the projection and re-applies the event log; no
 * broker, no HTTP. *applied: how many events. */
es_err fleet_rebuild(const fleet_settings *s, uint64_t *applied);

#endif
