/* metrics.c - the agent's metrics and GET /metrics (metrics.h).
 *
 * The families every node has, the publish latency (commit to PUBACK), the
 * HTTP requests and GET /metrics are node_metrics.c's; this file gives it
 * the agent's words and families. Most numbers already exist (ingest's
 * counters, the loop's view, the links' totals): a collector copies them
 * into the registry when /metrics is rendered, on an HTTP worker thread.
 */
#include "metrics.h"

#include <stddef.h>
#include <stdlib.h>

#include "log.h"

#define TAG "metrics"
#ifndef ES_VERSION
#define ES_VERSION "unknown"
#endif

static const es_node_metrics_words words = {
	.program = "edge-agent",
	.version = ES_VERSION,
	.sent_name = "edgespool_events_published_total",
	.sent_help =
		"Event publishes sent to the broker (re-publishes after a reconnect included).",
	.latency_name = "edgespool_publish_latency_seconds",
	.latency_help = "Time from an event's commit to the broker's PUBACK.",
	.acked = "Events the broker answered with a PUBACK (refusals included).",
	.journaled = "Events committed to the journal.",
	.pending = "Events journaled, not yet acked.",
	.oldest_age = "Age of the oldest pending event (0 when none).",
	.evicted = "Acked events deleted to make room under journal.max_bytes.",
	.expired = "Acked events deleted by age (journal.retain_s).",
	.bytes = "Bytes the journal uses.",
	.file_bytes = "Size of the journal file and WAL.",
	.commits = "Journal transactions.",
	.errors = "Journal transactions that failed.",
	.writable = "1 unless the last journal transaction failed.",
};

/* The agent's own families (the shared ones are node_metrics.c's). */
struct families {
	es_metric_family *ingested, *refused, *deadlettered, *duplicates, *resent;
	es_metric_family *frames, *records, *faults, *devices, *link_bytes;
};

struct agent_metrics {
	agent_metrics_opts o;
	es_node_metrics *node;
	struct families f;
};

#define F(field) offsetof(struct families, field)
#define C	 ES_METRIC_COUNTER
#define G	 ES_METRIC_GAUGE
static const es_node_metric_def defs[] = {
	{F(ingested), C, "edgespool_events_ingested_total", "via",
	 "Events accepted and journaled, by how they came (http, link)."},
	{F(refused), C, "edgespool_events_refused_total", "reason",
	 "Events refused, by reason (ingest checks, journal full, the broker)."},
	{F(deadlettered), C, "edgespool_events_deadlettered_total", "reason",
	 "Inputs kept as dead letters instead of events, by reason."},
	{F(duplicates), C, "edgespool_duplicates_dropped_total", "via",
	 "Events dropped as copies of ones already journaled."},
	{F(resent), C, "edgespool_resent_total", NULL,
	 "Events re-sent on a consumer's request (updated every status interval)."},
	{F(frames), C, "edgespool_link_frames_total", NULL, "Frames received from devices."},
	{F(records), C, "edgespool_link_records_total", NULL,
	 "Records taken from devices (each becomes an event or a dead letter)."},
	{F(faults), C, "edgespool_link_frame_faults_total", "kind",
	 "Device frames not taken, by kind."},
	{F(link_bytes), C, "edgespool_link_received_bytes_total", NULL,
	 "Bytes received on device links."},
	{F(devices), G, "edgespool_devices", NULL, "Devices known to the gateway."},
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

static void collect_ingest(agent_metrics *m, const agent_view_data *v)
{
	struct families *f = &m->f;
	es_journal_counters c;
	agent_ingest_stats s;
	es_journal_counters_get(m->o.journal, &c);
	agent_ingest_stats_get(m->o.ingest, &s);
	set1(f->duplicates, "http", (double)c.duplicates);
	set1(f->ingested, "http", (double)s.accepted);
	for (int k = 0; k < AGENT_INGEST_REASONS; k++)
		set1(f->refused, agent_ingest_reason_name((enum agent_ingest_reason)k),
		     (double)s.rejected[k]);
	set1(f->refused, "broker", (double)v->refused);
}

static void collect_broker(agent_metrics *m, const agent_view_data *v)
{
	es_node_metrics_link(m->node, "broker", v->connected, v->connects, v->failures);
	set(m->f.resent, (double)v->resent);
}

static void collect_faults(struct families *f, const links_totals *t)
{
	for (size_t k = 0; k < t->nfaults && k < 8; k++)
		if (t->fault_names[k])
			set1(f->faults, t->fault_names[k], (double)t->faults[k]);
	set1(f->faults, "duplicate", (double)t->duplicates);
	set1(f->faults, "early", (double)t->early);
	set1(f->faults, "unknown_device", (double)t->unknown_device);
	set1(f->faults, "bad_payload", (double)t->bad_payload);
	set1(f->faults, "wrong_direction", (double)t->wrong_direction);
}

static void collect_links(agent_metrics *m)
{
	struct families *f = &m->f;
	links_totals t;
	if (!m->o.links)
		return;
	links_totals_get(m->o.links, &t);
	uint64_t events = t.records > t.bad_payload ? t.records - t.bad_payload : 0;
	set1(f->ingested, "link", (double)events);
	set1(f->duplicates, "link", (double)t.duplicates);
	set1(f->deadlettered, "bad_payload", (double)t.bad_payload);
	set1(f->refused, "link_journal_full", (double)t.journal_refused);
	set(f->frames, (double)t.frames);
	set(f->records, (double)t.records);
	set(f->link_bytes, (double)t.bytes_in);
	set(f->devices, (double)t.devices);
	collect_faults(f, &t);
}

static void collect(void *ctx)
{
	agent_metrics *m = ctx;
	agent_view_data v;
	agent_view_get(m->o.view, &v);
	collect_ingest(m, &v);
	collect_broker(m, &v);
	collect_links(m);
}

/* ---- setup ------------------------------------------------------------------ */

es_err agent_metrics_new(const agent_metrics_opts *o, agent_metrics **out)
{
	if (!o || !o->http || !o->journal || !o->reader || !o->reader_lock || !o->ingest ||
	    !o->view || !out)
		return ES_EINVAL;
	agent_metrics *m = calloc(1, sizeof *m);
	if (!m)
		return ES_ENOMEM;
	m->o = *o;
	es_node_metrics_opts no = {.words = &words,
				   .journal = o->journal,
				   .reader = o->reader,
				   .reader_lock = o->reader_lock,
				   .journal_cap = o->journal_cap,
				   .defs = defs,
				   .ndefs = sizeof defs / sizeof defs[0],
				   .base = &m->f,
				   .collect = collect,
				   .ctx = m,
				   .http = o->http};
	es_err err = es_node_metrics_new(&no, &m->node);
	if (err) {
		es_error(TAG, "cannot set up the metrics: %s", es_strerror(err));
		free(m);
		return err;
	}
	*out = m;
	return ES_OK;
}

void agent_metrics_free(agent_metrics *m)
{
	if (!m)
		return;
	es_node_metrics_free(m->node);
	free(m);
}

es_node_metrics *agent_metrics_node(agent_metrics *m)
{
	return m ? m->node : NULL;
}
