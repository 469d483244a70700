/* journal_test.c - the SQLite journal: append, group commit, duplicates, acks,
 * reading, retention, cap policies, reopening, verification and closing, on
 * real SQLite files in a temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tmpdir.h"
#include "clock.h"
#include "event.h"
#include "journal.h"
#include "uuid.h"

#define SOURCE	   "/site-1/gw-7"
#define HOUR_MS	   UINT64_C(3600000)
#define CAP_BYTES  (256u * 1024u)
#define WAIT_MS	   15000
#define PRODUCERS  8
#define PER_THREAD 500

/* ---- fixture: a temporary folder with the journal path --------------------- */

typedef struct fixture {
	char dir[64];
	char path[128];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	if (es_tmpdir_make(f->dir, sizeof f->dir, "journal-test")) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/journal.db", f->dir);
	*state = f;
	return 0;
}

/* Journals opened by a test and not closed yet: teardown closes them, so a
 * failed assertion leaves no writer thread behind. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static es_journal *open_set[4];

static void track(es_journal *j, es_journal *replace)
{
	pthread_mutex_lock(&open_lock);
	for (size_t i = 0; i < 4; i++)
		if (open_set[i] == replace) {
			open_set[i] = j;
			break;
		}
	pthread_mutex_unlock(&open_lock);
}

static void close_journal(es_journal *j)
{
	track(NULL, j);
	es_journal_close(j);
}

/* A committed() hook that can hold the writer thread. */
typedef struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool armed, holding, release;
} gate;

/* The gate of append_during_close; teardown opens it if a failure left the
 * writer held. */
static gate the_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, false};

