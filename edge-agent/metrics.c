/* metrics.c - the agent's metrics and GET /metrics (docs/metrics.md).
 *
 * Most numbers already exist (the journal's counters, the ingest counters,
 * the broker snapshot, the links' totals): a collector copies them into the
 * registry when /metrics is rendered. What is counted here: publishes and
 * acks (on the loop thread), the publish latency (commit to PUBACK, through
 * an es_latency owned by the loop thread), and HTTP requests (the http
 * module's hook, any thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
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

/* The families, by what fills them. */
struct agent_metrics {
	es_metric_family *ingested, *journaled, *published, *acked, *refused, *evicted, *expired;
	es_metric_family *deadlettered, *duplicates, *pending, *oldest_age, *resent;
	es_metric_family *jbytes, *jfile, *jcap, *jcommits, *jerrors, *jwritable;
	es_metric_family *link_up, *reconnects, *failures, *latency, *http, *http_time;
	es_metric_family *frames, *records, *faults, *devices, *link_bytes;
	es_metric_family *build;
	es_metric *c_published, *c_acked;
	es_latency *lat; /* loop thread */
};

struct def {
	size_t off;
	es_metric_type type;
	const char *name, *labels, *help;
};

#define F(field) offsetof(struct agent_metrics, field)
#define C	 ES_METRIC_COUNTER
#define G	 ES_METRIC_GAUGE
static const struct def defs[] = {
	{F(build), G, "edgespool_build_info", "version,program", "Always 1: the build."},
	{F(ingested), C, "edgespool_events_ingested_total", "via",
	 "Events accepted and journaled, by how they came (http, link)."},
	{F(journaled), C, "edgespool_events_journaled_total", NULL,
	 "Events committed to the journal."},
	{F(published), C, "edgespool_events_published_total", NULL,
	 "Event publishes sent to the broker (re-publishes after a reconnect included)."},
	{F(acked), C, "edgespool_events_acked_total", NULL,
	 "Events the broker answered with a PUBACK (refusals included)."},
	{F(refused), C, "edgespool_events_refused_total", "reason",
	 "Events refused, by reason (ingest checks, journal full, the broker)."},
	{F(evicted), C, "edgespool_events_evicted_total", NULL,
	 "Acked events deleted to make room under journal.max_bytes."},
	{F(expired), C, "edgespool_events_expired_total", NULL,
	 "Acked events deleted by age (journal.retain_s)."},
	{F(deadlettered), C, "edgespool_events_deadlettered_total", "reason",
	 "Inputs kept as dead letters instead of events, by reason."},
	{F(duplicates), C, "edgespool_duplicates_dropped_total", "via",
	 "Events dropped as copies of ones already journaled."},
	{F(pending), G, "edgespool_events_pending", NULL, "Events journaled, not yet acked."},
	{F(oldest_age), G, "edgespool_oldest_pending_age_seconds", NULL,
	 "Age of the oldest pending event (0 when none)."},
	{F(resent), C, "edgespool_resent_total", NULL,
	 "Events re-sent on a consumer's request (updated every status interval)."},
	{F(jbytes), G, "edgespool_journal_bytes", NULL, "Bytes the journal uses."},
	{F(jfile), G, "edgespool_journal_file_bytes", NULL, "Size of the journal file and WAL."},
	{F(jcap), G, "edgespool_journal_cap_bytes", NULL, "journal.max_bytes (0: no cap)."},
	{F(jcommits), C, "edgespool_journal_commits_total", NULL, "Journal transactions."},
	{F(jerrors), C, "edgespool_journal_errors_total", NULL,
	 "Journal transactions that failed."},
	{F(jwritable), G, "edgespool_journal_writable", NULL,
	 "1 unless the last journal transaction failed."},
	{F(link_up), G, "edgespool_link_up", "link", "1 while the link is connected."},
	{F(reconnects), C, "edgespool_reconnects_total", "link",
	 "Connections made after the first."},
	{F(failures), C, "edgespool_connect_failures_total", "link",
	 "Failed connection attempts and lost connections."},
	{F(frames), C, "edgespool_link_frames_total", NULL, "Frames received from devices."},
	{F(records), C, "edgespool_link_records_total", NULL,
	 "Records taken from devices (each becomes an event or a dead letter)."},
	{F(faults), C, "edgespool_link_frame_faults_total", "kind",
	 "Device frames not taken, by kind."},
	{F(link_bytes), C, "edgespool_link_received_bytes_total", NULL,
	 "Bytes received on device links."},
	{F(devices), G, "edgespool_devices", NULL, "Devices known to the gateway."},
	{F(http), C, "edgespool_http_requests_total", "method,route,status",
	 "HTTP requests answered, by method, route pattern and status."},
};
#undef F
#undef C
#undef G

#define FAM(am, d) (*(es_metric_family **)((char *)(am) + (d)->off))

/* ---- the collector -------------------------------------------------------- */

static void set(es_metric_family *f, double v)
{
	es_metric_set(es_metric_child(f, NULL), v);
}

static void set1(es_metric_family *f, const char *label, double v)
{
	es_metric_set(es_metric_child(f, label), v);
}

