/* es-bench-pipeline: the agent's journal -> publish pipeline, fed in-process.
 *
 * Default mode: builds the real agent (agent_core) from the real settings
 * table, runs its loop on a thread of its own, and has P producer threads
 * call es_journal_append(agent_journal(a), 100 events) with short-form
 * events made by es_event_new: what HTTP ingest does once it has parsed a
 * request. Measures from the first append until the journal counts all N
 * events acked (PUBACK received and the ack committed).
 *
 * --fill: only journals N pending events into a journal file (no agent, no
 * broker), through the same es_journal_append and group commit, for the
 * backlog test. It uses sync=normal and batches of 1000: the rows are what
 * the agent writes, only made faster.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "bench_util.h"
#include "config.h"
#include "journal.h"
#include "log.h"

#define PROG	      "es-bench-pipeline"
#define MAX_PRODUCERS 64
#define TIMEOUT_S     600.0

struct opts {
	const char *url, *journal, *sync;
	uint64_t n, warmup;
	size_t producers, batch, size;
	bool fill;
};

struct producer {
	pthread_t thread;
	es_journal *j;
	uint64_t first, count;
	size_t batch, pad;
	es_err err;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: " PROG
		" --url mqtt://127.0.0.1:PORT --journal FILE [-n EVENTS] [-p PRODUCERS]\n"
		"         [-b BATCH] [-s BYTES] [--sync full|normal] [--warmup EVENTS]\n"
		"       " PROG " --fill --journal FILE -n EVENTS   (pending events, no broker)\n");
	exit(2);
}

static bool set_count(struct opts *o, int c, uint64_t v)
{
	switch (c) {
	case 'n':
		o->n = v;
		return true;
	case 'p':
		o->producers = (size_t)v;
		return v <= MAX_PRODUCERS;
	case 'b':
		o->batch = (size_t)v;
		return v <= 4096;
	case 's':
		o->size = (size_t)v;
		return v >= 200 && v <= 60000;
	case 'W':
		o->warmup = v;
		return true;
	default:
		return false;
	}
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {{"url", required_argument, NULL, 'u'},
					      {"journal", required_argument, NULL, 'j'},
					      {"events", required_argument, NULL, 'n'},
					      {"producers", required_argument, NULL, 'p'},
					      {"batch", required_argument, NULL, 'b'},
					      {"size", required_argument, NULL, 's'},
					      {"sync", required_argument, NULL, 'y'},
					      {"warmup", required_argument, NULL, 'W'},
					      {"fill", no_argument, NULL, 'f'},
					      {NULL, 0, NULL, 0}};
	*o = (struct opts){.n = 100000,
			   .warmup = 1000,
			   .producers = 4,
			   .batch = 100,
			   .size = 300,
			   .sync = "full"};
	uint64_t v;
	int c;
	while ((c = getopt_long(argc, argv, "u:j:n:p:b:s:y:W:f", longs, NULL)) != -1) {
		if (c == 'u')
			o->url = optarg;
		else if (c == 'j')
			o->journal = optarg;
		else if (c == 'y')
			o->sync = optarg;
		else if (c == 'f')
			o->fill = true;
		else if (c == '?' || !bench_parse_count(optarg, &v) || !set_count(o, c, v))
			usage();
	}
	if (!o->journal || (!o->fill && !o->url))
		usage();
}

/* ---- producers -------------------------------------------------------------- */

/* Makes k events numbered from first and journals them in one append. */
static es_err append_batch(es_journal *j, es_event **evs, es_append_result *res, uint64_t first,
			   size_t k, size_t pad)
{
	size_t made = 0;
	es_err err = ES_OK;
	for (; made < k && !err; made++)
		err = bench_event_make(first + made, pad, &evs[made]);
	if (err)
		made--; /* the failed one was not made */
	else
		err = es_journal_append(j, evs, k, res);
	for (size_t i = 0; i < made; i++)
		es_event_free(evs[i]);
	return err;
}