static void gate_open(gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->release = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static void gate_committed(void *ctx, uint64_t latest_seq)
{
	gate *g = ctx;
	pthread_mutex_lock(&g->mu);
	if (g->armed) {
		g->armed = false;
		g->holding = true;
		pthread_cond_broadcast(&g->cv);
		while (!g->release)
			pthread_cond_wait(&g->cv, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
}

/* Closes what the test left open, then removes the folder and the files in
 * it (the test makes no subfolders). */
static int teardown(void **state)
{
	fixture *f = *state;
	gate_open(&the_gate);
	for (size_t i = 0; i < 4; i++)
		if (open_set[i])
			close_journal(open_set[i]);
	es_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static es_journal_opts base_opts(const fixture *f)
{
	return (es_journal_opts){
		.path = f->path,
		.sync = ES_SYNC_NORMAL,
		.retain_ms = HOUR_MS,
		.on_full = ES_ON_FULL_REFUSE,
		.source = SOURCE,
	};
}

static es_journal *open_with(const es_journal_opts *o)
{
	es_journal *j = NULL;
	assert_int_equal(es_journal_open(o, &j), ES_OK);
	assert_non_null(j);
	track(j, NULL);
	return j;
}

static es_journal *open_default(const fixture *f)
{
	es_journal_opts o = base_opts(f);
	return open_with(&o);
}

/* A short-form event; pad adds that many bytes of data. */
static es_event *make_event(unsigned i, size_t pad)
{
	char subject[32], *data = malloc(pad + 64);
	assert_non_null(data);
	snprintf(subject, sizeof subject, "dev-%u", i % 7);
	int k = snprintf(data, 64, "{\"i\":%u,\"pad\":\"", i);
	memset(data + k, 'x', pad);
	snprintf(data + (size_t)k + pad, 8, "\"}");
	es_event *ev = NULL;
	es_verr verr;
	assert_int_equal(es_event_new("sensor.reading", i % 3 ? subject : NULL, data, &ev, &verr),
			 ES_OK);
	free(data);
	return ev;
}

/* Appends n fresh events (pad bytes of data each) in one call. */
static es_err append_n(es_journal *j, unsigned first, size_t n, size_t pad, es_append_result *res)
{
	es_event **evs = calloc(n, sizeof *evs);
	assert_non_null(evs);
	for (size_t i = 0; i < n; i++)
		evs[i] = make_event(first + (unsigned)i, pad);
	es_err err = es_journal_append(j, evs, n, res);
	for (size_t i = 0; i < n; i++)
		es_event_free(evs[i]);
	free(evs);
	return err;
}

static es_err append_one(es_journal *j, unsigned i, size_t pad, es_append_result *res)
{
	return append_n(j, i, 1, pad, res);
}

static es_journal_stats stats_of(es_journal *j)
{
	es_journal_reader *r = NULL;
	es_journal_stats s;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	assert_int_equal(es_journal_stats_get(r, &s), ES_OK);
	es_journal_reader_free(r);
	return s;
}

static es_journal_counters counters_of(const es_journal *j)
{
	es_journal_counters c;
	es_journal_counters_get(j, &c);
	return c;
}

static void ack_range(es_journal *j, uint64_t from, uint64_t to)
{
	for (uint64_t s = from; s <= to; s++)
		assert_int_equal(es_journal_ack(j, s), ES_OK);
}

/* The rows read, copied out of the callback. */
typedef struct rows {
	size_t n;
	uint64_t seq[8192];
	int state[8192];
} rows;

static int collect(void *ctx, const es_journal_row *row)
{
	rows *rs = ctx;
	assert_true(rs->n < 8192);
	rs->seq[rs->n] = row->seq;
	rs->state[rs->n] = row->state;
	rs->n++;
	return 0;
}

static rows *read_rows(es_journal_reader *r, uint64_t from, uint64_t to, size_t limit,
		       bool pending_only)
{
	rows *rs = calloc(1, sizeof *rs);
	assert_non_null(rs);
	assert_int_equal(es_journal_read(r, from, to, limit, pending_only, collect, rs), ES_OK);
	return rs;
}

static rows *read_all(es_journal *j)
{
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	rows *rs = read_rows(r, 0, UINT64_MAX, SIZE_MAX, false);
	es_journal_reader_free(r);
	return rs;
}

/* Asserts the held rows are exactly first..last, without a hole. */
static void expect_range(es_journal *j, uint64_t first, uint64_t last)
{
	rows *rs = read_all(j);
	assert_int_equal(rs->n, last >= first ? last - first + 1 : 0);
	for (size_t i = 0; i < rs->n; i++)
		assert_int_equal(rs->seq[i], first + i);
	free(rs);
}

/* Problems reported by es_journal_verify, kept as one text. */
typedef struct problems {
	int n;
	char text[4096];
} problems;

static void on_problem(void *ctx, const char *problem)
{
	problems *p = ctx;
	p->n++;
	size_t used = strlen(p->text);
	snprintf(p->text + used, sizeof p->text - used, "%s\n", problem);
}

static es_err verify_path(const char *path, problems *p)
{
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_open_path(path, &r), ES_OK);
	memset(p, 0, sizeof *p);
	es_err err = es_journal_verify(r, on_problem, p);
	es_journal_reader_free(r);
	return err;
}

static void expect_verified(es_journal *j)
{
	es_journal_reader *r = NULL;
	problems p = {0};
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	es_err err = es_journal_verify(r, on_problem, &p);
	es_journal_reader_free(r);
	if (err || p.n)
		fail_msg("verify: %s, %d problems:\n%s", es_strerror(err), p.n, p.text);
}

/* Runs sql on the file directly, as a damaged or foreign file would be made. */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static bool is_uuid7(const char *text)
{
	es_uuid u;
	return strlen(text) == 36 && es_uuid_parse(text, &u) && es_uuid_version(&u) == 7;
}

typedef bool (*cond_fn)(es_journal *j, uint64_t want);

/* Polls cond until it holds or WAIT_MS pass; the nap is only the poll rate. */
static bool wait_for(es_journal *j, cond_fn cond, uint64_t want)
{
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	while (!cond(j, want)) {
		if (es_clock_mono_ms() > deadline)
			return false;
		nap_ms(5);
	}
	return true;
}

static bool expired_at_least(es_journal *j, uint64_t want)
{
	return counters_of(j).expired >= want;
}

static bool count_is(es_journal *j, uint64_t want)
{
	return stats_of(j).count == want;
}

/* ---- appending --------------------------------------------------------------- */

typedef struct seen_commit {
	_Atomic uint64_t latest;
	_Atomic uint64_t calls;
} seen_commit;

static void on_committed(void *ctx, uint64_t latest_seq)
{
	seen_commit *s = ctx;
	atomic_store(&s->latest, latest_seq);
	atomic_fetch_add(&s->calls, 1);
}

static void append_one_and_many(void **state)
{
	fixture *f = *state;
	seen_commit seen = {0};
	es_journal_opts o = base_opts(f);
	o.committed = on_committed;
	o.ctx = &seen;
	es_journal *j = open_with(&o);
	uint64_t before = es_clock_wall_ms();
	es_event *ev = make_event(1, 10);
	es_append_result res;
	memset(&res, 0xa5, sizeof res);
	assert_int_equal(es_journal_append(j, &ev, 1, &res), ES_OK);
	assert_int_equal(res.seq, 1);
	assert_false(res.duplicate);
	assert_true(is_uuid7(res.id));
	/* The event was stamped in place. */
	assert_string_equal(es_event_id(ev), res.id);
	assert_string_equal(es_event_source(ev), SOURCE);
	assert_int_equal(es_event_seq(ev), 0); /* the sequence is in the body only */
	assert_non_null(es_event_time(ev));
	es_event_free(ev);
	es_uuid u;
	assert_true(es_uuid_parse(res.id, &u));
	assert_in_range(es_uuid7_time_ms(&u), before - 1000, es_clock_wall_ms() + 1000);

	es_append_result many[50];
	assert_int_equal(append_n(j, 2, 50, 10, many), ES_OK);
	char prev[ES_EVENT_ID_MAX + 1];
	snprintf(prev, sizeof prev, "%s", res.id);
	for (size_t i = 0; i < 50; i++) {
		assert_int_equal(many[i].seq, 2 + i);
		assert_false(many[i].duplicate);
		assert_true(is_uuid7(many[i].id));
		assert_true(strcmp(many[i].id, prev) > 0); /* v7: time-ordered text */
		snprintf(prev, sizeof prev, "%s", many[i].id);
	}
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.appended, 51);
	assert_int_equal(c.pending, 51);
	assert_int_equal(c.latest_seq, 51);
	assert_int_equal(c.duplicates, 0);
	assert_int_equal(c.errors, 0);
	assert_int_equal(c.commits, 2);
	assert_true(es_journal_writable(j));
	char last[160] = "x";
	es_journal_last_error(j, last, sizeof last);
	assert_string_equal(last, "");
	/* committed() runs on the writer after the producer is released. */
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	while (atomic_load(&seen.latest) != 51 && es_clock_mono_ms() < deadline)
		nap_ms(2);
	assert_int_equal(atomic_load(&seen.latest), 51);
	assert_int_equal(atomic_load(&seen.calls), 2);
	expect_range(j, 1, 51);
	es_journal_stats s = stats_of(j);
	assert_int_equal(s.count, 51);
	assert_int_equal(s.pending, 51);
	assert_int_equal(s.oldest_seq, 1);
	assert_int_equal(s.latest_seq, 51);
	assert_int_equal(s.oldest_pending_seq, 1);
	assert_int_equal(s.acked_seq, 0);
	assert_in_range(s.oldest_pending_ms, before, es_clock_wall_ms());
	assert_true(s.used_bytes > 0);
	assert_true(s.file_bytes > 0);
	/* Appending nothing is a no-op. */
	assert_int_equal(es_journal_append(j, NULL, 0, NULL), ES_OK);
	assert_int_equal(counters_of(j).commits, c.commits);
	expect_verified(j);
	close_journal(j);
}

static void bad_arguments(void **state)
{
	fixture *f = *state;
	es_journal *j = (es_journal *)(uintptr_t)0x1;
	es_journal_opts o = base_opts(f);
	o.path = NULL;
	assert_int_equal(es_journal_open(&o, &j), ES_EINVAL);
	o = base_opts(f);
	o.source = "";
	assert_int_equal(es_journal_open(&o, &j), ES_EINVAL);
	assert_int_equal(es_journal_open(NULL, &j), ES_EINVAL);
	assert_ptr_equal(j, (es_journal *)(uintptr_t)0x1); /* untouched on failure */
	o = base_opts(f);
	j = open_with(&o);
	es_append_result res;
	assert_int_equal(es_journal_append(NULL, NULL, 0, NULL), ES_EINVAL);
	assert_int_equal(es_journal_append(j, NULL, 1, &res), ES_EINVAL);
	assert_int_equal(es_journal_ack(j, 0), ES_EINVAL);
	assert_int_equal(es_journal_ack(NULL, 1), ES_EINVAL);
	close_journal(j);
	es_journal_close(NULL);
}

/* An event over max_event_bytes fails its whole append: no row of it. */
static void too_big_fails_the_whole_append(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.max_event_bytes = 1024;
	es_journal *j = open_with(&o);
	es_append_result res[3];
	assert_int_equal(append_one(j, 1, 10, res), ES_OK);
	es_event *evs[3] = {make_event(2, 10), make_event(3, 4000), make_event(4, 10)};
	assert_int_equal(es_journal_append(j, evs, 3, res), ES_ETOOBIG);
	for (int i = 0; i < 3; i++)
		es_event_free(evs[i]);
	assert_int_equal(append_one(j, 5, 10, res), ES_OK);
	assert_int_equal(res[0].seq, 2); /* the failed append used no sequence */
	expect_range(j, 1, 2);
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.appended, 2);
	assert_int_equal(c.pending, 2);
	assert_int_equal(c.refused_full, 0);
	close_journal(j);
}

/* ---- group commit -------------------------------------------------------------- */

typedef struct producer {
	es_journal *j;
	unsigned index;
	uint64_t seqs[PER_THREAD];
	es_err err;
} producer;

static void *produce(void *arg)
{
	producer *p = arg;
	for (unsigned i = 0; i < PER_THREAD; i++) {
		es_verr verr;
		es_event *ev = NULL;
		es_append_result res;
		if ((p->err = es_event_new("sensor.reading", "dev", "{\"v\":1}", &ev, &verr)))
			return NULL;
		p->err = es_journal_append(p->j, &ev, 1, &res);
		es_event_free(ev);
		if (p->err)
			return NULL;
		p->seqs[i] = res.seq;
	}
	return NULL;
}

static void group_commit_batches_producers(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.sync = ES_SYNC_FULL;
	es_journal *j = open_with(&o);
	static producer ps[PRODUCERS];
	pthread_t th[PRODUCERS];
	for (unsigned t = 0; t < PRODUCERS; t++) {
		ps[t] = (producer){.j = j, .index = t};
		assert_int_equal(pthread_create(&th[t], NULL, produce, &ps[t]), 0);
	}
	for (unsigned t = 0; t < PRODUCERS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
	const uint64_t total = PRODUCERS * PER_THREAD;
	bool *seen = calloc(total + 1, sizeof *seen);
	assert_non_null(seen);
	for (unsigned t = 0; t < PRODUCERS; t++) {
		assert_int_equal(ps[t].err, ES_OK);
		for (unsigned i = 0; i < PER_THREAD; i++) {
			uint64_t s = ps[t].seqs[i];
			assert_in_range(s, 1, total);
			assert_false(seen[s]);
			seen[s] = true;
			if (i) /* one thread's appends commit in its own order */
				assert_true(s > ps[t].seqs[i - 1]);
		}
	}
	free(seen);
	es_journal_counters c = counters_of(j);
	print_message("group commit: %" PRIu64 " events in %" PRIu64 " commits (%.1f per commit)\n",
		      c.appended, c.commits, (double)c.appended / (double)c.commits);
	assert_int_equal(c.appended, total);
	assert_int_equal(c.latest_seq, total);
	assert_int_equal(c.pending, total);
	assert_true(c.commits < total);
	expect_range(j, 1, total);
	expect_verified(j);
	close_journal(j);
}

/* Readers beside concurrent producers only ever see whole appends: every
 * append is 10 events, so each snapshot ends on a multiple of 10. */
typedef struct snapshotter {
	es_journal *j;
	_Atomic bool stop;
	unsigned snapshots, torn;
	es_err err;
} snapshotter;

static void *snapshot_loop(void *arg)
{
	snapshotter *s = arg;
	es_journal_reader *r = NULL;
	if ((s->err = es_journal_reader_new(s->j, &r)))
		return NULL;
	while (!atomic_load(&s->stop)) {
		es_journal_stats st;
		if ((s->err = es_journal_stats_get(r, &st)))
			break;
		s->snapshots++;
		if (st.latest_seq % 10 || st.count != st.latest_seq)
			s->torn++;
	}
	es_journal_reader_free(r);
	return NULL;
}

typedef struct batcher {
	es_journal *j;
	es_err err;
} batcher;

static void *append_batches(void *arg)
{
	batcher *b = arg;
	es_append_result res[10];
	for (unsigned i = 0; i < 100 && !b->err; i++)
		b->err = append_n(b->j, i * 10, 10, 10, res);
	return NULL;
}

static void readers_never_see_half_an_append(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	snapshotter snap = {.j = j};
	batcher bs[4];
	pthread_t ts, tb[4];
	assert_int_equal(pthread_create(&ts, NULL, snapshot_loop, &snap), 0);
	for (int i = 0; i < 4; i++) {
		bs[i] = (batcher){.j = j};
		assert_int_equal(pthread_create(&tb[i], NULL, append_batches, &bs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(tb[i], NULL), 0);
		assert_int_equal(bs[i].err, ES_OK);
	}
	atomic_store(&snap.stop, true);
	assert_int_equal(pthread_join(ts, NULL), 0);
	assert_int_equal(snap.err, ES_OK);
	print_message("%u snapshots, %u torn\n", snap.snapshots, snap.torn);
	assert_true(snap.snapshots > 0);
	assert_int_equal(snap.torn, 0);
	expect_range(j, 1, 4000);
	close_journal(j);
}

/* ---- duplicates ----------------------------------------------------------------- */

#define FULL_EVENT(id)                                                                             \
	"{\"specversion\":\"1.0\",\"id\":\"" id "\",\"source\":\"/elsewhere\","                    \
	"\"type\":\"door.opened\",\"subject\":\"front\",\"data\":{\"by\":\"x\"}}"

static es_event *decode_full(const char *json)
{
	es_event **evs = NULL;
	size_t n = 0;
	es_verr verr;
	es_err err = es_event_decode_input(json, strlen(json), 0, 10, &evs, &n, &verr);
	if (err)
		fail_msg("decode %s: %s: %s", json, verr.field, verr.reason);
	assert_int_equal(n, 1);
	es_event *ev = evs[0];
	free(evs);
	return ev;
}

static void duplicate_id_is_reported(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	es_append_result res[3];
	assert_int_equal(append_one(j, 1, 10, res), ES_OK);
	es_event *ev = decode_full(FULL_EVENT("order-42"));
	assert_int_equal(es_journal_append(j, &ev, 1, res), ES_OK);
	es_event_free(ev);
	assert_int_equal(res[0].seq, 2);
	assert_false(res[0].duplicate);
	assert_string_equal(res[0].id, "order-42");

	/* Again, in a batch with a new event and a second copy. */
	es_event *evs[3] = {decode_full(FULL_EVENT("order-42")), make_event(2, 10),
			    decode_full(FULL_EVENT("order-43"))};
	assert_int_equal(es_journal_append(j, evs, 3, res), ES_OK);
	assert_true(res[0].duplicate);
	assert_int_equal(res[0].seq, 2);
	assert_string_equal(res[0].id, "order-42");
	assert_false(res[1].duplicate);
	assert_int_equal(res[1].seq, 3);
	assert_false(res[2].duplicate);
	assert_int_equal(res[2].seq, 4);
	for (int i = 0; i < 3; i++)
		es_event_free(evs[i]);

	/* Two copies of one id inside one append: the second is the duplicate. */
	es_event *twice[2] = {decode_full(FULL_EVENT("order-44")),
			      decode_full(FULL_EVENT("order-44"))};
	assert_int_equal(es_journal_append(j, twice, 2, res), ES_OK);
	assert_false(res[0].duplicate);
	assert_int_equal(res[0].seq, 5);
	assert_true(res[1].duplicate);
	assert_int_equal(res[1].seq, 5);
	es_event_free(twice[0]);
	es_event_free(twice[1]);

	es_journal_counters c = counters_of(j);
	assert_int_equal(c.duplicates, 2);
	assert_int_equal(c.appended, 5);
	assert_int_equal(c.pending, 5);
	assert_int_equal(c.latest_seq, 5);
	expect_range(j, 1, 5);
	expect_verified(j);
	close_journal(j);
}

/* ---- acks ------------------------------------------------------------------------ */

static void acks_mark_events(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	es_append_result res[20];
	assert_int_equal(append_n(j, 1, 20, 10, res), ES_OK);

	/* 1..10 except 5, out of order. */
	for (uint64_t s = 10; s >= 1; s--)
		if (s != 5)
			assert_int_equal(es_journal_ack(j, s), ES_OK);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	es_journal_stats s = stats_of(j);
	assert_int_equal(s.pending, 11);
	assert_int_equal(s.acked_seq, 4);
	assert_int_equal(s.oldest_pending_seq, 5);
	assert_int_equal(counters_of(j).acked, 9);
	assert_int_equal(counters_of(j).acked_seq, 4);
	/* Rows up to the watermark read as acked; 5 and 11..20 as pending (6..10,
	 * acked above the watermark, are not specified either way). */
	rows *early = read_all(j);
	for (size_t i = 0; i < 20; i++)
		if (i < 4)
			assert_int_equal(early->state[i], ES_STATE_ACKED);
		else if (i == 4 || i >= 10)
			assert_int_equal(early->state[i], ES_STATE_PENDING);
	free(early);

	ack_range(j, 5, 5);
	ack_range(j, 11, 20);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	s = stats_of(j);
	assert_int_equal(s.pending, 0);
	assert_int_equal(s.oldest_pending_seq, 0);
	assert_int_equal(s.latest_seq, 20);
	assert_int_equal(s.acked_seq, s.latest_seq);
	assert_int_equal(s.count, 20); /* retention is an hour away */
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.acked, 20);
	assert_int_equal(c.pending, 0);
	assert_int_equal(c.acked_seq, 20);

	/* Acking again, or acking what does not exist yet, changes nothing. */
	ack_range(j, 3, 7);
	assert_int_equal(es_journal_ack(j, 22), ES_OK);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	c = counters_of(j);
	assert_int_equal(c.acked, 20);
	assert_int_equal(c.pending, 0);
	assert_int_equal(c.acked_seq, 20);
	assert_int_equal(c.errors, 0);
	/* ... in particular 22 is not acked in advance: once journaled, it is
	 * pending like any new event. */
	assert_int_equal(append_n(j, 21, 2, 10, res), ES_OK);
	assert_int_equal(res[0].seq, 21);
	assert_int_equal(res[1].seq, 22);
	assert_int_equal(counters_of(j).pending, 2);
	ack_range(j, 21, 21);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	c = counters_of(j);
	assert_int_equal(c.acked_seq, 21);
	assert_int_equal(c.pending, 1);
	s = stats_of(j);
	assert_int_equal(s.acked_seq, 21);
	assert_int_equal(s.oldest_pending_seq, 22);
	assert_int_equal(s.pending, 1);
	/* Syncing with nothing queued returns at once. */
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	rows *rs = read_all(j);
	assert_int_equal(rs->n, 22);
	for (size_t i = 0; i < 21; i++)
		assert_int_equal(rs->state[i], ES_STATE_ACKED);
	assert_int_equal(rs->state[21], ES_STATE_PENDING);
	free(rs);
	close_journal(j);
}

/* ---- reading ---------------------------------------------------------------------- */

typedef struct row_check {
	const es_append_result *res;
	size_t n;
	int stop_after;
} row_check;

static int check_row(void *ctx, const es_journal_row *row)
{
	row_check *rc = ctx;
	const es_append_result *want = &rc->res[row->seq - 1];
	assert_int_equal(row->seq, want->seq);
	assert_string_equal(row->id, want->id);
	assert_string_equal(row->type, "sensor.reading");
	unsigned i = (unsigned)row->seq; /* appended as make_event(seq) */
	if (i % 3) {
		char subject[32];
		snprintf(subject, sizeof subject, "dev-%u", i % 7);
		assert_non_null(row->subject);
		assert_string_equal(row->subject, subject);
	} else {
		assert_null(row->subject);
	}
	es_event *ev = NULL;
	es_verr verr;
	assert_int_equal(es_event_decode(row->body, row->body_len, 0, &ev, &verr), ES_OK);
	assert_int_equal(es_event_seq(ev), row->seq);
	assert_string_equal(es_event_id(ev), row->id);
	assert_string_equal(es_event_type(ev), row->type);
	assert_string_equal(es_event_source(ev), SOURCE);
	es_event_free(ev);
	assert_true(row->journaled_ms > 0);
	rc->n++;
	return rc->stop_after && rc->n >= (size_t)rc->stop_after;
}

static void read_ranges_and_rows(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	es_append_result res[60];
	assert_int_equal(append_n(j, 1, 60, 20, res), ES_OK);
	ack_range(j, 1, 30);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);

	row_check rc = {.res = res};
	assert_int_equal(es_journal_read(r, 0, UINT64_MAX, SIZE_MAX, false, check_row, &rc), ES_OK);
	assert_int_equal(rc.n, 60);

	rows *rs = read_rows(r, 10, 20, SIZE_MAX, false);
	assert_int_equal(rs->n, 11);
	for (size_t i = 0; i < rs->n; i++)
		assert_int_equal(rs->seq[i], 10 + i);
	free(rs);

	rs = read_rows(r, 10, 20, 4, false);
	assert_int_equal(rs->n, 4);
	assert_int_equal(rs->seq[3], 13);
	free(rs);

	rs = read_rows(r, 1, 60, SIZE_MAX, false);
	for (size_t i = 0; i < rs->n; i++)
		assert_int_equal(rs->state[i], i < 30 ? ES_STATE_ACKED : ES_STATE_PENDING);
	free(rs);

	rs = read_rows(r, 1, 60, SIZE_MAX, true);
	assert_int_equal(rs->n, 30);
	for (size_t i = 0; i < rs->n; i++) {
		assert_int_equal(rs->seq[i], 31 + i);
		assert_int_equal(rs->state[i], ES_STATE_PENDING);
	}
	free(rs);

	rs = read_rows(r, 50, UINT64_MAX, 3, true);
	assert_int_equal(rs->n, 3);
	assert_int_equal(rs->seq[0], 50);
	assert_int_equal(rs->seq[2], 52);
	free(rs);

	rs = read_rows(r, 10, 35, SIZE_MAX, true); /* starts past the acked ones */
	assert_int_equal(rs->n, 5);
	assert_int_equal(rs->seq[0], 31);
	free(rs);

	rs = read_rows(r, 20, 10, SIZE_MAX, false); /* empty range */
	assert_int_equal(rs->n, 0);
	free(rs);
	rs = read_rows(r, 61, UINT64_MAX, SIZE_MAX, false);
	assert_int_equal(rs->n, 0);
	free(rs);
	rs = read_rows(r, 1, 60, 0, false);
	assert_int_equal(rs->n, 0);
	free(rs);

	/* A callback returning non-zero stops the read. */
	rc = (row_check){.res = res, .stop_after = 5};
	assert_int_equal(es_journal_read(r, 3, 60, SIZE_MAX, false, check_row, &rc), ES_OK);
	assert_int_equal(rc.n, 5);
	assert_int_equal(es_journal_read(r, 1, 2, 1, false, NULL, NULL), ES_EINVAL);
	assert_int_equal(es_journal_read(NULL, 1, 2, 1, false, collect, NULL), ES_EINVAL);
	es_journal_reader_free(r);
	es_journal_reader_free(NULL);
	close_journal(j);
}

/* A reader beside the writer sees each commit. */
static void reader_sees_new_commits(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	es_append_result res;
	for (unsigned i = 1; i <= 5; i++) {
		assert_int_equal(append_one(j, i, 10, &res), ES_OK);
		es_journal_stats s;
		assert_int_equal(es_journal_stats_get(r, &s), ES_OK);
		assert_int_equal(s.latest_seq, i);
		assert_int_equal(s.count, i);
	}
	es_journal_reader_free(r);
	close_journal(j);
}

/* ---- retention ---------------------------------------------------------------------- */

static void retention_removes_old_acked_only(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.retain_ms = 1;
	es_journal *j = open_with(&o);
	es_append_result res[100];
	assert_int_equal(append_n(j, 1, 100, 10, res), ES_OK);

	/* 31..39 stay pending, so 40..60 must stay too: the range is contiguous. */
	ack_range(j, 1, 30);
	ack_range(j, 40, 60);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	assert_true(wait_for(j, expired_at_least, 30));
	assert_int_equal(counters_of(j).expired, 30);
	es_journal_stats s = stats_of(j);
	assert_int_equal(s.oldest_seq, 31);
	assert_int_equal(s.latest_seq, 100);
	assert_int_equal(s.count, 70);
	assert_int_equal(s.pending, 49);
	assert_int_equal(s.oldest_pending_seq, 31);
	assert_int_equal(s.acked_seq, 30);
	expect_range(j, 31, 100);

	ack_range(j, 31, 39);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	assert_true(wait_for(j, expired_at_least, 60));
	assert_int_equal(counters_of(j).expired, 60);
	expect_range(j, 61, 100);
	assert_int_equal(stats_of(j).pending, 40);

	/* Everything acked: the table empties, yet sequences never restart. */
	ack_range(j, 61, 100);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	assert_true(wait_for(j, count_is, 0));
	s = stats_of(j);
	assert_int_equal(s.pending, 0);
	assert_int_equal(s.oldest_seq, 0);
	assert_int_equal(counters_of(j).expired, 100);
	close_journal(j);

	j = open_with(&o);
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.latest_seq, 100);
	assert_int_equal(c.pending, 0);
	assert_int_equal(append_one(j, 101, 10, res), ES_OK);
	assert_int_equal(res[0].seq, 101);
	expect_range(j, 101, 101);
	expect_verified(j);
	close_journal(j);
}

