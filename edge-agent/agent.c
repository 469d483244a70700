/* agent.c - wires the journal, the MQTT client and the HTTP server together
 * on one loop, and runs the agent's life: start, status, shutdown. */
#include "agent_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "control.h"
#include "dashboard.h"
#include "log.h"

#define TAG	   "agent"
#define OUTBOX_MAX 256

es_err agent_topic(const agent *a, const char *kind, const char *rest, char *buf, size_t cap)
{
	return es_topic_build(buf, cap, a->s->mqtt_topic_root, a->s->node_site, a->s->node_id, kind,
			      rest);
}

/* ---- the control outbox: status and replies go before any event -------- */

static void free_msg(struct control_msg *m)
{
	free(m->topic);
	free(m->payload);
	free(m);
}

void agent_control_send(agent *a, const char *topic, const char *payload, size_t len, bool retain)
{
	if (a->outbox_n == OUTBOX_MAX) {
		es_warn(TAG, "control outbox full; dropping a message for %s", topic);
		return;
	}
	struct control_msg *m = calloc(1, sizeof *m);
	if (!m || !(m->topic = strdup(topic)) || !(m->payload = malloc(len + 1))) {
		if (m)
			free_msg(m);
		es_error(TAG, "out of memory queuing a message for %s", topic);
		return;
	}
	memcpy(m->payload, payload, len);
	m->len = len;
	m->retain = retain;
	if (a->outbox_tail)
		a->outbox_tail->next = m;
	else
		a->outbox_head = m;
	a->outbox_tail = m;
	a->outbox_n++;
	control_pump(a); /* not pub_pump: this is called from inside the pumps */
}

void control_pump(agent *a)
{
	while (a->outbox_head && es_mqtt_is_connected(a->mqtt)) {
		struct control_msg *m = a->outbox_head;
		es_err err = es_mqtt_publish(a->mqtt, m->topic, m->payload, m->len, 1, m->retain,
					     TAG_CONTROL);
		if (err == ES_EBUSY || err == ES_ENOTCONN)
			return;
		a->outbox_head = m->next;
		if (!a->outbox_head)
			a->outbox_tail = NULL;
		a->outbox_n--;
		free_msg(m);
	}
}

static void outbox_clear(agent *a)
{
	while (a->outbox_head) {
		struct control_msg *m = a->outbox_head;
		a->outbox_head = m->next;
		free_msg(m);
	}
	a->outbox_tail = NULL;
	a->outbox_n = 0;
}

/* ---- status ---------------------------------------------------------------- */

static es_err status_json(agent *a, bool online, char **json, size_t *len)
{
	es_status_msg m = {
		.online = online, .clock_synced = es_clock_synced(), .time_ms = es_clock_wall_ms()};
	es_journal_stats st;
	snprintf(m.boot_id, sizeof m.boot_id, "%s", a->boot_id);
	snprintf(m.journal_id, sizeof m.journal_id, "%s", es_journal_id(a->journal));
	m.latest_seq = atomic_load(&a->committed_seq);
	if (online && es_journal_stats_get(a->reader, &st) == ES_OK) {
		m.acked_seq = st.acked_seq;
		m.oldest_seq = st.oldest_seq;
		m.pending = st.pending;
	}
	return es_status_encode(&m, json, len);
}

void agent_publish_status(agent *a, bool online)
{
	char *json;
	size_t len;
	if (status_json(a, online, &json, &len)) {
		es_error(TAG, "cannot encode the status message");
		return;
	}
	/* A newer status makes a queued one pointless: replace it. */
	for (struct control_msg *m = a->outbox_head; m; m = m->next) {
		if (m->retain && strcmp(m->topic, a->status_topic) == 0) {
			free(m->payload);
			m->payload = json;
			m->len = len;
			return;
		}
	}
	agent_control_send(a, a->status_topic, json, len, true);
	free(json);
}

static void status_tick(void *arg)
{
	agent *a = arg;
	a->status_timer = 0;
	if (a->phase != P_RUNNING)
		return;
	if (es_mqtt_is_connected(a->mqtt))
		agent_publish_status(a, true);
	agent_snapshot_update(a);
	pub_committed(a, atomic_load(&a->committed_seq)); /* also retries a failed read */
	es_loop_timer(a->loop, (uint64_t)a->s->status_interval_s * 1000, status_tick, a,
		      &a->status_timer);
}

