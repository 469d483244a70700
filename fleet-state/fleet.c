/* fleet.c - fleet-state's wiring: consumer, source, projection, repair,
 * HTTP. */
#include "fleet.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "fetch.h"
#include "http.h"
#include "japi.h"
#include "log.h"
#include "metrics.h"
#include "projection.h"
#include "repair.h"
#include "source.h"

#define TAG "fleet"

/* fleet-state's own /metrics families, set from the consumer's figures at
 * every scrape (collect). */
enum {
	M_APPLIED,
	M_DUPS,
	M_INVALID,
	M_EVENTS,
	M_HOLES,
	M_MISSING,
	M_LOST,
	M_FAILOVERS,
	M_CONNECTED,
	M_COUNT
};

static const es_metric_desc metric_descs[M_COUNT] = {
	[M_APPLIED] = {.type = ES_METRIC_COUNTER,
		       .name = "fleet_state_events_applied_total",
		       .help = "events applied to the projection (each id once)"},
	[M_DUPS] = {.type = ES_METRIC_COUNTER,
		    .name = "fleet_state_events_duplicate_total",
		    .help = "deliveries of an id already applied, dropped"},
	[M_INVALID] = {.type = ES_METRIC_COUNTER,
		       .name = "fleet_state_events_invalid_total",
		       .help = "deliveries that were not CloudEvents, dead-lettered"},
	[M_EVENTS] = {.type = ES_METRIC_GAUGE,
		      .name = "fleet_state_event_log_events",
		      .help = "events in the service's own event log"},
	[M_HOLES] = {.type = ES_METRIC_GAUGE,
		     .name = "fleet_state_sequence_holes",
		     .help = "ranges of a node's sequence not received"},
	[M_MISSING] = {.type = ES_METRIC_GAUGE,
		       .name = "fleet_state_sequence_missing",
		       .help = "sequences of the nodes not received"},
	[M_LOST] = {.type = ES_METRIC_COUNTER,
		    .name = "fleet_state_sequence_lost_total",
		    .help = "sequences a node answered it no longer holds, counted lost"},
	[M_FAILOVERS] = {.type = ES_METRIC_COUNTER,
			 .name = "fleet_state_failovers_total",
			 .help = "moves to another broker after a lost connection"},
	[M_CONNECTED] = {.type = ES_METRIC_GAUGE,
			 .name = "fleet_state_connected",
			 .help = "1 while connected to a broker"},
};

struct fleet {
	const fleet_settings *s;
	es_loop *loop;
	pthread_t consumer_thread; /* runs the consumer from fleet_start */
	bool started, joined;
	_Atomic bool consuming; /* from fleet_start to fleet_shutdown */
	es_err result;		/* the consumer's, once joined */
	es_consumer *consumer;
	fleet_projection *projection;
	fleet_repair *repair; /* NULL without repair.node */
	es_source *source;
	es_http *http;
	es_metrics *metrics;
	es_metric *m[M_COUNT];
	char *password;
};

static es_err consumer_open(const fleet_settings *s, es_consumer **out, fleet_projection **proj)
{
	es_consumer_opts co = {
		.path = s->state_path,
		.dedup_max = (uint64_t)s->state_dedup_max,
		.dedup_max_age_s = (uint64_t)s->state_dedup_max_age_s,
		.event_max_bytes = (size_t)s->event_max_bytes,
		.batch_max = (size_t)s->source_prefetch,
		.keep_log = true,
		.sync_full = s->state_sync == 0,
		.snapshot_every = (uint64_t)s->state_snapshot_every,
		.log_keep = (uint64_t)s->state_log_keep,
	};
	es_err err = es_consumer_new(&co, out);
	if (!err && (err = fleet_projection_new(*out, proj))) {
		es_consumer_free(*out);
		*out = NULL;
	}
	return err;
}

/* Holes asked for on the source's broker (MQTT or AMQP): the default,
 * unless repair.node fetches them over HTTP. */
static bool asks(const fleet_settings *s)
{
	return s->repair_ask && !s->repair_node.n;
}

