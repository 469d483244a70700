/* journal_flash_test.c - what the journal does for flash, on real SQLite
 * files: acks reach the file lazily (a crash image then re-publishes, never
 * loses), commits come at most every linger_ms unless pages of events are
 * queued, the cap holds for the database, its WAL and its -shm file
 * together, a flood of refused appends writes nothing, and a deletion saves
 * the watermark with it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
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

#define SOURCE	"/site-1/gw-7"
#define HOUR_MS UINT64_C(3600000)
#define WAIT_MS 15000

typedef struct fixture {
	char dir[64];
	char path[128], copy[128];
} fixture;

static const char *const suffixes[] = {"", "-wal", "-shm"};

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	if (es_tmpdir_make(f->dir, sizeof f->dir, "journal-flash")) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/journal.db", f->dir);
	snprintf(f->copy, sizeof f->copy, "%s/crash.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char name[160];
	for (size_t i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "%s%s", f->path, suffixes[i]);
		unlink(name);
		snprintf(name, sizeof name, "%s%s", f->copy, suffixes[i]);
		unlink(name);
	}
	rmdir(f->dir);
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
	return (es_journal_opts){.path = f->path,
				 .sync = ES_SYNC_NORMAL,
				 .retain_ms = HOUR_MS,
				 .on_full = ES_ON_FULL_REFUSE,
				 .source = SOURCE};
}

static es_journal *open_with(const es_journal_opts *o)
{
	es_journal *j = NULL;
	assert_int_equal(es_journal_open(o, &j), ES_OK);
	return j;
}

/* Appends n fresh events of about pad bytes of data each, in one call. */
static es_err append_n(es_journal *j, size_t n, size_t pad)
{
	es_event **evs = calloc(n, sizeof *evs);
	es_append_result *res = calloc(n, sizeof *res);
	char *data = malloc(pad + 32);
	assert_true(evs && res && data);
	int k = snprintf(data, 32, "{\"pad\":\"");
	memset(data + k, 'x', pad);
	snprintf(data + (size_t)k + pad, 8, "\"}");
	for (size_t i = 0; i < n; i++) {
		es_verr v;
		assert_int_equal(es_event_new("sensor.reading", "dev-1", data, &evs[i], &v), ES_OK);
	}
	es_err err = es_journal_append(j, evs, n, res);
	for (size_t i = 0; i < n; i++)
		es_event_free(evs[i]);
	free(evs);
	free(res);
	free(data);
	return err;
}

static es_journal_counters counters_of(const es_journal *j)
{
	es_journal_counters c;
	es_journal_counters_get(j, &c);
	return c;
}