void agent_snapshot_update(agent *a)
{
	es_mqtt_stats ms;
	es_mqtt_stats_get(a->mqtt, &ms);
	pthread_mutex_lock(&a->snap_lock);
	a->snap.connected = ms.connected;
	a->snap.connects = ms.connects;
	a->snap.failures = ms.failures;
	a->snap.inflight = es_mqtt_inflight(a->mqtt);
	a->snap.published = a->pub.published;
	a->snap.acked = a->pub.acked;
	a->snap.resent = a->rs.events;
	a->snap.connected_since_ms = ms.connected_since_ms;
	snprintf(a->snap.last_error, sizeof a->snap.last_error, "%s", ms.last_error);
	pthread_mutex_unlock(&a->snap_lock);
}

/* ---- MQTT callbacks (loop thread) -------------------------------------------- */

static void on_connected(void *ctx, bool session_present)
{
	agent *a = ctx;
	agent_publish_status(a, true);
	agent_snapshot_update(a);
	pub_pump(a);
}

static void on_disconnected(void *ctx, const char *cause, uint64_t retry_ms)
{
	agent *a = ctx;
	pub_reset(a);
	agent_snapshot_update(a);
	if (a->phase == P_DISCONNECTING) {
		a->phase = P_DONE;
		if (a->drain_timer)
			es_loop_timer_cancel(a->loop, a->drain_timer);
		a->drain_timer = 0;
		es_loop_stop(a->loop);
	} else if (retry_ms) {
		es_debug(TAG, "broker unavailable (%s); retrying in %llu ms", cause,
			 (unsigned long long)retry_ms);
	}
}

static void finish_drain(agent *a);
static void disconnect(agent *a);

static void on_published(void *ctx, uint64_t tag, es_err err)
{
	agent *a = ctx;
	bool event = tag != TAG_CONTROL && !(tag & TAG_RESEND);
	if (err == ES_ENOTCONN) {
		pub_reset(a); /* lost on the way: publish again from the oldest pending */
	} else if (err == ES_EPROTO && event) {
		/* The broker will never take it (MQTT 5 refusal, e.g. not
		 * authorized): count it and move on, or it would block the
		 * watermark and be re-sent after every reconnect. */
		atomic_fetch_add(&a->refused_by_broker, 1);
		es_error(TAG,
			 "event %llu refused by the broker; it stays in the journal, "
			 "not delivered",
			 (unsigned long long)tag);
		pub_acked(a, tag);
	} else if (!err && event) {
		pub_acked(a, tag);
	}
	if (a->phase == P_DRAINING && es_mqtt_inflight(a->mqtt) == 0)
		finish_drain(a);
	else if (a->phase == P_SAYING_OFFLINE && es_mqtt_inflight(a->mqtt) == 0)
		disconnect(a);
	else
		pub_pump(a);
}

static void on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
	agent *a = ctx;
	if (strcmp(topic, a->cmd_topic) == 0)
		resend_request(a, payload, len);
	else
		es_warn(TAG, "unexpected message on %s ignored", topic);
}

/* The journal's writer committed events: wake the publisher. */
static void on_commit_async(void *arg)
{
	agent *a = arg;
	pub_committed(a, atomic_load(&a->committed_seq));
}

static void on_committed(void *ctx, uint64_t latest)
{
	agent *a = ctx;
	atomic_store(&a->committed_seq, latest);
	es_async_send(a->commit_async);
}

/* ---- setup ---------------------------------------------------------------- */

static es_err make_names(agent *a)
{
	const agent_settings *s = a->s;
	es_uuid boot;
	snprintf(a->source, sizeof a->source, "/%s/%s", s->node_site, s->node_id);
	if (s->mqtt.client_id)
		snprintf(a->client_id, sizeof a->client_id, "%s", s->mqtt.client_id);
	else
		snprintf(a->client_id, sizeof a->client_id, "edgespool-%s-%s", s->node_site,
			 s->node_id);
	es_err err = es_uuid4(&boot);
	if (err)
		return err;
	es_uuid_format(&boot, a->boot_id);
	if ((err = agent_topic(a, "status", NULL, a->status_topic, sizeof a->status_topic)) ||
	    (err = agent_topic(a, "cmd", "resend", a->cmd_topic, sizeof a->cmd_topic)) ||
	    (err = agent_topic(a, "reply", "resend", a->reply_topic, sizeof a->reply_topic)))
		es_error(TAG, "topics for %s/%s/%s are not valid", s->mqtt_topic_root, s->node_site,
			 s->node_id);
	return err;
}