static es_err amqp_open(fleet *f)
{
	const fleet_settings *s = f->s;
	es_amqp_opts o = {
		.urls = (const char *const *)s->source_amqp.v,
		.nurls = s->source_amqp.n,
		.queue = s->source_queue,
		.binds = (const char *const *)s->source_bind.v,
		.nbinds = s->source_bind.n,
		.consumer_tag = s->node_id,
		.prefetch = (uint16_t)s->source_prefetch,
		.heartbeat_s = (int)s->source_heartbeat_s,
		.backoff_base_ms = (uint64_t)s->source.backoff_base_ms,
		.backoff_max_ms = (uint64_t)s->source.backoff_max_ms,
		.username = s->source.username,
		.password = f->password,
		.ca_file = s->source.ca,
		.cert_file = s->source.cert,
		.key_file = s->source.key,
		.tls_insecure = !s->source.tls_verify,
		.resend_root = asks(s) ? s->repair_root : NULL,
		.asker_id = s->node_id,
	};
	return es_amqp_source_new(&o, &f->source);
}

static es_err source_open(fleet *f)
{
	const fleet_settings *s = f->s;
	char err[256];
	if (s->source.password_file &&
	    es_config_read_secret(s->source.password_file, &f->password, err, sizeof err)) {
		es_error(TAG, "source.password_file: %s", err);
		return ES_EINVAL;
	}
	if (s->source_amqp.n)
		return amqp_open(f);
	es_msource_opts o = {
		.topics = (const char *const *)s->source_topic.v,
		.ntopics = s->source_topic.n,
		.resend_root = asks(s) ? s->repair_root : NULL,
	};
	es_link_mqtt_opts(&s->source, s->node_id, f->password, &o.mqtt);
	o.mqtt.urls = (const char *const *)s->source_mqtt.v;
	o.mqtt.nurls = s->source_mqtt.n;
	return es_msource_new(&o, &f->source);
}

/* ---- repair: holes fetched from the nodes' journals --------------------- */

/* Applies what the repair thread brought: events, or a range gone. */
static void apply_outcome(fleet *f, const fleet_repair_out *o)
{
	es_consumer_stats before, after;
	es_consumer_stats_get(f->consumer, &before);
	es_err err = o->kind == FLEET_REPAIR_EVENTS
			     ? es_consumer_apply(f->consumer, o->d, o->n)
			     : es_consumer_gone(f->consumer, o->node, o->from, o->to);
	es_consumer_stats_get(f->consumer, &after);
	if (err)
		es_warn(TAG, "repair of %s: %s (asked again later)", o->node, es_strerror(err));
	else if (o->kind == FLEET_REPAIR_GONE && after.lost > before.lost)
		es_warn(TAG,
			"repair of %s %llu..%llu: the node no longer holds them: %llu events lost",
			o->node, (unsigned long long)o->from, (unsigned long long)o->to,
			(unsigned long long)(after.lost - before.lost));
}

/* Idle hook of the consumer (its thread, between batches): the holes that
 * are due go to the repair thread; what it brought back is applied. Never
 * waits for a node. */
static void repair(void *arg)
{
	fleet *f = arg;
	es_gap_request r[8];
	fleet_repair_out o;
	size_t n = es_consumer_holes_due(f->consumer, r, 8);
	for (size_t i = 0; i < n; i++)
		(void)fleet_repair_ask(f->repair, &r[i]);
	while (fleet_repair_take(f->repair, &o)) {
		apply_outcome(f, &o);
		fleet_repair_out_clear(&o);
	}
}

/* ---- HTTP --------------------------------------------------------------- */

static int reply_text(es_http_req *req, int status, const char *type, char *text)
{
	if (!text)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	es_http_reply(req, status, type, text, strlen(text));
	free(text);
	return status;
}

static int healthz(es_http_req *req, void *ctx)
{
	(void)ctx;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "ok");
	return es_japi_reply_json(req, 200, o);
}

/* Ready: the consumer runs, and its source consumes the queue (AMQP) or
 * holds acknowledged subscriptions (MQTT). The state store opened before
 * the HTTP server started. */
