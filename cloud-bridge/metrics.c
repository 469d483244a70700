/* metrics.c - the bridge's metrics and GET /metrics (metrics.h).
 *
 * The families every node has, the forward latency, the HTTP requests and
 * GET /metrics are node_metrics.c's; this file gives it the bridge's words
 * and families, and a collector that copies the view into them when
 * /metrics is rendered.
 *
 * Lock: `lock` guards `reader` (node_metrics reads through it).
 */
#include "metrics.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "lanes.h"
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
struct families {
	es_metric_family *received, *duplicates, *deadlettered, *refused, *out_of_order, *held;
	es_metric_family *batches, *batch_bytes, *batches_in;
	es_metric_family *holes_detected, *holes_open, *missing, *filled, *lost, *requests;
	es_metric_family *gone, *nodes, *failovers, *cloud_node, *voided, *epochs;
	es_metric_family *cr_requests, *cr_events, *cr_relays, *cr_replies, *cr_dropped;
	es_metric_family *cr_waiting;
	es_metric_family *lane_backlog, *lane_age, *lane_held, *lane_sent, *lane_acked;
	es_metric_family *lane_expired, *lane_bytes, *lane_rate, *lane_eta;
	es_metric_family *inflight_bytes, *inflight_cap;
};

#define F(field) offsetof(struct families, field)
#define C	 ES_METRIC_COUNTER
#define G	 ES_METRIC_GAUGE
static const es_node_metric_def defs[] = {
	{F(received), C, "edgespool_messages_received_total", NULL,
	 "MQTT messages received from the edge brokers (events, status, replies)."},
	{F(duplicates), C, "edgespool_duplicates_dropped_total", NULL,
	 "Events dropped as copies of ones already in the inbox."},
	{F(deadlettered), C, "edgespool_events_deadlettered_total", "reason",
	 "Messages kept as dead letters, by reason (invalid, conflict: a second id for a "
	 "node's sequence, unforwardable)."},
	{F(refused), C, "edgespool_events_refused_total", "reason",
	 "Events not taken into the inbox, by reason (overload, journal_full); the "
	 "gap tracker asks for them again."},
	{F(out_of_order), C, "edgespool_events_out_of_order_total", NULL,
	 "Events forwarded after a later one of the same node."},
	{F(held), G, "edgespool_events_held", NULL,
	 "Inbox rows held in memory waiting for their turn."},
	{F(batches), C, "edgespool_cloud_batches_total", NULL,
	 "Uplink batches published to the cloud broker (cloud.format batch)."},
	{F(batch_bytes), C, "edgespool_cloud_batch_bytes_total", NULL,
	 "Their payloads' bytes, compressed."},
	{F(batches_in), C, "edgespool_edge_batches_received_total", NULL,
	 "Uplink batches read from the edge link (bridge.role cloud); one that cannot be read "
	 "is a dead letter instead."},
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
	{F(voided), C, "edgespool_sequences_voided_total", NULL,
	 "Sequences a node said it never had (above its latest): not holes."},
	{F(epochs), C, "edgespool_node_epochs_total", NULL,
	 "New epochs of nodes: a journal replaced, or gone back to an older state."},
	{F(nodes), G, "edgespool_nodes", NULL, "Source nodes known."},
	{F(failovers), C, "edgespool_cloud_failovers_total", NULL,
	 "Connections made to another cloud.url (cluster node) than the previous one."},
	{F(cloud_node), G, "edgespool_cloud_node", "url",
	 "1 for the cloud.url (cluster node) in use or being tried, 0 for the others."},
	{F(cr_requests), C, "edgespool_cloud_resend_requests_total", NULL,
	 "Re-send requests received over the cloud broker (from cloud consumers)."},
	{F(cr_events), C, "edgespool_cloud_resend_events_total", "from",
	 "Events sent to the cloud for those requests, by where from (inbox: re-published "
	 "from the inbox; agent: the agent's copies passed while a relay waited)."},
	{F(cr_relays), C, "edgespool_cloud_resend_relays_total", NULL,
	 "Those requests relayed to the agent, for what the inbox no longer holds."},
	{F(cr_replies), C, "edgespool_cloud_resend_replies_total", "status",
	 "Answers sent to the cloud, by status (ok, partial, gone, busy, invalid)."},
	{F(cr_dropped), C, "edgespool_cloud_resend_dropped_total", NULL,
	 "Answers and events for those requests dropped for want of room under "
	 "cloud.resend_rate (the asker asks again)."},
	{F(cr_waiting), G, "edgespool_cloud_resend_waiting", NULL,
	 "Those requests waiting now (queued, or relayed to the agent)."},
	{F(lane_backlog), G, "edgespool_lane_backlog_events", "lane",
	 "Inbox events of the lane not yet forwarded (counted every 2 s)."},
	{F(lane_age), G, "edgespool_lane_oldest_age_seconds", "lane",
	 "Age of the lane's oldest unforwarded inbox event (0 when none)."},
	{F(lane_held), G, "edgespool_lane_held_events", "lane",
	 "Inbox rows of the lane held in memory waiting for their turn."},
	{F(lane_sent), C, "edgespool_lane_sent_total", "lane",
	 "Events of the lane published to the cloud broker."},
	{F(lane_acked), C, "edgespool_lane_acked_total", "lane",
	 "Events of the lane the cloud broker acknowledged."},
	{F(lane_expired), C, "edgespool_lane_expired_total", "lane",
	 "Events of the lane not sent: older than its lanes.<lane>_ttl_s."},
	{F(lane_bytes), C, "edgespool_lane_bytes_total", "lane",
	 "Payload bytes of the lane published (a batch's compressed)."},
	{F(lane_rate), G, "edgespool_lane_drain_rate", "lane",
	 "Events of the lane acknowledged or expired a second, smoothed."},
	{F(lane_eta), G, "edgespool_lane_drain_eta_seconds", "lane",
	 "Time for the lane's backlog to drain at its drain rate (backlog / rate); 0 when "
	 "the backlog is empty, -1 when it is not draining (a backlog, rate 0)."},
	{F(inflight_bytes), G, "edgespool_cloud_inflight_bytes", NULL,
	 "Batch bytes published to the cloud broker and awaiting its PUBACK."},
	{F(inflight_cap), G, "edgespool_cloud_inflight_cap_bytes", NULL,
	 "The bound on those bytes (cloud.inflight_ms of the link's rate); 0 when none."},
};
#undef F
#undef C
#undef G

