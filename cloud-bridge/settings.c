#include "settings.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "mqtt.h"
#include "answer.h"
#include "batch.h"
#include "lanes.h"
#include "remap.h"
#include "topic.h"

#define F(field) offsetof(bridge_settings, field)

#define URL_HELP "broker(s): mqtt://host:port or mqtts://host:port; a list for several"

static const es_setting node_rows[] = {
	{"node.id", ES_CFG_STR, F(node_id), NULL, 0, 0, NULL, ES_CFG_REQUIRED,
	 "this bridge's name, one topic level of [A-Za-z0-9._-]"},
	{"node.site", ES_CFG_STR, F(node_site), NULL, 0, 0, NULL, ES_CFG_REQUIRED,
	 "the site it serves, one topic level of [A-Za-z0-9._-]"},
	{"edge.url", ES_CFG_LIST, F(edge.url), "mqtt://127.0.0.1:1883", 0, 0, NULL, 0, URL_HELP},
};

static const char *const roles[] = {"site", "cloud", NULL};

static const es_setting role_rows[] = {
	{"bridge.role", ES_CFG_ENUM, F(role), "site", 0, 0, roles, 0,
	 "site: read the agents' events at the edge broker and send them to the cloud; cloud: "
	 "read the site bridges' batches at edge.url (the broker they send to) and republish "
	 "each event on its cloud.topic at cloud.url"},
};

static const es_setting_edit edge_edits[] = {
	{"client_id",
	 .help = "client id at the edge broker(s); default edgespool-bridge-<site>-<id> (with "
		 "-in in the cloud role)"},
	{"connect_timeout_s", .hide = true},
};

static const es_setting edge_rows[] = {
	{"edge.root", ES_CFG_STR, F(edge_root), "edgespool", 0, 0, NULL, 0,
	 "the agents' topic root (their mqtt.topic_root)"},
	{"edge.filter", ES_CFG_STR, F(edge_filter), NULL, 0, 0, NULL, 0,
	 "the events to forward; default <root>/+/+/ev/# and the agents' batches "
	 "<root>/+/+/batch/# (bridge.role cloud: the batches only)"},
	{"edge.share_group", ES_CFG_STR, F(edge_share_group), NULL, 0, 0, NULL, 0,
	 "share the event subscription with other bridges ($share/<group>/...)"},
	{"cloud.url", ES_CFG_LIST, F(cloud.url), "mqtt://127.0.0.1:1883", 0, 0, NULL, 0, URL_HELP},
};

static const es_setting_edit cloud_edits[] = {
	{"client_id",
	 .help = "client id at the cloud broker; default edgespool-bridge-<site>-<id> (with "
		 "-out in the cloud role)"},
	{"connect_timeout_s", .hide = true},
};

static const char *const formats[] = {"auto", "events", "batch", NULL};

static const es_setting cloud_rows[] = {
	{"cloud.topic", ES_CFG_STR, F(cloud_topic), BRIDGE_REMAP_DEFAULT, 0, 0, NULL, 0,
	 "cloud topic template: {root} {site} {node} {type} (cloud.format events)"},
	{"cloud.format", ES_CFG_ENUM, F(cloud_format), "auto", 0, 0, formats, 0,
	 "batch: a node's events that may go together as one compressed CloudEvents batch on "
	 "<root>/<site>/<node>/batch/ce=<coding> (read by edgespool's consumers and a cloud-role "
	 "bridge); events: a message an event on its cloud.topic (for plain MQTT consumers); "
	 "auto: batch in the site role, events in the cloud role"},
	{"cloud.batch_coding", ES_CFG_STR, F(cloud_batch_coding), "zstd,d1", 0, 0, NULL, 0,
	 "a batch's compression: identity, deflate or zstd, then ,<dictionary> (d1)"},
	{"cloud.batch_max_events", ES_CFG_INT, F(cloud_batch_max_events), "100", 1, 10000, NULL, 0,
	 "events in a batch at most"},
	{"cloud.batch_max_bytes", ES_CFG_SIZE, F(cloud_batch_max_bytes), "60KiB", 4096, 4194304,
	 NULL, 0,
	 "a batch's JSON before compression at most; keep it under the cloud broker's largest "
	 "message (a batch that passes it is refused, or under MQTT 3.1.1 dropped)"},
	{"cloud.resend_topic", ES_CFG_STR, F(cloud_resend_topic), BRIDGE_ANSWER_DEFAULT_TOPIC, 0, 0,
	 NULL, 0,
	 "re-send requests from the cloud, on the cloud broker: {root} {site} {node} (whole "
	 "levels)"},
	{"cloud.reply_topic", ES_CFG_STR, F(cloud_reply_topic), BRIDGE_ANSWER_DEFAULT_REPLY, 0, 0,
	 NULL, 0, "answers to them, on the cloud broker"},
	{"cloud.resend_rate", ES_CFG_INT, F(cloud_resend_rate), "1000", 1, 1000000, NULL, 0,
	 "events and answers re-published to the cloud a second, at most"},
	{"cloud.resend_queue", ES_CFG_INT, F(cloud_resend_queue), "64", 1, 4096, NULL, 0,
	 "re-send requests from the cloud waiting at most (a quarter per asker)"},
	{"cloud.resend_relay_ms", ES_CFG_MS, F(cloud_resend_relay_ms), "30s", 100, 3600000, NULL, 0,
	 "a request relayed to the agent unanswered this long is answered busy"},
};