static es_err open_journal(agent *a)
{
	const agent_settings *s = a->s;
	es_journal_opts o = {
		.path = s->journal.path,
		.sync = s->journal.sync == ES_JOURNAL_SYNC_FULL ? ES_SYNC_FULL : ES_SYNC_NORMAL,
		.max_bytes = s->journal.max_bytes,
		.retain_ms = (uint64_t)s->journal.retain_s * 1000,
		.on_full = s->journal.on_full == ES_JOURNAL_EVICT ? ES_ON_FULL_EVICT
								  : ES_ON_FULL_REFUSE,
		.source = a->source,
		.max_event_bytes = (size_t)s->event_max_bytes, /* at most 16 MiB */
		.committed = on_committed,
		.ctx = a,
	};
	es_err err = es_journal_open(&o, &a->journal);
	if (err) {
		es_error(TAG, "cannot open the journal %s: %s", s->journal.path, es_strerror(err));
		return err;
	}
	es_journal_counters c;
	es_journal_counters_get(a->journal, &c);
	atomic_store(&a->committed_seq, c.latest_seq);
	if ((err = es_journal_reader_new(a->journal, &a->reader)) ||
	    (err = es_journal_reader_new(a->journal, &a->api_reader)))
		es_error(TAG, "cannot read the journal: %s", es_strerror(err));
	return err;
}

static es_err make_mqtt(agent *a)
{
	const agent_settings *s = a->s;
	char *offline = NULL;
	size_t len;
	es_err err = status_json(a, false, &offline, &len);
	if (err)
		return err;
	es_mqtt_opts o;
	es_link_mqtt_opts(&s->mqtt, a->client_id, a->password, &o);
	o.url = s->mqtt_url;
	o.will_topic = a->status_topic;
	o.will_payload = offline;
	o.will_retain = true;
	o.cbs = (es_mqtt_cbs){.connected = on_connected,
			      .disconnected = on_disconnected,
			      .published = on_published,
			      .message = on_message};
	o.ctx = a;
	err = es_mqtt_new(a->loop, &o, &a->mqtt);
	free(offline);
	if (!err)
		err = es_mqtt_subscribe(a->mqtt, a->cmd_topic, 1);
	return err;
}

static es_err make_http(agent *a)
{
	es_http_opts o = {
		.listen = a->s->http.listen,
		.threads = (int)a->s->http.threads,
		.max_body = (size_t)a->s->http_max_body, /* at most 256 MiB */
		.auth_file = a->s->http.auth_file,
		.token_file = a->s->http.token_file,
		.metrics_open = a->s->http.metrics_open,
		.on_request = agent_metrics_on_request,
		.hook_ctx = a,
	};
	es_err err = es_http_new(&o, &a->http);
	if (!err)
		err = api_register(a);
	if (!err)
		err = agent_metrics_init(a);
	if (!err)
		err = es_japi_new(&(es_japi_opts){.http = a->http,
						  .journal = a->journal,
						  .status_json = agent_status_json,
						  .ctx = a,
						  .live_max = o.threads / 2 ? o.threads / 2 : 1},
				  &a->japi);
	if (!err)
		err = es_http_assets(a->http, es_dashboard_assets, es_dashboard_assets_count);
	return err;
}

static es_err make_links(agent *a)
{
	const agent_settings *s = a->s;
	if (!s->link_serial.n && !s->link_listen.n)
		return ES_OK;
	links_opts o = {
		.serial = &s->link_serial,
		.listen = &s->link_listen,
		.max_devices = (size_t)s->link_max_devices,
		.max_clients = (size_t)s->link_max_clients,
		.time_sync_ms = (uint64_t)s->link_time_sync_s * 1000,
		.reopen_ms = (uint64_t)s->link_reopen_ms,
		.journal = a->journal,
	};
	return links_new(&o, &a->links);
}

es_err agent_new(const agent_settings *s, es_loop *loop, agent **out)
{
	agent *a = calloc(1, sizeof *a);
	if (!a)
		return ES_ENOMEM;
	a->s = s;
	a->loop = loop;
	pthread_mutex_init(&a->snap_lock, NULL);
	pthread_mutex_init(&a->api_lock, NULL);
	pub_init(a);
	es_err err = make_names(a);
	if (!err && s->mqtt.password_file) {
		char why[300];
		if ((err = es_config_read_secret(s->mqtt.password_file, &a->password, why,
						 sizeof why)))
			es_error(TAG, "mqtt.password_file %s", why);
	}
	if (!err)
		err = es_async_new(loop, on_commit_async, a, &a->commit_async);
	if (!err)
		err = resend_init(a);
	if (!err)
		err = open_journal(a);
	if (!err)
		err = make_mqtt(a);
	if (!err)
		err = make_http(a);
	if (!err)
		err = make_links(a);
	if (err) {
		agent_free(a);
		return err;
	}
	*out = a;
	return ES_OK;
}

es_err agent_start(agent *a)
{
	es_err err = es_http_start(a->http);
	if (err)
		return err;
	a->phase = P_RUNNING;
	es_info(TAG, "node %s serving HTTP on port %d; journal %s; broker %s", a->source,
		es_http_port(a->http), a->s->journal.path, a->s->mqtt_url);
	if ((err = es_mqtt_start(a->mqtt)))
		return err;
	if (a->links && (err = links_start(a->links)))
		return err;
	status_tick(a);
	return ES_OK;
}

