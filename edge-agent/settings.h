/* settings.h - every setting of edge-agent, as one struct and one table.
 *
 * The table (settings.c) is the single source of truth: --help, --print-config
 * and the README's configuration reference are generated from it.
 */
#ifndef AGENT_SETTINGS_H
#define AGENT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum { AGENT_MQTT_V311 = 0, AGENT_MQTT_V5 = 1 };
enum { AGENT_SYNC_FULL = 0, AGENT_SYNC_NORMAL = 1 };
enum { AGENT_FULL_REFUSE = 0, AGENT_FULL_EVICT = 1 };

typedef struct agent_settings {
	char *node_id, *node_site;

	char *mqtt_url, *mqtt_client_id, *mqtt_username, *mqtt_password_file;
	char *mqtt_ca, *mqtt_cert, *mqtt_key, *mqtt_topic_root;
	int mqtt_version;
	bool mqtt_tls_verify;
	int64_t mqtt_keepalive_s, mqtt_inflight, mqtt_session_expiry_s, mqtt_connect_timeout_s;
	int64_t mqtt_backoff_base_ms, mqtt_backoff_max_ms;

	char *journal_path;
	int journal_sync, journal_on_full;
	uint64_t journal_max_bytes;
	int64_t journal_retain_s;

	uint64_t event_max_bytes;

	char *http_listen, *http_auth_file, *http_token_file;
	bool http_metrics_open;
	int64_t http_threads, http_max_batch;
	uint64_t http_max_body;

	es_strlist link_serial, link_listen;
	int64_t link_max_devices, link_max_clients, link_time_sync_s, link_reopen_ms;

	int64_t status_interval_s;
	int64_t resend_rate, resend_max_span, resend_queue;
	int64_t shutdown_drain_ms;

	int log_level; /* an es_log_level */
	bool log_syslog;
} agent_settings;

extern const es_setting agent_settings_table[];
extern const size_t agent_settings_count;

/* Checks what the table cannot: URLs, listen address, topic parts, that a
 * client certificate comes with its key. Writes the first problem into err. */
bool agent_settings_check(const agent_settings *s, char *err, size_t errcap);

#endif
