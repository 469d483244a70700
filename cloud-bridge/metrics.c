/* metrics.c - the bridge's metrics and GET /metrics (docs/metrics.md).
 *
 * A collector copies what the bridge already counts (the view, refreshed
 * every tick, and the inbox's counters) into the registry when /metrics is
 * rendered. Counted here: forwards and cloud PUBACKs, with the forward
 * latency (inbox commit to cloud PUBACK) on the loop thread, and HTTP
 * requests (the http module's hook, any thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_internal.h"
#include "latency.h"
#include "log.h"
#include "metrics.h"

#define TAG "metrics"
#ifndef ES_VERSION
#define ES_VERSION "unknown"
#endif

static const double latency_buckets[] = {.001, .0025, .005, .01, .025, .05, .1, .25,
					 .5,   1,     2.5,  5,	 10,   30,  60};
static const double http_buckets[] = {.001, .005, .01, .05, .1, .5, 1, 5};

struct bridge_metrics {
	es_metric_family *build, *received, *journaled, *duplicates, *forwarded, *acked;
	es_metric_family *deadlettered, *refused, *out_of_order, *held;
	es_metric_family *holes_detected, *holes_open, *missing, *filled, *lost, *requests;
	es_metric_family *gone, *nodes, *pending, *oldest_age, *evicted, *expired;
	es_metric_family *jbytes, *jfile, *jcap, *jcommits, *jerrors, *jwritable;
	es_metric_family *link_up, *reconnects, *failures, *http, *latency, *http_time;
	es_metric *c_forwarded, *c_acked;
	es_latency *lat; /* loop thread */
};

struct def {
	size_t off;
	es_metric_type type;
	const char *name, *labels, *help;
};

#define F(field) offsetof(struct bridge_metrics, field)
#define C	 ES_METRIC_COUNTER
#define G	 ES_METRIC_GAUGE
static const struct def defs[] = {
	{F(build), G, "edgespool_build_info", "version,program", "Always 1: the build."},
	{F(received), C, "edgespool_messages_received_total", NULL,
	 "MQTT messages received from the edge brokers (events, status, replies)."},
	{F(journaled), C, "edgespool_events_journaled_total", NULL,
	 "Events committed to the inbox."},
	{F(duplicates), C, "edgespool_duplicates_dropped_total", NULL,
	 "Events dropped as copies of ones already in the inbox."},
	{F(forwarded), C, "edgespool_events_forwarded_total", NULL,
	 "Events published to the cloud broker (re-sends after a reconnect included)."},
	{F(acked), C, "edgespool_events_acked_total", NULL,
	 "Events the cloud broker acknowledged."},
	{F(deadlettered), C, "edgespool_events_deadlettered_total", "reason",
	 "Messages kept as dead letters, by reason (invalid, unforwardable)."},
	{F(refused), C, "edgespool_events_refused_total", "reason",
	 "Events not taken into the inbox, by reason (overload, journal_full); the "
	 "gap tracker asks for them again."},
	{F(out_of_order), C, "edgespool_events_out_of_order_total", NULL,
	 "Events forwarded after a later one of the same node."},
	{F(held), G, "edgespool_events_held", NULL,
	 "Inbox rows held in memory waiting for their turn."},
	{F(holes_detected), C, "edgespool_holes_detected_total", NULL,
	 "Ranges of missing sequences ever found."},
	{F(holes_open), G, "edgespool_holes_open", NULL, "Ranges of sequences missing now."},
	{F(missing), G, "edgespool_events_missing", NULL, "Sequences missing now."},
	{F(filled), C, "edgespool_hole_events_filled_total", NULL,
	 "Missing sequences that arrived later."},
	{F(lost), C, "edgespool_hole_events_lost_total", NULL,
	 "Missing sequences their node no longer holds."},
	{F(requests), C, "edgespool_resend_requests_total", NULL,
	 "Re-send requests sent to the nodes."},
	{F(gone), C, "edgespool_resend_gone_replies_total", NULL,
	 "Re-send replies saying events are gone."},
	{F(nodes), G, "edgespool_nodes", NULL, "Source nodes known."},
	{F(pending), G, "edgespool_events_pending", NULL,
	 "Events in the inbox not yet acknowledged by the cloud (the backlog)."},
	{F(oldest_age), G, "edgespool_oldest_pending_age_seconds", NULL,
	 "Age of the oldest unforwarded inbox event (0 when none)."},
	{F(evicted), C, "edgespool_events_evicted_total", NULL,
	 "Forwarded events deleted to make room under journal.max_bytes."},
	{F(expired), C, "edgespool_events_expired_total", NULL,
	 "Forwarded events deleted by age (journal.retain_s)."},
	{F(jbytes), G, "edgespool_journal_bytes", NULL, "Bytes the inbox uses."},
	{F(jfile), G, "edgespool_journal_file_bytes", NULL, "Size of the inbox file and WAL."},
	{F(jcap), G, "edgespool_journal_cap_bytes", NULL, "journal.max_bytes (0: no cap)."},
	{F(jcommits), C, "edgespool_journal_commits_total", NULL, "Inbox transactions."},
	{F(jerrors), C, "edgespool_journal_errors_total", NULL, "Inbox transactions that failed."},
	{F(jwritable), G, "edgespool_journal_writable", NULL,
	 "1 unless the last inbox transaction failed."},
	{F(link_up), G, "edgespool_link_up", "link", "1 while the link is connected."},
	{F(reconnects), C, "edgespool_reconnects_total", "link",
	 "Connections made after the first."},
	{F(failures), C, "edgespool_connect_failures_total", "link",
	 "Failed connection attempts and lost connections."},
	{F(http), C, "edgespool_http_requests_total", "method,route,status",
	 "HTTP requests answered, by method, route pattern and status."},
};
#undef F
#undef C
#undef G

