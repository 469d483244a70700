/* agent.c - composes the edge agent's parts on one loop and runs its life:
 * start, the status timer, shutdown (agent.h).
 *
 * The parts, each behind its own header that says what it needs:
 *   ingest.c     POST /api/events into the journal      HTTP threads
 *   publisher.c  pending events out, PUBACKs to acks    loop
 *   resend.c     consumers' re-send requests            loop (asks: HTTP)
 *   status.c     the status message, control outbox     loop
 *   view.c       the loop's state for other threads     any (a lock)
 *   api.c        /healthz, /api/status, /api/replay     HTTP threads
 *   metrics.c    GET /metrics                           HTTP threads
 *   links.c      the device links                       its own thread
 * Only this file reads agent_settings: each part gets its own options. It
 * gives the loop parts the ops table over the MQTT client (pub_ops.h),
 * routes the client's callbacks and the journal's commit notification to
 * them, says who uses the window first (pump: control messages, live
 * events, re-sends), and runs the shutdown (running, draining, saying
 * offline, disconnecting). No part calls back into this file but through
 * a callback it was given.
 *
 * The publish path of an event, each module once on the way out and once
 * on the way back:
 *   commit  1. ingest.c     decodes the POST, es_journal_append; answers
 *                           202 once committed (an HTTP thread)
 *           2. journal.c    the writer thread commits: committed(latest)
 *           3. agent.c      on_committed wakes the loop (es_async);
 *                           on_commit_async tells the publisher, pumps
 *           4. publisher.c  reads the pending rows in order, publishes each
 *                           within the window, its sequence as the tag
 *           5. mqtt.c       paho sends it with QoS 1
 *   PUBACK  5. mqtt.c       the PUBACK, queued to the loop: published(tag)
 *           3. agent.c      on_published: an event's tag to the publisher
 *           4. publisher.c  agent_publisher_acked: es_journal_ack
 *   acked   2. journal.c    the next commit moves the ack watermark
 */
#include "agent.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "control.h"
#include "dashboard.h"
#include "ingest.h"
#include "japi.h"
#include "links.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "publisher.h"
#include "resend.h"
#include "status.h"
#include "topic.h"
#include "uuid.h"
#include "view.h"

#define TAG "agent"

enum phase { P_NEW, P_RUNNING, P_DRAINING, P_SAYING_OFFLINE, P_DISCONNECTING, P_DONE };

struct agent {
	const agent_settings *s;
	es_loop *loop;
	agent_names names;
	char source[2 * ES_TOPIC_ID_MAX + 3];
	char status_topic[ES_TOPIC_MAX], cmd_topic[ES_TOPIC_MAX], reply_topic[ES_TOPIC_MAX];
	char client_id[160];
	char boot_id[ES_UUID_STR];
	char *password;

	es_async *commit_async;
	es_journal *journal;
	es_journal_reader *reader;	/* the loop thread's */
	es_journal_reader *http_reader; /* the HTTP threads', under http_lock */
	pthread_mutex_t http_lock;
	links *links; /* NULL when no device link is configured */
	agent_view *view;
	es_http *http;
	agent_ingest *ingest;
	agent_metrics *metrics;
	agent_status *status;
	agent_publisher *pub;
	agent_resend *resend;
	es_mqtt *mqtt;
	agent_api *api;
	es_japi *japi;

	es_timer_id status_timer, drain_timer;
	enum phase phase;
};

/* ---- the loop parts together (loop thread) -------------------------------- */

/* Who goes first in the window: control messages, then live events (which
 * keep three quarters of it while a re-send is served), then re-sends. */
static void pump(agent *a)
{
	size_t reserve = agent_resend_active(a->resend) ? es_mqtt_window(a->mqtt) / 4 : 0;
	agent_status_pump(a->status);
	agent_publisher_pump(a->pub, reserve);
	agent_resend_pump(a->resend);
}

/* Copies what the HTTP threads show of the loop's state into the view. */
static void refresh_view(agent *a)
{
	es_mqtt_stats ms;
	agent_publisher_stats ps;
	agent_resend_stats rs;
	es_mqtt_stats_get(a->mqtt, &ms);
	agent_publisher_stats_get(a->pub, &ps);
	agent_resend_stats_get(a->resend, &rs);
	agent_view_data v = {.connected = ms.connected,
			     .running = a->phase == P_RUNNING,
			     .stopping = a->phase != P_NEW && a->phase != P_RUNNING,
			     .connects = ms.connects,
			     .failures = ms.failures,
			     .inflight = es_mqtt_inflight(a->mqtt),
			     .connected_since_ms = ms.connected_since_ms,
			     .published = ps.published,
			     .acked = ps.acked,
			     .refused = ps.refused,
			     .batches = ps.batches,
			     .resent = rs.events};
	snprintf(v.last_error, sizeof v.last_error, "%s", ms.last_error);
	agent_view_set(a->view, &v);
}

