/* node_metrics.c - the families every node has (docs/metrics.md). */
#include "node_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "japi.h"
#include "latency.h"

static const double latency_buckets[] = {.001, .0025, .005, .01, .025, .05, .1, .25,
					 .5,   1,     2.5,  5,	 10,   30,  60};
static const double http_buckets[] = {.001, .005, .01, .05, .1, .5, 1, 5};
/* Arrival to commit: a commit lingers up to journal.linger_ms at low rates. */
static const double wait_buckets[] = {.0005, .001, .0025, .005, .01, .025, .05, .1,  .15,
				      .2,    .25,  .3,	  .4,	.5,  .75,  1,	2.5, 5};

/* The families by what fills them: the journal's collector, the loop
 * thread's counts, the node's collector (links) and the http hook. */
struct es_node_metrics {
	es_metrics *m;
	es_journal *journal;
	es_journal_reader *reader;
	pthread_mutex_t *reader_lock;
	uint64_t journal_cap;
	es_metric_family *build, *journaled, *pending, *oldest_age, *evicted, *expired;
	es_metric_family *jbytes, *jfile, *jcap, *jcommits, *jerrors, *jwritable;
	es_metric_family *sent, *acked, *latency, *link_up, *reconnects, *failures;
	es_metric_family *http, *http_time, *wait, *uss, *written;
	es_metric *c_sent, *c_acked, *c_wait;
	es_latency *lat; /* loop thread */
};

#define F(field) offsetof(struct es_node_metrics, field)
#define C	 ES_METRIC_COUNTER
#define G	 ES_METRIC_GAUGE

/* ---- the journal's collector ---------------------------------------------- */

void es_node_metrics_set(es_metric_family *f, const char *label, double v)
{
	es_metric_set(es_metric_child(f, label), v);
}

static void set(es_metric_family *f, double v)
{
	es_node_metrics_set(f, NULL, v);
}

static void collect_journal(void *ctx)
{
	es_node_metrics *nm = ctx;
	es_journal_counters c;
	es_journal_stats st = {0};
	es_journal_counters_get(nm->journal, &c);
	pthread_mutex_lock(nm->reader_lock);
	es_err err = es_journal_stats_get(nm->reader, &st);
	pthread_mutex_unlock(nm->reader_lock);
	uint64_t now = es_clock_wall_ms();
	set(nm->journaled, (double)c.appended);
	set(nm->evicted, (double)c.evicted);
	set(nm->expired, (double)c.expired);
	set(nm->pending, (double)c.pending);
	set(nm->jcommits, (double)c.commits);
	set(nm->jerrors, (double)c.errors);
	set(nm->jwritable, es_journal_writable(nm->journal) ? 1 : 0);
	set(nm->jcap, (double)nm->journal_cap);
	if (err)
		return; /* logged by the journal; the last values stay */
	set(nm->oldest_age, st.oldest_pending_ms && now > st.oldest_pending_ms
				    ? (double)(now - st.oldest_pending_ms) / 1000.0
				    : 0.0);
	set(nm->jbytes, (double)st.used_bytes);
	set(nm->jfile, (double)st.file_bytes);
}

/* ---- the process: its own memory and what it wrote --------------------------- */

/* The sum of the fields named a and b in a /proc file of "Name: value"
 * lines (kB in smaps_rollup, bytes in io); 0 if it cannot be read. */
static double proc_fields(const char *path, const char *a, const char *b)
{
	char line[128];
	double sum = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t la = strlen(a), lb = b ? strlen(b) : 0;
	while (fgets(line, sizeof line, f))
		if ((strncmp(line, a, la) == 0 && line[la] == ':') ||
		    (b && strncmp(line, b, lb) == 0 && line[lb] == ':'))
			sum += strtod(strchr(line, ':') + 1, NULL);
	fclose(f);
	return sum;
}

static void collect_process(void *ctx)
{
	es_node_metrics *nm = ctx;
	set(nm->uss,
	    1024 * proc_fields("/proc/self/smaps_rollup", "Private_Clean", "Private_Dirty"));
	set(nm->written, proc_fields("/proc/self/io", "write_bytes", NULL));
}

/* The journal's writer, for each request committed (under its lock). */
static void observe_wait(void *ctx, double seconds)
{
	es_metric_observe(((es_node_metrics *)ctx)->c_wait, seconds);
}

