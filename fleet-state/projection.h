/* projection.h - fleet-state's projection: one row per device (source,
 * subject) across all sites, kept in the consumer's SQLite file and
 * written inside the consumer's batch transactions.
 *
 * Rules (order-independent, so a late older event never overwrites a newer
 * one): "newest" is the highest `sequence` of the device's source; last_seen
 * and last_type come from the newest event, reading from the newest
 * sensor.reading, alarm is true iff the newest alarm.* is alarm.raised;
 * counts holds the number of distinct events applied per type. Events
 * without a subject change no device.
 */
#ifndef FLEET_PROJECTION_H
#define FLEET_PROJECTION_H

#include "consumer.h"

typedef struct fleet_projection fleet_projection;

/* Creates the tables if needed, prepares its statements on c's connection
 * and registers its handler (pattern "#"), reset and snapshot callbacks
 * with c, which must outlive it (free the projection first). ES_EIO,
 * ES_ENOMEM. */
es_err fleet_projection_new(es_consumer *c, fleet_projection **out);
void fleet_projection_free(fleet_projection *p);

/* {"devices":[...]} as in docs/consumers.md, read through a connection of
 * its own (any thread), malloc'd. ES_EIO, ES_ENOMEM. */
es_err fleet_projection_devices_json(const char *path, char **out);

#endif
