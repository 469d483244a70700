/* bridge.c - wires the edge links, the inbox, the cloud link and the HTTP
 * server on one loop, and runs the bridge's life. */
#include "bridge_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dashboard.h"
#include "log.h"

#define TAG	"bridge"
#define TICK_MS 100

/* ---- MQTT callbacks ---------------------------------------------------------- */

static void edge_message(void *ctx, const char *topic, const void *payload, size_t len)
{
	struct edge_link *l = ctx;
	intake_message(l->b, l->index, topic, payload, len);
}

static void finish_stop(bridge *b);

static void edge_down(void *ctx, const char *cause, uint64_t retry_ms)
{
	struct edge_link *l = ctx;
	if (!retry_ms && !l->stopped) {
		l->stopped = true;
		if (++l->b->links_stopped == l->b->nlinks)
			finish_stop(l->b);
	}
}

static void edge_published(void *ctx, uint64_t tag, es_err err)
{
	/* re-send requests and peer reports: a lost one is simply sent again */
}

static void cloud_up(void *ctx, bool session_present)
{
	bridge *b = ctx;
	forward_reset(b);
	forward_pump(b);
}

static void cloud_down(void *ctx, const char *cause, uint64_t retry_ms)
{
	bridge *b = ctx;
	forward_reset(b);
	if (!retry_ms && b->phase == B_STOPPING) {
		b->phase = B_DONE;
		if (b->drain_timer)
			es_loop_timer_cancel(b->loop, b->drain_timer);
		b->drain_timer = 0;
		es_loop_stop(b->loop);
	}
}

static void drain_step(bridge *b);

static void cloud_published(void *ctx, uint64_t tag, es_err err)
{
	bridge *b = ctx;
	forward_published(b, tag, err);
	if (b->phase == B_DRAINING)
		drain_step(b);
}

/* ---- the links ----------------------------------------------------------------- */

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

static es_err subscribe_edge(bridge *b, es_mqtt *m)
{
	char topic[ES_TOPIC_MAX];
	es_err err = es_mqtt_subscribe(m, b->filter, 1);
	if (!err) {
		snprintf(topic, sizeof topic, "%s/+/+/status", b->s->edge_root);
		err = es_mqtt_subscribe(m, topic, 1);
	}
	if (!err) {
		snprintf(topic, sizeof topic, "%s/+/+/reply/resend", b->s->edge_root);
		err = es_mqtt_subscribe(m, topic, 1);
	}
	if (!err && b->peer_topic[0])
		err = es_mqtt_subscribe(m, b->peer_topic, 0);
	return err;
}

static es_err make_edges(bridge *b)
{
	const bridge_link_settings *e = &b->s->edge;
	b->nlinks = e->url.n;
	b->links = calloc(b->nlinks, sizeof *b->links);
	if (!b->links)
		return ES_ENOMEM;
	es_err err = read_secret(e->link.password_file, &b->edge_password);
	for (size_t i = 0; !err && i < b->nlinks; i++) {
		struct edge_link *l = &b->links[i];
		*l = (struct edge_link){.b = b, .index = i, .url = e->url.v[i]};
		es_mqtt_opts o;
		es_link_mqtt_opts(&e->link, b->client_edge, b->edge_password, &o);
		o.url = l->url;
		o.cbs = (es_mqtt_cbs){.disconnected = edge_down,
				      .published = edge_published,
				      .message = edge_message};
		o.ctx = l;
		if (!(err = es_mqtt_new(b->loop, &o, &l->mqtt)))
			err = subscribe_edge(b, l->mqtt);
	}
	return err;
}

static es_err make_cloud(bridge *b)
{
	const bridge_link_settings *c = &b->s->cloud;
	es_err err = read_secret(c->link.password_file, &b->cloud_password);
	if (err)
		return err;
	/* Several URLs are one cluster's nodes: one link that fails over. */
	es_mqtt_opts o;
	es_link_mqtt_opts(&c->link, b->client_cloud, b->cloud_password, &o);
	o.url = c->url.v[0];
	o.urls = (const char *const *)c->url.v;
	o.nurls = c->url.n;
	o.cbs = (es_mqtt_cbs){
		.connected = cloud_up, .disconnected = cloud_down, .published = cloud_published};
	o.ctx = b;
	return es_mqtt_new(b->loop, &o, &b->cloud);
}

