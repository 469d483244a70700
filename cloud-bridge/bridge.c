/* bridge.c - the cloud bridge: makes its parts from the settings (the only
 * file that reads them), wires each part's needs to the others, and runs
 * the bridge's life on one loop. No part knows another: each says in its
 * header what it needs, and the callbacks here give it.
 *
 * One event's way through the bridge, each step in the file that takes it:
 *  1. edge.c     an edge broker delivers it on a link (paho's thread; the
 *                loop runs the callback); the link notes it heard the node.
 *  2. intake.c   checks it (a CloudEvent with an id and a sequence on
 *                <root>/<site>/<node>/ev/<type>; else a dead letter) and
 *                queues it for the inbox thread, which journals it verbatim
 *                (unique by id, group commit) and hands the result back to
 *                the loop.
 *  3. repair.c   the gap tracker takes in the committed (node, sequence);
 *                in a share group it goes into the report to the partners.
 *  4. forward.c  reads the row from the inbox into its node's list and, its
 *                turn come, publishes it QoS 1 on the cloud link (es_mqtt,
 *                through the ops below); on the cloud broker's PUBACK it
 *                marks the row acked in the inbox: forwarded.
 * metrics.c watches step 4 (the time from commit to PUBACK). Off the path:
 * repair.c asks for holes through edge.c; api.c and metrics.c show a view
 * composed here from each part's own stats.
 */
#include "bridge.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "api.h"
#include "batch.h"
#include "clock.h"
#include "config.h"
#include "control.h"
#include "edge.h"
#include "forward.h"
#include "intake.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "repair.h"
#include "topic.h"
#include "upstatus.h"
#include "view.h"

#define TAG	"bridge"
#define TICK_MS 100
/* The largest batch the cloud role reads: batch.h's decoded limit, and a
 * frame's overhead for a batch that did not compress. */
#define BATCH_MESSAGE_MAX (ES_BATCH_MAX_BYTES_DEFAULT + 65536u)
/* Node statuses for the cloud (upstatus.h): their publish tag (answers'
 * bit, so nothing waits for their PUBACK) and how often one goes at most. */
#define STATUS_TAG	(BRIDGE_ANSWER_TAG | (UINT64_C(1) << 61))
#define STATUS_EVERY_MS 1000

enum bphase { B_NEW, B_RUNNING, B_DRAINING, B_STOPPING, B_DONE };

/* Lock: `cloud_lock` guards `cloud_view`; the loop thread owns the rest. */
struct bridge {
	const bridge_settings *s;
	es_loop *loop;
	es_journal *journal; /* the inbox */
	bridge_repair *repair;
	bridge_answer *answer;	   /* re-sends asked over the cloud */
	bridge_upstatus *upstatus; /* site role, cloud.format batch; else NULL */
	es_batch_coding coding;	   /* cloud.batch_coding, parsed */
	bridge_forward *forward;
	bridge_intake *intake;
	bridge_edge *edge;
	es_mqtt *cloud;
	es_http *http;
	bridge_api *api;
	bridge_metrics *metrics;

	char client_edge[160], client_cloud[160];
	/* The edge subscriptions: filter, and in the site role by default
	 * also the agents' batches (batch_filter; "" for none). */
	char filter[ES_TOPIC_MAX], batch_filter[ES_TOPIC_MAX], peer_topic[ES_TOPIC_MAX];
	char *edge_password, *cloud_password;

	es_timer_id tick, drain_timer;
	enum bphase phase;
	bool edges_done;      /* the edge links and the inbox thread have stopped */
	_Atomic bool running; /* bridge_start is done */
	_Atomic bool closing;
	pthread_mutex_t cloud_lock;
	bridge_cloud_view cloud_view; /* as of the last tick */
};

static void finish_stop(void *ctx);
static void drain_step(bridge *b);

/* ---- what the parts need from each other --------------------------------- */

static void edge_message(void *ctx, const char *topic, const void *payload, size_t len)
{
	bridge *b = ctx;
	bridge_answer_event(b->answer, topic, payload, len);
	bridge_intake_message(b->intake, topic, payload, len);
}