/* ---- cap policies --------------------------------------------------------------------- */

#define PAD 900

/* Appends one event at a time until ES_EFULL; returns how many went in.
 * Each must get the next sequence. */
static uint64_t fill_until_full(es_journal *j, uint64_t next_seq)
{
	es_append_result res;
	for (unsigned i = 0; i < 20000; i++) {
		es_err err = append_one(j, (unsigned)next_seq + i, PAD, &res);
		if (err == ES_EFULL)
			return i;
		assert_int_equal(err, ES_OK);
		assert_int_equal(res.seq, next_seq + i);
	}
	fail_msg("never full");
	return 0;
}

static void cap_refuse_keeps_range_whole(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.max_bytes = CAP_BYTES;
	o.retain_ms = 1;
	es_journal *j = open_with(&o);
	uint64_t n = fill_until_full(j, 1);
	print_message("cap %u bytes: %" PRIu64 " events of ~%d bytes\n", CAP_BYTES, n, PAD);
	assert_true(n > 20);
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.refused_full, 1);
	assert_int_equal(c.appended, n);
	assert_int_equal(c.latest_seq, n);

	/* A refused batch leaves no row of it and uses no sequence. */
	es_append_result res[100];
	assert_int_equal(append_n(j, 5000, 100, PAD, res), ES_EFULL);
	c = counters_of(j);
	assert_int_equal(c.refused_full, 101);
	assert_int_equal(c.appended, n);
	assert_int_equal(c.latest_seq, n);
	assert_int_equal(c.pending, n);
	es_journal_stats s = stats_of(j);
	assert_int_equal(s.count, n);
	assert_int_equal(s.latest_seq, n);
	assert_int_equal(s.pending, n);
	print_message("used %" PRIu64 " file %" PRIu64 "\n", s.used_bytes, s.file_bytes);
	assert_true(s.used_bytes <= CAP_BYTES);
	expect_range(j, 1, n);
	expect_verified(j);
	assert_true(es_journal_writable(j)); /* a refusal is not a failing disk */

	/* Once acked events expire, there is room again; sequences go on. */
	ack_range(j, 1, n);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	assert_true(wait_for(j, count_is, 0));
	assert_int_equal(append_one(j, 6000, PAD, res), ES_OK);
	assert_int_equal(res[0].seq, n + 1);
	close_journal(j);
}