int agent_http_port(const agent *a)
{
	return es_http_port(a->http);
}

es_journal *agent_journal(agent *a)
{
	return a->journal;
}

/* ---- shutdown ------------------------------------------------------------------ */

/* The loop stops on the broker's answer to DISCONNECT (on_disconnected), or
 * a second after asking, whatever the broker does. */
static void stop_now(void *arg)
{
	agent *a = arg;
	a->drain_timer = 0;
	if (a->phase == P_DISCONNECTING) {
		es_warn(TAG, "the broker did not confirm the disconnect; stopping anyway");
		a->phase = P_DONE;
		es_loop_stop(a->loop);
	}
}

static void disconnect(agent *a)
{
	if (a->drain_timer)
		es_loop_timer_cancel(a->loop, a->drain_timer);
	a->drain_timer = 0;
	a->phase = P_DISCONNECTING;
	/* Nothing is in flight by now, so paho disconnects at once (with
	 * messages in flight it re-checks only every three seconds). */
	es_mqtt_disconnect(a->mqtt, 0);
	if (a->phase == P_DISCONNECTING)
		es_loop_timer(a->loop, 1000, stop_now, a, &a->drain_timer);
}

static void offline_timeout(void *arg)
{
	agent *a = arg;
	a->drain_timer = 0;
	if (a->phase == P_SAYING_OFFLINE)
		disconnect(a);
}

/* A clean disconnect sends no will: say "offline" ourselves, wait for its
 * PUBACK (a second at most), then disconnect. */
static void finish_drain(agent *a)
{
	char *json;
	size_t len;
	if (a->phase != P_DRAINING)
		return;
	if (a->drain_timer)
		es_loop_timer_cancel(a->loop, a->drain_timer);
	a->drain_timer = 0;
	a->phase = P_SAYING_OFFLINE;
	if (!es_mqtt_is_connected(a->mqtt) || status_json(a, false, &json, &len)) {
		disconnect(a);
		return;
	}
	es_err err = es_mqtt_publish(a->mqtt, a->status_topic, json, len, 1, true, TAG_CONTROL);
	free(json);
	if (err)
		disconnect(a);
	else
		es_loop_timer(a->loop, 1000, offline_timeout, a, &a->drain_timer);
}

static void drain_timeout(void *arg)
{
	agent *a = arg;
	a->drain_timer = 0;
	es_warn(TAG,
		"%zu publishes still unacknowledged after shutdown.drain_ms; they stay "
		"pending in the journal",
		es_mqtt_inflight(a->mqtt));
	finish_drain(a);
}

void agent_shutdown(agent *a)
{
	if (a->phase != P_RUNNING && a->phase != P_NEW)
		return;
	es_info(TAG, "shutting down: no new events; waiting for %zu PUBACKs",
		es_mqtt_inflight(a->mqtt));
	atomic_store(&a->closing, true);
	links_stop(a->links); /* its last records are journaled and acked */
	a->phase = P_DRAINING;
	if (a->status_timer)
		es_loop_timer_cancel(a->loop, a->status_timer);
	a->status_timer = 0;
	if (es_mqtt_inflight(a->mqtt) == 0 || !es_mqtt_is_connected(a->mqtt)) {
		finish_drain(a);
		return;
	}
	es_loop_timer(a->loop, (uint64_t)a->s->shutdown_drain_ms, drain_timeout, a,
		      &a->drain_timer);
}

void agent_free(agent *a)
{
	if (!a)
		return;
	es_japi_stop(a->japi); /* its live streams end, so the HTTP server can stop */
	es_http_free(a->http); /* first: its workers use the journal */
	es_japi_free(a->japi);
	links_free(a->links); /* so does the links thread */
	if (a->drain_timer)
		es_loop_timer_cancel(a->loop, a->drain_timer);
	if (a->status_timer)
		es_loop_timer_cancel(a->loop, a->status_timer);
	es_mqtt_free(a->mqtt);
	resend_free(a);
	pub_free(a);
	outbox_clear(a);
	es_journal_reader_free(a->reader);
	es_journal_reader_free(a->api_reader);
	if (a->journal)
		es_journal_sync_acks(a->journal);
	es_journal_close(a->journal);
	es_async_free(a->commit_async);
	agent_metrics_free(a); /* after the http workers and the loop's users */
	pthread_mutex_destroy(&a->snap_lock);
	pthread_mutex_destroy(&a->api_lock);
	free(a->password);
	free(a);
}
