#include "settings.h"

#include <stdio.h>
#include <string.h>

#include "consumer.h"
#include "http.h"
#include "mqtt.h"
#include "source.h"
#include "topic.h"

#define F(field) offsetof(fleet_settings, field)

static const char *const sync_modes[] = {"full", "normal", NULL};

static const es_setting source_rows[] = {
	{"node.id", ES_CFG_STR, F(node_id), "fleet-state", 0, 0, NULL, 0,
	 "this consumer's name: its AMQP consumer tag and MQTT client id"},

	{"source.amqp", ES_CFG_LIST, F(source_amqp), NULL, 0, 0, NULL, 0,
	 "AMQP 0-9-1 broker(s): amqp://user@host:port/vhost, amqps:// for TLS; several: a "
	 "cluster's nodes, tried in turn"},
	{"source.queue", ES_CFG_STR, F(source_queue), "fleet-state", 0, 0, NULL, 0,
	 "AMQP queue, declared durable with x-queue-type quorum"},
	{"source.bind", ES_CFG_LIST, F(source_bind), "#", 0, 0, NULL, 0,
	 "routing-key pattern(s) bound on amq.topic (topic '/' becomes '.')"},
	{"source.prefetch", ES_CFG_INT, F(source_prefetch), "256", 1, 65535, NULL, 0,
	 "AMQP prefetch, and the most deliveries applied in one transaction"},
	{"source.heartbeat_s", ES_CFG_SECONDS, F(source_heartbeat_s), "30", 1, 3600, NULL, 0,
	 "AMQP heartbeat"},
	{"source.mqtt", ES_CFG_LIST, F(source_mqtt), NULL, 0, 0, NULL, 0,
	 "MQTT broker(s) instead of AMQP: mqtt://host:port, mqtts:// for TLS; several: tried in "
	 "turn"},
	{"source.topic", ES_CFG_LIST, F(source_topic), "edgespool/#", 0, 0, NULL, 0,
	 "MQTT topic filter(s), subscribed with QoS 1 in a persistent session"},
};

/* Both sources take a user, a password file, TLS (mqtts://, amqps://) and
 * the backoff from these rows; the MQTT one's client id is node.id, the
 * rest are defaults. */
static const es_setting_edit source_edits[] = {
	{"client_id", .hide = true},
	{"version", .hide = true},
	{"username", .help = "broker user name (AMQP: instead of the URL's)"},
	{"password_file", .help = "file holding the broker password (first line), instead of "
				  "one in the URL"},
	{"ca", .help = "CA certificate (PEM) to verify the broker over TLS; default: the system's"},
	{"keepalive_s", .hide = true},
	{"inflight", .hide = true},
	{"session_expiry_s", .hide = true},
	{"connect_timeout_s", .hide = true},
};

static const es_setting state_rows[] = {
	{"state.path", ES_CFG_STR, F(state_path), "/var/lib/edgespool/fleet-state.db", 0, 0, NULL,
	 ES_CFG_PATH, "the SQLite file: projection, dedup, checkpoint and event log"},
	{"state.sync", ES_CFG_ENUM, F(state_sync), "full", 0, 0, sync_modes, 0,
	 "full: fsync each commit (survives power loss); normal: survives crashes only"},
	{"state.dedup_max", ES_CFG_INT, F(state_dedup_max), "1000000", 1, 1LL << 40, NULL, 0,
	 "event ids remembered for de-duplication at most"},
	{"state.dedup_max_age_s", ES_CFG_SECONDS, F(state_dedup_max_age_s), "7d", 0, 3650LL * 86400,
	 NULL, 0, "and for at most this long (0: no age limit)"},
	{"state.snapshot_every", ES_CFG_INT, F(state_snapshot_every), "100000", 0, 1LL << 40, NULL,
	 0, "events between snapshots of the projection (0: none, the event log is never trimmed)"},
	{"state.log_keep", ES_CFG_INT, F(state_log_keep), "100000", 0, 1LL << 40, NULL, 0,
	 "events kept in the event log before the latest snapshot (for --rebuild --from-scratch)"},
	{"event.max_bytes", ES_CFG_SIZE, F(event_max_bytes), "64KiB", 512, 16777216, NULL, 0,
	 "largest event accepted"},

	{"repair.node", ES_CFG_LIST, F(repair_node), NULL, 0, 0, NULL, 0,
	 "SOURCE=URL: fetch that source's missing sequences from the node's HTTP API "
	 "(e.g. /site-1/gw-7=http://gw-7:8080)"},
	{"repair.ask", ES_CFG_BOOL, F(repair_ask), "true", 0, 0, NULL, 0,
	 "without repair.node: ask the nodes to re-send on the source's broker, MQTT or AMQP "
	 "(their site's bridge answers)"},
	{"repair.root", ES_CFG_STR, F(repair_root), "edgespool", 0, 0, NULL, 0,
	 "the nodes' topic root for those requests"},
};