/* How the store looked while appends went on under the evict policy. */
typedef struct evict_run {
	uint64_t next;	    /* the next sequence */
	uint64_t min_count; /* fewest events held once eviction began */
	uint64_t max_used;  /* most used bytes seen */
} evict_run;

/* Opens an evict-policy journal filled to the cap with pending events (which
 * must be refused, not evicted) and returns how many fit. */
static es_journal *open_full_evict(const fixture *f, uint64_t *n)
{
	es_journal_opts o = base_opts(f);
	o.max_bytes = CAP_BYTES;
	o.on_full = ES_ON_FULL_EVICT;
	es_journal *j = open_with(&o);
	*n = fill_until_full(j, 1);
	assert_true(*n > 20);
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.evicted, 0);
	assert_int_equal(c.refused_full, 1);
	expect_range(j, 1, *n);
	return j;
}

/* Acks everything held, then appends count events, acking each, all of
 * which must succeed by evicting the oldest acked events. */
static evict_run append_acked(es_journal *j, uint64_t n, uint64_t count)
{
	evict_run run = {.next = n + 1, .min_count = UINT64_MAX};
	ack_range(j, 1, n);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	es_append_result res;
	for (uint64_t i = 0; i < count; i++, run.next++) {
		assert_int_equal(append_one(j, (unsigned)run.next, PAD, &res), ES_OK);
		assert_int_equal(res.seq, run.next);
		assert_int_equal(es_journal_ack(j, run.next), ES_OK);
		es_journal_stats s = stats_of(j);
		assert_int_equal(s.latest_seq, run.next);
		assert_int_equal(s.count, run.next - s.oldest_seq + 1);
		if (counters_of(j).evicted && s.count < run.min_count)
			run.min_count = s.count;
		if (s.used_bytes > run.max_used)
			run.max_used = s.used_bytes;
	}
	print_message("evict: %" PRIu64 " evicted; held between %" PRIu64 " and %" PRIu64
		      " events; used at most %" PRIu64 " of %u bytes\n",
		      counters_of(j).evicted, run.min_count, n, run.max_used, CAP_BYTES);
	return run;
}

static void cap_evict_removes_acked_never_pending(void **state)
{
	uint64_t n;
	es_journal *j = open_full_evict(*state, &n);
	evict_run run = append_acked(j, n, 3 * n);
	es_journal_counters c = counters_of(j);
	assert_true(c.evicted > 0);
	assert_int_equal(c.refused_full, 1);
	assert_int_equal(c.appended, 4 * n);
	assert_true(run.max_used <= CAP_BYTES);
	es_journal_stats s = stats_of(j);
	assert_int_equal(s.oldest_seq, c.evicted + 1); /* the oldest went first */
	expect_range(j, s.oldest_seq, run.next - 1);
	expect_verified(j);

	/* Pending events are never evicted: new ones fill up, then refusal. */
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	uint64_t first_pending = run.next;
	uint64_t k = fill_until_full(j, first_pending);
	assert_true(k > 0);
	s = stats_of(j);
	assert_int_equal(s.pending, k);
	assert_int_equal(s.oldest_pending_seq, first_pending);
	assert_int_equal(s.latest_seq, first_pending + k - 1);
	assert_int_equal(counters_of(j).refused_full, 2);
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	rows *rs = read_rows(r, 0, UINT64_MAX, SIZE_MAX, true);
	assert_int_equal(rs->n, k);
	for (size_t i = 0; i < rs->n; i++)
		assert_int_equal(rs->seq[i], first_pending + i);
	free(rs);
	es_journal_reader_free(r);
	expect_range(j, stats_of(j).oldest_seq, first_pending + k - 1);
	expect_verified(j);
	close_journal(j);
}

/* Eviction makes room for the new event; it does not empty the store: the
 * journal keeps (nearly) as many acked events as fit under the cap. */
static void cap_evict_keeps_store_near_cap(void **state)
{
	uint64_t n;
	es_journal *j = open_full_evict(*state, &n);
	evict_run run = append_acked(j, n, 3 * n);
	assert_true(counters_of(j).evicted > 0);
	assert_true(run.min_count >= n / 2);
	close_journal(j);
}

/* ---- reopening ------------------------------------------------------------------------- */

static void reopen_keeps_everything(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	char id[ES_UUID_STR];
	snprintf(id, sizeof id, "%s", es_journal_id(j));
	es_uuid u;
	assert_true(es_uuid_parse(id, &u));
	es_append_result res[30];
	assert_int_equal(append_n(j, 1, 30, 10, res), ES_OK);
	ack_range(j, 1, 10);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	close_journal(j);

	/* close() folds the WAL back into the file. */
	char wal[160];
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	struct stat sb;
	assert_true(stat(wal, &sb) != 0 || sb.st_size == 0);
	problems p;
	assert_int_equal(verify_path(f->path, &p), ES_OK);
	assert_int_equal(p.n, 0);

	j = open_default(f);
	assert_string_equal(es_journal_id(j), id);
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.pending, 20);
	assert_int_equal(c.latest_seq, 30);
	es_journal_stats s = stats_of(j);
	assert_int_equal(s.pending, 20);
	assert_int_equal(s.acked_seq, 10);
	assert_int_equal(s.count, 30);
	es_append_result one;
	assert_int_equal(append_one(j, 31, 10, &one), ES_OK);
	assert_int_equal(one.seq, 31);
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	row_check rc = {.res = res};
	assert_int_equal(es_journal_read(r, 1, 30, SIZE_MAX, false, check_row, &rc), ES_OK);
	assert_int_equal(rc.n, 30);
	rows *rs = read_rows(r, 0, UINT64_MAX, SIZE_MAX, true);
	assert_int_equal(rs->n, 21);
	assert_int_equal(rs->seq[0], 11);
	free(rs);
	es_journal_reader_free(r);
	expect_verified(j);
	close_journal(j);

	/* A reader by path counts pending itself. */
	assert_int_equal(es_journal_reader_open_path(f->path, &r), ES_OK);
	assert_int_equal(es_journal_stats_get(r, &s), ES_OK);
	assert_int_equal(s.pending, 21);
	assert_int_equal(s.latest_seq, 31);
	es_journal_reader_free(r);
}

static void newer_schema_is_refused(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	es_append_result res[5];
	assert_int_equal(append_n(j, 1, 5, 10, res), ES_OK);
	close_journal(j);
	raw_exec(f->path, "PRAGMA user_version = 99");

	j = (es_journal *)(uintptr_t)0x1;
	es_journal_opts o = base_opts(f);
	assert_int_equal(es_journal_open(&o, &j), ES_EVERSION);
	assert_ptr_equal(j, (es_journal *)(uintptr_t)0x1);
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_open_path(f->path, &r), ES_EVERSION);
	assert_null(r);
	/* Refused, never rewritten. */
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 99);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 5);
}

/* A refused file is left exactly as it was: not even its journal mode is
 * changed (journal.h: "a file from a newer version is refused, never
 * rewritten"). */