/* ---- setup ------------------------------------------------------------------------ */

static void make_names(bridge *b)
{
	const bridge_settings *s = b->s;
	char base[160];
	snprintf(base, sizeof base, "edgespool-bridge-%s-%s", s->node_site, s->node_id);
	snprintf(b->client_edge, sizeof b->client_edge, "%s",
		 s->edge.link.client_id ? s->edge.link.client_id : base);
	snprintf(b->client_cloud, sizeof b->client_cloud, "%s",
		 s->cloud.link.client_id ? s->cloud.link.client_id : base);
	if (s->edge_share_group && s->edge_filter)
		snprintf(b->filter, sizeof b->filter, "$share/%s/%s", s->edge_share_group,
			 s->edge_filter);
	else if (s->edge_share_group)
		snprintf(b->filter, sizeof b->filter, "$share/%s/%s/+/+/ev/#", s->edge_share_group,
			 s->edge_root);
	else if (s->edge_filter)
		snprintf(b->filter, sizeof b->filter, "%s", s->edge_filter);
	else
		snprintf(b->filter, sizeof b->filter, "%s/+/+/ev/#", s->edge_root);
	if (s->edge_share_group)
		snprintf(b->peer_topic, sizeof b->peer_topic, "%s/_bridge/%s/seen", s->edge_root,
			 s->edge_share_group);
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
	};
	es_err err = es_journal_open(&o, &b->journal);
	if (err) {
		es_error(TAG, "cannot open the inbox %s: %s", s->journal.path, es_strerror(err));
		return err;
	}
	if (!(err = es_journal_reader_new(b->journal, &b->reader)))
		err = es_journal_reader_new(b->journal, &b->api_reader);
	return err;
}

static es_err make_parts(bridge *b)
{
	char why[160];
	es_gap_opts g = {.grace_ms = (uint64_t)b->s->gap.grace_ms,
			 .retry_ms = (uint64_t)b->s->gap.retry_ms,
			 .max_span = (uint64_t)b->s->gap.max_span};
	es_err err = bridge_remap_new(b->s->cloud_topic, &b->remap, why, sizeof why);
	if (err) {
		es_error(TAG, "cloud.topic %s", why);
		return err;
	}
	if ((err = es_gap_new(&g, &b->gap)) || (err = forward_init(b)) || (err = open_inbox(b)) ||
	    (err = repair_restore(b)) || (err = make_edges(b)) || (err = make_cloud(b)))
		return err;
	es_http_opts h = {.listen = b->s->http.listen,
			  .threads = (int)b->s->http.threads,
			  .auth_file = b->s->http.auth_file,
			  .token_file = b->s->http.token_file,
			  .metrics_open = b->s->http.metrics_open,
			  .on_request = bridge_metrics_on_request,
			  .hook_ctx = b};
	if (!(err = es_http_new(&h, &b->http)))
		err = bridge_api_register(b);
	if (!err)
		err = bridge_metrics_init(b);
	if (!err)
		err = es_japi_new(&(es_japi_opts){.http = b->http,
						  .journal = b->journal,
						  .status_json = bridge_status_json,
						  .ctx = b,
						  .live_max = h.threads / 2 ? h.threads / 2 : 1},
				  &b->japi);
	if (!err)
		err = es_http_assets(b->http, es_dashboard_assets, es_dashboard_assets_count);
	return err;
}

es_err bridge_new(const bridge_settings *s, es_loop *loop, bridge **out)
{
	bridge *b = calloc(1, sizeof *b);
	if (!b)
		return ES_ENOMEM;
	b->s = s;
	b->loop = loop;
	pthread_mutex_init(&b->view_lock, NULL);
	pthread_mutex_init(&b->api_lock, NULL);
	make_names(b);
	es_err err = make_parts(b);
	if (err) {
		bridge_free(b);
		return err;
	}
	*out = b;
	return ES_OK;
}

/* ---- running ------------------------------------------------------------------------ */