static void *produce(void *arg)
{
	struct producer *p = arg;
	es_event **evs = calloc(p->batch, sizeof *evs);
	es_append_result *res = calloc(p->batch, sizeof *res);
	p->err = evs && res ? ES_OK : ES_ENOMEM;
	for (uint64_t done = 0; done < p->count && !p->err;) {
		size_t k = p->count - done < p->batch ? (size_t)(p->count - done) : p->batch;
		p->err = append_batch(p->j, evs, res, p->first + done, k, p->pad);
		done += k;
	}
	free(evs);
	free(res);
	return NULL;
}

/* Journals events [first, first + n) from `count` threads; 0 or -1. */
static int produce_all(es_journal *j, const struct opts *o, size_t pad, uint64_t first, uint64_t n,
		       size_t count)
{
	struct producer ps[MAX_PRODUCERS];
	size_t started = 0;
	int rc = 0;
	for (size_t i = 0; i < count; i++) {
		uint64_t share = n / count + (i < n % count ? 1 : 0);
		ps[i] = (struct producer){
			.j = j, .first = first, .count = share, .batch = o->batch, .pad = pad};
		first += share;
		if (pthread_create(&ps[i].thread, NULL, produce, &ps[i]) != 0) {
			rc = -1;
			break;
		}
		started++;
	}
	for (size_t i = 0; i < started; i++) {
		pthread_join(ps[i].thread, NULL);
		if (ps[i].err) {
			fprintf(stderr, PROG ": append: %s\n", es_strerror(ps[i].err));
			rc = -1;
		}
	}
	return rc;
}

/* ---- the agent ------------------------------------------------------------- */

struct bench_agent {
	agent_settings s;
	es_config *cfg;
	es_loop *loop;
	agent *a;
	pthread_t thread;
	bool running;
};

/* Fills the settings through the real table, as edge-agent's main does. */
static int load_settings(struct bench_agent *b, const struct opts *o)
{
	char *argv[] = {PROG,
			"--node.id",
			BENCH_NODE,
			"--node.site",
			BENCH_SITE,
			"--mqtt.url",
			(char *)o->url,
			"--journal.path",
			(char *)o->journal,
			"--journal.sync",
			(char *)o->sync,
			"--http.listen",
			"127.0.0.1:0",
			"--log.level",
			"warn"};
	char err[512];
	int argc = (int)(sizeof argv / sizeof argv[0]);
	if (es_config_new_parts(agent_settings_parts, agent_settings_nparts, &b->s, &b->cfg) ||
	    es_config_load(b->cfg, argc, argv, NULL, err, sizeof err) ||
	    !agent_settings_check(&b->s, err, sizeof err)) {
		fprintf(stderr, PROG ": settings: %s\n", b->cfg ? err : "no memory");
		return -1;
	}
	es_log_setup((es_log_level)b->s.log.level, false, PROG);
	return 0;
}

static void *loop_main(void *arg)
{
	struct bench_agent *b = arg;
	if (es_loop_run(b->loop))
		fprintf(stderr, PROG ": the agent's loop failed\n");
	return NULL;
}

static int agent_up(struct bench_agent *b, const struct opts *o)
{
	if (load_settings(b, o) || es_loop_new(&b->loop) || agent_new(&b->s, b->loop, &b->a) ||
	    agent_start(b->a))
		return -1;
	/* From here on only the loop thread touches the agent (but its journal). */
	if (pthread_create(&b->thread, NULL, loop_main, b) != 0)
		return -1;
	b->running = true;
	return 0;
}

static void shutdown_on_loop(void *arg)
{
	agent_shutdown(arg);
}

static void agent_down(struct bench_agent *b)
{
	if (b->running && es_loop_post(b->loop, shutdown_on_loop, b->a) == ES_OK)
		pthread_join(b->thread, NULL);
	agent_free(b->a);
	es_loop_free(b->loop);
	es_config_free(b->cfg);
}