static void on_status(void *ctx, const char *node, const void *payload, size_t len)
{
	bridge *b = ctx;
	bridge_repair_status(b->repair, node, payload, len);
	if (b->upstatus) {
		/* Sent now if urgent (a node's first): before any batch of its
		 * events, which the tracker admits only after this status. */
		bridge_upstatus_agent(b->upstatus, node, payload, len);
		if (es_mqtt_is_connected(b->cloud))
			bridge_upstatus_tick(b->upstatus, es_clock_mono_ms());
	}
}

static void on_reply(void *ctx, const char *node, const void *payload, size_t len)
{
	bridge *b = ctx;
	if (!bridge_answer_reply(b->answer, node, payload, len))
		bridge_repair_reply(b->repair, node, payload, len);
}

static void on_peer(void *ctx, const void *payload, size_t len)
{
	bridge *b = ctx;
	bridge_repair_peer(b->repair, payload, len);
}

static bridge_admit admit(void *ctx, const char *node, uint64_t seq, char *why, size_t whycap)
{
	bridge *b = ctx;
	switch (bridge_repair_admit(b->repair, node, seq, why, whycap)) {
	case BRIDGE_REPAIR_NEW:
		return BRIDGE_ADMIT_NEW;
	case BRIDGE_REPAIR_SEEN:
		return BRIDGE_ADMIT_SEEN;
	default:
		return BRIDGE_ADMIT_REFUSE;
	}
}

/* A node's new epoch reaches the intake (conflicts are the epoch's) and the
 * forwarder (its order starts again). At start, only the intake. */
static void on_epoch(void *ctx, const char *node, uint32_t epoch, bool fresh)
{
	bridge *b = ctx;
	bridge_intake_epoch(b->intake, node, epoch, fresh);
	if (fresh)
		bridge_forward_epoch(b->forward, node);
	if (fresh && b->upstatus)
		bridge_upstatus_epoch(b->upstatus, node);
}

static void edge_oversized(void *ctx, const char *topic, size_t len)
{
	bridge *b = ctx;
	bridge_intake_oversized(b->intake, topic, len);
}

static void on_stored(void *ctx, const bridge_stored *s)
{
	bridge *b = ctx;
	if (s->earlier_epoch)
		bridge_repair_covered(b->repair, s->duplicate ? 0 : s->seq);
	else if (s->duplicate)
		bridge_repair_duplicate(b->repair, s->node, s->node_seq);
	else
		bridge_repair_stored(b->repair, s->node, s->node_seq, s->seq);
}

static void on_batch(void *ctx)
{
	bridge *b = ctx;
	bridge_forward_committed(b->forward);
}

static es_err send_request(void *ctx, const char *node, const char *topic, const void *payload,
			   size_t len)
{
	bridge *b = ctx;
	return bridge_edge_send(b->edge, node, topic, payload, len);
}

static void send_report(void *ctx, const char *topic, const void *payload, size_t len)
{
	bridge *b = ctx;
	bridge_edge_send_all(b->edge, topic, payload, len);
}

static uint64_t contiguous(void *ctx, const char *node)
{
	bridge *b = ctx;
	return bridge_repair_contiguous(b->repair, node);
}

static void on_sent(void *ctx, uint64_t seq, uint64_t journaled_ms)
{
	bridge *b = ctx;
	bridge_metrics_sent(b->metrics, seq, journaled_ms);
}

static void on_acked(void *ctx, uint64_t seq)
{
	bridge *b = ctx;
	bridge_metrics_acked(b->metrics, seq);
}

static void on_lost(void *ctx)
{
	bridge *b = ctx;
	bridge_metrics_lost(b->metrics);
}

static void on_request(void *ctx, const char *method, const char *route, int status, double seconds)
{
	bridge *b = ctx;
	bridge_metrics_on_request(b->metrics, method, route, status, seconds);
}

/* ---- the cloud link: forward.c's ops, its callbacks, its view -------------- */

static es_err cloud_publish(void *ctx, const char *topic, const void *payload, size_t len,
			    uint64_t tag, const es_mqtt_props *props)
{
	bridge *b = ctx;
	return es_mqtt_publish_props(b->cloud, topic, payload, len, 1, false, tag, props);
}

static size_t cloud_inflight(void *ctx)
{
	bridge *b = ctx;
	return es_mqtt_inflight(b->cloud);
}

