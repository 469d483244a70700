/* metrics.c - the bridge's metrics and GET /metrics (docs/metrics.md).
 *
 * The families every node has, the forward latency (inbox commit to cloud
 * PUBACK), the HTTP requests and GET /metrics are node_metrics.c's; this
 * file gives it the bridge's words and families. A collector copies what
 * the bridge already counts (the view, refreshed every tick, and the
 * inbox's counters) into the registry when /metrics is rendered.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bridge_internal.h"
#include "log.h"
#include "node_metrics.h"

#define TAG "metrics"
#ifndef ES_VERSION
#define ES_VERSION "unknown"
#endif

static const es_node_metrics_words words = {
	.program = "cloud-bridge",
	.version = ES_VERSION,
	.sent_name = "edgespool_events_forwarded_total",
	.sent_help = "Events published to the cloud broker (re-sends after a reconnect included).",
	.latency_name = "edgespool_forward_latency_seconds",
	.latency_help = "Time from an event's inbox commit to the cloud's PUBACK.",
	.acked = "Events the cloud broker acknowledged.",
	.journaled = "Events committed to the inbox.",
	.pending = "Events in the inbox not yet acknowledged by the cloud (the backlog).",
	.oldest_age = "Age of the oldest unforwarded inbox event (0 when none).",
	.evicted = "Forwarded events deleted to make room under journal.max_bytes.",
	.expired = "Forwarded events deleted by age (journal.retain_s).",
	.bytes = "Bytes the inbox uses.",
	.file_bytes = "Size of the inbox file and WAL.",
	.commits = "Inbox transactions.",
	.errors = "Inbox transactions that failed.",
	.writable = "1 unless the last inbox transaction failed.",
};

/* The bridge's own families (the shared ones are node_metrics.c's). */
struct bridge_metrics {
	es_metric_family *received, *duplicates, *deadlettered, *refused, *out_of_order, *held;
	es_metric_family *holes_detected, *holes_open, *missing, *filled, *lost, *requests;
	es_metric_family *gone, *nodes, *failovers, *cloud_node;
};

#define F(field) offsetof(struct bridge_metrics, field)
#define C	 ES_METRIC_COUNTER
#define G	 ES_METRIC_GAUGE
static const es_node_metric_def defs[] = {
	{F(received), C, "edgespool_messages_received_total", NULL,
	 "MQTT messages received from the edge brokers (events, status, replies)."},
	{F(duplicates), C, "edgespool_duplicates_dropped_total", NULL,
	 "Events dropped as copies of ones already in the inbox."},
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
	{F(failovers), C, "edgespool_cloud_failovers_total", NULL,
	 "Connections made to another cloud.url (cluster node) than the previous one."},
	{F(cloud_node), G, "edgespool_cloud_node", "url",
	 "1 for the cloud.url (cluster node) in use or being tried, 0 for the others."},
};
#undef F
#undef C
#undef G

/* ---- the collector -------------------------------------------------------- */

static void set(es_metric_family *f, double v)
{
	es_node_metrics_set(f, NULL, v);
}

static void set1(es_metric_family *f, const char *label, double v)
{
	es_node_metrics_set(f, label, v);
}

static void collect_inbox(bridge *b, struct bridge_metrics *bm)
{
	es_journal_counters c;
	es_journal_counters_get(b->journal, &c);
	set1(bm->refused, "journal_full", (double)c.refused_full);
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
		es_node_metrics_link(b->metrics, link, v.edge_up[i], v.edge_connects[i],
				     v.edge_failures[i]);
	}
	es_node_metrics_link(b->metrics, "cloud", v.cloud_up, v.cloud_connects, v.cloud_failures);
	set(bm->failovers, (double)v.cloud_failovers);
	for (size_t i = 0; i < b->s->cloud.url.n; i++)
		set1(bm->cloud_node, b->s->cloud.url.v[i], i == v.cloud_node ? 1 : 0);
}

static void collect(void *ctx)
{
	bridge *b = ctx;
	collect_inbox(b, b->metrics_state);
	collect_view(b, b->metrics_state);
}

/* ---- setup ------------------------------------------------------------------ */

es_err bridge_metrics_init(bridge *b)
{
	struct bridge_metrics *bm = calloc(1, sizeof *bm);
	if (!bm)
		return ES_ENOMEM;
	b->metrics_state = bm;
	es_node_metrics_opts o = {.words = &words,
				  .journal = b->journal,
				  .reader = b->api_reader,
				  .reader_lock = &b->api_lock,
				  .journal_cap = b->s->journal.max_bytes,
				  .defs = defs,
				  .ndefs = sizeof defs / sizeof defs[0],
				  .base = bm,
				  .collect = collect,
				  .ctx = b,
				  .http = b->http};
	es_err err = es_node_metrics_new(&o, &b->metrics);
	if (err)
		es_error(TAG, "cannot set up the metrics: %s", es_strerror(err));
	return err; /* what was made is freed by bridge_metrics_free */
}

void bridge_metrics_free(bridge *b)
{
	es_node_metrics_free(b->metrics);
	b->metrics = NULL;
	free(b->metrics_state);
	b->metrics_state = NULL;
}

/* ---- forwards (loop thread) and requests (any thread) ----------------------- */

void bridge_metrics_forwarded(bridge *b, uint64_t seq, uint64_t journaled_ms)
{
	es_node_metrics_sent(b->metrics, seq, journaled_ms);
}

void bridge_metrics_acked(bridge *b, uint64_t seq)
{
	es_node_metrics_acked(b->metrics, seq);
}

void bridge_metrics_reset(bridge *b)
{
	es_node_metrics_reset(b->metrics);
}

void bridge_metrics_on_request(void *ctx, const char *method, const char *route, int status,
			       double seconds)
{
	bridge *b = ctx;
	es_node_metrics_on_request(b->metrics, method, route, status, seconds);
}
