/* settings.h - every setting of fleet-state, as one struct and one table
 * (the table generates --help, --print-config and the reference in
 * docs/configuration.md). Conventions as in edge-agent and cloud-bridge. */
#ifndef FLEET_SETTINGS_H
#define FLEET_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "settings_link.h"
#include "settings_shared.h"

typedef struct fleet_settings {
	char *node_id;
	es_strlist source_amqp, source_bind, source_mqtt, source_topic;
	es_strlist repair_node;
	bool repair_ask;   /* ask on the source's broker (MQTT source, no repair.node) */
	char *repair_root; /* the nodes' topic root for those requests */
	char *source_queue;
	int64_t source_prefetch, source_heartbeat_s;
	/* source.username, .password_file (MQTT) and .backoff_* (both
	 * transports); the other rows of a link are hidden: their defaults. */
	es_link_settings source;

	char *state_path;
	int state_sync;
	int64_t state_dedup_max, state_dedup_max_age_s;
	int64_t state_snapshot_every, state_log_keep;
	uint64_t event_max_bytes;

	es_http_settings http;

	es_log_settings log;
} fleet_settings;

/* The table, as parts: fleet-state's own rows and the shared ones (an MQTT
 * link's, HTTP, logging) in the order --help lists them. */
extern const es_settings_part fleet_settings_parts[];
extern const size_t fleet_settings_nparts;

/* Checks what the table cannot: one transport (AMQP or MQTT, unless
 * need_source is false), the URLs, the patterns, the listen address;
 * writes the first problem into err. */
bool fleet_settings_check(const fleet_settings *s, bool need_source, char *err, size_t errcap);

#endif