/* Polls the journal's counters until `acked` reaches target. */
static int wait_acked(es_journal *j, uint64_t target, double timeout_s)
{
	double until = bench_mono_s() + timeout_s;
	es_journal_counters c;
	for (;;) {
		es_journal_counters_get(j, &c);
		if (c.acked >= target)
			return 0;
		if (bench_mono_s() > until) {
			fprintf(stderr, PROG ": timed out: %" PRIu64 " of %" PRIu64 " acked\n",
				c.acked, target);
			return -1;
		}
		bench_pause_ms(1);
	}
}

/* ---- the two modes ----------------------------------------------------------- */

/* What one timed run measured. */
struct result {
	double secs, ingest_secs, cpu_secs;
	uint64_t commits;
};

/* Appends o->n events from o->producers threads and waits until all are
 * acked; the agent is up and warmed. */
static int measure(es_journal *j, const struct opts *o, size_t pad, struct result *r)
{
	es_journal_counters c0, c1;
	es_journal_counters_get(j, &c0);
	double t0 = bench_mono_s(), cpu0 = bench_cpu_s();
	int rc = produce_all(j, o, pad, c0.latest_seq + 1, o->n, o->producers);
	r->ingest_secs = bench_mono_s() - t0;
	if (!rc)
		rc = wait_acked(j, c0.acked + o->n, TIMEOUT_S);
	r->secs = bench_mono_s() - t0;
	r->cpu_secs = bench_cpu_s() - cpu0;
	es_journal_counters_get(j, &c1);
	r->commits = c1.commits - c0.commits;
	return rc;
}

static int run_pipeline(const struct opts *o, size_t pad, size_t encoded)
{
	struct bench_agent b = {0};
	struct result r;
	int rc = agent_up(&b, o);
	es_journal *j = rc ? NULL : agent_journal(b.a);
	if (!rc)
		rc = produce_all(j, o, pad, 1, o->warmup, 1);
	if (!rc)
		rc = wait_acked(j, o->warmup, 30.0);
	if (!rc)
		rc = measure(j, o, pad, &r);
	if (!rc)
		printf("pipeline n=%" PRIu64 " bytes=%zu producers=%zu batch=%zu sync=%s s=%.3f "
		       "rate=%.0f ingest_rate=%.0f events_per_commit=%.1f cpu_us=%.1f\n",
		       o->n, encoded, o->producers, o->batch, o->sync, r.secs,
		       (double)o->n / r.secs, (double)o->n / r.ingest_secs,
		       (double)o->n / (double)(r.commits ? r.commits : 1),
		       r.cpu_secs * 1e6 / (double)o->n);
	double t_down = bench_mono_s();
	agent_down(&b);
	fprintf(stderr, PROG ": agent shutdown took %.3f s\n", bench_mono_s() - t_down);
	return rc;
}

static int run_fill(const struct opts *o, size_t pad, size_t encoded)
{
	es_journal *j;
	es_journal_opts jo = {.path = o->journal, .sync = ES_SYNC_NORMAL, .source = BENCH_SOURCE};
	es_log_setup(ES_LOG_WARN, false, PROG);
	es_err err = es_journal_open(&jo, &j);
	if (err) {
		fprintf(stderr, PROG ": %s: %s\n", o->journal, es_strerror(err));
		return -1;
	}
	es_journal_counters c;
	es_journal_counters_get(j, &c);
	double t0 = bench_mono_s();
	int rc = produce_all(j, o, pad, c.latest_seq + 1, o->n, o->producers);
	double secs = bench_mono_s() - t0;
	es_journal_counters_get(j, &c);
	es_journal_close(j);
	if (!rc)
		printf("fill n=%" PRIu64 " bytes=%zu pending=%" PRIu64 " s=%.3f rate=%.0f\n", o->n,
		       encoded, c.pending, secs, (double)o->n / secs);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	size_t pad, encoded;
	parse(argc, argv, &o);
	if (bench_event_pad(o.size, &pad, &encoded))
		bench_die(PROG, "cannot size the events");
	if (o.fill && o.batch == 100)
		o.batch = 1000;
	int rc = o.fill ? run_fill(&o, pad, encoded) : run_pipeline(&o, pad, encoded);
	return rc ? 1 : 0;
}
