/* metrics.c - the agent's metrics and GET /metrics (docs/metrics.md).
 *
 * The families every node has, the publish latency (commit to PUBACK), the
 * HTTP requests and GET /metrics are node_metrics.c's; this file gives it
 * the agent's words and families. Most numbers already exist (the ingest
 * counters, the broker snapshot, the links' totals): a collector copies
 * them into the registry when /metrics is rendered.
 */
#include <stdlib.h>

#include "agent_internal.h"
#include "log.h"
#include "node_metrics.h"

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
struct agent_metrics {
	es_metric_family *ingested, *refused, *deadlettered, *duplicates, *resent;
	es_metric_family *frames, *records, *faults, *devices, *link_bytes;
};

#define F(field) offsetof(struct agent_metrics, field)
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

static void collect_ingest(agent *a, struct agent_metrics *am)
{
	static const char *const names[R_COUNT_] = {"malformed", "invalid", "too_big",
						    "content_type", "journal_full"};
	es_journal_counters c;
	es_journal_counters_get(a->journal, &c);
	set1(am->duplicates, "http", (double)c.duplicates);
	set1(am->ingested, "http", (double)atomic_load(&a->ingested));
	for (int k = 0; k < R_COUNT_; k++)
		set1(am->refused, names[k], (double)atomic_load(&a->rejected[k]));
	set1(am->refused, "broker", (double)atomic_load(&a->refused_by_broker));
}

static void collect_broker(agent *a, struct agent_metrics *am)
{
	struct snapshot s;
	pthread_mutex_lock(&a->snap_lock);
	s = a->snap;
	pthread_mutex_unlock(&a->snap_lock);
	es_node_metrics_link(a->metrics, "broker", s.connected, s.connects, s.failures);
	set(am->resent, (double)s.resent);
}

static void collect_links(agent *a, struct agent_metrics *am)
{
	links_totals t;
	if (!a->links)
		return;
	links_totals_get(a->links, &t);
	uint64_t events = t.records > t.bad_payload ? t.records - t.bad_payload : 0;
	set1(am->ingested, "link", (double)events);
	set1(am->duplicates, "link", (double)t.duplicates);
	set1(am->deadlettered, "bad_payload", (double)t.bad_payload);
	set1(am->refused, "link_journal_full", (double)t.journal_refused);
	set(am->frames, (double)t.frames);
	set(am->records, (double)t.records);
	set(am->link_bytes, (double)t.bytes_in);
	set(am->devices, (double)t.devices);
	for (size_t k = 0; k < t.nfaults && k < 8; k++)
		if (t.fault_names[k])
			set1(am->faults, t.fault_names[k], (double)t.faults[k]);
	set1(am->faults, "duplicate", (double)t.duplicates);
	set1(am->faults, "early", (double)t.early);
	set1(am->faults, "unknown_device", (double)t.unknown_device);
	set1(am->faults, "bad_payload", (double)t.bad_payload);
	set1(am->faults, "wrong_direction", (double)t.wrong_direction);
}

static void collect(void *ctx)
{
	agent *a = ctx;
	struct agent_metrics *am = a->metrics_state;
	collect_ingest(a, am);
	collect_broker(a, am);
	collect_links(a, am);
}

/* ---- setup ------------------------------------------------------------------ */

es_err agent_metrics_init(agent *a)
{
	struct agent_metrics *am = calloc(1, sizeof *am);
	if (!am)
		return ES_ENOMEM;
	a->metrics_state = am;
	es_node_metrics_opts o = {.words = &words,
				  .journal = a->journal,
				  .reader = a->api_reader,
				  .reader_lock = &a->api_lock,
				  .journal_cap = a->s->journal.max_bytes,
				  .defs = defs,
				  .ndefs = sizeof defs / sizeof defs[0],
				  .base = am,
				  .collect = collect,
				  .ctx = a,
				  .http = a->http};
	es_err err = es_node_metrics_new(&o, &a->metrics);
	if (err)
		es_error(TAG, "cannot set up the metrics: %s", es_strerror(err));
	return err; /* what was made is freed by agent_metrics_free */
}

void agent_metrics_free(agent *a)
{
	es_node_metrics_free(a->metrics);
	a->metrics = NULL;
	free(a->metrics_state);
	a->metrics_state = NULL;
}

/* ---- events (loop thread) and requests (any thread) ------------------------- */

void agent_metrics_published(agent *a, uint64_t seq, uint64_t journaled_ms)
{
	es_node_metrics_sent(a->metrics, seq, journaled_ms);
}

void agent_metrics_acked(agent *a, uint64_t seq)
{
	es_node_metrics_acked(a->metrics, seq);
}

void agent_metrics_reset(agent *a)
{
	es_node_metrics_reset(a->metrics);
}

void agent_metrics_on_request(void *ctx, const char *method, const char *route, int status,
			      double seconds)
{
	agent *a = ctx;
	es_node_metrics_on_request(a->metrics, method, route, status, seconds);
}