static uint64_t file_size(const char *path, const char *suffix)
{
	char name[160];
	struct stat sb;
	snprintf(name, sizeof name, "%s%s", path, suffix);
	return stat(name, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* The database, its WAL and its -shm file, as they are on disk. */
static uint64_t on_disk(const char *path)
{
	return file_size(path, "") + file_size(path, "-wal") + file_size(path, "-shm");
}

/* Copies the journal's files as they are on disk now, while it is open: the
 * image a crash (SIGKILL) would leave. */
static void crash_image(const fixture *f)
{
	char from[160], to[160], buf[65536];
	for (size_t i = 0; i < 2; i++) { /* the -shm is rebuilt from the WAL */
		snprintf(from, sizeof from, "%s%s", f->path, suffixes[i]);
		snprintf(to, sizeof to, "%s%s", f->copy, suffixes[i]);
		int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(in >= 0 && out >= 0);
		ssize_t n;
		while ((n = read(in, buf, sizeof buf)) > 0)
			assert_int_equal(write(out, buf, (size_t)n), n);
		close(in);
		close(out);
	}
}

/* The stats of the journal file at path, read by path (what is in the
 * file, not the writer's memory). */
static es_journal_stats stats_by_path(const char *path)
{
	es_journal_reader *r = NULL;
	es_journal_stats s;
	assert_int_equal(es_journal_reader_open_path(path, &r), ES_OK);
	assert_int_equal(es_journal_stats_get(r, &s), ES_OK);
	es_journal_reader_free(r);
	return s;
}

static bool wait_counter(es_journal *j, uint64_t want_acked_seq)
{
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	while (counters_of(j).acked_seq != want_acked_seq)
		if (es_clock_mono_ms() > deadline)
			return false;
		else
			nap_ms(2);
	return true;
}

/* ---- acks --------------------------------------------------------------------- */

/* Acks move the watermark in memory at once and reach the file only when
 * flushed: a crash before gives re-publishes of what was acked since
 * (every event still there, pending again), never a hole. */
static void acks_reach_the_file_lazily(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.ack_flush_ms = HOUR_MS;
	es_journal *j = open_with(&o);
	assert_int_equal(append_n(j, 10, 100), ES_OK);
	assert_int_equal(es_journal_sync_acks(j), ES_OK); /* nothing acked yet: at once */
	for (uint64_t s = 1; s <= 10; s++)
		assert_int_equal(es_journal_ack(j, s), ES_OK);
	assert_true(wait_counter(j, 10));
	assert_int_equal(counters_of(j).pending, 0);
	assert_int_equal(counters_of(j).acked, 10);
	uint64_t commits = counters_of(j).commits;
	nap_ms(300); /* no commit of its own for the acks before ack_flush_ms */
	assert_int_equal(counters_of(j).commits, commits);
	assert_int_equal(stats_by_path(f->path).acked_seq, 0);

	crash_image(f);
	es_journal_stats s = stats_by_path(f->copy);
	assert_int_equal(s.latest_seq, 10);
	assert_int_equal(s.oldest_seq, 1);
	assert_int_equal(s.acked_seq, 0); /* all ten are published again */
	assert_int_equal(s.pending, 10);

	assert_int_equal(es_journal_sync_acks(j), ES_OK); /* written now */
	assert_int_equal(stats_by_path(f->path).acked_seq, 10);
	assert_int_equal(counters_of(j).commits, commits + 1);
	es_journal_close(j);
	j = open_with(&o);
	assert_int_equal(counters_of(j).acked_seq, 10);
	assert_int_equal(counters_of(j).latest_seq, 10);
	es_journal_close(j);
}

/* With nothing else to write, acks reach the file by themselves
 * ack_flush_ms after the first of them, in one commit, not before. */
static void acks_are_flushed_after_ack_flush_ms(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.ack_flush_ms = 1000;
	es_journal *j = open_with(&o);
	assert_int_equal(append_n(j, 5, 100), ES_OK);
	uint64_t commits = counters_of(j).commits;
	uint64_t t0 = es_clock_mono_ms();
	for (uint64_t s = 1; s <= 5; s++)
		assert_int_equal(es_journal_ack(j, s), ES_OK);
	assert_true(wait_counter(j, 5));
	uint64_t seen = stats_by_path(f->path).acked_seq;
	uint64_t early = es_clock_mono_ms() - t0;
	assert_true(early < 800); /* else the check below proves nothing */
	assert_int_equal(seen, 0);
	uint64_t deadline = t0 + WAIT_MS;
	while (stats_by_path(f->path).acked_seq != 5 && es_clock_mono_ms() < deadline)
		nap_ms(5);
	uint64_t took = es_clock_mono_ms() - t0;
	print_message("watermark in the file %" PRIu64 " ms after the first ack\n", took);
	assert_int_equal(stats_by_path(f->path).acked_seq, 5);
	assert_true(took >= 990);
	assert_int_equal(counters_of(j).commits, commits + 1);
	es_journal_close(j);
}

/* With an event commit due soon, a due watermark rides along with it; and
 * a clean close writes what is left. */
static void watermark_rides_with_events_and_close_saves_it(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.ack_flush_ms = 1;
	es_journal *j = open_with(&o);
	assert_int_equal(append_n(j, 5, 100), ES_OK);
	for (uint64_t s = 1; s <= 5; s++)
		assert_int_equal(es_journal_ack(j, s), ES_OK);
	assert_true(wait_counter(j, 5));
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	while (stats_by_path(f->path).acked_seq != 5 && es_clock_mono_ms() < deadline)
		nap_ms(5);
	assert_int_equal(stats_by_path(f->path).acked_seq, 5);
	es_journal_close(j);

	o.ack_flush_ms = HOUR_MS;
	j = open_with(&o);
	assert_int_equal(append_n(j, 5, 100), ES_OK);
	for (uint64_t s = 6; s <= 8; s++)
		assert_int_equal(es_journal_ack(j, s), ES_OK);
	assert_true(wait_counter(j, 8));
	es_journal_close(j);
	assert_int_equal(stats_by_path(f->path).acked_seq, 8);
}

/* Retention deletes acked events only with the watermark and the last
 * sequence saved beside: a crash after it neither brings back a hole nor
 * gives a sequence twice. */
static void retention_saves_the_watermark(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.ack_flush_ms = HOUR_MS;
	o.retain_ms = 1;
	es_journal *j = open_with(&o);
	assert_int_equal(append_n(j, 6, 100), ES_OK);
	for (uint64_t s = 1; s <= 6; s++)
		assert_int_equal(es_journal_ack(j, s), ES_OK);
	assert_true(wait_counter(j, 6));
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	while (counters_of(j).expired < 6 && es_clock_mono_ms() < deadline)
		nap_ms(20);
	assert_int_equal(counters_of(j).expired, 6);
	crash_image(f);
	es_journal_stats s = stats_by_path(f->copy);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.acked_seq, 6);
	es_journal_close(j);

	es_journal_opts c = base_opts(f);
	c.path = f->copy;
	j = open_with(&c);
	assert_int_equal(counters_of(j).latest_seq, 6);
	assert_int_equal(counters_of(j).pending, 0);
	es_append_result res;
	es_event *ev;
	es_verr v;
	assert_int_equal(es_event_new("sensor.reading", "dev-1", NULL, &ev, &v), ES_OK);
	assert_int_equal(es_journal_append(j, &ev, 1, &res), ES_OK);
	assert_int_equal(res.seq, 7);
	es_event_free(ev);
	es_journal_close(j);
}

/* ---- linger ------------------------------------------------------------------- */

typedef struct appender {
	es_journal *j;
	uint64_t took_ms;
	es_err err;
} appender;

static void *append_thread(void *arg)
{
	appender *a = arg;
	uint64_t t0 = es_clock_mono_ms();
	a->err = append_n(a->j, 1, 50);
	a->took_ms = es_clock_mono_ms() - t0;
	return NULL;
}

/* After a quiet spell an append commits at once; appends soon after a
 * commit wait for the next, at most linger_ms after it, and share it. */
static void commits_come_at_most_every_linger(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.linger_ms = 400;
	es_journal *j = open_with(&o);
	nap_ms(450);
	uint64_t t0 = es_clock_mono_ms();
	assert_int_equal(append_n(j, 1, 50), ES_OK);
	uint64_t first = es_clock_mono_ms() - t0;
	uint64_t commits = counters_of(j).commits;
	appender a[3] = {{.j = j}, {.j = j}, {.j = j}};
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&th[i], NULL, append_thread, &a[i]), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(a[i].err, ES_OK);
	}
	uint64_t all = es_clock_mono_ms() - t0;
	print_message("first append %" PRIu64 " ms; three more %" PRIu64 "/%" PRIu64 "/%" PRIu64
		      " ms in %" PRIu64 " commit(s); all %" PRIu64 " ms\n",
		      first, a[0].took_ms, a[1].took_ms, a[2].took_ms,
		      counters_of(j).commits - commits, all);
	assert_true(all >= 380); /* the three waited for linger_ms after the first commit */
	assert_true(counters_of(j).commits - commits <= 2);
	es_journal_close(j);
}

