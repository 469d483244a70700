#include "settings.h"

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "links.h"
#include "mqtt.h"
#include "topic.h"

#define F(field) offsetof(agent_settings, field)
#define DAY	 (24 * 3600)

static const char *const mqtt_versions[] = {"3.1.1", "5", NULL};
static const char *const sync_modes[] = {"full", "normal", NULL};
static const char *const full_policies[] = {"refuse", "evict-oldest-acked", NULL};
/* In es_log_level order. */
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

const es_setting agent_settings_table[] = {
	{"node.id", ES_CFG_STR, F(node_id), NULL, 0, 0, NULL, ES_CFG_REQUIRED,
	 "this gateway's name, one topic level of [A-Za-z0-9._-]"},
	{"node.site", ES_CFG_STR, F(node_site), NULL, 0, 0, NULL, ES_CFG_REQUIRED,
	 "the site the gateway belongs to, one topic level of [A-Za-z0-9._-]"},

	{"mqtt.url", ES_CFG_STR, F(mqtt_url), "mqtt://127.0.0.1:1883", 0, 0, NULL, 0,
	 "broker: mqtt://host:port or mqtts://host:port (TLS)"},
	{"mqtt.client_id", ES_CFG_STR, F(mqtt_client_id), NULL, 0, 0, NULL, 0,
	 "MQTT client id; default edgespool-<site>-<node> (keep it stable)"},
	{"mqtt.version", ES_CFG_ENUM, F(mqtt_version), "3.1.1", 0, 0, mqtt_versions, 0,
	 "MQTT protocol version"},
	{"mqtt.username", ES_CFG_STR, F(mqtt_username), NULL, 0, 0, NULL, 0, "MQTT user name"},
	{"mqtt.password_file", ES_CFG_STR, F(mqtt_password_file), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "file holding the MQTT password (first line)"},
	{"mqtt.ca", ES_CFG_STR, F(mqtt_ca), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "CA certificate (PEM) to verify the broker; default: the system's"},
	{"mqtt.cert", ES_CFG_STR, F(mqtt_cert), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "client certificate (PEM) for mutual TLS"},
	{"mqtt.key", ES_CFG_STR, F(mqtt_key), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "client private key (PEM) for mutual TLS"},
	{"mqtt.tls_verify", ES_CFG_BOOL, F(mqtt_tls_verify), "true", 0, 0, NULL, 0,
	 "verify the broker's certificate and host name"},
	{"mqtt.keepalive_s", ES_CFG_SECONDS, F(mqtt_keepalive_s), "30", 1, 3600, NULL, 0,
	 "MQTT keepalive"},
	{"mqtt.inflight", ES_CFG_INT, F(mqtt_inflight), "100", 1, 65535, NULL, 0,
	 "QoS 1 publishes awaiting PUBACK at most"},
	{"mqtt.session_expiry_s", ES_CFG_SECONDS, F(mqtt_session_expiry_s), "1d", 1, 4294967295LL,
	 NULL, 0, "MQTT 5 session expiry"},
	{"mqtt.connect_timeout_s", ES_CFG_SECONDS, F(mqtt_connect_timeout_s), "10", 1, 300, NULL, 0,
	 "give up a connection attempt after this long"},
	{"mqtt.backoff_base_ms", ES_CFG_MS, F(mqtt_backoff_base_ms), "250", 10, 600000, NULL, 0,
	 "reconnect backoff: first ceiling (doubles per failure, full jitter)"},
	{"mqtt.backoff_max_ms", ES_CFG_MS, F(mqtt_backoff_max_ms), "30s", 10, 3600000, NULL, 0,
	 "reconnect backoff: largest ceiling"},
	{"mqtt.topic_root", ES_CFG_STR, F(mqtt_topic_root), "edgespool", 0, 0, NULL, 0,
	 "first topic level(s): <root>/<site>/<node>/ev/<type>"},

	{"journal.path", ES_CFG_STR, F(journal_path), "/var/lib/edgespool/agent.db", 0, 0, NULL,
	 ES_CFG_PATH, "the SQLite journal file"},
	{"journal.sync", ES_CFG_ENUM, F(journal_sync), "full", 0, 0, sync_modes, 0,
	 "full: fsync each commit (survives power loss); normal: survives crashes only"},
	{"journal.max_bytes", ES_CFG_SIZE, F(journal_max_bytes), "1GiB", 65536, 1LL << 50, NULL, 0,
	 "cap on the journal's size"},
	{"journal.retain_s", ES_CFG_SECONDS, F(journal_retain_s), "7d", 0, 3650LL * DAY, NULL, 0,
	 "keep acknowledged events this long (for re-sends and replay)"},
	{"journal.on_full", ES_CFG_ENUM, F(journal_on_full), "refuse", 0, 0, full_policies, 0,
	 "at the cap: refuse new events, or evict the oldest acknowledged ones"},

	{"event.max_bytes", ES_CFG_SIZE, F(event_max_bytes), "64KiB", 512, 16777216, NULL, 0,
	 "largest encoded event"},

	{"http.listen", ES_CFG_STR, F(http_listen), "127.0.0.1:8080", 0, 0, NULL, 0,
	 "HTTP address; port 0 picks a free port (logged)"},
	{"http.auth_file", ES_CFG_STR, F(http_auth_file), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "users allowed in: user:crypt-hash lines (edgespool passwd FILE USER adds one)"},
	{"http.token_file", ES_CFG_STR, F(http_token_file), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "a bearer token (first line) also allowed in, for scripts"},
	{"http.metrics_open", ES_CFG_BOOL, F(http_metrics_open), "false", 0, 0, NULL, 0,
	 "serve /metrics without credentials (for a scraper on a trusted network)"},
	{"http.threads", ES_CFG_INT, F(http_threads), "8", 1, 256, NULL, 0, "HTTP worker threads"},
	{"http.max_body", ES_CFG_SIZE, F(http_max_body), "1MiB", 1024, 268435456, NULL, 0,
	 "largest request body"},
	{"http.max_batch", ES_CFG_INT, F(http_max_batch), "1000", 1, 100000, NULL, 0,
	 "most events in one POST"},

	{"link.serial", ES_CFG_LIST, F(link_serial), NULL, 0, 0, NULL, 0,
	 "device links on serial lines: PATH[:BAUD] (baud 115200 if not given); a pty works too"},
	{"link.listen", ES_CFG_LIST, F(link_listen), NULL, 0, 0, NULL, 0,
	 "device links on sockets: tcp:HOST:PORT or unix:PATH"},
	{"link.max_devices", ES_CFG_INT, F(link_max_devices), "10000", 1, 1000000, NULL, 0,
	 "devices remembered at most; a new device beyond this is ignored (counted)"},
	{"link.max_clients", ES_CFG_INT, F(link_max_clients), "64", 1, 4096, NULL, 0,
	 "connections at most on each link.listen socket"},
	{"link.time_sync_s", ES_CFG_SECONDS, F(link_time_sync_s), "60", 0, 86400, NULL, 0,
	 "send the devices the time this often (0: only in answer to a hello)"},
	{"link.reopen_ms", ES_CFG_MS, F(link_reopen_ms), "1s", 10, 600000, NULL, 0,
	 "retry a serial line that is absent or failed this often"},

	{"status.interval_s", ES_CFG_SECONDS, F(status_interval_s), "10", 1, 3600, NULL, 0,
	 "publish the retained status message this often"},
	{"resend.rate", ES_CFG_INT, F(resend_rate), "5000", 1, 1000000, NULL, 0,
	 "re-sent events per second at most"},
	{"resend.max_span", ES_CFG_INT, F(resend_max_span), "100000", 1, 100000000, NULL, 0,
	 "largest range one re-send request may ask for"},
	{"resend.queue", ES_CFG_INT, F(resend_queue), "64", 1, 10000, NULL, 0,
	 "re-send requests waiting at most (more are answered busy)"},
	{"shutdown.drain_ms", ES_CFG_MS, F(shutdown_drain_ms), "5s", 0, 600000, NULL, 0,
	 "on SIGTERM, wait this long for PUBACKs of what is in flight"},

	{"log.level", ES_CFG_ENUM, F(log_level), "info", 0, 0, log_levels, 0, "log threshold"},
	{"log.syslog", ES_CFG_BOOL, F(log_syslog), "false", 0, 0, NULL, 0, "also log to syslog"},
};
const size_t agent_settings_count = sizeof agent_settings_table / sizeof agent_settings_table[0];