static int readyz(es_http_req *req, void *ctx)
{
	fleet *f = ctx;
	es_ready_check checks[] = {
		{"running", atomic_load(&f->consuming)},
		{"source", es_source_ready(f->source)},
	};
	return es_japi_reply_ready(req, checks, sizeof checks / sizeof checks[0]);
}

static int devices(es_http_req *req, void *ctx)
{
	fleet *f = ctx;
	char *text = NULL;
	es_err err = fleet_projection_devices_json(f->s->state_path, &text);
	if (err)
		return es_http_reply_error(req, 503, es_strerror(err), NULL);
	return reply_text(req, 200, "application/json", text);
}

static void where(fleet *f, char *url, size_t cap, uint64_t *failovers)
{
	f->source->ops->where(f->source, url, cap, failovers);
}

static int stats(es_http_req *req, void *ctx)
{
	fleet *f = ctx;
	es_consumer_stats st;
	char url[512];
	uint64_t failovers;
	es_consumer_stats_get(f->consumer, &st);
	where(f, url, sizeof url, &failovers);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "applied", (double)st.applied);
	cJSON_AddNumberToObject(o, "duplicates", (double)st.duplicates);
	cJSON_AddNumberToObject(o, "invalid", (double)st.invalid);
	cJSON_AddNumberToObject(o, "events", (double)st.events);
	cJSON_AddNumberToObject(o, "snapshot", (double)st.snapshot_n);
	cJSON_AddStringToObject(o, "transport", f->source->ops->name);
	cJSON_AddStringToObject(o, "connected_to", url);
	cJSON_AddNumberToObject(o, "failovers", (double)failovers);
	cJSON *g = cJSON_AddObjectToObject(o, "gaps");
	cJSON_AddNumberToObject(g, "holes_open", (double)st.holes_open);
	cJSON_AddNumberToObject(g, "missing", (double)st.missing);
	cJSON_AddNumberToObject(g, "holes_detected", (double)st.holes_detected);
	cJSON_AddNumberToObject(g, "lost", (double)st.lost);
	return es_japi_reply_json(req, 200, o);
}

static void collect(void *ctx)
{
	fleet *f = ctx;
	es_consumer_stats st;
	char url[512];
	uint64_t failovers;
	es_consumer_stats_get(f->consumer, &st);
	where(f, url, sizeof url, &failovers);
	es_metric_set(f->m[M_APPLIED], (double)st.applied);
	es_metric_set(f->m[M_DUPS], (double)st.duplicates);
	es_metric_set(f->m[M_INVALID], (double)st.invalid);
	es_metric_set(f->m[M_EVENTS], (double)st.events);
	es_metric_set(f->m[M_HOLES], (double)st.holes_open);
	es_metric_set(f->m[M_MISSING], (double)st.missing);
	es_metric_set(f->m[M_LOST], (double)st.lost);
	es_metric_set(f->m[M_FAILOVERS], (double)failovers);
	es_metric_set(f->m[M_CONNECTED], url[0] ? 1.0 : 0.0);
}

static int metrics(es_http_req *req, void *ctx)
{
	fleet *f = ctx;
	return es_japi_reply_metrics(req, f->metrics);
}

static es_err metrics_open(fleet *f)
{
	es_err err = es_metrics_new(0, &f->metrics);
	for (size_t i = 0; !err && i < M_COUNT; i++) {
		es_metric_family *fam;
		err = es_metrics_add(f->metrics, &metric_descs[i], &fam);
		if (!err)
			f->m[i] = es_metric_child(fam);
	}
	return err ? err : es_metrics_collector(f->metrics, collect, f);
}

