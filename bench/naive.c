/* es-bench-naive: the naive outbox, one event at a time: INSERT it into
 * SQLite (WAL, synchronous=FULL, its own transaction), publish it QoS 1,
 * wait for its PUBACK, UPDATE it acked (its own transaction). Prints
 * events/s. The table is the journal's, so the two do the same writes. */
#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "mqtt_wait.h"

#define PROG	  "es-bench-naive"
#define TIMEOUT_S 60.0

static const char schema[] =
	"PRAGMA journal_mode = WAL;"
	"PRAGMA synchronous = FULL;"
	"CREATE TABLE IF NOT EXISTS events("
	"  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,"
	"  subject TEXT, journaled_ms INTEGER NOT NULL, body BLOB NOT NULL,"
	"  state INTEGER NOT NULL DEFAULT 0, acked_ms INTEGER);"
	"CREATE INDEX IF NOT EXISTS events_pending ON events(seq) WHERE state = 0;";

struct naive {
	sqlite3 *db;
	sqlite3_stmt *insert, *ack;
	bench_mqtt m;
	char *payload;
	size_t size;
};

struct opts {
	char uri[256], db[1024];
	uint64_t n;
	size_t size;
};

static void usage(void)
{
	fprintf(stderr, "usage: " PROG " --url mqtt://127.0.0.1:PORT --db FILE [-n EVENTS] "
			"[-s BYTES]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {{"url", required_argument, NULL, 'u'},
					      {"db", required_argument, NULL, 'd'},
					      {"events", required_argument, NULL, 'n'},
					      {"size", required_argument, NULL, 's'},
					      {NULL, 0, NULL, 0}};
	*o = (struct opts){.n = 2000, .size = 300};
	uint64_t v;
	int c;
	while ((c = getopt_long(argc, argv, "u:d:n:s:", longs, NULL)) != -1) {
		if (c == 'u' && strncmp(optarg, "mqtt://", 7) == 0)
			snprintf(o->uri, sizeof o->uri, "tcp://%s", optarg + 7);
		else if (c == 'u')
			snprintf(o->uri, sizeof o->uri, "%s", optarg);
		else if (c == 'd')
			snprintf(o->db, sizeof o->db, "%s", optarg);
		else if (c == 'n' && bench_parse_count(optarg, &v))
			o->n = v;
		else if (c == 's' && bench_parse_count(optarg, &v) && v >= 16 && v <= 1000000)
			o->size = (size_t)v;
		else
			usage();
	}
	if (!o->uri[0] || !o->db[0])
		usage();
}

static int sql_fail(sqlite3 *db, const char *what)
{
	fprintf(stderr, PROG ": %s: %s\n", what, sqlite3_errmsg(db));
	return -1;
}

static int open_db(struct naive *nv, const char *path)
{
	if (sqlite3_open(path, &nv->db) != SQLITE_OK)
		return sql_fail(nv->db, path);
	if (sqlite3_exec(nv->db, schema, NULL, NULL, NULL) != SQLITE_OK)
		return sql_fail(nv->db, "schema");
	if (sqlite3_prepare_v2(nv->db,
			       "INSERT INTO events(seq, id, type, subject, journaled_ms, body) "
			       "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
			       -1, &nv->insert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(nv->db, "UPDATE events SET state = 1, acked_ms = ?2 WHERE seq = ?1",
			       -1, &nv->ack, NULL) != SQLITE_OK)
		return sql_fail(nv->db, "prepare");
	return 0;
}

static int step(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sql_fail(db, sqlite3_sql(st));
}

/* Journals event i in its own transaction (autocommit: one fsync). */
static int insert(struct naive *nv, uint64_t i)
{
	char id[48];
	uint64_t now = (uint64_t)(bench_wall_s() * 1000.0);
	snprintf(id, sizeof id, "naive-%020" PRIu64, i);
	bench_raw_payload(nv->payload, nv->size, i);
	sqlite3_bind_int64(nv->insert, 1, (sqlite3_int64)i);
	sqlite3_bind_text(nv->insert, 2, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(nv->insert, 3, BENCH_TYPE, -1, SQLITE_STATIC);
	sqlite3_bind_text(nv->insert, 4, "dev-0001", -1, SQLITE_STATIC);
	sqlite3_bind_int64(nv->insert, 5, (sqlite3_int64)now);
	sqlite3_bind_blob(nv->insert, 6, nv->payload, (int)nv->size, SQLITE_STATIC);
	return step(nv->db, nv->insert);
}

static int mark_acked(struct naive *nv, uint64_t i)
{
	sqlite3_bind_int64(nv->ack, 1, (sqlite3_int64)i);
	sqlite3_bind_int64(nv->ack, 2, (sqlite3_int64)(bench_wall_s() * 1000.0));
	return step(nv->db, nv->ack);
}

static int one_event(struct naive *nv, uint64_t i)
{
	if (insert(nv, i))
		return -1;
	if (bench_mqtt_publish(&nv->m, BENCH_TOPIC, nv->payload, nv->size, 1, TIMEOUT_S) ||
	    bench_mqtt_drain(&nv->m, TIMEOUT_S)) {
		fprintf(stderr, PROG ": event %" PRIu64 ": no PUBACK\n", i);
		return -1;
	}
	return mark_acked(nv, i);
}

static void close_all(struct naive *nv)
{
	sqlite3_finalize(nv->insert);
	sqlite3_finalize(nv->ack);
	sqlite3_close(nv->db);
	free(nv->payload);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct naive nv = {0};
	parse(argc, argv, &o);
	nv.size = o.size;
	if (!(nv.payload = malloc(o.size + 1)))
		bench_die(PROG, "out of memory");
	if (open_db(&nv, o.db))
		bench_die(PROG, "cannot open %s", o.db);
	if (bench_mqtt_open(&nv.m, o.uri, "es-bench-naive", 1, 10.0))
		bench_die(PROG, "cannot connect to %s", o.uri);
	int rc = 0;
	double t0 = bench_mono_s(), cpu0 = bench_cpu_s();
	for (uint64_t i = 1; i <= o.n && !rc; i++)
		rc = one_event(&nv, i);
	double secs = bench_mono_s() - t0, cpu = bench_cpu_s() - cpu0;
	bench_mqtt_close(&nv.m);
	close_all(&nv);
	if (rc)
		bench_die(PROG, "failed");
	printf("naive n=%" PRIu64 " bytes=%zu s=%.3f rate=%.0f cpu_us=%.1f\n", o.n, o.size, secs,
	       (double)o.n / secs, cpu * 1e6 / (double)o.n);
	return 0;
}
