/* es-bench-fleet-store: how big fleet-state's SQLite file grows with the
 * events it has applied. fleet-state's consumer and projection are fed
 * in-process (es_consumer_apply, batches of 256, like the service) with
 * events of D devices spread over G gateways, each gateway's sequence
 * dense; the file's bytes (database, WAL) are printed every --every events.
 * With snapshots (the default settings) the figure should go flat once the
 * dedup table is full; with --snapshot-every 0 it grows with the events.
 *
 *   es-bench-fleet-store [-n EVENTS] [--devices D] [--gateways G]
 *       [--every N] [--snapshot-every N] [--log-keep N] [--dedup-max N]
 *       [--dir DIR]
 *
 * One line per report: "fleet_store events=N db_bytes=B wal_bytes=W
 * total_bytes=T log_events=L seen=S devices=V rate=R" (R: events/s since
 * the previous report).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench_util.h"
#include "consumer.h"
#include "projection.h"

#define PROG  "es-bench-fleet-store"
#define BATCH 256

struct opts {
	uint64_t n, devices, gateways, every, snapshot_every, log_keep, dedup_max;
	const char *dir;
};

static uint64_t file_bytes(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint64_t count(es_consumer *c, const char *sql)
{
	sqlite3_stmt *st;
	uint64_t v = 0;
	if (sqlite3_prepare_v2(es_consumer_db(c), sql, -1, &st, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Event k (0-based): device k % D, its gateway's next sequence. ~300 B. */
static size_t make_event(const struct opts *o, uint64_t k, uint64_t *seqs, char *buf, size_t cap)
{
	uint64_t dev = k % o->devices, gw = dev % o->gateways;
	uint64_t seq = ++seqs[gw];
	const char *type = k % 50 == 0	  ? "alarm.raised"
			   : k % 50 == 25 ? "alarm.cleared"
					  : "sensor.reading";
	int n = snprintf(
		buf, cap,
		"{\"specversion\":\"1.0\",\"id\":\"0190d6a4-%04llx-7%03llx-8000-%012llx\","
		"\"source\":\"/site-%llu/gw-%llu\",\"type\":\"%s\",\"subject\":\"dev-%05llu\","
		"\"time\":\"2026-11-27T07:%02llu:%02llu.000Z\",\"sequence\":\"%llu\","
		"\"datacontenttype\":\"application/json\",\"data\":{\"t\":%llu.%llu,"
		"\"rh\":%llu,\"pad\":\"%s\"}}",
		(unsigned long long)(k >> 48), (unsigned long long)((k >> 36) & 0xfff),
		(unsigned long long)(k & 0xfffffffffULL), (unsigned long long)(gw / 10),
		(unsigned long long)gw, type, (unsigned long long)dev,
		(unsigned long long)(k / 60 % 60), (unsigned long long)(k % 60),
		(unsigned long long)seq, (unsigned long long)(15 + k % 20),
		(unsigned long long)(k % 10), (unsigned long long)(30 + k % 50),
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static void report(const struct opts *o, es_consumer *c, uint64_t done, double rate)
{
	char path[512], wal[520];
	snprintf(path, sizeof path, "%s/fleet-state.db", o->dir);
	snprintf(wal, sizeof wal, "%s-wal", path);
	uint64_t db = file_bytes(path), w = file_bytes(wal);
	printf("fleet_store events=%llu db_bytes=%llu wal_bytes=%llu total_bytes=%llu "
	       "log_events=%llu seen=%llu devices=%llu rate=%.0f\n",
	       (unsigned long long)done, (unsigned long long)db, (unsigned long long)w,
	       (unsigned long long)(db + w),
	       (unsigned long long)count(c, "SELECT count(*) FROM events"),
	       (unsigned long long)count(c, "SELECT count(*) FROM seen"),
	       (unsigned long long)count(c, "SELECT count(*) FROM devices"), rate);
	fflush(stdout);
}

/* Applies events [k, k + n) in one batch. */
static void apply_batch(const struct opts *o, es_consumer *c, uint64_t k, size_t n, uint64_t *seqs,
			char (*bodies)[512], es_delivery *d)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = make_event(o, k + i, seqs, bodies[i], sizeof bodies[i]);
		if (!len)
			bench_die(PROG, "an event does not fit");
		d[i] = (es_delivery){.where = "bench", .body = bodies[i], .len = len};
	}
	es_err err = es_consumer_apply(c, d, n);
	if (err)
		bench_die(PROG, "apply: %s", es_strerror(err));
}