#define FAM(bm, d) (*(es_metric_family **)((char *)(bm) + (d)->off))

/* ---- the collector -------------------------------------------------------- */

static void set(es_metric_family *f, double v)
{
	es_metric_set(es_metric_child(f, NULL), v);
}

static void set1(es_metric_family *f, const char *label, double v)
{
	es_metric_set(es_metric_child(f, label), v);
}

static void collect_inbox(bridge *b, struct bridge_metrics *bm)
{
	es_journal_counters c;
	es_journal_stats st = {0};
	es_journal_counters_get(b->journal, &c);
	pthread_mutex_lock(&b->api_lock);
	es_err err = es_journal_stats_get(b->api_reader, &st);
	pthread_mutex_unlock(&b->api_lock);
	uint64_t now = es_clock_wall_ms();
	set(bm->journaled, (double)c.appended);
	set(bm->pending, (double)c.pending);
	set(bm->evicted, (double)c.evicted);
	set(bm->expired, (double)c.expired);
	set1(bm->refused, "journal_full", (double)c.refused_full);
	set(bm->jcommits, (double)c.commits);
	set(bm->jerrors, (double)c.errors);
	set(bm->jwritable, es_journal_writable(b->journal) ? 1 : 0);
	set(bm->jcap, (double)b->s->journal_max_bytes);
	if (err)
		return;
	set(bm->oldest_age, st.oldest_pending_ms && now > st.oldest_pending_ms
				    ? (double)(now - st.oldest_pending_ms) / 1000.0
				    : 0.0);
	set(bm->jbytes, (double)st.used_bytes);
	set(bm->jfile, (double)st.file_bytes);
}

static void collect_gaps(const struct view *v, struct bridge_metrics *bm)
{
	set(bm->holes_detected, (double)v->gap.holes_detected);
	set(bm->holes_open, (double)v->gap.holes_open);
	set(bm->missing, (double)v->gap.missing);
	set(bm->filled, (double)v->gap.filled);
	set(bm->lost, (double)v->gap.lost);
	set(bm->requests, (double)v->gap.requests);
	set(bm->nodes, (double)v->gap.nodes);
	set(bm->gone, (double)v->lost_replies);
}

static void set_link(struct bridge_metrics *bm, const char *link, bool up, uint64_t connects,
		     uint64_t failures)
{
	set1(bm->link_up, link, up ? 1 : 0);
	set1(bm->reconnects, link, connects ? (double)(connects - 1) : 0);
	set1(bm->failures, link, (double)failures);
}

static void collect_view(bridge *b, struct bridge_metrics *bm)
{
	struct view v;
	char link[300];
	pthread_mutex_lock(&b->view_lock);
	v = b->view;
	pthread_mutex_unlock(&b->view_lock);
	set(bm->received, (double)v.received);
	set(bm->duplicates, (double)v.duplicates);
	set1(bm->deadlettered, "invalid", (double)v.invalid);
	set1(bm->deadlettered, "unforwardable", (double)v.refused);
	set1(bm->refused, "overload", (double)v.overload);
	set(bm->out_of_order, (double)v.out_of_order);
	set(bm->held, (double)v.held);
	collect_gaps(&v, bm);
	for (size_t i = 0; i < v.nlinks; i++) {
		snprintf(link, sizeof link, "edge:%s", b->links[i].url);
		set_link(bm, link, v.edge_up[i], v.edge_connects[i], v.edge_failures[i]);
	}
	set_link(bm, "cloud", v.cloud_up, v.cloud_connects, v.cloud_failures);
}

