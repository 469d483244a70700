/* settings.h - every setting of edge-agent, as one struct and one table.
 *
 * The table (settings.c) is the single source of truth: --help, --print-config
 * and the configuration reference in docs/ are generated from it. The rows
 * the agent shares with other programs are declared in common/
 * (settings_link.h, settings_shared.h); it places them under its sections.
 */
#ifndef AGENT_SETTINGS_H
#define AGENT_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "settings_link.h"
#include "settings_shared.h"

/* mqtt.format: an event a message, or batches (batch.h). */
enum { AGENT_FORMAT_EVENTS, AGENT_FORMAT_BATCH };

typedef struct agent_settings {
	char *node_id, *node_site;

	char *mqtt_url;	       /* mqtt.url: the one broker */
	es_link_settings mqtt; /* the rest of mqtt.* */
	char *mqtt_topic_root;
	int mqtt_format; /* AGENT_FORMAT_* */
	char *mqtt_batch_coding;
	int64_t mqtt_batch_max_events;
	uint64_t mqtt_batch_max_bytes;

	es_journal_settings journal;

	uint64_t event_max_bytes;

	es_http_settings http;
	int64_t http_max_batch;
	uint64_t http_max_body;

	es_strlist link_serial, link_listen;
	int64_t link_max_devices, link_max_clients, link_time_sync_s, link_reopen_ms;

	int64_t status_interval_s;
	int64_t resend_rate, resend_max_span, resend_queue;
	int64_t shutdown_drain_ms;

	es_log_settings log;
} agent_settings;

/* The table, as parts: the agent's own rows and the shared ones (the MQTT
 * link, the journal, HTTP, logging) in the order --help lists them. */
extern const es_settings_part agent_settings_parts[];
extern const size_t agent_settings_nparts;

/* Checks what the table cannot: URLs, listen address, topic parts, that a
 * client certificate comes with its key. Writes the first problem into err. */
bool agent_settings_check(const agent_settings *s, char *err, size_t errcap);

#endif