void bridge_view_update(bridge *b)
{
	es_mqtt_stats cs;
	es_mqtt_stats_get(b->cloud, &cs);
	pthread_mutex_lock(&b->view_lock);
	struct view *v = &b->view;
	v->nlinks = b->nlinks < 16 ? b->nlinks : 16;
	for (size_t i = 0; i < v->nlinks; i++) {
		es_mqtt_stats es;
		es_mqtt_stats_get(b->links[i].mqtt, &es);
		v->edge_up[i] = es.connected;
		v->edge_failures[i] = es.failures;
		v->edge_connects[i] = es.connects;
	}
	v->cloud_up = cs.connected;
	v->cloud_failures = cs.failures;
	v->cloud_connects = cs.connects;
	v->cloud_inflight = es_mqtt_inflight(b->cloud);
	v->cloud_failovers = cs.failovers;
	v->cloud_node = cs.node;
	snprintf(v->cloud_url, sizeof v->cloud_url, "%s", cs.url);
	snprintf(v->cloud_error, sizeof v->cloud_error, "%s", cs.last_error);
	es_gap_stats_get(b->gap, &v->gap);
	v->forwarded = b->fw.forwarded;
	v->acked = b->fw.acked;
	v->out_of_order = b->fw.out_of_order;
	v->held = b->fw.rows;
	v->refused = b->fw.refused;
	v->received = b->received;
	v->invalid = b->invalid;
	v->duplicates = b->duplicates;
	v->overload = b->overload;
	v->inbox_errors = b->inbox_errors;
	v->lost_replies = b->lost_replies;
	pthread_mutex_unlock(&b->view_lock);
}

static void tick(void *arg)
{
	bridge *b = arg;
	b->tick = 0;
	repair_tick(b);
	forward_pump(b);
	bridge_view_update(b);
	if (b->phase == B_RUNNING || b->phase == B_DRAINING)
		es_loop_timer(b->loop, TICK_MS, tick, b, &b->tick);
}

es_err bridge_start(bridge *b)
{
	es_err err = es_http_start(b->http);
	if (!err)
		err = intake_start(b);
	for (size_t i = 0; !err && i < b->nlinks; i++)
		err = es_mqtt_start(b->links[i].mqtt);
	if (!err)
		err = es_mqtt_start(b->cloud);
	if (err)
		return err;
	b->phase = B_RUNNING;
	es_info(TAG, "bridging %zu edge broker(s) (%s) to %s%s; HTTP on port %d; inbox %s",
		b->nlinks, b->filter, b->s->cloud.url.v[0],
		b->s->cloud.url.n > 1 ? " (and the cluster's other nodes)" : "",
		es_http_port(b->http), b->s->journal.path);
	tick(b);
	return ES_OK;
}

int bridge_http_port(const bridge *b)
{
	return es_http_port(b->http);
}

/* ---- stopping ------------------------------------------------------------------------ */

/* Stop order: the edge links (no more intake), the inbox thread (what was
 * queued is journaled), the cloud window (PUBACKs awaited up to
 * shutdown.drain_ms), the gap state saved, the cloud link. */
static void finish_stop(bridge *b)
{
	if (b->phase != B_DRAINING && b->phase != B_STOPPING)
		return;
	intake_stop(b);
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
	repair_save(b);
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
	if (b->phase != B_DRAINING || b->links_stopped < b->nlinks || b->in.started)
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
	for (size_t i = 0; i < b->nlinks; i++)
		es_mqtt_disconnect(b->links[i].mqtt, 0);
}

void bridge_free(bridge *b)
{
	if (!b)
		return;
	es_japi_stop(b->japi);
	es_http_free(b->http);
	es_japi_free(b->japi);
	intake_stop(b);
	if (b->tick)
		es_loop_timer_cancel(b->loop, b->tick);
	if (b->drain_timer)
		es_loop_timer_cancel(b->loop, b->drain_timer);
	for (size_t i = 0; b->links && i < b->nlinks; i++)
		es_mqtt_free(b->links[i].mqtt);
	free(b->links);
	es_mqtt_free(b->cloud);
	es_async_free(b->in.async);
	forward_free(b);
	es_gap_free(b->gap);
	bridge_remap_free(b->remap);
	es_journal_reader_free(b->reader);
	es_journal_reader_free(b->api_reader);
	if (b->journal)
		es_journal_sync_acks(b->journal);
	es_journal_close(b->journal);
	free(b->peer_report);
	free(b->edge_password);
	free(b->cloud_password);
	bridge_metrics_free(b); /* after the http workers and the loop's users */
	pthread_mutex_destroy(&b->view_lock);
	pthread_mutex_destroy(&b->api_lock);
	free(b);
}