/* The journal committed (or the status timer asks again, which also retries
 * a read that failed): the publisher reads on. */
static void on_commit_async(void *arg)
{
	agent *a = arg;
	es_journal_counters c;
	es_journal_counters_get(a->journal, &c);
	agent_publisher_committed(a->pub, c.latest_seq);
	pump(a);
}

/* On the journal's writer thread. */
static void on_committed(void *ctx, uint64_t latest)
{
	agent *a = ctx;
	(void)latest; /* the loop reads the newest from the journal's counters */
	es_async_send(a->commit_async);
}

static void status_tick(void *arg)
{
	agent *a = arg;
	a->status_timer = 0;
	if (a->phase != P_RUNNING)
		return;
	if (es_mqtt_is_connected(a->mqtt))
		agent_status_publish(a->status);
	refresh_view(a);
	on_commit_async(a);
	es_loop_timer(a->loop, (uint64_t)a->s->status_interval_s * 1000, status_tick, a,
		      &a->status_timer);
}

static void resend_reply(void *ctx, const char *json, size_t len)
{
	agent *a = ctx;
	agent_status_send(a->status, a->reply_topic, json, len, false);
}

static void resend_wake(void *ctx)
{
	pump(ctx);
}

/* ---- MQTT callbacks (loop thread) ----------------------------------------- */

static void finish_drain(agent *a);
static void disconnect(agent *a);

static void on_connected(void *ctx, bool session_present)
{
	agent *a = ctx;
	(void)session_present;
	agent_status_publish(a->status);
	refresh_view(a);
	pump(a);
}

static void on_disconnected(void *ctx, const char *cause, uint64_t retry_ms)
{
	agent *a = ctx;
	agent_publisher_reset(a->pub);
	refresh_view(a);
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

static void on_published(void *ctx, uint64_t tag, es_err err)
{
	agent *a = ctx;
	bool event = tag != AGENT_TAG_CONTROL && !(tag & AGENT_TAG_RESEND);
	if (err == ES_ENOTCONN) {
		agent_publisher_reset(a->pub); /* lost on the way: again from the oldest pending */
	} else if (event && (err == ES_OK || err == ES_EPROTO)) {
		agent_publisher_acked(a->pub, tag, err);
		if (err)
			refresh_view(a); /* a refusal shows at once */
	}
	if (a->phase == P_DRAINING && es_mqtt_inflight(a->mqtt) == 0)
		finish_drain(a);
	else if (a->phase == P_SAYING_OFFLINE && es_mqtt_inflight(a->mqtt) == 0)
		disconnect(a);
	else
		pump(a);
}

static void on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
	agent *a = ctx;
	if (strcmp(topic, a->cmd_topic) == 0)
		agent_resend_request(a->resend, payload, len);
	else
		es_warn(TAG, "unexpected message on %s ignored", topic);
}

/* Larger than any control message: the MQTT link let it go unread. */
static void on_oversized(void *ctx, const char *topic, size_t len)
{
	agent *a = ctx;
	if (strcmp(topic, a->cmd_topic) == 0)
		agent_resend_oversized(a->resend, len);
	else
		es_warn(TAG, "unexpected message of %zu bytes on %s ignored", len, topic);
}

/* Counts an HTTP request (any thread); the metrics exist before it starts. */
static void on_request(void *ctx, const char *method, const char *route, int status, double seconds)
{
	agent *a = ctx;
	es_node_metrics_on_request(agent_metrics_node(a->metrics), method, route, status, seconds);
}

/* ---- making the parts, from the settings ----------------------------------- */

static es_err topic(const agent *a, const char *kind, const char *rest, char *buf, size_t cap)
{
	return es_topic_build(buf, cap, a->names.root, a->names.site, a->names.node, kind, rest);
}