static size_t cloud_window(void *ctx)
{
	bridge *b = ctx;
	return es_mqtt_window(b->cloud);
}

static bool cloud_connected(void *ctx)
{
	bridge *b = ctx;
	return es_mqtt_is_connected(b->cloud);
}

static const bridge_cloud_ops cloud_ops = {
	.publish = cloud_publish,
	.inflight = cloud_inflight,
	.window = cloud_window,
	.connected = cloud_connected,
};

static void cloud_up(void *ctx, bool session_present)
{
	bridge *b = ctx;
	(void)session_present;
	/* The statuses first: a cloud reader refuses events of a node it has
	 * not heard of. */
	if (b->upstatus) {
		bridge_upstatus_resend(b->upstatus);
		bridge_upstatus_tick(b->upstatus, es_clock_mono_ms());
	}
	bridge_forward_reset(b->forward);
	bridge_forward_pump(b->forward);
}

static void cloud_down(void *ctx, const char *cause, uint64_t retry_ms)
{
	bridge *b = ctx;
	(void)cause;
	bridge_forward_reset(b->forward);
	if (!retry_ms && b->phase == B_STOPPING) {
		b->phase = B_DONE;
		if (b->drain_timer)
			es_loop_timer_cancel(b->loop, b->drain_timer);
		b->drain_timer = 0;
		es_loop_stop(b->loop);
	}
}

static void cloud_published(void *ctx, uint64_t tag, es_err err)
{
	bridge *b = ctx;
	if (!(tag & BRIDGE_ANSWER_TAG)) /* an answer needs nothing on PUBACK */
		bridge_forward_published(b->forward, tag, err);
	if (b->phase == B_DRAINING)
		drain_step(b);
}

static void cloud_message(void *ctx, const char *topic, const void *payload, size_t len)
{
	bridge *b = ctx;
	bridge_answer_request(b->answer, topic, payload, len);
}

static void on_batch_acked(void *ctx, const char *node, uint64_t last_seq)
{
	bridge *b = ctx;
	if (b->upstatus)
		bridge_upstatus_acked(b->upstatus, node, last_seq);
}

static es_err status_publish(void *ctx, const char *topic, const void *payload, size_t len)
{
	bridge *b = ctx;
	return es_mqtt_publish(b->cloud, topic, payload, len, 1, true, STATUS_TAG);
}

static es_err answer_publish(void *ctx, const char *topic, const void *payload, size_t len,
			     uint64_t tag)
{
	bridge *b = ctx;
	return es_mqtt_publish(b->cloud, topic, payload, len, 1, false, tag);
}

static bool knows(void *ctx, const char *node)
{
	bridge *b = ctx;
	char why[200];
	return bridge_repair_admit(b->repair, node, 1, why, sizeof why) != BRIDGE_REPAIR_REFUSED;
}

static void show_cloud(bridge *b)
{
	es_mqtt_stats cs;
	es_mqtt_stats_get(b->cloud, &cs);
	bridge_cloud_view c = {.up = cs.connected,
			       .connects = cs.connects,
			       .failures = cs.failures,
			       .failovers = cs.failovers,
			       .inflight = es_mqtt_inflight(b->cloud),
			       .node = cs.node};
	snprintf(c.url, sizeof c.url, "%s", cs.url);
	snprintf(c.error, sizeof c.error, "%s", cs.last_error);
	pthread_mutex_lock(&b->cloud_lock);
	b->cloud_view = c;
	pthread_mutex_unlock(&b->cloud_lock);
}

/* What api.c and metrics.c show: each part's stats, under its own lock. */
static void view(void *ctx, bridge_view *v)
{
	bridge *b = ctx;
	size_t n = bridge_edge_count(b->edge);
	v->running = atomic_load(&b->running);
	v->closing = atomic_load(&b->closing);
	v->nedges = n < BRIDGE_VIEW_EDGES ? n : BRIDGE_VIEW_EDGES;
	for (size_t i = 0; i < v->nedges; i++)
		bridge_edge_stats_get(b->edge, i, &v->edge[i]);
	pthread_mutex_lock(&b->cloud_lock);
	v->cloud = b->cloud_view;
	pthread_mutex_unlock(&b->cloud_lock);
	bridge_intake_stats_get(b->intake, &v->intake);
	bridge_forward_stats_get(b->forward, &v->forward);
	bridge_repair_stats_get(b->repair, &v->repair);
	bridge_answer_stats_get(b->answer, &v->answer);
}