/* The bridge's journal is its inbox. */
static const es_setting_edit journal_edits[] = {
	{"path", .def = "/var/lib/edgespool/bridge.db", .help = "the SQLite inbox"},
	{"max_bytes", .help = "cap on the inbox's size"},
	{"retain_s", .def = "1d", .help = "keep forwarded events this long"},
	{"on_full",
	 .help = "at the cap: refuse new events (they are asked for again later), or evict the "
		 "oldest forwarded ones"},
};

static const es_setting event_rows[] = {
	{"event.max_bytes", ES_CFG_SIZE, F(event_max_bytes), "64KiB", 512, 16777216, NULL, 0,
	 "largest event accepted from the edge"},
};

static const es_setting_edit http_edits[] = {
	{"listen", .def = "127.0.0.1:8081"},
	{"threads", .def = "4"},
};

static const es_setting uplink_rows[] = {
	{"cloud.inflight_ms", ES_CFG_MS, F(cloud_inflight_ms), "1s", 0, 600000, NULL, 0,
	 "batches in flight (awaiting PUBACK) at most this much of the cloud link's measured "
	 "rate, so a high-lane event never waits behind more (at least 16 KiB; 0: the "
	 "window alone)"},
	{"lanes.high", ES_CFG_STR, F(lanes_high), "alarm.#", 0, 0, NULL, 0,
	 "event types sent first, before any backlog: patterns split by commas ('*' one "
	 "word, '#' any)"},
	{"lanes.low", ES_CFG_STR, F(lanes_low), NULL, 0, 0, NULL, 0,
	 "event types sent last (readings, say); everything else is normal"},
	{"lanes.high_ttl_s", ES_CFG_SECONDS, F(lanes_ttl_s[0]), "0", 0, 315360000, NULL, 0,
	 "a high-lane event this old (since it reached the inbox) is not sent, but counted "
	 "expired and kept until journal.retain_s (0: none)"},
	{"lanes.normal_ttl_s", ES_CFG_SECONDS, F(lanes_ttl_s[1]), "0", 0, 315360000, NULL, 0,
	 "the same for the normal lane"},
	{"lanes.low_ttl_s", ES_CFG_SECONDS, F(lanes_ttl_s[2]), "0", 0, 315360000, NULL, 0,
	 "the same for the low lane"},
	{"lanes.backlog_share", ES_CFG_INT, F(lanes_backlog_share), "10", 1, 90, NULL, 0,
	 "percent of what is sent kept for the normal and low lanes while high-lane events "
	 "wait, so a backlog always drains"},
};

static const es_setting order_rows[] = {
	{"order.hole_wait_ms", ES_CFG_MS, F(order_hole_wait_ms), "2s", 0, 3600000, NULL, 0,
	 "while a node's sequence has a hole, its later events wait this long for it"},
};

/* 2^53-1: more than any node can hold, so "all of it". */
static const es_setting gap_rows[] = {
	{"gap.catchup", ES_CFG_INT, F(gap_catchup), "9007199254740991", 0, 9007199254740991LL, NULL,
	 0,
	 "when first hearing of a node (its status), ask for at most this many of the newest "
	 "events it still holds that never arrived (default: all; 0: none)"},
	{"gap.max_ahead", ES_CFG_INT, F(gap_max_ahead), "10000000", 0, 9007199254740991LL, NULL, 0,
	 "an event this far above the newest sequence its node announced is refused as "
	 "forged (0: no limit)"},
};

static const es_setting shutdown_rows[] = {
	{"shutdown.drain_ms", ES_CFG_MS, F(shutdown_drain_ms), "5s", 0, 600000, NULL, 0,
	 "on SIGTERM, wait this long for PUBACKs of what is in flight"},
};