static es_err make_names(agent *a)
{
	const agent_settings *s = a->s;
	es_uuid boot;
	a->names = (agent_names){s->mqtt_topic_root, s->node_site, s->node_id};
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
	if ((err = topic(a, "status", NULL, a->status_topic, sizeof a->status_topic)) ||
	    (err = topic(a, "cmd", "resend", a->cmd_topic, sizeof a->cmd_topic)) ||
	    (err = topic(a, "reply", "resend", a->reply_topic, sizeof a->reply_topic))) {
		es_error(TAG, "topics for %s/%s/%s are not valid", s->mqtt_topic_root, s->node_site,
			 s->node_id);
		return err;
	}
	char why[300];
	if (s->mqtt.password_file &&
	    (err = es_config_read_secret(s->mqtt.password_file, &a->password, why, sizeof why)))
		es_error(TAG, "mqtt.password_file %s", why);
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
		.linger_ms = (uint64_t)s->journal.linger_ms,
		.ack_flush_ms = (uint64_t)s->journal.ack_flush_ms,
		.committed = on_committed,
		.ctx = a,
	};
	es_err err = es_async_new(a->loop, on_commit_async, a, &a->commit_async);
	if (err)
		return err;
	if ((err = es_journal_open(&o, &a->journal))) {
		es_error(TAG, "cannot open the journal %s: %s", s->journal.path, es_strerror(err));
		return err;
	}
	if ((err = es_journal_reader_new(a->journal, &a->reader)) ||
	    (err = es_journal_reader_new(a->journal, &a->http_reader)))
		es_error(TAG, "cannot read the journal: %s", es_strerror(err));
	return err;
}

static void close_journal(agent *a)
{
	es_journal_reader_free(a->reader);
	es_journal_reader_free(a->http_reader);
	if (a->journal)
		es_journal_sync_acks(a->journal);
	es_journal_close(a->journal);
	es_async_free(a->commit_async); /* after the writer, which sends it */
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

/* The HTTP server, and the parts on its threads that need nothing of the
 * loop's: ingest and metrics (with the view they read). */
static es_err make_http(agent *a)
{
	const agent_settings *s = a->s;
	es_http_opts ho = {
		.listen = s->http.listen,
		.threads = (int)s->http.threads,
		.max_body = (size_t)s->http_max_body, /* at most 256 MiB */
		.auth_file = s->http.auth_file,
		.token_file = s->http.token_file,
		.metrics_open = s->http.metrics_open,
		.on_request = on_request,
		.hook_ctx = a,
	};
	agent_ingest_opts io = {.journal = a->journal,
				.source = a->source,
				.event_max_bytes = (size_t)s->event_max_bytes,
				.max_batch = (size_t)s->http_max_batch};
	agent_metrics_opts mo = {.journal = a->journal,
				 .reader = a->http_reader,
				 .reader_lock = &a->http_lock,
				 .journal_cap = s->journal.max_bytes,
				 .links = a->links};
	es_err err = agent_view_new(&a->view);
	if (err || (err = es_http_new(&ho, &a->http)))
		return err;
	io.http = mo.http = a->http;
	if ((err = agent_ingest_new(&io, &a->ingest)))
		return err;
	mo.ingest = a->ingest;
	mo.view = a->view;
	return agent_metrics_new(&mo, &a->metrics);
}

static void free_http(agent *a)
{
	es_http_free(a->http); /* first: its workers use the parts */
	a->http = NULL;
	agent_ingest_free(a->ingest);
	agent_metrics_free(a->metrics); /* after the publisher, too */
	agent_view_free(a->view);
}

static es_err make_loop_parts(agent *a)
{
	const agent_settings *s = a->s;
	agent_status_opts so = {.topic = a->status_topic,
				.boot_id = a->boot_id,
				.journal = a->journal,
				.reader = a->reader,
				.ops = &agent_mqtt_ops,
				.ops_ctx = &a->mqtt};
	agent_publisher_opts po = {.names = a->names,
				   .journal = a->journal,
				   .reader = a->reader,
				   .ops = &agent_mqtt_ops,
				   .ops_ctx = &a->mqtt,
				   .metrics = agent_metrics_node(a->metrics)};
	es_batch_enc_opts batch = {.max_events = (size_t)s->mqtt_batch_max_events,
				   .max_bytes = (size_t)s->mqtt_batch_max_bytes};
	const char *why;
	if (s->mqtt_format == AGENT_FORMAT_BATCH) {
		if (es_batch_coding_parse(s->mqtt_batch_coding, &batch.coding, &why))
			return ES_EINVAL; /* checked with the settings */
		po.batch = &batch;
	}
	agent_resend_opts ro = {.loop = a->loop,
				.names = a->names,
				.journal = a->journal,
				.reader = a->reader,
				.rate = (uint64_t)s->resend_rate,
				.max_span = (uint64_t)s->resend_max_span,
				.queue = (size_t)s->resend_queue,
				.ops = &agent_mqtt_ops,
				.ops_ctx = &a->mqtt,
				.reply = resend_reply,
				.wake = resend_wake,
				.ctx = a};
	es_err err = agent_status_new(&so, &a->status);
	if (!err)
		err = agent_publisher_new(&po, &a->pub);
	if (!err)
		err = agent_resend_new(&ro, &a->resend);
	return err;
}

static void free_loop_parts(agent *a)
{
	agent_resend_free(a->resend);
	agent_publisher_free(a->pub);
	agent_status_free(a->status);
}

static es_err make_mqtt(agent *a)
{
	const agent_settings *s = a->s;
	char *offline;
	size_t len;
	es_err err = agent_status_encode(a->status, false, &offline, &len);
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
			      .message = on_message,
			      .oversized = on_oversized};
	o.max_message = ES_CONTROL_MAX_BYTES; /* it subscribes to its commands only */
	o.ctx = a;
	err = es_mqtt_new(a->loop, &o, &a->mqtt);
	free(offline);
	if (!err)
		err = es_mqtt_subscribe(a->mqtt, a->cmd_topic, 1);
	return err;
}