/* ---- making the parts from the settings ------------------------------------ */

static es_err read_secret(const char *path, char **out)
{
	char why[300];
	if (!path)
		return ES_OK;
	es_err err = es_config_read_secret(path, out, why, sizeof why);
	if (err)
		es_error(TAG, "password file %s", why);
	return err;
}

/* A side's settings as es_mqtt options, on its first URL. */
static es_mqtt_opts link_opts(const bridge_link_settings *l, const char *id, const char *password)
{
	es_mqtt_opts o;
	es_link_mqtt_opts(&l->link, id, password, &o);
	o.url = l->url.v[0];
	return o;
}

static void make_names(bridge *b)
{
	const bridge_settings *s = b->s;
	char base[sizeof "edgespool-bridge--" + 2 * ES_TOPIC_ID_MAX];
	snprintf(base, sizeof base, "edgespool-bridge-%s-%s", s->node_site, s->node_id);
	/* A cloud role's two links often go to one broker: one client id for
	 * both would have each connection close the other's. */
	bool cloud_role = s->role == BRIDGE_ROLE_CLOUD;
	snprintf(b->client_edge, sizeof b->client_edge, "%s%s",
		 s->edge.link.client_id ? s->edge.link.client_id : base,
		 s->edge.link.client_id || !cloud_role ? "" : "-in");
	snprintf(b->client_cloud, sizeof b->client_cloud, "%s%s",
		 s->cloud.link.client_id ? s->cloud.link.client_id : base,
		 s->cloud.link.client_id || !cloud_role ? "" : "-out");
	/* The site role reads the agents' events; the cloud role the site
	 * bridges' batches (never the events it republishes itself). */
	const char *kind = s->role == BRIDGE_ROLE_CLOUD ? ES_BATCH_KIND : "ev";
	if (s->edge_share_group && s->edge_filter)
		snprintf(b->filter, sizeof b->filter, "$share/%s/%s", s->edge_share_group,
			 s->edge_filter);
	else if (s->edge_share_group)
		snprintf(b->filter, sizeof b->filter, "$share/%s/%s/+/+/%s/#", s->edge_share_group,
			 s->edge_root, kind);
	else if (s->edge_filter)
		snprintf(b->filter, sizeof b->filter, "%s", s->edge_filter);
	else
		snprintf(b->filter, sizeof b->filter, "%s/+/+/%s/#", s->edge_root, kind);
	/* Agents may send batches too (mqtt.format batch): by default a site
	 * bridge reads both forms. */
	if (s->role == BRIDGE_ROLE_SITE && !s->edge_filter && s->edge_share_group)
		snprintf(b->batch_filter, sizeof b->batch_filter, "$share/%s/%s/+/+/%s/#",
			 s->edge_share_group, s->edge_root, ES_BATCH_KIND);
	else if (s->role == BRIDGE_ROLE_SITE && !s->edge_filter)
		snprintf(b->batch_filter, sizeof b->batch_filter, "%s/+/+/%s/#", s->edge_root,
			 ES_BATCH_KIND);
	if (s->edge_share_group)
		snprintf(b->peer_topic, sizeof b->peer_topic, "%s/_bridge/%s/seen", s->edge_root,
			 s->edge_share_group);
}

static const char *peer_topic(const bridge *b)
{
	return b->peer_topic[0] ? b->peer_topic : NULL;
}

static es_err open_inbox(bridge *b)
{
	const bridge_settings *s = b->s;
	char source[2 * ES_TOPIC_ID_MAX + 3];
	snprintf(source, sizeof source, "/%s/%s", s->node_site, s->node_id);
	es_journal_opts o = {
		.path = s->journal.path,
		.sync = s->journal.sync ? ES_SYNC_NORMAL : ES_SYNC_FULL,
		.max_bytes = s->journal.max_bytes,
		.retain_ms = (uint64_t)s->journal.retain_s * 1000,
		.on_full = s->journal.on_full ? ES_ON_FULL_EVICT : ES_ON_FULL_REFUSE,
		.source = source,
		.max_event_bytes = (size_t)s->event_max_bytes, /* at most 16 MiB */
		.linger_ms = (uint64_t)s->journal.linger_ms,
		.ack_flush_ms = (uint64_t)s->journal.ack_flush_ms,
	};
	es_err err = es_journal_open(&o, &b->journal);
	if (err)
		es_error(TAG, "cannot open the inbox %s: %s", s->journal.path, es_strerror(err));
	return err;
}

