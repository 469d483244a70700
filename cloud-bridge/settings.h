/* settings.h - every setting of cloud-bridge, as one struct and one table
 * (the table, in settings.c, generates --help, --print-config and the
 * reference in docs/configuration.md). Conventions as in edge-agent. */
#ifndef BRIDGE_SETTINGS_H
#define BRIDGE_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "settings_link.h"
#include "settings_shared.h"

/* One MQTT side (edge or cloud): its broker(s) and how to reach them. */
typedef struct bridge_link_settings {
	es_strlist url;
	es_link_settings link;
} bridge_link_settings;

/* cloud.format: by role (batches at a site, events in the cloud), an event
 * a message, or batches (batch.h). */
enum { BRIDGE_FORMAT_AUTO, BRIDGE_FORMAT_EVENTS, BRIDGE_FORMAT_BATCH };
/* bridge.role: at a site (edge broker -> cloud), or in the cloud (batches
 * -> events for plain consumers). */
enum { BRIDGE_ROLE_SITE, BRIDGE_ROLE_CLOUD };

typedef struct bridge_settings {
	char *node_id, *node_site;
	int role; /* BRIDGE_ROLE_* */
	bridge_link_settings edge, cloud;
	char *edge_root, *edge_filter, *edge_share_group;
	char *cloud_topic;
	char *cloud_resend_topic, *cloud_reply_topic; /* re-sends asked over the cloud */
	int64_t cloud_resend_rate, cloud_resend_queue, cloud_resend_relay_ms;
	int cloud_format; /* BRIDGE_FORMAT_* */
	char *cloud_batch_coding;
	int64_t cloud_batch_max_events;
	uint64_t cloud_batch_max_bytes;
	int64_t cloud_inflight_ms;
	char *lanes_high, *lanes_low;
	int64_t lanes_ttl_s[3]; /* by lane (lanes.h) */
	int64_t lanes_backlog_share;

	es_journal_settings journal;
	uint64_t event_max_bytes;

	es_http_settings http;

	int64_t order_hole_wait_ms;
	es_gap_settings gap;
	int64_t gap_catchup, gap_max_ahead;
	int64_t shutdown_drain_ms;

	es_log_settings log;
} bridge_settings;

/* The table, as parts: the bridge's own rows and the shared ones (two MQTT
 * links, the journal, HTTP, re-sends, logging) in the order --help lists
 * them. */
extern const es_settings_part bridge_settings_parts[];
extern const size_t bridge_settings_nparts;

/* cloud.format as it applies: BRIDGE_FORMAT_EVENTS or BRIDGE_FORMAT_BATCH. */
int bridge_settings_format(const bridge_settings *s);

/* Checks what the table cannot (URLs, the filter, the template, TLS pairs);
 * writes the first problem into err. */
bool bridge_settings_check(const bridge_settings *s, char *err, size_t errcap);

#endif