/* The routes that report on every part: the agent's API, the journal's REST
 * API and live stream, the dashboard. */
static es_err make_api(agent *a)
{
	const agent_settings *s = a->s;
	agent_api_opts o = {.http = a->http,
			    .journal = a->journal,
			    .reader = a->http_reader,
			    .reader_lock = &a->http_lock,
			    .view = a->view,
			    .ingest = a->ingest,
			    .resend = a->resend,
			    .links = a->links,
			    .node = s->node_id,
			    .site = s->node_site,
			    .source = a->source,
			    .boot_id = a->boot_id,
			    .broker_url = s->mqtt_url,
			    .client_id = a->client_id,
			    .journal_path = s->journal.path,
			    .journal_max_bytes = s->journal.max_bytes};
	int live_max = (int)s->http.threads / 2;
	es_err err = agent_api_new(&o, &a->api);
	if (!err)
		err = es_japi_new(&(es_japi_opts){.http = a->http,
						  .journal = a->journal,
						  .status_json = agent_api_status_json,
						  .ctx = a->api,
						  .live_max = live_max ? live_max : 1},
				  &a->japi);
	if (!err)
		err = es_http_assets(a->http, es_dashboard_assets, es_dashboard_assets_count);
	return err;
}

static void free_api(agent *a)
{
	es_japi_stop(a->japi); /* its live streams end, so the HTTP server can stop */
	es_http_free(a->http);
	a->http = NULL;
	es_japi_free(a->japi);
	agent_api_free(a->api);
}

/* ---- life ----------------------------------------------------------------------- */

es_err agent_new(const agent_settings *s, es_loop *loop, agent **out)
{
	agent *a = calloc(1, sizeof *a);
	es_err err;
	if (!a)
		return ES_ENOMEM;
	a->s = s;
	a->loop = loop;
	pthread_mutex_init(&a->http_lock, NULL);
	if ((err = make_names(a)) || (err = open_journal(a)))
		goto fail_journal;
	if ((err = make_links(a)))
		goto fail_links;
	if ((err = make_http(a)))
		goto fail_http;
	if ((err = make_loop_parts(a)))
		goto fail_loop_parts;
	if ((err = make_mqtt(a)))
		goto fail_mqtt;
	if ((err = make_api(a)))
		goto fail_api;
	*out = a;
	return ES_OK;
fail_api:
	free_api(a);
fail_mqtt:
	es_mqtt_free(a->mqtt);
fail_loop_parts:
	free_loop_parts(a);
fail_http:
	free_http(a);
fail_links:
	links_free(a->links);
fail_journal:
	close_journal(a);
	free(a->password);
	pthread_mutex_destroy(&a->http_lock);
	free(a);
	return err;
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
	if (a->phase != P_DRAINING)
		return;
	if (a->drain_timer)
		es_loop_timer_cancel(a->loop, a->drain_timer);
	a->drain_timer = 0;
	a->phase = P_SAYING_OFFLINE;
	if (agent_status_publish_offline(a->status))
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
	agent_ingest_close(a->ingest);
	agent_resend_stop(a->resend);
	agent_publisher_stop(a->pub);
	a->phase = P_DRAINING;
	refresh_view(a);      /* the HTTP threads say "stopping" */
	links_stop(a->links); /* its last records are journaled and acked */
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
	free_api(a);	      /* stops the HTTP server first: its workers use the parts */
	links_free(a->links); /* and the links thread, which uses the journal */
	if (a->drain_timer)
		es_loop_timer_cancel(a->loop, a->drain_timer);
	if (a->status_timer)
		es_loop_timer_cancel(a->loop, a->status_timer);
	es_mqtt_free(a->mqtt);
	free_loop_parts(a);
	free_http(a);
	close_journal(a);
	free(a->password);
	pthread_mutex_destroy(&a->http_lock);
	free(a);
}