static void close_inbox(bridge *b)
{
	if (b->journal)
		es_journal_sync_acks(b->journal);
	es_journal_close(b->journal);
}

static es_err make_repair(bridge *b)
{
	const bridge_settings *s = b->s;
	bridge_repair_opts o = {.gap = {.grace_ms = (uint64_t)s->gap.grace_ms,
					.retry_ms = (uint64_t)s->gap.retry_ms,
					.max_span = (uint64_t)s->gap.max_span,
					.catchup = (uint64_t)s->gap_catchup},
				.max_ahead = (uint64_t)s->gap_max_ahead,
				.root = s->edge_root,
				.client_id = b->client_edge,
				.peer_topic = peer_topic(b)};
	bridge_repair_deps d = {.journal = b->journal,
				.ctx = b,
				.request = send_request,
				.report = send_report,
				.epoch = on_epoch};
	return bridge_repair_new(&o, &d, &b->repair);
}

static es_err make_forward(bridge *b)
{
	const bridge_settings *s = b->s;
	es_batch_enc_opts batch = {.coding = b->coding,
				   .max_events = (size_t)s->cloud_batch_max_events,
				   .max_bytes = (size_t)s->cloud_batch_max_bytes};
	bridge_forward_lanes lanes = {.high = s->lanes_high, .low = s->lanes_low};
	for (int l = 0; l < BRIDGE_LANES; l++)
		lanes.ttl_ms[l] = (uint64_t)s->lanes_ttl_s[l] * 1000;
	bridge_forward_opts o = {.cloud_topic = s->cloud_topic,
				 .root = s->edge_root,
				 .hole_wait_ms = (uint64_t)s->order_hole_wait_ms,
				 .batch = bridge_settings_format(s) == BRIDGE_FORMAT_BATCH ? &batch
											   : NULL,
				 .lanes = &lanes,
				 .backlog_share = (unsigned)s->lanes_backlog_share,
				 .inflight_ms = (uint64_t)s->cloud_inflight_ms};
	bridge_forward_deps d = {.loop = b->loop,
				 .journal = b->journal,
				 .cloud = &cloud_ops,
				 .cloud_ctx = b,
				 .ctx = b,
				 .contiguous = contiguous,
				 .sent = on_sent,
				 .acked = on_acked,
				 .lost = on_lost,
				 .batch_acked = on_batch_acked};
	es_err err = bridge_forward_new(&o, &d, &b->forward);
	if (!err && s->role == BRIDGE_ROLE_SITE && o.batch &&
	    (err = bridge_upstatus_new(s->edge_root, STATUS_EVERY_MS,
				       &(bridge_upstatus_deps){.ctx = b, .publish = status_publish},
				       &b->upstatus))) {
		bridge_forward_free(b->forward);
		b->forward = NULL;
	}
	return err;
}

static es_err make_answer(bridge *b)
{
	const bridge_settings *s = b->s;
	char why[200];
	es_batch_enc_opts batch = {.coding = b->coding, .max_events = 1};
	bridge_answer_opts o = {.root = s->edge_root,
				.event_topic = s->cloud_topic,
				.topic = s->cloud_resend_topic,
				.reply_topic = s->cloud_reply_topic,
				.client_id = b->client_edge,
				.rate = (uint32_t)s->cloud_resend_rate,
				.queue = (size_t)s->cloud_resend_queue,
				.relay_ms = (uint64_t)s->cloud_resend_relay_ms,
				.event_max_bytes = (size_t)s->event_max_bytes,
				.batch = bridge_settings_format(s) == BRIDGE_FORMAT_BATCH ? &batch
											  : NULL};
	bridge_answer_deps d = {.journal = b->journal,
				.ctx = b,
				.publish = answer_publish,
				.relay = send_request,
				.knows = knows};
	es_err err = bridge_answer_new(&o, &d, &b->answer, why, sizeof why);
	if (err)
		es_error(TAG, "cannot answer re-sends from the cloud: %s", why);
	return err;
}