const es_settings_part bridge_settings_parts[] = {
	ES_OWN_ROWS(node_rows),
	ES_OWN_ROWS(role_rows),
	ES_SHARED_EDITED("edge", F(edge.link), es_link_rows, edge_edits),
	ES_OWN_ROWS(edge_rows),
	ES_SHARED_EDITED("cloud", F(cloud.link), es_link_rows, cloud_edits),
	ES_OWN_ROWS(cloud_rows),
	ES_SHARED_EDITED("journal", F(journal), es_journal_rows, journal_edits),
	ES_OWN_ROWS(event_rows),
	ES_SHARED_EDITED("http", F(http), es_http_rows, http_edits),
	ES_OWN_ROWS(uplink_rows),
	ES_OWN_ROWS(order_rows),
	ES_SHARED("gap", F(gap), es_gap_rows),
	ES_OWN_ROWS(gap_rows),
	ES_OWN_ROWS(shutdown_rows),
	ES_SHARED("log", F(log), es_log_rows),
};
const size_t bridge_settings_nparts = ES_NELEM(bridge_settings_parts);

static bool fail(char *err, size_t cap, const char *key, const char *value, const char *why)
{
	snprintf(err, cap, "%s: '%s' %s", key, value ? value : "", why);
	return false;
}

static bool check_link(const bridge_link_settings *l, const char *side, char *err, size_t cap)
{
	char key[32];
	const char *why;
	snprintf(key, sizeof key, "%s.url", side);
	if (l->url.n == 0)
		return fail(err, cap, key, "", "needs at least one broker");
	for (size_t i = 0; i < l->url.n; i++)
		if ((why = es_mqtt_check_url(l->url.v[i])))
			return fail(err, cap, key, l->url.v[i], why);
	return es_link_check(&l->link, side, err, cap);
}

static bool check_topics(const bridge_settings *s, char *err, size_t cap)
{
	char why[160];
	const char *w;
	bridge_remap *r;
	if ((w = es_topic_check_root(s->edge_root)))
		return fail(err, cap, "edge.root", s->edge_root, w);
	if (s->edge_filter && (w = es_topic_check_filter(s->edge_filter, strlen(s->edge_filter))))
		return fail(err, cap, "edge.filter", s->edge_filter, w);
	if (s->edge_share_group && (w = es_topic_check_id(s->edge_share_group)))
		return fail(err, cap, "edge.share_group", s->edge_share_group, w);
	if (bridge_remap_new(s->cloud_topic, &r, why, sizeof why))
		return fail(err, cap, "cloud.topic", s->cloud_topic, why);
	bridge_remap_free(r);
	es_batch_coding coding;
	if (es_batch_coding_parse(s->cloud_batch_coding, &coding, &w))
		return fail(err, cap, "cloud.batch_coding", s->cloud_batch_coding, w);
	bridge_lanes lanes;
	if (bridge_lanes_parse(&lanes, s->lanes_high, s->lanes_low, why, sizeof why)) {
		snprintf(err, cap, "%s", why);
		return false;
	}
	bridge_lanes_free(&lanes);
	if (bridge_answer_check_topic(s->cloud_resend_topic, why, sizeof why))
		return fail(err, cap, "cloud.resend_topic", s->cloud_resend_topic, why);
	if (bridge_answer_check_topic(s->cloud_reply_topic, why, sizeof why))
		return fail(err, cap, "cloud.reply_topic", s->cloud_reply_topic, why);
	return true;
}

int bridge_settings_format(const bridge_settings *s)
{
	if (s->cloud_format != BRIDGE_FORMAT_AUTO)
		return s->cloud_format;
	return s->role == BRIDGE_ROLE_CLOUD ? BRIDGE_FORMAT_EVENTS : BRIDGE_FORMAT_BATCH;
}

bool bridge_settings_check(const bridge_settings *s, char *err, size_t cap)
{
	const char *why;
	if ((why = es_topic_check_id(s->node_id)))
		return fail(err, cap, "node.id", s->node_id, why);
	if ((why = es_topic_check_id(s->node_site)))
		return fail(err, cap, "node.site", s->node_site, why);
	if ((why = es_http_check_listen(s->http.listen)))
		return fail(err, cap, "http.listen", s->http.listen, why);
	if (s->role == BRIDGE_ROLE_CLOUD && s->cloud_format == BRIDGE_FORMAT_BATCH)
		return fail(err, cap, "cloud.format", "batch",
			    "is for the site role: bridge.role cloud republishes each event "
			    "(cloud.format events)");
	return check_link(&s->edge, "edge", err, cap) && check_link(&s->cloud, "cloud", err, cap) &&
	       check_topics(s, err, cap);
}