struct bridge_metrics {
	bridge_metrics_deps d;
	const char *const *cloud_urls;
	size_t ncloud_urls;
	es_node_metrics *nm;
	struct families f;
	pthread_mutex_t lock;
	es_journal_reader *reader;
};

/* ---- the collector -------------------------------------------------------- */

static void set(es_metric_family *f, double v)
{
	es_node_metrics_set(f, NULL, v);
}

static void set1(es_metric_family *f, const char *label, double v)
{
	es_node_metrics_set(f, label, v);
}

static void collect_inbox(bridge_metrics *m, const bridge_view *v)
{
	struct families *f = &m->f;
	es_journal_counters c;
	es_journal_counters_get(m->d.journal, &c);
	set1(f->refused, "journal_full", (double)c.refused_full);
	set(f->received, (double)v->intake.received);
	set(f->duplicates, (double)v->intake.duplicates);
	set1(f->deadlettered, "invalid", (double)(v->intake.invalid - v->intake.conflicts));
	set1(f->deadlettered, "conflict", (double)v->intake.conflicts);
	set1(f->deadlettered, "unforwardable", (double)v->forward.refused);
	set1(f->refused, "overload", (double)v->intake.overload);
	set(f->out_of_order, (double)v->forward.out_of_order);
	set(f->held, (double)v->forward.held);
	set(f->batches, (double)v->forward.batches);
	set(f->batch_bytes, (double)v->forward.batch_bytes);
	set(f->batches_in, (double)v->intake.batches);
}

static void collect_gaps(struct families *f, const bridge_view *v)
{
	const es_gap_stats *g = &v->repair.gap;
	set(f->holes_detected, (double)g->holes_detected);
	set(f->holes_open, (double)g->holes_open);
	set(f->missing, (double)g->missing);
	set(f->filled, (double)g->filled);
	set(f->lost, (double)g->lost);
	set(f->requests, (double)g->requests);
	set(f->nodes, (double)g->nodes);
	set(f->gone, (double)v->repair.gone_replies);
	set(f->voided, (double)g->voided);
	set(f->epochs, (double)g->resets);
}

static void collect_answers(struct families *f, const bridge_answer_stats *a)
{
	set(f->cr_requests, (double)a->requests);
	set1(f->cr_events, "inbox", (double)a->from_inbox);
	set1(f->cr_events, "agent", (double)a->passed);
	set(f->cr_relays, (double)a->relayed);
	set1(f->cr_replies, "ok", (double)a->ok);
	set1(f->cr_replies, "partial", (double)a->partial);
	set1(f->cr_replies, "gone", (double)a->gone);
	set1(f->cr_replies, "busy", (double)a->busy);
	set1(f->cr_replies, "invalid", (double)a->invalid);
	set(f->cr_dropped, (double)a->dropped);
	set(f->cr_waiting, (double)a->waiting);
}

/* Seconds for a lane's backlog to drain: 0 when empty, -1 when not
 * draining (see the help of edgespool_lane_drain_eta_seconds). */