static void collect(void *ctx)
{
	bridge *b = ctx;
	collect_inbox(b, b->metrics_state);
	collect_view(b, b->metrics_state);
}

/* ---- GET /metrics ---------------------------------------------------------- */

static int get_metrics(es_http_req *req, void *ctx)
{
	bridge *b = ctx;
	char *text;
	size_t len;
	if (es_metrics_render(b->metrics, &text, &len))
		return es_http_reply_error(req, 503, "out of memory", NULL);
	int status = es_http_reply(req, 200, ES_METRICS_CONTENT_TYPE, text, len);
	free(text);
	return status;
}

/* ---- setup ------------------------------------------------------------------ */

static es_err add_families(es_metrics *m, struct bridge_metrics *bm)
{
	es_err err = ES_OK;
	for (size_t i = 0; !err && i < sizeof defs / sizeof defs[0]; i++) {
		const struct def *d = &defs[i];
		es_metric_desc md = {
			.type = d->type, .name = d->name, .help = d->help, .labels = d->labels};
		err = es_metrics_add(m, &md, &FAM(bm, d));
	}
	es_metric_desc lat = {.type = ES_METRIC_HISTOGRAM,
			      .name = "edgespool_forward_latency_seconds",
			      .help = "Time from an event's inbox commit to the cloud's PUBACK.",
			      .buckets = latency_buckets,
			      .nbuckets = sizeof latency_buckets / sizeof latency_buckets[0]};
	es_metric_desc ht = {.type = ES_METRIC_HISTOGRAM,
			     .name = "edgespool_http_request_duration_seconds",
			     .help = "Time to answer an HTTP request, by route pattern.",
			     .labels = "route",
			     .buckets = http_buckets,
			     .nbuckets = sizeof http_buckets / sizeof http_buckets[0]};
	if (!err)
		err = es_metrics_add(m, &lat, &bm->latency);
	if (!err)
		err = es_metrics_add(m, &ht, &bm->http_time);
	return err;
}

static es_err make_state(bridge *b, struct bridge_metrics *bm)
{
	es_err err = add_families(b->metrics, bm);
	if (err)
		return err;
	bm->c_forwarded = es_metric_child(bm->forwarded, NULL);
	bm->c_acked = es_metric_child(bm->acked, NULL);
	es_metric_set(es_metric_child(bm->build, ES_VERSION, "cloud-bridge"), 1);
	if ((err = es_latency_new(es_metric_child(bm->latency, NULL), 0, &bm->lat)))
		return err;
	if ((err = es_metrics_add_process(b->metrics)) ||
	    (err = es_metrics_collector(b->metrics, collect, b)))
		return err;
	return es_http_route_flags(b->http, "GET", "/metrics", ES_ROUTE_METRICS, get_metrics, b);
}

es_err bridge_metrics_init(bridge *b)
{
	struct bridge_metrics *bm = calloc(1, sizeof *bm);
	if (!bm)
		return ES_ENOMEM;
	b->metrics_state = bm;
	es_err err = es_metrics_new(0, &b->metrics);
	if (!err)
		err = make_state(b, bm);
	if (err)
		es_error(TAG, "cannot set up the metrics: %s", es_strerror(err));
	return err; /* what was made is freed by bridge_metrics_free */
}

void bridge_metrics_free(bridge *b)
{
	if (b->metrics_state)
		es_latency_free(b->metrics_state->lat);
	free(b->metrics_state);
	b->metrics_state = NULL;
	es_metrics_free(b->metrics);
	b->metrics = NULL;
}

/* ---- forwards (loop thread) and requests (any thread) ----------------------- */

void bridge_metrics_forwarded(bridge *b, uint64_t seq, uint64_t journaled_ms)
{
	struct bridge_metrics *bm = b->metrics_state;
	if (!bm)
		return;
	es_metric_inc(bm->c_forwarded);
	es_latency_start(bm->lat, seq, journaled_ms);
}

void bridge_metrics_acked(bridge *b, uint64_t seq)
{
	struct bridge_metrics *bm = b->metrics_state;
	if (!bm)
		return;
	es_metric_inc(bm->c_acked);
	es_latency_done(bm->lat, seq, es_clock_wall_ms());
}

void bridge_metrics_reset(bridge *b)
{
	if (b->metrics_state)
		es_latency_clear(b->metrics_state->lat);
}

void bridge_metrics_on_request(void *ctx, const char *method, const char *route, int status,
			       double seconds)
{
	bridge *b = ctx;
	struct bridge_metrics *bm = b->metrics_state;
	char code[12];
	if (!bm)
		return;
	snprintf(code, sizeof code, "%d", status);
	es_metric_inc(es_metric_child(bm->http, method, route, code));
	es_metric_observe(es_metric_child(bm->http_time, route), seconds);
}