static void newer_schema_file_is_not_modified(void **state)
{
	fixture *f = *state;
	raw_exec(f->path, "CREATE TABLE later(x); PRAGMA user_version = 7");
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_journal_mode "
					  "WHERE journal_mode = 'delete'"),
			 1);
	struct stat before, after;
	assert_int_equal(stat(f->path, &before), 0);
	es_journal *j = NULL;
	es_journal_opts o = base_opts(f);
	assert_int_equal(es_journal_open(&o, &j), ES_EVERSION);
	assert_null(j);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 7);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM pragma_journal_mode "
					  "WHERE journal_mode = 'delete'"),
			 1);
	assert_int_equal(stat(f->path, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static size_t read_file(const char *path, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, cap);
	close(fd);
	assert_true(n >= 0);
	return (size_t)n;
}

static void random_bytes_are_not_a_journal(void **state)
{
	fixture *f = *state;
	unsigned char junk[8192], after[8192 + 16];
	uint64_t x = 0x243f6a8885a308d3u;
	for (size_t i = 0; i < sizeof junk; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		junk[i] = (unsigned char)x;
	}
	write_file(f->path, junk, sizeof junk);
	es_journal *j = NULL;
	es_journal_opts o = base_opts(f);
	es_err err = es_journal_open(&o, &j);
	assert_int_equal(err, ES_ECORRUPT);
	assert_null(j);
	es_journal_reader *r = NULL;
	assert_int_not_equal(es_journal_reader_open_path(f->path, &r), ES_OK);
	assert_null(r);
	/* The file is left as it was. */
	assert_int_equal(read_file(f->path, after, sizeof after), sizeof junk);
	assert_memory_equal(after, junk, sizeof junk);
}

static void foreign_sqlite_is_not_a_journal(void **state)
{
	fixture *f = *state;
	raw_exec(f->path, "CREATE TABLE contacts(name TEXT, phone TEXT);"
			  "INSERT INTO contacts VALUES('ada', '555');");
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_open_path(f->path, &r), ES_ECORRUPT);
	assert_null(r);
	es_journal *j = NULL;
	es_journal_opts o = base_opts(f);
	es_err err = es_journal_open(&o, &j);
	if (err == ES_OK)
		close_journal(j);
	/* Someone else's database is not turned into a journal. */
	assert_int_equal(
		raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'events'"), 0);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM contacts"), 1);
	assert_int_equal(err, ES_ECORRUPT);
}

/* A journal from before the mark (tables and a version, no application
 * id) is still ours: it opens with its events and is marked; a reader by
 * path, which changes nothing, wants the mark first. */
static void unmarked_old_journal_is_marked(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	es_append_result res[3];
	assert_int_equal(append_n(j, 1, 3, 10, res), ES_OK);
	close_journal(j);
	raw_exec(f->path, "PRAGMA application_id = 0");
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_open_path(f->path, &r), ES_ECORRUPT);
	assert_null(r);
	j = open_default(f);
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.latest_seq, 3);
	close_journal(j);
	assert_int_equal(raw_int(f->path, "PRAGMA application_id"), 0x45535031);
	assert_int_equal(es_journal_reader_open_path(f->path, &r), ES_OK);
	es_journal_reader_free(r);
}

/* A path that cannot be opened is an error, and nothing is created. */
static void unopenable_path(void **state)
{
	fixture *f = *state;
	char path[160];
	snprintf(path, sizeof path, "%s/no-such-dir/journal.db", f->dir);
	es_journal_opts o = base_opts(f);
	o.path = path;
	es_journal *j = NULL;
	es_err err = es_journal_open(&o, &j);
	print_message("missing folder: %s\n", es_strerror(err));
	assert_int_not_equal(err, ES_OK);
	assert_null(j);
	o.path = f->dir; /* a folder, not a file */
	err = es_journal_open(&o, &j);
	print_message("a folder: %s\n", es_strerror(err));
	assert_int_not_equal(err, ES_OK);
	assert_null(j);
}

static void reader_on_missing_path(void **state)
{
	fixture *f = *state;
	char missing[160];
	snprintf(missing, sizeof missing, "%s/nope.db", f->dir);
	es_journal_reader *r = (es_journal_reader *)(uintptr_t)0x1;
	assert_int_equal(es_journal_reader_open_path(missing, &r), ES_ENOTFOUND);
	assert_ptr_equal(r, (es_journal_reader *)(uintptr_t)0x1);
	struct stat sb;
	assert_int_not_equal(stat(missing, &sb), 0); /* not created */
	assert_int_equal(es_journal_reader_open_path(NULL, &r), ES_EINVAL);
}

/* ---- verification ------------------------------------------------------------------------ */

static void make_closed_journal(const fixture *f, size_t n)
{
	es_journal *j = open_default(f);
	es_append_result res[64];
	assert_true(n <= 64);
	assert_int_equal(append_n(j, 1, n, 10, res), ES_OK);
	close_journal(j);
}

static void verify_finds_a_hole(void **state)
{
	fixture *f = *state;
	make_closed_journal(f, 20);
	problems p;
	assert_int_equal(verify_path(f->path, &p), ES_OK);
	assert_int_equal(p.n, 0);
	raw_exec(f->path, "DELETE FROM events WHERE seq = 10");
	assert_int_equal(verify_path(f->path, &p), ES_ECORRUPT);
	assert_true(p.n >= 1);
	assert_non_null(strstr(p.text, "hole"));
	assert_non_null(strstr(p.text, "10"));
}

static void verify_finds_bad_bodies(void **state)
{
	fixture *f = *state;
	make_closed_journal(f, 20);
	raw_exec(f->path, "UPDATE events SET body = CAST('{\"not\": \"an event\"' AS BLOB) "
			  "WHERE seq = 15");
	problems p;
	assert_int_equal(verify_path(f->path, &p), ES_ECORRUPT);
	assert_int_equal(p.n, 1);
	assert_non_null(strstr(p.text, "15"));
	assert_non_null(strstr(p.text, "decode"));

	/* A valid body of another row: wrong sequence and id. */
	raw_exec(f->path, "UPDATE events SET body = (SELECT body FROM events WHERE seq = 3) "
			  "WHERE seq = 4");
	assert_int_equal(verify_path(f->path, &p), ES_ECORRUPT);
	assert_int_equal(p.n, 3);
	assert_non_null(strstr(p.text, "event 4 carries sequence 3"));
	assert_non_null(strstr(p.text, "event 4 body id differs"));
	/* Verification without a callback still gives the verdict. */
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_open_path(f->path, &r), ES_OK);
	assert_int_equal(es_journal_verify(r, NULL, NULL), ES_ECORRUPT);
	es_journal_reader_free(r);
	assert_int_equal(es_journal_verify(NULL, NULL, NULL), ES_EINVAL);
}

/* ---- verbatim items (a bridge's inbox) ----------------------------------------------- */

#define ORIGIN	     "site-9/gw-1"
#define FWD_BODY_MAX 512

/* A forwarded event: a CloudEvent as its origin journaled it (spacing, key
 * order and escapes of its own, which must survive), whose "sequence" is
 * the origin's. */
typedef struct fwd {
	char id[32], body[FWD_BODY_MAX];
	es_journal_item item;
} fwd;

static void make_fwd(fwd *f, unsigned i, uint64_t origin_seq)
{
	snprintf(f->id, sizeof f->id, "fwd-%u", i);
	int n = snprintf(f->body, sizeof f->body,
			 "{ \"data\": {\"i\": %u, \"s\": \"caf\\u00e9 \\\"q\\\"\"},\n"
			 "  \"specversion\":\"1.0\", \"id\":\"%s\", \"source\":\"/site-9/gw-1\","
			 "\t\"type\":\"door.opened\", \"sequence\":\"%" PRIu64 "\" }",
			 i, f->id, origin_seq);
	assert_true(n > 0 && (size_t)n < sizeof f->body);
	f->item = (es_journal_item){.id = f->id,
				    .type = "door.opened",
				    .subject = i % 2 ? "front" : NULL,
				    .origin = ORIGIN,
				    .origin_seq = origin_seq,
				    .body = f->body,
				    .len = (size_t)n};
}

/* Checks rows first, first + 1, ... against want[0..max). */
typedef struct fwd_check {
	const fwd *want;
	size_t n, max;
	uint64_t first;
} fwd_check;

static int check_fwd_row(void *ctx, const es_journal_row *row)
{
	fwd_check *c = ctx;
	assert_true(c->n < c->max);
	const fwd *w = &c->want[c->n];
	assert_int_equal(row->seq, c->first + c->n);
	c->n++;
	assert_string_equal(row->id, w->id);
	assert_string_equal(row->type, w->item.type);
	if (w->item.subject)
		assert_string_equal(row->subject, w->item.subject);
	else
		assert_null(row->subject);
	assert_int_equal(row->body_len, w->item.len);
	assert_memory_equal(row->body, w->body, w->item.len);
	assert_non_null(row->origin);
	assert_string_equal(row->origin, ORIGIN);
	assert_int_equal(row->origin_seq, w->item.origin_seq);
	assert_int_equal(row->state, ES_STATE_PENDING);
	return 0;
}

/* Reads rows first..first + n - 1 and checks them against want. */
static void expect_fwd_rows(es_journal_reader *r, uint64_t first, const fwd *want, size_t n)
{
	fwd_check c = {.want = want, .max = n, .first = first};
	assert_int_equal(
		es_journal_read(r, first, first + n - 1, SIZE_MAX, false, check_fwd_row, &c),
		ES_OK);
	assert_int_equal(c.n, n);
}

static void append_items_stores_bodies_verbatim(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	fwd fw[6];
	es_journal_item items[5];
	for (unsigned i = 0; i < 5; i++) {
		make_fwd(&fw[i], i, 1000 + 3 * (uint64_t)i); /* not the local sequence */
		items[i] = fw[i].item;
	}
	es_append_result res[5];
	memset(res, 0xa5, sizeof res);
	assert_int_equal(es_journal_append_items(j, items, 5, res), ES_OK);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(res[i].seq, i + 1);
		assert_false(res[i].duplicate);
		assert_string_equal(res[i].id, fw[i].id);
	}
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.appended, 5);
	assert_int_equal(c.latest_seq, 5);
	assert_int_equal(c.pending, 5);
	assert_int_equal(c.duplicates, 0);
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	expect_fwd_rows(r, 1, fw, 5);
	es_journal_reader_free(r);
	expect_verified(j);

	/* This node's own events and forwarded ones side by side. */
	assert_int_equal(append_one(j, 1, 10, res), ES_OK);
	assert_int_equal(res[0].seq, 6);
	make_fwd(&fw[5], 5, 7); /* its origin sequence is another row's local one */
	assert_int_equal(es_journal_append_items(j, &fw[5].item, 1, res), ES_OK);
	assert_int_equal(res[0].seq, 7);
	expect_verified(j);
	close_journal(j);

	/* Origins survive a reopen; verification by path agrees. */
	problems p;
	assert_int_equal(verify_path(f->path, &p), ES_OK);
	assert_int_equal(p.n, 0);
	j = open_default(f);
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	expect_fwd_rows(r, 1, fw, 5);
	expect_fwd_rows(r, 7, &fw[5], 1);
	es_journal_reader_free(r);
	assert_int_equal(es_journal_append_items(j, items, 1, res), ES_OK);
	assert_true(res[0].duplicate); /* ids are found in the file too */
	assert_int_equal(res[0].seq, 1);
	close_journal(j);
}

