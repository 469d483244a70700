/* settings_link.c - the settings rows of an MQTT link, its checks and its
 * es_mqtt options; see settings_link.h. */
#include "settings_link.h"

#include <stdio.h>

#define L(field) offsetof(es_link_settings, field)

static const char *const versions[] = {"3.1.1", "5", NULL};

const es_setting es_link_rows[ES_LINK_ROWS] = {
	{"client_id", ES_CFG_STR, L(client_id), NULL, 0, 0, NULL, 0,
	 "MQTT client id (keep it stable: the broker keeps the session under it)"},
	{"version", ES_CFG_ENUM, L(version), "3.1.1", 0, 0, versions, 0, "MQTT protocol version"},
	{"username", ES_CFG_STR, L(username), NULL, 0, 0, NULL, 0, "MQTT user name"},
	{"password_file", ES_CFG_STR, L(password_file), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "file holding the MQTT password (first line)"},
	{"ca", ES_CFG_STR, L(ca), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "CA certificate (PEM) to verify the broker; default: the system's"},
	{"cert", ES_CFG_STR, L(cert), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "client certificate (PEM) for mutual TLS"},
	{"key", ES_CFG_STR, L(key), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "client private key (PEM) for mutual TLS"},
	{"tls_verify", ES_CFG_BOOL, L(tls_verify), "true", 0, 0, NULL, 0,
	 "verify the broker's certificate and host name"},
	{"keepalive_s", ES_CFG_SECONDS, L(keepalive_s), "30", 1, 3600, NULL, 0, "MQTT keepalive"},
	{"inflight", ES_CFG_INT, L(inflight), "100", 1, 65535, NULL, 0,
	 "QoS 1 publishes awaiting PUBACK at most"},
	{"session_expiry_s", ES_CFG_SECONDS, L(session_expiry_s), "1d", 1, 4294967295LL, NULL, 0,
	 "MQTT 5 session expiry"},
	{"connect_timeout_s", ES_CFG_SECONDS, L(connect_timeout_s), "10", 1, 300, NULL, 0,
	 "give up a connection attempt after this long"},
	{"backoff_base_ms", ES_CFG_MS, L(backoff_base_ms), "250", 10, 600000, NULL, 0,
	 "reconnect backoff: first ceiling (doubles per failure, full jitter)"},
	{"backoff_max_ms", ES_CFG_MS, L(backoff_max_ms), "30s", 10, 3600000, NULL, 0,
	 "reconnect backoff: largest ceiling"},
};

/* Contract in settings_link.h. */
bool es_link_check(const es_link_settings *l, const char *prefix, char *err, size_t cap)
{
	if (!l->cert != !l->key) {
		snprintf(err, cap, "%s.cert: '%s' and %s.key must be set together", prefix,
			 l->cert ? l->cert : "", prefix);
		return false;
	}
	if (l->backoff_base_ms > l->backoff_max_ms) {
		snprintf(err, cap, "%s.backoff_base_ms: '' must not exceed %s.backoff_max_ms",
			 prefix, prefix);
		return false;
	}
	return true;
}

/* Contract in settings_link.h. The rows' ranges make every conversion
 * below exact (inflight <= 65535, session expiry <= 2^32 - 1, ...). */
void es_link_mqtt_opts(const es_link_settings *l, const char *client_id, const char *password,
		       es_mqtt_opts *out)
{
	*out = (es_mqtt_opts){
		.client_id = l->client_id ? l->client_id : client_id,
		.version = l->version == ES_LINK_V5 ? 5 : 4,
		.username = l->username,
		.password = password,
		.ca_file = l->ca,
		.cert_file = l->cert,
		.key_file = l->key,
		.tls_verify = l->tls_verify,
		.keepalive_s = (int)l->keepalive_s,
		.inflight = (int)l->inflight,
		.session_expiry_s = (uint32_t)l->session_expiry_s,
		.connect_timeout_s = (int)l->connect_timeout_s,
		.backoff_base_ms = (uint64_t)l->backoff_base_ms,
		.backoff_max_ms = (uint64_t)l->backoff_max_ms,
	};
}
