/* settings.h - every setting of fleet-state, as one struct and one table
 * (the table generates --help, --print-config and the reference in
 * docs/configuration.md). Conventions as in edge-agent and cloud-bridge. */
#ifndef FLEET_SETTINGS_H
#define FLEET_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct fleet_settings {
	char *node_id;
	es_strlist source_amqp, source_bind, source_mqtt, source_topic;
	char *source_queue, *source_username, *source_password_file;
	int64_t source_prefetch, source_heartbeat_s, source_backoff_base_ms, source_backoff_max_ms;

	char *state_path;
	int state_sync;
	int64_t state_dedup_max, state_dedup_max_age_s;
	uint64_t event_max_bytes;

	char *http_listen, *http_auth_file, *http_token_file;
	bool http_metrics_open;
	int64_t http_threads;

	int log_level;
	bool log_syslog;
} fleet_settings;

extern const es_setting fleet_settings_table[];
extern const size_t fleet_settings_count;

/* Checks what the table cannot: one transport (AMQP or MQTT, unless
 * need_source is false), the URLs, the patterns, the listen address;
 * writes the first problem into err. */
bool fleet_settings_check(const fleet_settings *s, bool need_source, char *err, size_t errcap);

#endif