static es_err make_intake(bridge *b)
{
	bridge_intake_opts o = {.root = b->s->edge_root,
				.peer_topic = peer_topic(b),
				.event_max_bytes = (size_t)b->s->event_max_bytes};
	bridge_intake_deps d = {.loop = b->loop,
				.journal = b->journal,
				.ctx = b,
				.status = on_status,
				.reply = on_reply,
				.peer = on_peer,
				.admit = admit,
				.stored = on_stored,
				.batch_done = on_batch};
	return bridge_intake_new(&o, &d, &b->intake);
}

static es_err make_edge(bridge *b)
{
	const bridge_link_settings *e = &b->s->edge;
	char status[ES_TOPIC_MAX], reply[ES_TOPIC_MAX];
	snprintf(status, sizeof status, "%s/+/+/status", b->s->edge_root);
	snprintf(reply, sizeof reply, "%s/+/+/reply/resend", b->s->edge_root);
	/* The statuses first: their retained messages then come before a
	 * node's live events, which the tracker admits only after its status. */
	bridge_edge_sub subs[5] = {{status, 1}, {b->filter, 1}, {reply, 1}};
	size_t nsubs = 3;
	if (b->batch_filter[0])
		subs[nsubs++] = (bridge_edge_sub){b->batch_filter, 1};
	if (peer_topic(b))
		subs[nsubs++] = (bridge_edge_sub){b->peer_topic, 0};
	es_err err = read_secret(e->link.password_file, &b->edge_password);
	if (err)
		return err;
	es_mqtt_opts mo = link_opts(e, b->client_edge, b->edge_password);
	/* Nothing larger is an event; its bytes are not kept (paho has read
	 * them: the edge broker's message_size_limit keeps them off the wire). */
	mo.max_message = (size_t)b->s->event_max_bytes;
	if (b->s->role == BRIDGE_ROLE_CLOUD && mo.max_message < BATCH_MESSAGE_MAX)
		mo.max_message = BATCH_MESSAGE_MAX; /* a batch, read within batch.h's limits */
	bridge_edge_opts o = {.mqtt = mo,
			      .urls = (const char *const *)e->url.v,
			      .nurls = e->url.n,
			      .root = b->s->edge_root,
			      .subs = subs,
			      .nsubs = nsubs};
	bridge_edge_deps d = {.loop = b->loop,
			      .ctx = b,
			      .message = edge_message,
			      .oversized = edge_oversized,
			      .stopped = finish_stop};
	return bridge_edge_new(&o, &d, &b->edge);
}

static es_err make_cloud(bridge *b)
{
	const bridge_link_settings *c = &b->s->cloud;
	es_err err = read_secret(c->link.password_file, &b->cloud_password);
	if (err)
		return err;
	/* Several URLs are one cluster's nodes: one link that fails over. */
	es_mqtt_opts o = link_opts(c, b->client_cloud, b->cloud_password);
	o.urls = (const char *const *)c->url.v;
	o.nurls = c->url.n;
	o.cbs = (es_mqtt_cbs){.connected = cloud_up,
			      .disconnected = cloud_down,
			      .published = cloud_published,
			      .message = cloud_message};
	o.ctx = b;
	o.max_message = ES_CONTROL_MAX_BYTES; /* a larger request is let go unread */
	err = es_mqtt_new(b->loop, &o, &b->cloud);
	/* QoS 0: an asker asks again, and on a persistent session a QoS 1
	 * subscription is a durable queue that RabbitMQ keeps on the node the
	 * bridge was connected to, so after that node fails every other one
	 * refuses the re-subscription (NOT_FOUND) and the link never comes up. */
	/* In the cloud role the site bridges answer re-sends; this one's inbox
	 * is not where a cloud consumer's holes are filled. */
	if (!err && b->s->role == BRIDGE_ROLE_SITE &&
	    (err = es_mqtt_subscribe(b->cloud, bridge_answer_filter(b->answer), 0)))
		es_mqtt_free(b->cloud);
	return err;
}

