/* settings.h - every setting of cloud-bridge, as one struct and one table
 * (the table, in settings.c, generates --help, --print-config and the
 * reference in docs/configuration.md). Conventions as in edge-agent. */
#ifndef BRIDGE_SETTINGS_H
#define BRIDGE_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum { BRIDGE_MQTT_V311 = 0, BRIDGE_MQTT_V5 = 1 };

/* One MQTT side (edge or cloud): the same keys under two sections. */
typedef struct bridge_link_settings {
	es_strlist url;
	char *client_id, *username, *password_file, *ca, *cert, *key;
	int version;
	bool tls_verify;
	int64_t keepalive_s, inflight, session_expiry_s, backoff_base_ms, backoff_max_ms;
} bridge_link_settings;

typedef struct bridge_settings {
	char *node_id, *node_site;
	bridge_link_settings edge, cloud;
	char *edge_root, *edge_filter, *edge_share_group;
	char *cloud_topic;

	char *journal_path;
	int journal_sync, journal_on_full;
	uint64_t journal_max_bytes;
	int64_t journal_retain_s;
	uint64_t event_max_bytes;

	char *http_listen, *http_auth_file, *http_token_file;
	bool http_metrics_open;
	int64_t http_threads;

	int64_t order_hole_wait_ms;
	int64_t gap_grace_ms, gap_retry_ms, gap_max_span;
	int64_t shutdown_drain_ms;

	int log_level;
	bool log_syslog;
} bridge_settings;

extern const es_setting bridge_settings_table[];
extern const size_t bridge_settings_count;

/* Checks what the table cannot (URLs, the filter, the template, TLS pairs);
 * writes the first problem into err. */
bool bridge_settings_check(const bridge_settings *s, char *err, size_t errcap);

#endif