static void append_items_reports_duplicates(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	fwd fw[7];
	es_journal_item items[5];
	for (unsigned i = 0; i < 5; i++) {
		make_fwd(&fw[i], i, 10 + (uint64_t)i);
		items[i] = fw[i].item;
	}
	es_append_result res[5];
	assert_int_equal(es_journal_append_items(j, items, 5, res), ES_OK);

	/* An id already journaled (another body, another origin sequence), a
	 * new one, and the new one again in the same call. */
	make_fwd(&fw[5], 2, 99);
	make_fwd(&fw[6], 6, 16);
	es_journal_item again[3] = {fw[5].item, fw[6].item, fw[6].item};
	assert_int_equal(es_journal_append_items(j, again, 3, res), ES_OK);
	assert_true(res[0].duplicate);
	assert_int_equal(res[0].seq, 3);
	assert_string_equal(res[0].id, "fwd-2");
	assert_false(res[1].duplicate);
	assert_int_equal(res[1].seq, 6);
	assert_true(res[2].duplicate);
	assert_int_equal(res[2].seq, 6);

	es_journal_counters c = counters_of(j);
	assert_int_equal(c.duplicates, 2);
	assert_int_equal(c.appended, 6);
	assert_int_equal(c.latest_seq, 6);
	expect_range(j, 1, 6);
	/* Nothing of a duplicate was stored: row 3 is still the first copy. */
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	expect_fwd_rows(r, 1, fw, 5);
	expect_fwd_rows(r, 6, &fw[6], 1);
	es_journal_reader_free(r);
	expect_verified(j);
	close_journal(j);
}

/* A forwarded CloudEvent of exactly len bytes (its data a string of x). */
static char *sized_body(const char *id, size_t len)
{
	char head[160];
	int h = snprintf(head, sizeof head,
			 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/site-9/gw-1\","
			 "\"type\":\"door.opened\",\"sequence\":\"5\",\"data\":\"",
			 id);
	assert_true(h > 0 && len >= (size_t)h + 2);
	char *b = malloc(len + 1);
	assert_non_null(b);
	memcpy(b, head, (size_t)h);
	memset(b + h, 'x', len - (size_t)h - 2);
	memcpy(b + len - 2, "\"}", 3);
	return b;
}

static es_journal_item sized_item(const char *id, const char *body, size_t len)
{
	return (es_journal_item){.id = id,
				 .type = "door.opened",
				 .origin = ORIGIN,
				 .origin_seq = 5,
				 .body = body,
				 .len = len};
}

static void append_items_too_big_stores_nothing(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.max_event_bytes = 1024;
	es_journal *j = open_with(&o);
	char *small = sized_body("s-1", 200), *exact = sized_body("s-2", 1024),
	     *over = sized_body("s-3", 1025);
	es_journal_item items[3] = {sized_item("s-1", small, 200), sized_item("s-3", over, 1025),
				    sized_item("s-2", exact, 1024)};
	es_append_result res[3];
	assert_int_equal(es_journal_append_items(j, items, 3, res), ES_ETOOBIG);
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.appended, 0);
	assert_int_equal(c.latest_seq, 0);
	assert_int_equal(stats_of(j).count, 0);
	assert_int_equal(es_journal_append_items(j, &items[1], 1, res), ES_ETOOBIG);

	/* The limit itself is allowed; the failed calls used no sequence. */
	items[1] = items[2];
	assert_int_equal(es_journal_append_items(j, items, 2, res), ES_OK);
	assert_int_equal(res[0].seq, 1);
	assert_int_equal(res[1].seq, 2);
	expect_range(j, 1, 2);
	expect_verified(j);
	free(small);
	free(exact);
	free(over);
	close_journal(j);
}

static void append_items_bad_arguments(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	fwd fw[2];
	make_fwd(&fw[0], 0, 1);
	make_fwd(&fw[1], 1, 2);
	es_append_result res[2];
	for (int field = 0; field < 4; field++) {
		es_journal_item items[2] = {fw[0].item, fw[1].item};
		const char **p = field == 0   ? &items[1].id
				 : field == 1 ? &items[1].type
				 : field == 2 ? &items[1].body
					      : &items[1].origin;
		*p = NULL;
		assert_int_equal(es_journal_append_items(j, items, 2, res), ES_EINVAL);
	}
	es_journal_item items[2] = {fw[0].item, fw[1].item};
	assert_int_equal(es_journal_append_items(NULL, items, 2, res), ES_EINVAL);
	assert_int_equal(es_journal_append_items(j, NULL, 2, res), ES_EINVAL);
	assert_int_equal(es_journal_append_items(j, items, 2, NULL), ES_EINVAL);
	assert_int_equal(es_journal_append_items(j, NULL, 0, NULL), ES_OK);
	es_journal_counters c = counters_of(j);
	assert_int_equal(c.commits, 0);
	assert_int_equal(c.appended, 0);
	assert_int_equal(stats_of(j).count, 0);
	/* A subject is optional. */
	items[0].subject = NULL;
	assert_int_equal(es_journal_append_items(j, items, 2, res), ES_OK);
	assert_int_equal(res[1].seq, 2);
	close_journal(j);
}

/* ---- dead letters ---------------------------------------------------------------------- */

typedef struct letter {
	const char *topic, *reason, *payload;
	size_t len;
} letter;

static const letter letters[] = {
	{"edgespool/site-9/gw-1/events/door.opened", "not JSON", "{\"oops", 6},
	{"edgespool/site-9/gw-1/events/x", "invalid UTF-8", "\xff\xfe\x00\x01", 4},
	{"edgespool/site-9/gw-1/status", "empty payload", NULL, 0},
	{"a/b", "late", "late-1", 6},
	{"a/c", "late", "late-2", 6},
	{"a/d", "at close", "bye", 3},
};
#define NLETTERS (sizeof letters / sizeof letters[0])

static void queue_letter(es_journal *j, size_t i)
{
	const letter *l = &letters[i];
	assert_int_equal(es_journal_dead_letter(j, l->topic, l->reason, l->payload, l->len), ES_OK);
}

/* Checks dead letters against letters[first], letters[first + 1], ... */
typedef struct letter_check {
	size_t first, n;
	uint64_t last_id, ids[NLETTERS];
	uint64_t from_ms, to_ms;
} letter_check;

static int check_letter(void *ctx, const es_journal_deadletter *d)
{
	letter_check *c = ctx;
	assert_true(c->first + c->n < NLETTERS);
	const letter *want = &letters[c->first + c->n];
	assert_true(d->id > c->last_id);
	c->last_id = c->ids[c->n++] = d->id;
	assert_string_equal(d->topic, want->topic);
	assert_string_equal(d->reason, want->reason);
	assert_int_equal(d->len, want->len);
	if (want->len)
		assert_memory_equal(d->payload, want->payload, want->len);
	assert_in_range(d->received_ms, c->from_ms, c->to_ms);
	return 0;
}

/* Reads the dead letters after `after` (at most limit) into c. */
static void read_letters(es_journal_reader *r, uint64_t after, size_t limit, letter_check *c)
{
	c->n = 0;
	c->last_id = after;
	assert_int_equal(es_journal_read_deadletters(r, after, limit, check_letter, c), ES_OK);
}

static bool deadletters_are(es_journal *j, uint64_t want)
{
	return stats_of(j).deadletters == want;
}

static void dead_letters_are_kept_in_order(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	letter_check c = {.from_ms = es_clock_wall_ms()};
	for (size_t i = 0; i < 3; i++)
		queue_letter(j, i);
	/* Waiting for acks does not wait for them; the transaction of an
	 * append queued after them carries them (or an earlier one did). */
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	es_append_result res;
	assert_int_equal(append_one(j, 1, 10, &res), ES_OK);
	assert_int_equal(stats_of(j).deadletters, 3);
	c.to_ms = es_clock_wall_ms();
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	read_letters(r, 0, SIZE_MAX, &c);
	assert_int_equal(c.n, 3);
	uint64_t third = c.ids[2];
	read_letters(r, 0, 1, &c);
	assert_int_equal(c.n, 1);

	/* With nothing else to write they go in a transaction of their own. */
	queue_letter(j, 3);
	queue_letter(j, 4);
	assert_true(wait_for(j, deadletters_are, 5));
	c.to_ms = es_clock_wall_ms();
	c.first = 3;
	read_letters(r, third, SIZE_MAX, &c);
	assert_int_equal(c.n, 2);
	es_journal_reader_free(r);

	assert_int_equal(es_journal_dead_letter(j, NULL, "r", "p", 1), ES_EINVAL);
	assert_int_equal(es_journal_dead_letter(j, "t", NULL, "p", 1), ES_EINVAL);
	assert_int_equal(es_journal_dead_letter(j, "t", "r", NULL, 1), ES_EINVAL);
	assert_int_equal(es_journal_dead_letter(NULL, "t", "r", "p", 1), ES_EINVAL);
	assert_int_equal(es_journal_read_deadletters(NULL, 0, 1, check_letter, &c), ES_EINVAL);

	/* One queued as the journal closes is written before it closes. */
	queue_letter(j, 5);
	close_journal(j);
	c.to_ms = es_clock_wall_ms();
	assert_int_equal(es_journal_reader_open_path(f->path, &r), ES_OK);
	c.first = 0;
	read_letters(r, 0, SIZE_MAX, &c);
	assert_int_equal(c.n, NLETTERS);
	es_journal_stats s;
	assert_int_equal(es_journal_stats_get(r, &s), ES_OK);
	assert_int_equal(s.deadletters, NLETTERS);
	assert_int_equal(s.count, 1); /* dead letters are not events */
	es_journal_reader_free(r);
	problems p;
	assert_int_equal(verify_path(f->path, &p), ES_OK);
}