/* The HTTP server with the API (api.c) and the metrics (metrics.c). */
static es_err make_http(bridge *b)
{
	const bridge_settings *s = b->s;
	es_http_opts h = {.listen = s->http.listen,
			  .threads = (int)s->http.threads,
			  .auth_file = s->http.auth_file,
			  .token_file = s->http.token_file,
			  .metrics_open = s->http.metrics_open,
			  .on_request = on_request,
			  .hook_ctx = b};
	bridge_api_opts a = {.node_id = s->node_id,
			     .site = s->node_site,
			     .filter = b->filter,
			     .journal_path = s->journal.path,
			     .journal_max_bytes = s->journal.max_bytes,
			     .cloud_nodes = s->cloud.url.n,
			     .live_max = h.threads / 2 ? h.threads / 2 : 1};
	bridge_metrics_opts m = {.cloud_urls = (const char *const *)s->cloud.url.v,
				 .ncloud_urls = s->cloud.url.n,
				 .journal_max_bytes = s->journal.max_bytes};
	es_err err = es_http_new(&h, &b->http);
	if (err)
		return err;
	if ((err = bridge_api_new(&a, &(bridge_api_deps){b->http, b->journal, view, b}, &b->api)))
		goto fail_api;
	if ((err = bridge_metrics_new(&m, &(bridge_metrics_deps){b->http, b->journal, view, b},
				      &b->metrics)))
		goto fail_metrics;
	return ES_OK;
fail_metrics:
	bridge_api_stop(b->api);
fail_api:
	es_http_free(b->http);
	bridge_api_free(b->api);
	b->http = NULL;
	b->api = NULL;
	return err;
}

es_err bridge_new(const bridge_settings *s, es_loop *loop, bridge **out)
{
	bridge *b = calloc(1, sizeof *b);
	if (!b)
		return ES_ENOMEM;
	b->s = s;
	b->loop = loop;
	pthread_mutex_init(&b->cloud_lock, NULL);
	make_names(b);
	const char *why;
	es_err err = ES_EINVAL; /* bridge_settings_check said why */
	if (es_batch_coding_parse(s->cloud_batch_coding, &b->coding, &why))
		goto fail_inbox;
	if ((err = open_inbox(b)))
		goto fail_inbox;
	if ((err = make_repair(b)))
		goto fail_repair;
	if ((err = make_forward(b)))
		goto fail_forward;
	if ((err = make_answer(b)))
		goto fail_answer;
	if ((err = make_intake(b)))
		goto fail_intake;
	if ((err = make_edge(b)))
		goto fail_edge;
	if ((err = make_cloud(b)))
		goto fail_cloud;
	if ((err = make_http(b)))
		goto fail_http;
	*out = b;
	return ES_OK;
fail_http:
	es_mqtt_free(b->cloud);
fail_cloud:
	bridge_edge_free(b->edge);
fail_edge:
	bridge_intake_free(b->intake);
fail_intake:
	bridge_answer_free(b->answer);
fail_answer:
	bridge_upstatus_free(b->upstatus);
	bridge_forward_free(b->forward);
fail_forward:
	bridge_repair_free(b->repair);
fail_repair:
	close_inbox(b);
fail_inbox:
	free(b->edge_password);
	free(b->cloud_password);
	pthread_mutex_destroy(&b->cloud_lock);
	free(b);
	return err;
}

/* ---- running ------------------------------------------------------------------ */

static void tick(void *arg)
{
	bridge *b = arg;
	b->tick = 0;
	bridge_repair_tick(b->repair, b->phase == B_RUNNING);
	if (b->phase == B_RUNNING)
		bridge_answer_tick(b->answer);
	bridge_forward_pump(b->forward);
	bridge_edge_show(b->edge);
	show_cloud(b);
	if (b->upstatus && es_mqtt_is_connected(b->cloud))
		bridge_upstatus_tick(b->upstatus, es_clock_mono_ms());
	if (b->phase == B_RUNNING || b->phase == B_DRAINING)
		es_loop_timer(b->loop, TICK_MS, tick, b, &b->tick);
}