/* Pages of events queued commit without lingering. */
static void a_full_batch_does_not_linger(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.linger_ms = 10000;
	es_journal *j = open_with(&o);
	assert_int_equal(append_n(j, 1, 50), ES_OK);
	uint64_t t0 = es_clock_mono_ms();
	assert_int_equal(append_n(j, 100, 300), ES_OK); /* ~33 KB: many pages */
	uint64_t took = es_clock_mono_ms() - t0;
	print_message("100 events right after a commit: %" PRIu64 " ms\n", took);
	assert_true(took < 5000);
	es_journal_close(j);
}

/* ---- the cap ------------------------------------------------------------------ */

/* 64 KiB for everything: a journal filled up, then a flood of refused
 * appends (single events and batches): the database, WAL and -shm files
 * never pass the cap, and the refusals write nothing. */
static void cap_holds_for_every_file(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.max_bytes = 65536;
	es_journal *j = open_with(&o);
	uint64_t most = 0, n = 0;
	es_err err;
	while ((err = append_n(j, 1, 200)) == ES_OK) {
		n++;
		uint64_t d = on_disk(f->path);
		most = d > most ? d : most;
		assert_true(n < 10000);
	}
	assert_int_equal(err, ES_EFULL);
	uint64_t commits = counters_of(j).commits, wal = file_size(f->path, "-wal");
	for (int i = 0; i < 200; i++) {
		assert_int_equal(append_n(j, i % 3 ? 1 : 100, 200), ES_EFULL);
		uint64_t d = on_disk(f->path);
		most = d > most ? d : most;
	}
	print_message("cap 65536: %" PRIu64 " events; files at most %" PRIu64 " bytes; WAL %" PRIu64
		      "\n",
		      n, most, file_size(f->path, "-wal"));
	assert_true(n >= 10);
	assert_true(most <= 65536);
	assert_int_equal(counters_of(j).commits, commits);
	assert_int_equal(file_size(f->path, "-wal"), wal);
	es_journal_stats s = stats_by_path(f->path);
	assert_true(s.used_bytes <= 65536);
	es_journal_close(j);
}