static void collect_journal(agent *a, struct agent_metrics *am)
{
	es_journal_counters c;
	es_journal_stats st = {0};
	es_journal_counters_get(a->journal, &c);
	pthread_mutex_lock(&a->api_lock);
	es_err err = es_journal_stats_get(a->api_reader, &st);
	pthread_mutex_unlock(&a->api_lock);
	uint64_t now = es_clock_wall_ms();
	set(am->journaled, (double)c.appended);
	set1(am->duplicates, "http", (double)c.duplicates);
	set(am->evicted, (double)c.evicted);
	set(am->expired, (double)c.expired);
	set(am->pending, (double)c.pending);
	set(am->jcommits, (double)c.commits);
	set(am->jerrors, (double)c.errors);
	set(am->jwritable, es_journal_writable(a->journal) ? 1 : 0);
	set(am->jcap, (double)a->s->journal_max_bytes);
	if (err)
		return; /* logged by the journal; the last values stay */
	set(am->oldest_age, st.oldest_pending_ms && now > st.oldest_pending_ms
				    ? (double)(now - st.oldest_pending_ms) / 1000.0
				    : 0.0);
	set(am->jbytes, (double)st.used_bytes);
	set(am->jfile, (double)st.file_bytes);
}

static void collect_ingest(agent *a, struct agent_metrics *am)
{
	static const char *const names[R_COUNT_] = {"malformed", "invalid", "too_big",
						    "content_type", "journal_full"};
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
	set1(am->link_up, "broker", s.connected ? 1 : 0);
	set1(am->reconnects, "broker", s.connects ? (double)(s.connects - 1) : 0);
	set1(am->failures, "broker", (double)s.failures);
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
	collect_journal(a, am);
	collect_ingest(a, am);
	collect_broker(a, am);
	collect_links(a, am);
}

/* ---- GET /metrics ---------------------------------------------------------- */

static int get_metrics(es_http_req *req, void *ctx)
{
	agent *a = ctx;
	char *text;
	size_t len;
	if (es_metrics_render(a->metrics, &text, &len))
		return es_http_reply_error(req, 503, "out of memory", NULL);
	int status = es_http_reply(req, 200, ES_METRICS_CONTENT_TYPE, text, len);
	free(text);
	return status;
}

/* ---- setup ------------------------------------------------------------------ */

static es_err add_families(es_metrics *m, struct agent_metrics *am)
{
	es_err err = ES_OK;
	for (size_t i = 0; !err && i < sizeof defs / sizeof defs[0]; i++) {
		const struct def *d = &defs[i];
		es_metric_desc md = {
			.type = d->type, .name = d->name, .help = d->help, .labels = d->labels};
		err = es_metrics_add(m, &md, &FAM(am, d));
	}
	es_metric_desc lat = {.type = ES_METRIC_HISTOGRAM,
			      .name = "edgespool_publish_latency_seconds",
			      .help = "Time from an event's commit to the broker's PUBACK.",
			      .buckets = latency_buckets,
			      .nbuckets = sizeof latency_buckets / sizeof latency_buckets[0]};
	es_metric_desc ht = {.type = ES_METRIC_HISTOGRAM,
			     .name = "edgespool_http_request_duration_seconds",
			     .help = "Time to answer an HTTP request, by route pattern.",
			     .labels = "route",
			     .buckets = http_buckets,
			     .nbuckets = sizeof http_buckets / sizeof http_buckets[0]};
	if (!err)
		err = es_metrics_add(m, &lat, &am->latency);
	if (!err)
		err = es_metrics_add(m, &ht, &am->http_time);
	return err;
}

static es_err make_state(agent *a, struct agent_metrics *am)
{
	es_err err = add_families(a->metrics, am);
	if (err)
		return err;
	am->c_published = es_metric_child(am->published, NULL);
	am->c_acked = es_metric_child(am->acked, NULL);
	es_metric_set(es_metric_child(am->build, ES_VERSION, "edge-agent"), 1);
	if ((err = es_latency_new(es_metric_child(am->latency, NULL), 0, &am->lat)))
		return err;
	if ((err = es_metrics_add_process(a->metrics)) ||
	    (err = es_metrics_collector(a->metrics, collect, a)))
		return err;
	return es_http_route_flags(a->http, "GET", "/metrics", ES_ROUTE_METRICS, get_metrics, a);
}

es_err agent_metrics_init(agent *a)
{
	struct agent_metrics *am = calloc(1, sizeof *am);
	if (!am)
		return ES_ENOMEM;
	a->metrics_state = am;
	es_err err = es_metrics_new(0, &a->metrics);
	if (!err)
		err = make_state(a, am);
	if (err)
		es_error(TAG, "cannot set up the metrics: %s", es_strerror(err));
	return err; /* what was made is freed by agent_metrics_free */
}

void agent_metrics_free(agent *a)
{
	if (a->metrics_state)
		es_latency_free(a->metrics_state->lat);
	free(a->metrics_state);
	a->metrics_state = NULL;
	es_metrics_free(a->metrics);
	a->metrics = NULL;
}

/* ---- events (loop thread) and requests (any thread) ------------------------- */

void agent_metrics_published(agent *a, uint64_t seq, uint64_t journaled_ms)
{
	struct agent_metrics *am = a->metrics_state;
	if (!am)
		return;
	es_metric_inc(am->c_published);
	es_latency_start(am->lat, seq, journaled_ms);
}

void agent_metrics_acked(agent *a, uint64_t seq)
{
	struct agent_metrics *am = a->metrics_state;
	if (!am)
		return;
	es_metric_inc(am->c_acked);
	es_latency_done(am->lat, seq, es_clock_wall_ms());
}

void agent_metrics_reset(agent *a)
{
	if (a->metrics_state)
		es_latency_clear(a->metrics_state->lat);
}

void agent_metrics_on_request(void *ctx, const char *method, const char *route, int status,
			      double seconds)
{
	agent *a = ctx;
	struct agent_metrics *am = a->metrics_state;
	char code[12];
	if (!am)
		return;
	snprintf(code, sizeof code, "%d", status);
	es_metric_inc(es_metric_child(am->http, method, route, code));
	es_metric_observe(es_metric_child(am->http_time, route), seconds);
}