es_err bridge_start(bridge *b)
{
	bridge_repair_epochs(b->repair); /* the epochs the saved tracker knows */
	es_err err = es_http_start(b->http);
	if (!err)
		err = bridge_intake_start(b->intake);
	if (!err)
		err = bridge_edge_start(b->edge);
	if (!err)
		err = es_mqtt_start(b->cloud);
	if (err)
		return err;
	b->phase = B_RUNNING;
	bridge_forward_start(b->forward);
	es_info(TAG, "bridging %zu edge broker(s) (%s) to %s%s; HTTP on port %d; inbox %s",
		bridge_edge_count(b->edge), b->filter, b->s->cloud.url.v[0],
		b->s->cloud.url.n > 1 ? " (and the cluster's other nodes)" : "",
		es_http_port(b->http), b->s->journal.path);
	tick(b);
	atomic_store(&b->running, true);
	return ES_OK;
}

int bridge_http_port(const bridge *b)
{
	return es_http_port(b->http);
}

/* ---- stopping ------------------------------------------------------------------ */

/* Stop order: the edge links (no more intake), the inbox thread (what was
 * queued is journaled), the cloud window (PUBACKs awaited up to
 * shutdown.drain_ms), the gap state saved, the cloud link. */
static void finish_stop(void *ctx)
{
	bridge *b = ctx;
	if (b->phase != B_DRAINING && b->phase != B_STOPPING)
		return;
	bridge_intake_stop(b->intake);
	b->edges_done = true;
	drain_step(b);
}

static void force_stop(void *arg)
{
	bridge *b = arg;
	b->drain_timer = 0;
	if (b->phase == B_STOPPING) {
		es_warn(TAG, "the cloud broker did not confirm the disconnect; stopping anyway");
		b->phase = B_DONE;
		es_loop_stop(b->loop);
	}
}

static void stop_cloud(bridge *b)
{
	if (b->drain_timer)
		es_loop_timer_cancel(b->loop, b->drain_timer);
	b->drain_timer = 0;
	if (b->phase == B_STOPPING)
		return;
	b->phase = B_STOPPING;
	bridge_forward_stop(b->forward);
	bridge_repair_save(b->repair);
	es_mqtt_disconnect(b->cloud, 0);
	if (b->phase == B_STOPPING)
		es_loop_timer(b->loop, 2000, force_stop, b, &b->drain_timer);
}

static void drain_timeout(void *arg)
{
	bridge *b = arg;
	b->drain_timer = 0;
	es_warn(TAG,
		"%zu forwards still unacknowledged after shutdown.drain_ms; they stay in "
		"the inbox",
		es_mqtt_inflight(b->cloud));
	stop_cloud(b);
}

static void drain_step(bridge *b)
{
	if (b->phase != B_DRAINING || !b->edges_done)
		return;
	if (es_mqtt_inflight(b->cloud) == 0 || !es_mqtt_is_connected(b->cloud))
		stop_cloud(b);
	else if (!b->drain_timer)
		es_loop_timer(b->loop, (uint64_t)b->s->shutdown_drain_ms, drain_timeout, b,
			      &b->drain_timer);
}

void bridge_shutdown(bridge *b)
{
	if (b->phase != B_RUNNING)
		return;
	es_info(TAG, "shutting down: closing the edge links, then draining");
	atomic_store(&b->closing, true);
	b->phase = B_DRAINING;
	bridge_edge_stop(b->edge);
}

/* The parts go in the reverse of their making; the HTTP workers first (they
 * read every part), the inbox thread next (its last results go to repair
 * and forward). */
void bridge_free(bridge *b)
{
	if (!b)
		return;
	bridge_api_stop(b->api);
	es_http_free(b->http);
	bridge_api_free(b->api);
	bridge_intake_free(b->intake);
	if (b->tick)
		es_loop_timer_cancel(b->loop, b->tick);
	if (b->drain_timer)
		es_loop_timer_cancel(b->loop, b->drain_timer);
	bridge_edge_free(b->edge);
	es_mqtt_free(b->cloud);
	bridge_upstatus_free(b->upstatus);
	bridge_forward_free(b->forward);
	bridge_answer_free(b->answer);
	bridge_repair_free(b->repair);
	bridge_metrics_free(b->metrics);
	close_inbox(b);
	free(b->edge_password);
	free(b->cloud_password);
	pthread_mutex_destroy(&b->cloud_lock);
	free(b);
}