void es_node_metrics_link(es_node_metrics *nm, const char *link, bool up, uint64_t connects,
			  uint64_t failures)
{
	es_node_metrics_set(nm->link_up, link, up ? 1 : 0);
	es_node_metrics_set(nm->reconnects, link, connects ? (double)(connects - 1) : 0);
	es_node_metrics_set(nm->failures, link, (double)failures);
}

/* ---- GET /metrics ---------------------------------------------------------- */

static int get_metrics(es_http_req *req, void *ctx)
{
	es_node_metrics *nm = ctx;
	return es_japi_reply_metrics(req, nm->m);
}

/* ---- setup ------------------------------------------------------------------ */

static es_err add_table(es_metrics *m, const es_node_metric_def *defs, size_t n, void *base)
{
	es_err err = ES_OK;
	for (size_t i = 0; !err && i < n; i++) {
		const es_node_metric_def *d = &defs[i];
		es_metric_desc md = {
			.type = d->type, .name = d->name, .help = d->help, .labels = d->labels};
		err = es_metrics_add(m, &md, (es_metric_family **)((char *)base + d->off));
	}
	return err;
}

/* The counters and gauges, in the order they are rendered. */
static es_err add_shared(es_node_metrics *nm, const es_node_metrics_words *w)
{
	const es_node_metric_def defs[] = {
		{F(build), G, "edgespool_build_info", "version,program", "Always 1: the build."},
		{F(journaled), C, "edgespool_events_journaled_total", NULL, w->journaled},
		{F(sent), C, w->sent_name, NULL, w->sent_help},
		{F(acked), C, "edgespool_events_acked_total", NULL, w->acked},
		{F(evicted), C, "edgespool_events_evicted_total", NULL, w->evicted},
		{F(expired), C, "edgespool_events_expired_total", NULL, w->expired},
		{F(pending), G, "edgespool_events_pending", NULL, w->pending},
		{F(oldest_age), G, "edgespool_oldest_pending_age_seconds", NULL, w->oldest_age},
		{F(jbytes), G, "edgespool_journal_bytes", NULL, w->bytes},
		{F(jfile), G, "edgespool_journal_file_bytes", NULL, w->file_bytes},
		{F(jcap), G, "edgespool_journal_cap_bytes", NULL, "journal.max_bytes (0: no cap)."},
		{F(jcommits), C, "edgespool_journal_commits_total", NULL, w->commits},
		{F(jerrors), C, "edgespool_journal_errors_total", NULL, w->errors},
		{F(jwritable), G, "edgespool_journal_writable", NULL, w->writable},
		{F(link_up), G, "edgespool_link_up", "link", "1 while the link is connected."},
		{F(reconnects), C, "edgespool_reconnects_total", "link",
		 "Connections made after the first."},
		{F(failures), C, "edgespool_connect_failures_total", "link",
		 "Failed connection attempts and lost connections."},
		{F(http), C, "edgespool_http_requests_total", "method,route,status",
		 "HTTP requests answered, by method, route pattern and status."},
		{F(uss), G, "edgespool_process_unique_memory_bytes", NULL,
		 "Memory of this process alone (USS: Private_Clean + Private_Dirty of "
		 "/proc/self/smaps_rollup); process_resident_memory_bytes also counts shared "
		 "library pages."},
		{F(written), C, "edgespool_process_write_bytes_total", NULL,
		 "Bytes this process had written to storage (write_bytes of /proc/self/io): "
		 "per event journaled, the flash it wears."},
	};
	return add_table(nm->m, defs, sizeof defs / sizeof defs[0], nm);
}