static const es_setting_edit http_edits[] = {
	{"listen", .def = "127.0.0.1:8083"},
	{"threads", .def = "4"},
};

const es_settings_part fleet_settings_parts[] = {
	ES_OWN_ROWS(source_rows),
	ES_SHARED_EDITED("source", F(source), es_link_rows, source_edits),
	ES_OWN_ROWS(state_rows),
	ES_SHARED_EDITED("http", F(http), es_http_rows, http_edits),
	ES_SHARED("log", F(log), es_log_rows),
};
const size_t fleet_settings_nparts = ES_NELEM(fleet_settings_parts);

static bool fail(char *err, size_t cap, const char *key, const char *value, const char *why)
{
	snprintf(err, cap, "%s: '%s' %s", key, value ? value : "", why);
	return false;
}

static bool check_list(const es_strlist *l, const char *key, const char *(*check)(const char *),
		       char *err, size_t cap)
{
	const char *why;
	for (size_t i = 0; i < l->n; i++)
		if ((why = check(l->v[i])))
			return fail(err, cap, key, l->v[i], why);
	return true;
}

static const char *check_repair(const char *r)
{
	const char *eq = strchr(r, '=');
	if (!eq || eq == r || strncmp(eq + 1, "http", 4) != 0)
		return "is not SOURCE=URL (/site-1/gw-7=http://gw-7:8080)";
	return NULL;
}

static const char *check_filter(const char *f)
{
	return es_topic_check_filter(f, strlen(f));
}

/* A routing-key pattern: words of anything but '.', '*' and '#' whole. */
static const char *check_bind(const char *b)
{
	if (!*b || strlen(b) > 255)
		return "must be 1..255 characters";
	for (const char *w = b; w; w = strchr(w, '.') ? strchr(w, '.') + 1 : NULL) {
		size_t n = strcspn(w, ".");
		if ((memchr(w, '*', n) || memchr(w, '#', n)) && n != 1)
			return "has '*' or '#' inside a word (they stand for whole words)";
	}
	return NULL;
}

static bool check_root(const char *root, char *err, size_t cap)
{
	const char *why = es_topic_check_root(root);
	if (why)
		snprintf(err, cap, "repair.root '%s': %s", root, why);
	return why == NULL;
}

bool fleet_settings_check(const fleet_settings *s, bool need_source, char *err, size_t cap)
{
	const char *why;
	if ((why = es_topic_check_id(s->node_id)))
		return fail(err, cap, "node.id", s->node_id, why);
	if ((why = es_http_check_listen(s->http.listen)))
		return fail(err, cap, "http.listen", s->http.listen, why);
	if (need_source && !s->source_amqp.n == !s->source_mqtt.n) {
		snprintf(err, cap,
			 "source.amqp and source.mqtt: exactly one of them must be set "
			 "(the AMQP brokers or the MQTT brokers to consume from)");
		return false;
	}
	if (!es_link_check(&s->source, "source", err, cap))
		return false;
	return check_list(&s->source_amqp, "source.amqp", es_amqp_check_url, err, cap) &&
	       check_list(&s->source_mqtt, "source.mqtt", es_mqtt_check_url, err, cap) &&
	       check_list(&s->source_topic, "source.topic", check_filter, err, cap) &&
	       check_list(&s->source_bind, "source.bind", check_bind, err, cap) &&
	       check_list(&s->repair_node, "repair.node", check_repair, err, cap) &&
	       check_root(s->repair_root, err, cap);
}