/* ---- a program's own state ------------------------------------------------------------- */

/* es_journal_get(key) through a fresh reader: ES_OK when it gives want. */
static es_err get_is(es_journal *j, const char *key, const void *want, size_t want_len)
{
	es_journal_reader *r = NULL;
	void *value = NULL;
	size_t len = 0;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	es_err err = es_journal_get(r, key, &value, &len);
	es_journal_reader_free(r);
	if (!err) {
		assert_int_equal(((const char *)value)[len], '\0'); /* text-friendly */
		if (len != want_len || memcmp(value, want, len) != 0)
			err = ES_EBUSY; /* not yet */
	}
	free(value);
	return err;
}

/* Polls until key holds want or WAIT_MS pass; the nap is only the poll rate. */
static bool wait_value(es_journal *j, const char *key, const void *want, size_t want_len)
{
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	while (get_is(j, key, want, want_len) != ES_OK) {
		if (es_clock_mono_ms() > deadline)
			return false;
		nap_ms(5);
	}
	return true;
}

static void put_and_get_state(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	static const char *const refused[] = {"cursor", "",	    "x",	 "X.gap",
					      ".x.gap", "last_seq", "acked_seq", "journal_id"};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		assert_int_equal(es_journal_put(j, refused[i], "v", 1), ES_EINVAL);
	assert_int_equal(es_journal_put(j, NULL, "v", 1), ES_EINVAL);
	assert_int_equal(es_journal_put(j, "x.gap", NULL, 1), ES_EINVAL);
	assert_int_equal(es_journal_put(NULL, "x.gap", "v", 1), ES_EINVAL);

	static const char v1[] = "esgap 1 0\n\0binary\xff";
	assert_int_equal(es_journal_put(j, "x.gap", v1, sizeof v1 - 1), ES_OK);
	assert_true(wait_value(j, "x.gap", v1, sizeof v1 - 1));
	assert_int_equal(es_journal_put(j, "x.gap", "v2", 2), ES_OK); /* replaces */
	assert_int_equal(es_journal_put(j, "x.empty", NULL, 0), ES_OK);
	assert_true(wait_value(j, "x.gap", "v2", 2));
	assert_true(wait_value(j, "x.empty", "", 0));
	assert_int_equal(get_is(j, "x.none", "", 0), ES_ENOTFOUND);
	/* The journal's own keys are untouched by a program's. */
	es_append_result res;
	assert_int_equal(append_one(j, 1, 10, &res), ES_OK);
	assert_int_equal(counters_of(j).latest_seq, 1);
	close_journal(j);

	/* Survives a reopen, and reads by path. */
	j = open_default(f);
	assert_int_equal(get_is(j, "x.gap", "v2", 2), ES_OK);
	assert_int_equal(get_is(j, "x.empty", "", 0), ES_OK);
	assert_int_equal(counters_of(j).latest_seq, 1);
	close_journal(j);
	es_journal_reader *r = NULL;
	void *value = NULL;
	size_t len = 0;
	assert_int_equal(es_journal_reader_open_path(f->path, &r), ES_OK);
	assert_int_equal(es_journal_get(r, "x.gap", &value, &len), ES_OK);
	assert_int_equal(len, 2);
	assert_memory_equal(value, "v2", 2);
	free(value);
	assert_int_equal(es_journal_get(r, "x.none", &value, &len), ES_ENOTFOUND);
	assert_int_equal(es_journal_get(r, NULL, &value, &len), ES_EINVAL);
	assert_int_equal(es_journal_get(NULL, "x.gap", &value, &len), ES_EINVAL);
	es_journal_reader_free(r);
}

/* ---- closing ------------------------------------------------------------------------------ */

typedef struct caller {
	es_journal *j;
	pid_t tid;
	_Atomic bool started, finished;
	es_err err;
	es_append_result res;
} caller;

static void *call_append(void *arg)
{
	caller *c = arg;
	c->tid = gettid();
	es_verr verr;
	es_event *ev = NULL;
	assert_int_equal(es_event_new("sensor.reading", NULL, NULL, &ev, &verr), ES_OK);
	atomic_store(&c->started, true);
	c->err = es_journal_append(c->j, &ev, 1, &c->res);
	es_event_free(ev);
	atomic_store(&c->finished, true);
	return NULL;
}

static void *call_close(void *arg)
{
	caller *c = arg;
	c->tid = gettid();
	atomic_store(&c->started, true);
	close_journal(c->j);
	atomic_store(&c->finished, true);
	return NULL;
}

/* True once thread tid sleeps in the kernel (blocked on a futex here). */
static bool thread_sleeping(pid_t tid)
{
	char name[64], buf[256];
	snprintf(name, sizeof name, "/proc/self/task/%d/stat", (int)tid);
	FILE *fp = fopen(name, "r");
	if (!fp)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' && paren[2] == 'S';
}

static void wait_blocked(caller *c)
{
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	while (!atomic_load(&c->started) || !thread_sleeping(c->tid)) {
		assert_false(atomic_load(&c->finished));
		assert_true(es_clock_mono_ms() < deadline);
		nap_ms(1);
	}
}

/* close() while the writer is busy: an append already queued is finished
 * and committed; one that arrives during close gets ES_ECLOSED. */
static void append_during_close(void **state)
{
	fixture *f = *state;
	gate *g = &the_gate;
	g->armed = true;
	g->holding = g->release = false;
	es_journal_opts o = base_opts(f);
	o.committed = gate_committed;
	o.ctx = g;
	es_journal *j = open_with(&o);
	es_append_result res;
	assert_int_equal(append_one(j, 1, 10, &res), ES_OK); /* the writer now waits in g */
	pthread_mutex_lock(&g->mu);
	while (!g->holding)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);

	static caller queued, closer, late;
	pthread_t tq, tc, tl;
	queued = (caller){.j = j};
	assert_int_equal(pthread_create(&tq, NULL, call_append, &queued), 0);
	wait_blocked(&queued); /* queued, waiting for its commit */
	closer = (caller){.j = j};
	assert_int_equal(pthread_create(&tc, NULL, call_close, &closer), 0);
	wait_blocked(&closer); /* closing, joining the writer */
	late = (caller){.j = j};
	assert_int_equal(pthread_create(&tl, NULL, call_append, &late), 0);
	assert_int_equal(pthread_join(tl, NULL), 0);
	assert_int_equal(late.err, ES_ECLOSED);

	gate_open(g);
	assert_int_equal(pthread_join(tq, NULL), 0);
	assert_int_equal(pthread_join(tc, NULL), 0);
	assert_int_equal(queued.err, ES_OK);
	assert_int_equal(queued.res.seq, 2);
	assert_int_equal(raw_int(f->path, "SELECT max(seq) FROM events"), 2);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 2);
}

/* ---- writes that keep failing ------------------------------------------------------------ */

/* Runs sql on the file beside an open journal, waiting for its writer. */
static void raw_exec_wait(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, WAIT_MS);
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* A dead letter SQLite refuses to store (as it refuses a payload over its
 * length limit; here a trigger refuses it) is the dead letter's problem:
 * events appended after it must still be journaled. */
static void unstorable_dead_letter_does_not_block_events(void **state)
{
	fixture *f = *state;
	make_closed_journal(f, 1);
	raw_exec(f->path, "CREATE TRIGGER poison BEFORE INSERT ON deadletters "
			  "WHEN NEW.topic = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END");
	es_journal *j = open_default(f);
	assert_int_equal(es_journal_dead_letter(j, "poison", "r", "p", 1), ES_OK);
	es_append_result res;
	es_err first = append_one(j, 2, 10, &res);
	es_err second = append_one(j, 3, 10, &res);
	uint64_t latest = counters_of(j).latest_seq;
	/* Let the writer through before judging, so nothing is left hanging. */
	raw_exec_wait(f->path, "DROP TRIGGER poison");
	close_journal(j);
	assert_int_equal(first, ES_OK);
	assert_int_equal(second, ES_OK);
	assert_int_equal(latest, 3);
}

/* Closing while every commit fails (a failing or full disk; here triggers
 * fail every write of the meta and events tables) ends, with an ack
 * waiting to be written: what is still queued cannot be kept. A queued dead
 * letter must not make the writer retry for ever. */
static void close_ends_while_commits_fail(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	es_append_result res;
	assert_int_equal(append_one(j, 1, 10, &res), ES_OK);
	raw_exec_wait(f->path, "CREATE TRIGGER fail_ins BEFORE INSERT ON meta "
			       "BEGIN SELECT RAISE(ABORT, 'disk failing'); END;"
			       "CREATE TRIGGER fail_upd BEFORE UPDATE ON meta "
			       "BEGIN SELECT RAISE(ABORT, 'disk failing'); END;"
			       "CREATE TRIGGER fail_ev BEFORE INSERT ON events "
			       "BEGIN SELECT RAISE(ABORT, 'disk failing'); END;");
	assert_int_equal(es_journal_ack(j, 1), ES_OK); /* its watermark cannot be written */
	assert_int_equal(es_journal_dead_letter(j, "t", "r", "p", 1), ES_OK);
	assert_int_not_equal(append_one(j, 2, 10, &res), ES_OK); /* the disk is failing */

	/* A writer retrying without pause logs each failure: keep them out. */
	int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
	assert_true(saved >= 0 && devnull >= 0);
	dup2(devnull, 2);
	static caller closer;
	closer = (caller){.j = j};
	pthread_t tc;
	assert_int_equal(pthread_create(&tc, NULL, call_close, &closer), 0);
	uint64_t deadline = es_clock_mono_ms() + 2000;
	while (!atomic_load(&closer.finished) && es_clock_mono_ms() < deadline)
		nap_ms(5);
	bool ended = atomic_load(&closer.finished);
	if (!ended) /* let it end, so nothing is left running */
		raw_exec_wait(
			f->path,
			"DROP TRIGGER fail_ins; DROP TRIGGER fail_upd; DROP TRIGGER fail_ev;");
	int joined = pthread_join(tc, NULL);
	dup2(saved, 2);
	close(saved);
	close(devnull);
	assert_int_equal(joined, 0);
	if (!ended)
		fail_msg("close() still running after 2 s of failing commits");
}