static bool fail(char *err, size_t cap, const char *key, const char *value, const char *why)
{
	snprintf(err, cap, "%s: '%s' %s", key, value ? value : "", why);
	return false;
}

static bool check_names(const agent_settings *s, char *err, size_t cap)
{
	const char *why;
	if ((why = es_topic_check_id(s->node_id)))
		return fail(err, cap, "node.id", s->node_id, why);
	if ((why = es_topic_check_id(s->node_site)))
		return fail(err, cap, "node.site", s->node_site, why);
	if ((why = es_topic_check_root(s->mqtt_topic_root)))
		return fail(err, cap, "mqtt.topic_root", s->mqtt_topic_root, why);
	return true;
}

bool agent_settings_check(const agent_settings *s, char *err, size_t cap)
{
	const char *why;
	if (!check_names(s, err, cap))
		return false;
	if ((why = es_mqtt_check_url(s->mqtt_url)))
		return fail(err, cap, "mqtt.url", s->mqtt_url, why);
	if ((why = es_http_check_listen(s->http_listen)))
		return fail(err, cap, "http.listen", s->http_listen, why);
	for (size_t i = 0; i < s->link_serial.n; i++)
		if ((why = links_check_serial(s->link_serial.v[i])))
			return fail(err, cap, "link.serial", s->link_serial.v[i], why);
	for (size_t i = 0; i < s->link_listen.n; i++)
		if ((why = links_check_listen(s->link_listen.v[i])))
			return fail(err, cap, "link.listen", s->link_listen.v[i], why);
	if (!s->mqtt_cert != !s->mqtt_key)
		return fail(err, cap, "mqtt.cert", s->mqtt_cert,
			    "and mqtt.key must be set together");
	if (s->mqtt_backoff_base_ms > s->mqtt_backoff_max_ms)
		return fail(err, cap, "mqtt.backoff_base_ms", "",
			    "must not exceed mqtt.backoff_max_ms");
	return true;
}