static double drain_eta(const bridge_lane_stats *l)
{
	if (!l->backlog)
		return 0;
	return l->drain_per_s ? (double)l->backlog / (double)l->drain_per_s : -1;
}

static void collect_lanes(struct families *f, const bridge_forward_stats *fw)
{
	uint64_t now = es_clock_wall_ms();
	for (int i = 0; i < BRIDGE_LANES; i++) {
		const bridge_lane_stats *l = &fw->lanes[i];
		const char *lane = bridge_lane_name(i);
		uint64_t age = l->oldest_ms && now > l->oldest_ms ? now - l->oldest_ms : 0;
		set1(f->lane_backlog, lane, (double)l->backlog);
		set1(f->lane_age, lane, (double)age / 1000.0);
		set1(f->lane_held, lane, (double)l->held);
		set1(f->lane_sent, lane, (double)l->sent);
		set1(f->lane_acked, lane, (double)l->acked);
		set1(f->lane_expired, lane, (double)l->expired);
		set1(f->lane_bytes, lane, (double)l->bytes);
		set1(f->lane_rate, lane, (double)l->drain_per_s);
		set1(f->lane_eta, lane, drain_eta(l));
	}
	set(f->inflight_bytes, (double)fw->inflight_bytes);
	set(f->inflight_cap, (double)fw->inflight_cap);
}

static void collect_links(bridge_metrics *m, const bridge_view *v)
{
	char link[300];
	for (size_t i = 0; i < v->nedges; i++) {
		snprintf(link, sizeof link, "edge:%s", v->edge[i].url);
		es_node_metrics_link(m->nm, link, v->edge[i].up, v->edge[i].connects,
				     v->edge[i].failures);
	}
	es_node_metrics_link(m->nm, "cloud", v->cloud.up, v->cloud.connects, v->cloud.failures);
	set(m->f.failovers, (double)v->cloud.failovers);
	for (size_t i = 0; i < m->ncloud_urls; i++)
		set1(m->f.cloud_node, m->cloud_urls[i], i == v->cloud.node ? 1 : 0);
}

static void collect(void *ctx)
{
	bridge_metrics *m = ctx;
	bridge_view v;
	m->d.view(m->d.ctx, &v);
	collect_inbox(m, &v);
	collect_gaps(&m->f, &v);
	collect_answers(&m->f, &v.answer);
	collect_lanes(&m->f, &v.forward);
	collect_links(m, &v);
}

/* ---- life ------------------------------------------------------------------ */

es_err bridge_metrics_new(const bridge_metrics_opts *o, const bridge_metrics_deps *d,
			  bridge_metrics **out)
{
	if (!o || !d || !d->http || !d->journal || !d->view || !out)
		return ES_EINVAL;
	bridge_metrics *m = calloc(1, sizeof *m);
	if (!m)
		return ES_ENOMEM;
	m->d = *d;
	m->cloud_urls = o->cloud_urls;
	m->ncloud_urls = o->ncloud_urls;
	pthread_mutex_init(&m->lock, NULL);
	es_node_metrics_opts n = {.words = &words,
				  .journal = d->journal,
				  .reader_lock = &m->lock,
				  .journal_cap = o->journal_max_bytes,
				  .defs = defs,
				  .ndefs = sizeof defs / sizeof defs[0],
				  .base = &m->f,
				  .collect = collect,
				  .ctx = m,
				  .http = d->http};
	es_err err = es_journal_reader_new(d->journal, &m->reader);
	n.reader = m->reader;
	if (!err)
		err = es_node_metrics_new(&n, &m->nm);
	if (err) {
		es_error(TAG, "cannot set up the metrics: %s", es_strerror(err));
		bridge_metrics_free(m);
		return err;
	}
	*out = m;
	return ES_OK;
}

void bridge_metrics_free(bridge_metrics *m)
{
	if (!m)
		return;
	es_node_metrics_free(m->nm);
	es_journal_reader_free(m->reader);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- forwards (loop thread) and requests (any thread) ----------------------- */

void bridge_metrics_sent(bridge_metrics *m, uint64_t seq, uint64_t journaled_ms)
{
	if (m)
		es_node_metrics_sent(m->nm, seq, journaled_ms);
}

void bridge_metrics_acked(bridge_metrics *m, uint64_t seq)
{
	if (m)
		es_node_metrics_acked(m->nm, seq);
}

void bridge_metrics_lost(bridge_metrics *m)
{
	if (m)
		es_node_metrics_reset(m->nm);
}

void bridge_metrics_on_request(bridge_metrics *m, const char *method, const char *route, int status,
			       double seconds)
{
	if (m)
		es_node_metrics_on_request(m->nm, method, route, status, seconds);
}
