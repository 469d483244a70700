#include "settings.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "mqtt.h"
#include "remap.h"
#include "topic.h"

#define F(field) offsetof(bridge_settings, field)

static const char *const versions[] = {"3.1.1", "5", NULL};
static const char *const sync_modes[] = {"full", "normal", NULL};
static const char *const full_policies[] = {"refuse", "evict-oldest-acked", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

/* The keys of one MQTT side; `side` is "edge" or "cloud". */
#define LINK(side, url_default, client_help)                                                        \
	{#side ".url",                                                                              \
	 ES_CFG_LIST,                                                                               \
	 F(side.url),                                                                               \
	 url_default,                                                                               \
	 0,                                                                                         \
	 0,                                                                                         \
	 NULL,                                                                                      \
	 0,                                                                                         \
	 "broker(s): mqtt://host:port or mqtts://host:port; a list for several"},                   \
		{#side ".client_id", ES_CFG_STR, F(side.client_id), NULL, 0, 0, NULL, 0,            \
		 client_help},                                                                      \
		{#side ".version", ES_CFG_ENUM, F(side.version),	"3.1.1", 0, 0,              \
		 versions,	   0,		"MQTT protocol version"},                           \
		{#side ".username", ES_CFG_STR, F(side.username), NULL, 0, 0, NULL, 0,              \
		 "MQTT user name"},                                                                 \
		{#side ".password_file",                                                            \
		 ES_CFG_STR,                                                                        \
		 F(side.password_file),                                                             \
		 NULL,                                                                              \
		 0,                                                                                 \
		 0,                                                                                 \
		 NULL,                                                                              \
		 ES_CFG_PATH,                                                                       \
		 "file holding the MQTT password (first line)"},                                    \
		{#side ".ca",                                                                       \
		 ES_CFG_STR,                                                                        \
		 F(side.ca),                                                                        \
		 NULL,                                                                              \
		 0,                                                                                 \
		 0,                                                                                 \
		 NULL,                                                                              \
		 ES_CFG_PATH,                                                                       \
		 "CA certificate (PEM) to verify the broker; default: the system's"},               \
		{#side ".cert", ES_CFG_STR,  F(side.cert),                                          \
		 NULL,		0,	     0,                                                     \
		 NULL,		ES_CFG_PATH, "client certificate (PEM) for mutual TLS"},            \
		{#side ".key", ES_CFG_STR,  F(side.key),                                            \
		 NULL,	       0,	    0,                                                      \
		 NULL,	       ES_CFG_PATH, "client private key (PEM) for mutual TLS"},             \
		{#side ".tls_verify",                                                               \
		 ES_CFG_BOOL,                                                                       \
		 F(side.tls_verify),                                                                \
		 "true",                                                                            \
		 0,                                                                                 \
		 0,                                                                                 \
		 NULL,                                                                              \
		 0,                                                                                 \
		 "verify the broker's certificate and host name"},                                  \
		{#side ".keepalive_s", ES_CFG_SECONDS, F(side.keepalive_s), "30", 1, 3600, NULL, 0, \
		 "MQTT keepalive"},                                                                 \
		{#side ".inflight",                                                                 \
		 ES_CFG_INT,                                                                        \
		 F(side.inflight),                                                                  \
		 "100",                                                                             \
		 1,                                                                                 \
		 65535,                                                                             \
		 NULL,                                                                              \
		 0,                                                                                 \
		 "QoS 1 publishes awaiting PUBACK at most"},                                        \
		{#side ".session_expiry_s",                                                         \
		 ES_CFG_SECONDS,                                                                    \
		 F(side.session_expiry_s),                                                          \
		 "1d",                                                                              \
		 1,                                                                                 \
		 4294967295LL,                                                                      \
		 NULL,                                                                              \
		 0,                                                                                 \
		 "MQTT 5 session expiry"},                                                          \
		{#side ".backoff_base_ms",                                                          \
		 ES_CFG_MS,                                                                         \
		 F(side.backoff_base_ms),                                                           \
		 "250",                                                                             \
		 10,                                                                                \
		 600000,                                                                            \
		 NULL,                                                                              \
		 0,                                                                                 \
		 "reconnect backoff: first ceiling (doubles per failure, full jitter)"},            \
	{                                                                                           \
#side ".backoff_max_ms", ES_CFG_MS, F(side.backoff_max_ms), "30s", 10, 3600000,     \
			NULL, 0, "reconnect backoff: largest ceiling"                               \
	}

const es_setting bridge_settings_table[] = {
	{"node.id", ES_CFG_STR, F(node_id), NULL, 0, 0, NULL, ES_CFG_REQUIRED,
	 "this bridge's name, one topic level of [A-Za-z0-9._-]"},
	{"node.site", ES_CFG_STR, F(node_site), NULL, 0, 0, NULL, ES_CFG_REQUIRED,
	 "the site it serves, one topic level of [A-Za-z0-9._-]"},

	LINK(edge, "mqtt://127.0.0.1:1883",
	     "client id at the edge broker(s); default edgespool-bridge-<site>-<id>"),
	{"edge.root", ES_CFG_STR, F(edge_root), "edgespool", 0, 0, NULL, 0,
	 "the agents' topic root (their mqtt.topic_root)"},
	{"edge.filter", ES_CFG_STR, F(edge_filter), NULL, 0, 0, NULL, 0,
	 "the events to forward; default <root>/+/+/ev/#"},
	{"edge.share_group", ES_CFG_STR, F(edge_share_group), NULL, 0, 0, NULL, 0,
	 "share the event subscription with other bridges ($share/<group>/...)"},

	LINK(cloud, "mqtt://127.0.0.1:1883",
	     "client id at the cloud broker; default edgespool-bridge-<site>-<id>"),
	{"cloud.topic", ES_CFG_STR, F(cloud_topic), BRIDGE_REMAP_DEFAULT, 0, 0, NULL, 0,
	 "cloud topic template: {root} {site} {node} {type}"},

	{"journal.path", ES_CFG_STR, F(journal_path), "/var/lib/edgespool/bridge.db", 0, 0, NULL,
	 ES_CFG_PATH, "the SQLite inbox"},
	{"journal.sync", ES_CFG_ENUM, F(journal_sync), "full", 0, 0, sync_modes, 0,
	 "full: fsync each commit (survives power loss); normal: survives crashes only"},
	{"journal.max_bytes", ES_CFG_SIZE, F(journal_max_bytes), "1GiB", 65536, 1LL << 50, NULL, 0,
	 "cap on the inbox's size"},
	{"journal.retain_s", ES_CFG_SECONDS, F(journal_retain_s), "1d", 0, 3650LL * 86400, NULL, 0,
	 "keep forwarded events this long"},
	{"journal.on_full", ES_CFG_ENUM, F(journal_on_full), "refuse", 0, 0, full_policies, 0,
	 "at the cap: refuse new events (they are asked for again later), or evict the oldest "
	 "forwarded ones"},
	{"event.max_bytes", ES_CFG_SIZE, F(event_max_bytes), "64KiB", 512, 16777216, NULL, 0,
	 "largest event accepted from the edge"},

	{"http.listen", ES_CFG_STR, F(http_listen), "127.0.0.1:8081", 0, 0, NULL, 0,
	 "HTTP address; port 0 picks a free port (logged)"},
	{"http.auth_file", ES_CFG_STR, F(http_auth_file), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "users allowed in: user:crypt-hash lines (edgespool passwd FILE USER adds one)"},
	{"http.token_file", ES_CFG_STR, F(http_token_file), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "a bearer token (first line) also allowed in, for scripts"},
	{"http.metrics_open", ES_CFG_BOOL, F(http_metrics_open), "false", 0, 0, NULL, 0,
	 "serve /metrics without credentials (for a scraper on a trusted network)"},
	{"http.threads", ES_CFG_INT, F(http_threads), "4", 1, 256, NULL, 0, "HTTP worker threads"},

	{"order.hole_wait_ms", ES_CFG_MS, F(order_hole_wait_ms), "2s", 0, 3600000, NULL, 0,
	 "while a node's sequence has a hole, its later events wait this long for it"},
	{"gap.grace_ms", ES_CFG_MS, F(gap_grace_ms), "500", 1, 3600000, NULL, 0,
	 "a hole waits this long before it is asked for"},
	{"gap.retry_ms", ES_CFG_MS, F(gap_retry_ms), "5s", 1, 3600000, NULL, 0,
	 "ask again after this long while a hole stays open"},
	{"gap.max_span", ES_CFG_INT, F(gap_max_span), "10000", 1, 100000000, NULL, 0,
	 "largest range in one re-send request"},
	{"shutdown.drain_ms", ES_CFG_MS, F(shutdown_drain_ms), "5s", 0, 600000, NULL, 0,
	 "on SIGTERM, wait this long for PUBACKs of what is in flight"},

	{"log.level", ES_CFG_ENUM, F(log_level), "info", 0, 0, log_levels, 0, "log threshold"},
	{"log.syslog", ES_CFG_BOOL, F(log_syslog), "false", 0, 0, NULL, 0, "also log to syslog"},
};
const size_t bridge_settings_count = sizeof bridge_settings_table / sizeof bridge_settings_table[0];

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
	snprintf(key, sizeof key, "%s.cert", side);
	if (!l->cert != !l->key)
		return fail(err, cap, key, l->cert, "and its .key must be set together");
	snprintf(key, sizeof key, "%s.backoff_base_ms", side);
	if (l->backoff_base_ms > l->backoff_max_ms)
		return fail(err, cap, key, "", "must not exceed backoff_max_ms");
	return true;
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
	return true;
}

bool bridge_settings_check(const bridge_settings *s, char *err, size_t cap)
{
	const char *why;
	if ((why = es_topic_check_id(s->node_id)))
		return fail(err, cap, "node.id", s->node_id, why);
	if ((why = es_topic_check_id(s->node_site)))
		return fail(err, cap, "node.site", s->node_site, why);
	if ((why = es_http_check_listen(s->http_listen)))
		return fail(err, cap, "http.listen", s->http_listen, why);
	return check_link(&s->edge, "edge", err, cap) && check_link(&s->cloud, "cloud", err, cap) &&
	       check_topics(s, err, cap);
}