static es_err add_histograms(es_node_metrics *nm, const es_node_metrics_words *w)
{
	es_metric_desc lat = {.type = ES_METRIC_HISTOGRAM,
			      .name = w->latency_name,
			      .help = w->latency_help,
			      .buckets = latency_buckets,
			      .nbuckets = sizeof latency_buckets / sizeof latency_buckets[0]};
	es_metric_desc ht = {.type = ES_METRIC_HISTOGRAM,
			     .name = "edgespool_http_request_duration_seconds",
			     .help = "Time to answer an HTTP request, by route pattern.",
			     .labels = "route",
			     .buckets = http_buckets,
			     .nbuckets = sizeof http_buckets / sizeof http_buckets[0]};
	es_metric_desc wait = {
		.type = ES_METRIC_HISTOGRAM,
		.name = "edgespool_journal_commit_wait_seconds",
		.help = "Time from an append's arrival at the journal to its commit.",
		.buckets = wait_buckets,
		.nbuckets = sizeof wait_buckets / sizeof wait_buckets[0]};
	es_err err = es_metrics_add(nm->m, &lat, &nm->latency);
	if (!err)
		err = es_metrics_add(nm->m, &ht, &nm->http_time);
	if (!err)
		err = es_metrics_add(nm->m, &wait, &nm->wait);
	return err;
}

static es_err add_families(es_node_metrics *nm, const es_node_metrics_opts *o)
{
	es_err err = add_shared(nm, o->words);
	if (!err)
		err = add_table(nm->m, o->defs, o->ndefs, o->base);
	if (!err)
		err = add_histograms(nm, o->words);
	if (err)
		return err;
	nm->c_sent = es_metric_child(nm->sent, NULL);
	nm->c_acked = es_metric_child(nm->acked, NULL);
	nm->c_wait = es_metric_child(nm->wait, NULL);
	es_metric_set(es_metric_child(nm->build, o->words->version, o->words->program), 1);
	return es_latency_new(es_metric_child(nm->latency, NULL), 0, &nm->lat);
}

static es_err start(es_node_metrics *nm, const es_node_metrics_opts *o)
{
	es_err err = add_families(nm, o);
	if (!err)
		err = es_metrics_add_process(nm->m);
	if (!err)
		err = es_metrics_collector(nm->m, collect_journal, nm);
	if (!err)
		err = es_metrics_collector(nm->m, collect_process, nm);
	if (!err && o->collect)
		err = es_metrics_collector(nm->m, o->collect, o->ctx);
	if (!err)
		err = es_http_route_flags(o->http, "GET", "/metrics", ES_ROUTE_METRICS, get_metrics,
					  nm);
	return err;
}

es_err es_node_metrics_new(const es_node_metrics_opts *o, es_node_metrics **out)
{
	if (!o || !o->words || !o->journal || !o->reader || !o->reader_lock || !o->http ||
	    (o->ndefs && (!o->defs || !o->base)) || !out)
		return ES_EINVAL;
	es_node_metrics *nm = calloc(1, sizeof *nm);
	if (!nm)
		return ES_ENOMEM;
	nm->journal = o->journal;
	nm->reader = o->reader;
	nm->reader_lock = o->reader_lock;
	nm->journal_cap = o->journal_cap;
	es_err err = es_metrics_new(0, &nm->m);
	if (!err)
		err = start(nm, o);
	if (err) {
		es_node_metrics_free(nm);
		return err;
	}
	es_journal_on_wait(nm->journal, observe_wait, nm);
	*out = nm;
	return ES_OK;
}

void es_node_metrics_free(es_node_metrics *nm)
{
	if (!nm)
		return;
	if (nm->c_wait)
		es_journal_on_wait(nm->journal, NULL, NULL);
	es_latency_free(nm->lat);
	es_metrics_free(nm->m);
	free(nm);
}

/* ---- events (loop thread) and requests (any thread) ------------------------- */

void es_node_metrics_sent(es_node_metrics *nm, uint64_t tag, uint64_t committed_ms)
{
	if (!nm)
		return;
	es_metric_inc(nm->c_sent);
	es_latency_start(nm->lat, tag, committed_ms);
}

void es_node_metrics_acked(es_node_metrics *nm, uint64_t tag)
{
	if (!nm)
		return;
	es_metric_inc(nm->c_acked);
	es_latency_done(nm->lat, tag, es_clock_wall_ms());
}

void es_node_metrics_reset(es_node_metrics *nm)
{
	if (nm)
		es_latency_clear(nm->lat);
}

void es_node_metrics_on_request(void *ctx, const char *method, const char *route, int status,
				double seconds)
{
	es_node_metrics *nm = ctx;
	char code[12];
	if (!nm)
		return;
	snprintf(code, sizeof code, "%d", status);
	es_metric_inc(es_metric_child(nm->http, method, route, code));
	es_metric_observe(es_metric_child(nm->http_time, route), seconds);
}