static es_err http_open(fleet *f)
{
	const fleet_settings *s = f->s;
	es_http_opts ho = {.listen = s->http.listen,
			   .threads = (int)s->http.threads,
			   .auth_file = s->http.auth_file,
			   .token_file = s->http.token_file,
			   .metrics_open = s->http.metrics_open};
	es_err err = es_http_new(&ho, &f->http);
	if (!err)
		err = es_http_route_flags(f->http, "GET", "/healthz", ES_ROUTE_PUBLIC, healthz, f);
	if (!err)
		err = es_http_route_flags(f->http, "GET", "/readyz", ES_ROUTE_PUBLIC, readyz, f);
	if (!err)
		err = es_http_route_flags(f->http, "GET", "/metrics", ES_ROUTE_METRICS, metrics, f);
	if (!err)
		err = es_http_route(f->http, "GET", "/api/devices", devices, f);
	if (!err)
		err = es_http_route(f->http, "GET", "/api/stats", stats, f);
	if (!err)
		err = es_http_start(f->http);
	if (!err)
		es_info(TAG, "HTTP on port %d", es_http_port(f->http));
	return err;
}

es_err fleet_new(const fleet_settings *s, es_loop *loop, fleet **out)
{
	fleet *f = calloc(1, sizeof *f);
	if (!f)
		return ES_ENOMEM;
	f->s = s;
	f->loop = loop;
	es_err err = consumer_open(s, &f->consumer, &f->projection);
	if (!err && s->repair_node.n)
		err = fleet_repair_new(&s->repair_node, &f->repair);
	if (!err && f->repair)
		err = es_consumer_on_idle(f->consumer, repair, f);
	if (!err && asks(s))
		err = es_consumer_ask_source(f->consumer, true);
	if (!err)
		err = source_open(f);
	if (!err)
		err = metrics_open(f);
	if (!err)
		err = http_open(f);
	if (err) {
		fleet_free(f);
		return err;
	}
	*out = f;
	return ES_OK;
}

/* Waits for the consumer's thread, once; its result goes to f->result. */
static void join_consumer(fleet *f)
{
	if (!f->started || f->joined)
		return;
	pthread_join(f->consumer_thread, NULL);
	f->joined = true;
}

void fleet_free(fleet *f)
{
	if (!f)
		return;
	if (f->started)
		es_consumer_stop(f->consumer);
	join_consumer(f);
	fleet_repair_free(f->repair); /* after the consumer: its idle hook uses it */
	es_http_free(f->http);
	es_source_free(f->source);
	fleet_projection_free(f->projection);
	es_consumer_free(f->consumer);
	es_metrics_free(f->metrics);
	free(f->password);
	free(f);
}

/* The consumer's thread: consumes until stopped or failed, then stops the
 * loop (es_loop_stop works from any thread, and before the loop runs). */
static void *consume(void *arg)
{
	fleet *f = arg;
	f->result = es_consumer_run(f->consumer, f->source);
	atomic_store(&f->consuming, false);
	es_loop_stop(f->loop);
	return NULL;
}

es_err fleet_start(fleet *f)
{
	es_info(TAG, "consuming over %s into %s", f->source->ops->name, f->s->state_path);
	if (pthread_create(&f->consumer_thread, NULL, consume, f) != 0) {
		es_error(TAG, "cannot start the consumer's thread");
		return ES_ESYS;
	}
	f->started = true;
	atomic_store(&f->consuming, true);
	return ES_OK;
}

void fleet_shutdown(fleet *f)
{
	atomic_store(&f->consuming, false);
	es_consumer_stop(f->consumer);
}

es_err fleet_outcome(fleet *f)
{
	join_consumer(f);
	return f->result;
}

es_err fleet_rebuild(const fleet_settings *s, bool from_scratch, es_consumer_rebuilt *out)
{
	es_consumer *c = NULL;
	fleet_projection *p = NULL;
	es_err err = consumer_open(s, &c, &p);
	if (!err)
		err = es_consumer_rebuild(c, from_scratch, out);
	fleet_projection_free(p);
	es_consumer_free(c);
	return err;
}

es_err fleet_rebuild_from(const fleet_settings *s, const char *url, uint64_t *read,
			  uint64_t *applied)
{
	es_consumer *c = NULL;
	fleet_projection *p = NULL;
	es_consumer_stats before, after;
	es_err err = consumer_open(s, &c, &p);
	if (!err) {
		es_consumer_stats_get(c, &before);
		err = fleet_fetch_node(c, url, read);
		es_consumer_stats_get(c, &after);
		*applied = after.applied - before.applied;
	}
	fleet_projection_free(p);
	es_consumer_free(c);
	return err;
}
