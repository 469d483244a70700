#include "settings.h"

#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "http.h"
#include "links.h"
#include "mqtt.h"
#include "topic.h"

#define F(field) offsetof(agent_settings, field)

static const es_setting node_rows[] = {
	{"node.id", ES_CFG_STR, F(node_id), NULL, 0, 0, NULL, ES_CFG_REQUIRED,
	 "this gateway's name, one topic level of [A-Za-z0-9._-]"},
	{"node.site", ES_CFG_STR, F(node_site), NULL, 0, 0, NULL, ES_CFG_REQUIRED,
	 "the site the gateway belongs to, one topic level of [A-Za-z0-9._-]"},
	{"mqtt.url", ES_CFG_STR, F(mqtt_url), "mqtt://127.0.0.1:1883", 0, 0, NULL, 0,
	 "broker: mqtt://host:port or mqtts://host:port (TLS)"},
};

static const es_setting_edit mqtt_edits[] = {
	{"client_id", .help = "MQTT client id; default edgespool-<site>-<node> (keep it stable)"},
};

static const char *const formats[] = {"events", "batch", NULL};

static const es_setting topic_rows[] = {
	{"mqtt.topic_root", ES_CFG_STR, F(mqtt_topic_root), "edgespool", 0, 0, NULL, 0,
	 "first topic level(s): <root>/<site>/<node>/ev/<type>"},
	{"mqtt.format", ES_CFG_ENUM, F(mqtt_format), "events", 0, 0, formats, 0,
	 "events: a message an event on <root>/<site>/<node>/ev/<type>; batch: the events ready "
	 "together as one compressed CloudEvents batch on <root>/<site>/<node>/batch/ce=<coding> "
	 "(for a bridge or cloud-role bridge as the only reader)"},
	{"mqtt.batch_coding", ES_CFG_STR, F(mqtt_batch_coding), "zstd,d1", 0, 0, NULL, 0,
	 "a batch's compression: identity, deflate or zstd, then ,<dictionary> (d1)"},
	{"mqtt.batch_max_events", ES_CFG_INT, F(mqtt_batch_max_events), "100", 1, 10000, NULL, 0,
	 "events in a batch at most"},
	{"mqtt.batch_max_bytes", ES_CFG_SIZE, F(mqtt_batch_max_bytes), "60KiB", 4096, 4194304, NULL,
	 0,
	 "a batch's JSON before compression at most; keep it under the reader's largest message "
	 "(the bridge's event.max_bytes)"},
};

static const es_setting event_rows[] = {
	{"event.max_bytes", ES_CFG_SIZE, F(event_max_bytes), "64KiB", 512, 16777216, NULL, 0,
	 "largest encoded event"},
};

static const es_setting api_rows[] = {
	{"http.max_body", ES_CFG_SIZE, F(http_max_body), "1MiB", 1024, 268435456, NULL, 0,
	 "largest request body"},
	{"http.max_batch", ES_CFG_INT, F(http_max_batch), "1000", 1, 100000, NULL, 0,
	 "most events in one POST"},
};

static const es_setting agent_rows[] = {
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
	 "largest range one re-send request may ask for, and most events waiting to be re-sent"},
	{"resend.queue", ES_CFG_INT, F(resend_queue), "64", 1, 10000, NULL, 0,
	 "re-send requests waiting at most, a quarter from one asker (more are answered busy)"},
	{"shutdown.drain_ms", ES_CFG_MS, F(shutdown_drain_ms), "5s", 0, 600000, NULL, 0,
	 "on SIGTERM, wait this long for PUBACKs of what is in flight"},
};

/* The shared rows keep their own defaults and help (they are the agent's);
 * only the client id's default is the agent's to say. */
const es_settings_part agent_settings_parts[] = {
	ES_OWN_ROWS(node_rows),
	ES_SHARED_EDITED("mqtt", F(mqtt), es_link_rows, mqtt_edits),
	ES_OWN_ROWS(topic_rows),
	ES_SHARED("journal", F(journal), es_journal_rows),
	ES_OWN_ROWS(event_rows),
	ES_SHARED("http", F(http), es_http_rows),
	ES_OWN_ROWS(api_rows),
	ES_OWN_ROWS(agent_rows),
	ES_SHARED("log", F(log), es_log_rows),
};
const size_t agent_settings_nparts = ES_NELEM(agent_settings_parts);

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
	es_batch_coding coding;
	if (es_batch_coding_parse(s->mqtt_batch_coding, &coding, &why))
		return fail(err, cap, "mqtt.batch_coding", s->mqtt_batch_coding, why);
	if ((why = es_http_check_listen(s->http.listen)))
		return fail(err, cap, "http.listen", s->http.listen, why);
	for (size_t i = 0; i < s->link_serial.n; i++)
		if ((why = links_check_serial(s->link_serial.v[i])))
			return fail(err, cap, "link.serial", s->link_serial.v[i], why);
	for (size_t i = 0; i < s->link_listen.n; i++)
		if ((why = links_check_listen(s->link_listen.v[i])))
			return fail(err, cap, "link.listen", s->link_listen.v[i], why);
	return es_link_check(&s->mqtt, "mqtt", err, cap);
}