/* The evict policy under a small cap: batches of 50 (each writing more
 * WAL than the WAL's share of a 256 KiB cap: the database must leave room
 * for that too) keep being taken, acked ones evicted to make room, and the
 * files stay within the cap. */
static void evict_makes_room_under_a_small_cap(void **state)
{
	fixture *f = *state;
	es_journal_opts o = base_opts(f);
	o.max_bytes = 262144;
	o.on_full = ES_ON_FULL_EVICT;
	es_journal *j = open_with(&o);
	uint64_t most = 0, seq = 0;
	for (int k = 0; k < 40; k++) {
		assert_int_equal(append_n(j, 50, 250), ES_OK);
		for (int i = 0; i < 50; i++)
			assert_int_equal(es_journal_ack(j, ++seq), ES_OK);
		assert_true(wait_counter(j, seq));
		uint64_t d = on_disk(f->path);
		most = d > most ? d : most;
	}
	print_message("evict, cap 262144: %" PRIu64 " evicted; files at most %" PRIu64 "\n",
		      counters_of(j).evicted, most);
	assert_true(counters_of(j).evicted > 0);
	assert_int_equal(counters_of(j).refused_full, 0);
	assert_true(most <= 262144);
	es_journal_close(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(acks_reach_the_file_lazily, setup, teardown),
		cmocka_unit_test_setup_teardown(acks_are_flushed_after_ack_flush_ms, setup,
						teardown),
		cmocka_unit_test_setup_teardown(watermark_rides_with_events_and_close_saves_it,
						setup, teardown),
		cmocka_unit_test_setup_teardown(retention_saves_the_watermark, setup, teardown),
		cmocka_unit_test_setup_teardown(commits_come_at_most_every_linger, setup, teardown),
		cmocka_unit_test_setup_teardown(a_full_batch_does_not_linger, setup, teardown),
		cmocka_unit_test_setup_teardown(cap_holds_for_every_file, setup, teardown),
		cmocka_unit_test_setup_teardown(evict_makes_room_under_a_small_cap, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