static void run(const struct opts *o, es_consumer *c)
{
	static char bodies[BATCH][512];
	static es_delivery d[BATCH];
	uint64_t *seqs = calloc(o->gateways, sizeof *seqs);
	if (!seqs)
		bench_die(PROG, "out of memory");
	double t0 = bench_mono_s();
	uint64_t last = 0;
	for (uint64_t k = 0; k < o->n;) {
		size_t n = o->n - k < BATCH ? (size_t)(o->n - k) : BATCH;
		uint64_t next_report = (k / o->every + 1) * o->every;
		if (k + n > next_report)
			n = (size_t)(next_report - k);
		apply_batch(o, c, k, n, seqs, bodies, d);
		k += n;
		if (k % o->every == 0 || k == o->n) {
			double t = bench_mono_s();
			report(o, c, k, (double)(k - last) / (t - t0));
			t0 = t;
			last = k;
		}
	}
	free(seqs);
}

static bool parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {{"devices", required_argument, NULL, 'd'},
					      {"gateways", required_argument, NULL, 'g'},
					      {"every", required_argument, NULL, 'e'},
					      {"snapshot-every", required_argument, NULL, 's'},
					      {"log-keep", required_argument, NULL, 'k'},
					      {"dedup-max", required_argument, NULL, 'm'},
					      {"dir", required_argument, NULL, 'D'},
					      {NULL, 0, NULL, 0}};
	int opt;
	while ((opt = getopt_long(argc, argv, "n:", longs, NULL)) != -1) {
		uint64_t *v = opt == 'n'   ? &o->n
			      : opt == 'd' ? &o->devices
			      : opt == 'g' ? &o->gateways
			      : opt == 'e' ? &o->every
			      : opt == 's' ? &o->snapshot_every
			      : opt == 'k' ? &o->log_keep
			      : opt == 'm' ? &o->dedup_max
					   : NULL;
		if (opt == 'D')
			o->dir = optarg;
		else if (!v || (strcmp(optarg, "0") == 0 ? (*v = 0, false)
							 : !bench_parse_count(optarg, v)))
			return false;
	}
	return optind == argc && o->n && o->devices && o->gateways && o->every && o->dir;
}

int main(int argc, char **argv)
{
	struct opts o = {.n = 1000000,
			 .devices = 1000,
			 .gateways = 10,
			 .every = 100000,
			 .snapshot_every = 100000,
			 .log_keep = 100000,
			 .dedup_max = 1000000};
	if (!parse(argc, argv, &o))
		bench_die(PROG,
			  "usage: " PROG " [-n EVENTS] [--devices D] [--gateways G] [--every N]"
			  " [--snapshot-every N] [--log-keep N] [--dedup-max N] --dir DIR");
	char path[512];
	snprintf(path, sizeof path, "%s/fleet-state.db", o.dir);
	/* fleet-state's own defaults (fleet.c, settings.c), sync normal. */
	es_consumer_opts co = {.path = path,
			       .dedup_max = o.dedup_max,
			       .dedup_max_age_s = 7 * 86400,
			       .batch_max = BATCH,
			       .keep_log = true,
			       .snapshot_every = o.snapshot_every,
			       .log_keep = o.log_keep};
	es_consumer *c;
	fleet_projection *p;
	if (es_consumer_new(&co, &c) || fleet_projection_new(c, &p))
		bench_die(PROG, "cannot open %s", path);
	run(&o, c);
	fleet_projection_free(p);
	es_consumer_free(c);
	return 0;
}