static int collect_keys(void *ctx, const char *key, const void *value, size_t len)
{
	char *out = ctx;
	size_t used = strlen(out);
	snprintf(out + used, 256 - used, "%s=%.*s;", key, (int)len, (const char *)value);
	return 0;
}

/* A producer's own state rides in the events' transaction: both or neither. */
static void append_kv_is_atomic_with_the_events(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.max_bytes = CAP_BYTES;
	es_journal *j = open_with(&o);
	es_event *ev = make_event(1, 10);
	es_append_result res;
	es_journal_kv kv[] = {{"x.dev.1", "7", 1}, {"x.dev.2", "9", 1}};
	assert_int_equal(es_journal_append_kv(j, &ev, 1, &res, kv, 2), ES_OK);
	es_event_free(ev);
	assert_int_equal(get_is(j, "x.dev.1", "7", 1), ES_OK);
	assert_int_equal(get_is(j, "x.dev.2", "9", 1), ES_OK);
	/* Bad keys and values are refused before anything is written. */
	es_journal_kv bad[] = {{"dev.1", "8", 1}};
	assert_int_equal(es_journal_append_kv(j, NULL, 0, NULL, bad, 1), ES_EINVAL);
	es_journal_kv big[] = {{"x.big", "", ES_JOURNAL_KV_MAX + 1}};
	assert_int_equal(es_journal_append_kv(j, NULL, 0, NULL, big, 1), ES_EINVAL);
	/* A refused append (the cap) stores none of its values. */
	fill_until_full(j, 2);
	ev = make_event(90000, PAD);
	es_journal_kv next[] = {{"x.dev.1", "8", 1}};
	assert_int_equal(es_journal_append_kv(j, &ev, 1, &res, next, 1), ES_EFULL);
	es_event_free(ev);
	assert_int_equal(get_is(j, "x.dev.1", "7", 1), ES_OK);
	/* Values alone (no event) go in too; the scan sees the prefix only. */
	es_journal_kv alone[] = {{"x.dex", "0", 1}};
	assert_int_equal(es_journal_append_kv(j, NULL, 0, NULL, alone, 1), ES_OK);
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	char seen[256] = "";
	assert_int_equal(es_journal_scan(r, "x.dev.", collect_keys, seen), ES_OK);
	assert_string_equal(seen, "x.dev.1=7;x.dev.2=9;");
	assert_int_equal(es_journal_scan(r, "dev.", collect_keys, seen), ES_EINVAL);
	es_journal_reader_free(r);
	close_journal(j);
}

struct seqs {
	uint64_t v[64];
	size_t n;
};

static int collect_seq(void *ctx, const es_journal_row *row)
{
	struct seqs *s = ctx;
	if (s->n < 64)
		s->v[s->n++] = row->seq;
	return 0;
}

static struct seqs run_query(es_journal *j, const es_journal_query *q, uint64_t *next)
{
	es_journal_reader *r = NULL;
	struct seqs s = {{0}, 0};
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	assert_int_equal(es_journal_query_rows(r, q, collect_seq, &s, next), ES_OK);
	es_journal_reader_free(r);
	return s;
}

/* Pages newest first and oldest first, with filters, a state and an id. */
/* The type and subject of one row read back, copied out of the callback. */
struct named {
	char type[32], subject[32];
	bool has_subject;
};

static int name_of(void *ctx, const es_journal_row *row)
{
	struct named *n = ctx;
	snprintf(n->type, sizeof n->type, "%s", row->type ? row->type : "(null)");
	n->has_subject = row->subject != NULL;
	snprintf(n->subject, sizeof n->subject, "%s", row->subject ? row->subject : "");
	return 1;
}

static struct named named_row(const char *path, uint64_t seq)
{
	es_journal_reader *r = NULL;
	struct named n = {{0}, {0}, false};
	assert_int_equal(es_journal_reader_open_path(path, &r), ES_OK);
	assert_int_equal(es_journal_read(r, seq, seq, 1, false, name_of, &n), ES_OK);
	es_journal_reader_free(r);
	return n;
}

/* An event made here is stored with its type and subject in its body only
 * (the row holds '' and NULL: fewer bytes a row on flash), and is read and
 * filtered by them as before; a row of an older file, with the columns
 * filled and any body, reads as it was written. */
static void own_events_keep_type_and_subject_in_their_body(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	es_append_result res[3];
	assert_int_equal(append_n(j, 1, 3, 10, res), ES_OK); /* 3 has no subject */
	close_journal(j);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events WHERE type = '' AND "
					  "subject IS NULL"),
			 3);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 3);
	struct named n = named_row(f->path, 1);
	assert_string_equal(n.type, "sensor.reading");
	assert_string_equal(n.subject, "dev-1");
	n = named_row(f->path, 3);
	assert_string_equal(n.type, "sensor.reading");
	assert_false(n.has_subject);

	/* As an older program wrote it: the columns hold them, the body is not
	 * even JSON. */
	raw_exec(f->path, "INSERT INTO events(seq, id, type, subject, journaled_ms, body) "
			  "VALUES(4, 'old-4', 'door.opened', 'dev-9', 1, X'00FF')");
	n = named_row(f->path, 4);
	assert_string_equal(n.type, "door.opened");
	assert_string_equal(n.subject, "dev-9");
	j = open_default(f);
	uint64_t next;
	struct seqs s =
		run_query(j, &(es_journal_query){.limit = 9, .type = "door.*", .state = -1}, &next);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0], 4);
	s = run_query(j, &(es_journal_query){.limit = 9, .subject = "dev-2", .state = -1}, &next);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0], 2);
	s = run_query(j, &(es_journal_query){.limit = 9, .type = "sensor.reading", .state = -1},
		      &next);
	assert_int_equal(s.n, 3);
	close_journal(j);
}

static void query_pages_and_filters(void **state)
{
	fixture *f = *state;
	es_journal *j = open_default(f);
	es_append_result res[30];
	assert_int_equal(append_n(j, 1, 30, 10, res), ES_OK);
	ack_range(j, 1, 10);
	assert_int_equal(es_journal_sync_acks(j), ES_OK);
	uint64_t next;
	struct seqs s = run_query(j, &(es_journal_query){.limit = 4, .state = -1}, &next);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.v[0], 30);
	assert_int_equal(s.v[3], 27);
	assert_int_equal(next, 27);
	s = run_query(j, &(es_journal_query){.limit = 4, .before = 3, .state = -1}, &next);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.v[1], 1);
	assert_int_equal(next, 0);
	s = run_query(j,
		      &(es_journal_query){.limit = 5, .ascending = true, .after = 26, .state = -1},
		      &next);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.v[0], 27);
	assert_int_equal(next, 0);
	/* make_event: subject dev-(i % 7) unless i % 3 == 0 */
	s = run_query(j, &(es_journal_query){.limit = 50, .subject = "dev-2", .state = -1}, &next);
	assert_int_equal(s.n, 3); /* 2, 16, 23 (9 and 30 have no subject) */
	s = run_query(j, &(es_journal_query){.limit = 50, .type = "sensor.*", .state = -1}, &next);
	assert_int_equal(s.n, 30);
	s = run_query(j, &(es_journal_query){.limit = 50, .type = "sensor", .state = -1}, &next);
	assert_int_equal(s.n, 0);
	s = run_query(j, &(es_journal_query){.limit = 50, .state = ES_STATE_ACKED}, &next);
	assert_int_equal(s.n, 10);
	assert_int_equal(s.v[0], 10);
	s = run_query(j, &(es_journal_query){.limit = 50, .state = ES_STATE_PENDING}, &next);
	assert_int_equal(s.n, 20);
	s = run_query(j, &(es_journal_query){.limit = 1, .id = res[6].id, .state = -1}, &next);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0], res[6].seq);
	es_journal_reader *r = NULL;
	assert_int_equal(es_journal_reader_new(j, &r), ES_OK);
	assert_int_equal(
		es_journal_query_rows(r, &(es_journal_query){.limit = 0}, collect_seq, &s, &next),
		ES_EINVAL);
	es_journal_reader_free(r);
	close_journal(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(append_one_and_many, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(too_big_fails_the_whole_append, setup, teardown),
		cmocka_unit_test_setup_teardown(group_commit_batches_producers, setup, teardown),
		cmocka_unit_test_setup_teardown(readers_never_see_half_an_append, setup, teardown),
		cmocka_unit_test_setup_teardown(duplicate_id_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(acks_mark_events, setup, teardown),
		cmocka_unit_test_setup_teardown(read_ranges_and_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(reader_sees_new_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(retention_removes_old_acked_only, setup, teardown),
		cmocka_unit_test_setup_teardown(cap_refuse_keeps_range_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(cap_evict_removes_acked_never_pending, setup,
						teardown),
		cmocka_unit_test_setup_teardown(cap_evict_keeps_store_near_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(reopen_keeps_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_schema_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_schema_file_is_not_modified, setup, teardown),
		cmocka_unit_test_setup_teardown(random_bytes_are_not_a_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(foreign_sqlite_is_not_a_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(unmarked_old_journal_is_marked, setup, teardown),
		cmocka_unit_test_setup_teardown(unopenable_path, setup, teardown),
		cmocka_unit_test_setup_teardown(reader_on_missing_path, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_finds_a_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_finds_bad_bodies, setup, teardown),
		cmocka_unit_test_setup_teardown(append_during_close, setup, teardown),
		cmocka_unit_test_setup_teardown(append_items_stores_bodies_verbatim, setup,
						teardown),
		cmocka_unit_test_setup_teardown(append_items_reports_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(append_items_too_big_stores_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(append_items_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(dead_letters_are_kept_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(put_and_get_state, setup, teardown),
		cmocka_unit_test_setup_teardown(append_kv_is_atomic_with_the_events, setup,
						teardown),
		cmocka_unit_test_setup_teardown(query_pages_and_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(own_events_keep_type_and_subject_in_their_body,
						setup, teardown),
		cmocka_unit_test_setup_teardown(unstorable_dead_letter_does_not_block_events, setup,
						teardown),
		cmocka_unit_test_setup_teardown(close_ends_while_commits_fail, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
