/* consumer_test.c - the consumer library (common/consumer.c): patterns,
 * the bounded persistent dedup, one transaction per batch (commit and
 * rollback), the checkpoint across a reopen, the run loop against a fake
 * source (acks only after COMMIT, a lost connection drops the batch), and
 * the store's mark and version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "tmpdir.h"
#include "batch.h"
#include "clock.h"
#include "consumer.h"

/* ---- helpers ------------------------------------------------------------ */

static char dir[64];

static int setup(void **state)
{
	(void)state;
	return es_tmpdir_make(dir, sizeof dir, "consumer-test");
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void raw_exec(const char *path, const char *sql);

static void db_path(const char *name, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/%s", dir, name);
}

static char *event_of(const char *source, const char *id, const char *type, const char *subject,
		      unsigned seq)
{
	char *s = malloc(512);
	snprintf(s, 512,
		 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"%s\","
		 "\"type\":\"%s\",\"subject\":\"%s\",\"sequence\":\"%u\",\"data\":{\"v\":%u}}",
		 id, source, type, subject, seq, seq);
	return s;
}

static char *event(const char *id, const char *type, const char *subject, unsigned seq)
{
	return event_of("/site-1/gw-1", id, type, subject, seq);
}

static es_delivery delivery(char *body, uint64_t tag)
{
	return (es_delivery){.where = strdup("edgespool/site-1/gw-1/ev/x"),
			     .body = body,
			     .len = strlen(body),
			     .tag = tag};
}

/* A handler that keeps its state in the consumer's transaction: a table
 * counting how often each id was applied. fail_next makes the next call
 * fail once. */
struct counter {
	es_consumer *c;
	int calls;
	int fail_next;
};

static es_err count_handler(void *arg, const es_event *ev, const char *json, size_t len)
{
	struct counter *k = arg;
	(void)json;
	(void)len;
	k->calls++;
	if (k->fail_next) {
		k->fail_next--;
		return ES_EIO;
	}
	sqlite3 *db = es_consumer_db(k->c);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db,
					    "INSERT INTO applied(id, n) VALUES(?1, 1)"
					    " ON CONFLICT(id) DO UPDATE SET n = n + 1",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, es_event_id(ev), -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? ES_OK : ES_EIO;
}

static es_consumer *open_consumer(const char *name, uint64_t dedup_max, struct counter *k)
{
	char path[128];
	db_path(name, path, sizeof path);
	es_consumer_opts o = {.path = path, .dedup_max = dedup_max, .keep_log = true};
	es_consumer *c;
	assert_int_equal(es_consumer_new(&o, &c), ES_OK);
	assert_int_equal(sqlite3_exec(es_consumer_db(c),
				      "CREATE TABLE IF NOT EXISTS applied(id TEXT PRIMARY KEY, n)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	k->c = c;
	assert_int_equal(es_consumer_on(c, "#", count_handler, k), ES_OK);
	return c;
}

static int64_t scalar(es_consumer *c, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;
	assert_int_equal(sqlite3_prepare_v2(es_consumer_db(c), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void apply_ids(es_consumer *c, unsigned from, unsigned to, es_err want)
{
	es_delivery d[64] = {{0}};
	size_t n = 0;
	char id[32];
	for (unsigned i = from; i <= to; i++) {
		snprintf(id, sizeof id, "id-%u", i);
		d[n++] = delivery(event(id, "sensor.reading", "dev-1", i), 0);
	}
	assert_int_equal(es_consumer_apply(c, d, n), want);
	for (size_t i = 0; i < n; i++)
		es_delivery_clear(&d[i]);
}

/* ---- patterns ----------------------------------------------------------- */

static void patterns_match_words(void **state)
{
	(void)state;
	assert_true(es_consumer_match("#", "sensor.reading"));
	assert_true(es_consumer_match("#", "x"));
	assert_true(es_consumer_match("sensor.*", "sensor.reading"));
	assert_false(es_consumer_match("sensor.*", "sensor"));
	assert_false(es_consumer_match("sensor.*", "sensor.reading.raw"));
	assert_true(es_consumer_match("sensor.#", "sensor"));
	assert_true(es_consumer_match("sensor.#", "sensor.reading.raw"));
	assert_true(es_consumer_match("alarm.raised", "alarm.raised"));
	assert_false(es_consumer_match("alarm.raised", "alarm.cleared"));
	assert_false(es_consumer_match("alarm.raised", "alarm.raised.x"));
	assert_false(es_consumer_match("alarm", "alarm.raised"));
	assert_true(es_consumer_match("*.raised", "alarm.raised"));
	assert_true(es_consumer_match("#.raised", "a.b.raised"));
	assert_false(es_consumer_match("#.raised", "a.b.raised.no"));
	assert_true(es_consumer_match("a.#.z", "a.z"));
	assert_true(es_consumer_match("a.#.z", "a.b.c.z"));
	assert_false(es_consumer_match("sensor.*", "sensorx.reading"));
}

static void bad_patterns_are_refused(void **state)
{
	(void)state;
	assert_null(es_consumer_check_pattern("sensor.*"));
	assert_null(es_consumer_check_pattern("#"));
	assert_non_null(es_consumer_check_pattern(""));
	assert_non_null(es_consumer_check_pattern("sensor.re*"));
	assert_non_null(es_consumer_check_pattern("a..b"));
	assert_non_null(es_consumer_check_pattern("a/b"));
	assert_non_null(es_consumer_check_pattern(".a"));
	assert_non_null(es_consumer_check_pattern("a."));
}

static void amqp_urls_are_checked(void **state)
{
	(void)state;
	assert_null(es_amqp_check_url("amqp://guest:guest@127.0.0.1:5672/%2f"));
	assert_null(es_amqp_check_url("amqp://guest:guest@127.0.0.1:5672/"));
	assert_null(es_amqp_check_url("amqp://rmq1"));
	assert_non_null(es_amqp_check_url("mqtt://127.0.0.1:1883"));
	assert_null(es_amqp_check_url("amqps://rmq1:5671/"));
	assert_non_null(es_amqp_check_url("amqpx://rmq1:5671/"));
	assert_true(es_amqp_url_has_password("amqp://u:pw@rmq1:5672/"));
	assert_true(es_amqp_url_has_password("amqps://u:pw@rmq1/v"));
	assert_false(es_amqp_url_has_password("amqp://u@rmq1:5672/"));
	assert_false(es_amqp_url_has_password("amqp://rmq1:5672/a@b"));
	assert_false(es_amqp_url_has_password("amqp://u:@rmq1"));
	assert_non_null(es_amqp_check_url("amqp://h:notaport/"));
	assert_non_null(es_amqp_check_url(""));
	es_source *s;
	const char *bad[] = {"amqp://ok/", "http://x"};
	es_amqp_opts o = {.urls = bad, .nurls = 2};
	assert_int_equal(es_amqp_source_new(&o, &s), ES_EINVAL);
	const char *good[] = {"amqps://rmq1/"};
	es_amqp_opts t = {.urls = good, .nurls = 1, .cert_file = "c.pem"}; /* no key */
	assert_int_equal(es_amqp_source_new(&t, &s), ES_EINVAL);
	t.key_file = "k.pem";
	assert_int_equal(es_amqp_source_new(&t, &s), ES_OK);
	es_source_free(s);
}

/* ---- batches ------------------------------------------------------------ */

static void duplicates_and_invalid_in_one_batch(void **state)
{
	(void)state;
	struct counter k = {0};
	es_consumer *c = open_consumer("batch.db", 0, &k);
	es_delivery d[4] = {
		delivery(event("a", "sensor.reading", "dev-1", 1), 1),
		delivery(event("a", "sensor.reading", "dev-1", 1), 2), /* the same id again */
		delivery(strdup("not json"), 3),
		delivery(event("b", "alarm.raised", "dev-1", 2), 4),
	};
	assert_int_equal(es_consumer_apply(c, d, 4), ES_OK);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.applied, 2);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.invalid, 1);
	assert_int_equal(st.events, 2);
	assert_int_equal(scalar(c, "SELECT sum(n) FROM applied"), 2);
	assert_int_equal(scalar(c, "SELECT count(*) FROM deadletters"
				   " WHERE origin = 'edgespool/site-1/gw-1/ev/x'"),
			 1);
	for (int i = 0; i < 4; i++)
		es_delivery_clear(&d[i]);
	es_consumer_free(c);
}

/* An uplink batch (batch.h) is taken event by event: its good events are
 * applied (a duplicate of an event that came alone dropped), its bad event
 * dead-lettered alone with its index; a batch that cannot be read at all,
 * and one whose properties contradict its topic, are one dead letter each
 * with the reason. */
static es_delivery batch_delivery(const char *coding, const char *topic_coding, char **events,
				  size_t n)
{
	es_batch_enc_opts o = {0};
	const char *why;
	assert_int_equal(es_batch_coding_parse(coding, &o.coding, &why), ES_OK);
	es_batch_enc *e;
	assert_int_equal(es_batch_enc_new(&o, &e), ES_OK);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(es_batch_enc_add(e, events[i], strlen(events[i])), ES_OK);
		free(events[i]);
	}
	const void *p;
	size_t len;
	assert_int_equal(es_batch_enc_finish(e, &p, &len), ES_OK);
	char topic[128];
	snprintf(topic, sizeof topic, "edgespool/site-1/gw-1/batch/ce=%s", topic_coding);
	es_delivery d = {.where = strdup(topic), .body = malloc(len + 1), .len = len};
	memcpy(d.body, p, len);
	d.body[len] = '\0';
	d.content_type = strdup(ES_BATCH_CONTENT_TYPE);
	es_batch_enc_free(e);
	return d;
}

static void uplink_batches_event_by_event(void **state)
{
	(void)state;
	struct counter k = {0};
	es_consumer *c = open_consumer("uplink.db", 0, &k);
	char *good[] = {event("u1", "sensor.reading", "dev-1", 1),
			strdup("{\"specversion\":\"1.0\",\"id\":\"u2\",\"source\":\"/s\"}"),
			event("u0", "sensor.reading", "dev-1", 3),
			event("u3", "alarm.raised", "dev-2", 4)};
	char *other[] = {event("u9", "sensor.reading", "dev-1", 9)};
	es_delivery d[4] = {
		delivery(event("u0", "sensor.reading", "dev-1", 3), 0),
		batch_delivery("zstd,d1", "zstd,d1", good, 4),
		delivery(strdup("not zstd at all"), 0),
		batch_delivery("deflate", "zstd", other, 1), /* properties and topic disagree */
	};
	d[3].encoding = strdup("deflate");
	free(d[2].where);
	d[2].where = strdup("edgespool/site-1/gw-1/batch/ce=zstd");
	assert_int_equal(es_consumer_apply(c, d, 4), ES_OK);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.applied, 3); /* u0, u1, u3 */
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.invalid, 3);
	assert_int_equal(scalar(c, "SELECT count(*) FROM applied WHERE id IN ('u0','u1','u3')"), 3);
	assert_int_equal(scalar(c, "SELECT count(*) FROM applied WHERE id IN ('u2','u9')"), 0);
	assert_int_equal(scalar(c, "SELECT count(*) FROM deadletters WHERE reason LIKE '[1].type%'"
				   " AND origin LIKE '%/batch/ce=zstd,d1'"),
			 1);
	assert_int_equal(
		scalar(c, "SELECT count(*) FROM deadletters WHERE reason LIKE 'bad zstd%'"), 1);
	assert_int_equal(
		scalar(c,
		       "SELECT count(*) FROM deadletters"
		       " WHERE reason LIKE 'the properties say ''deflate'', the topic ''zstd''%'"),
		1);
	/* The log keeps each event's own text, not the batch's. */
	assert_int_equal(
		scalar(c, "SELECT count(*) FROM events WHERE body LIKE '{%\"id\":\"u3\"%}'"), 1);
	for (int i = 0; i < 4; i++)
		es_delivery_clear(&d[i]);
	es_consumer_free(c);
}

/* A handler's failure rolls back the whole batch: its own writes, the dedup
 * records, the log and the counters. The retry then applies each id once. */
static void failed_batch_rolls_back(void **state)
{
	(void)state;
	struct counter k = {0};
	es_consumer *c = open_consumer("rollback.db", 0, &k);
	apply_ids(c, 1, 2, ES_OK);
	k.fail_next = 1;
	/* ids 3..5: the handler fails on 3; nothing of the batch stays. */
	apply_ids(c, 3, 5, ES_EIO);
	assert_int_equal(scalar(c, "SELECT count(*) FROM applied"), 2);
	assert_int_equal(scalar(c, "SELECT count(*) FROM seen"), 2);
	assert_int_equal(scalar(c, "SELECT count(*) FROM events"), 2);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.applied, 2);
	apply_ids(c, 3, 5, ES_OK);
	assert_int_equal(scalar(c, "SELECT count(*) FROM applied WHERE n = 1"), 5);
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.applied, 5);
	assert_int_equal(st.duplicates, 0);
	es_consumer_free(c);
}

/* At most dedup_max ids are remembered, the oldest forgotten first; the
 * memory and the counters survive a reopen. */
static void dedup_is_bounded_and_persistent(void **state)
{
	(void)state;
	struct counter k = {0};
	es_consumer *c = open_consumer("dedup.db", 10, &k);
	apply_ids(c, 1, 30, ES_OK);
	assert_int_equal(scalar(c, "SELECT count(*) FROM seen"), 10);
	es_consumer_free(c);
	c = open_consumer("dedup.db", 10, &k);
	apply_ids(c, 21, 30, ES_OK); /* remembered: all duplicates */
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.applied, 30);
	assert_int_equal(st.duplicates, 10);
	apply_ids(c, 1, 1, ES_OK); /* forgotten: applied again */
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.applied, 31);
	assert_int_equal(scalar(c, "SELECT n FROM applied WHERE id = 'id-1'"), 2);
	assert_int_equal(scalar(c, "SELECT n FROM applied WHERE id = 'id-30'"), 1);
	es_consumer_free(c);
}

/* Holes in a source's sequence are counted, and kept across a reopen. */
static void sequence_holes_are_counted(void **state)
{
	(void)state;
	struct counter k = {0};
	es_consumer *c = open_consumer("holes.db", 0, &k);
	apply_ids(c, 1, 3, ES_OK);
	apply_ids(c, 7, 8, ES_OK); /* 4..6 missing */
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.holes_open, 1);
	assert_int_equal(st.missing, 3);
	es_consumer_free(c);
	c = open_consumer("holes.db", 0, &k);
	apply_ids(c, 5, 5, ES_OK);
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.missing, 2);
	es_consumer_free(c);
}

/* One event of source, alone in its batch. */
static void apply_from(es_consumer *c, const char *source, unsigned seq)
{
	char id[64];
	snprintf(id, sizeof id, "%s-%u", source, seq);
	es_delivery d = delivery(event_of(source, id, "sensor.reading", "dev-1", seq), 0);
	assert_int_equal(es_consumer_apply(c, &d, 1), ES_OK);
	es_delivery_clear(&d);
}

static int64_t row_of(es_consumer *c, const char *node)
{
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT rowid FROM gap_nodes WHERE node = '%s'", node);
	return scalar(c, sql);
}

/* The holes are one row per source, and a batch rewrites only the rows of
 * the sources it touched (a rewritten row gets a new rowid). */
static void holes_are_written_per_source(void **state)
{
	(void)state;
	struct counter k = {0};
	es_consumer *c = open_consumer("per-source.db", 0, &k);
	apply_from(c, "/site-1/gw-1", 1);
	apply_from(c, "/site-1/gw-1", 5); /* 2..4 missing */
	apply_from(c, "/site-1/gw-2", 1);
	assert_int_equal(scalar(c, "SELECT count(*) FROM gap_nodes"), 2);
	int64_t gw1 = row_of(c, "/site-1/gw-1"), gw2 = row_of(c, "/site-1/gw-2");
	apply_from(c, "/site-1/gw-2", 2);
	assert_int_equal(row_of(c, "/site-1/gw-1"), gw1);
	assert_true(row_of(c, "/site-1/gw-2") != gw2);
	apply_from(c, "/site-1/gw-1", 3);
	assert_true(row_of(c, "/site-1/gw-1") != gw1);
	es_consumer_free(c);
	c = open_consumer("per-source.db", 0, &k);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.holes_open, 2); /* 2 and 4 */
	assert_int_equal(st.missing, 2);
	es_consumer_free(c);
}

/* The holes due, polled until the gap tracker's grace period has passed. */
static size_t due(es_consumer *c, es_gap_request *r, size_t cap, size_t want)
{
	size_t n = 0;
	uint64_t deadline = es_clock_mono_ms() + 5000;
	while (n < want && es_clock_mono_ms() < deadline) {
		n += es_consumer_holes_due(c, r + n, cap - n);
		if (n < want)
			usleep(20000);
	}
	return n;
}

/* A range a node answers is gone is counted lost once, across a reopen,
 * and never asked for again; the rest of the hole still is. */
static void gone_is_lost_once(void **state)
{
	(void)state;
	struct counter k = {0};
	es_consumer *c = open_consumer("gone.db", 0, &k);
	apply_ids(c, 1, 3, ES_OK);
	apply_ids(c, 10, 10, ES_OK); /* 4..9 missing */
	assert_int_equal(es_consumer_gone(c, "/site-1/gw-1", 4, 7), ES_OK);
	assert_int_equal(es_consumer_gone(c, "/site-1/gw-1", 4, 7), ES_OK); /* again: no more */
	assert_int_equal(es_consumer_gone(c, "/nobody/else", 1, 2), ES_OK);
	assert_int_equal(es_consumer_gone(c, "/site-1/gw-1", 5, 4), ES_EINVAL);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.lost, 4);
	assert_int_equal(st.missing, 2);
	es_consumer_free(c);
	c = open_consumer("gone.db", 0, &k);
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.lost, 4);
	assert_int_equal(st.missing, 2);
	es_gap_request r[4];
	assert_int_equal(due(c, r, 4, 1), 1);
	assert_string_equal(r[0].node, "/site-1/gw-1");
	assert_int_equal(r[0].from, 8);
	assert_int_equal(r[0].to, 9);
	es_consumer_free(c);
}

/* A store of version 1 kept every source's holes in one text (meta
 * 'gaps'): it becomes one row per source, with the same holes. */
static void holes_of_one_text_are_adopted(void **state)
{
	(void)state;
	struct counter k = {0};
	char path[128];
	es_consumer *c = open_consumer("v1.db", 0, &k);
	es_consumer_free(c);
	db_path("v1.db", path, sizeof path);
	raw_exec(path, "DROP TABLE gap_nodes; DROP TABLE snapshot; PRAGMA user_version = 1;"
		       "INSERT INTO meta VALUES('gaps', 'esgap 1 2\n/site-1/gw-1 - 1 10 2 2-3 7"
		       "\n/site-1/gw-2 - 1 5 0\n');");
	c = open_consumer("v1.db", 0, &k);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.holes_open, 2);
	assert_int_equal(st.missing, 3);
	assert_int_equal(scalar(c, "SELECT count(*) FROM gap_nodes"), 2);
	assert_int_equal(scalar(c, "SELECT count(*) FROM meta WHERE key = 'gaps'"), 0);
	apply_from(c, "/site-1/gw-1", 7);
	es_consumer_free(c);
	c = open_consumer("v1.db", 0, &k);
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.missing, 2);
	es_consumer_free(c);
}

/* Rows that do not read (not ours) start the holes afresh, and for good:
 * they are dropped, so new rows never mix with them. */
static void unreadable_holes_start_afresh(void **state)
{
	(void)state;
	struct counter k = {0};
	char path[128];
	es_consumer *c = open_consumer("bad-holes.db", 0, &k);
	apply_from(c, "/site-1/gw-1", 1);
	apply_from(c, "/site-1/gw-1", 5);
	es_consumer_free(c);
	db_path("bad-holes.db", path, sizeof path);
	raw_exec(path, "INSERT INTO gap_nodes VALUES('/x', 'not a part')");
	c = open_consumer("bad-holes.db", 0, &k);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.missing, 0);
	assert_int_equal(scalar(c, "SELECT count(*) FROM gap_nodes"), 0);
	apply_from(c, "/site-1/gw-1", 9); /* tracking starts again here */
	es_consumer_free(c);
	c = open_consumer("bad-holes.db", 0, &k);
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.missing, 0);
	assert_int_equal(scalar(c, "SELECT count(*) FROM gap_nodes"), 1);
	es_consumer_free(c);
}

/* ---- the run loop against a fake source --------------------------------- */

struct fake {
	es_source base;
	es_consumer *c;
	const char **script; /* bodies; "LOST" makes next() say ES_ENOTCONN */
	size_t n, i;
	uint64_t tag;
	uint64_t acked[16];
	int64_t committed_at_ack[16]; /* rows in `applied` when each ack came */
	size_t nacks;
	size_t quiesced_at; /* script index when quiesce() came; 0: never */
};

static es_err fake_next(es_source *s, uint64_t wait_ms, es_delivery *out)
{
	struct fake *f = (struct fake *)s;
	(void)wait_ms;
	if (f->i == f->n) {
		es_consumer_stop(f->c);
		return ES_ETIMEDOUT;
	}
	const char *b = f->script[f->i++];
	if (strcmp(b, "LOST") == 0)
		return ES_ENOTCONN;
	if (strcmp(b, "PAUSE") == 0)
		return ES_ETIMEDOUT;
	if (strcmp(b, "STOP") == 0) {
		es_consumer_stop(f->c);
		return ES_ETIMEDOUT;
	}
	*out = delivery(strdup(b), ++f->tag);
	return ES_OK;
}

/* The rows an ack covers must already be committed: read them through a
 * connection of our own. */
static es_err fake_ack(es_source *s, uint64_t tag)
{
	struct fake *f = (struct fake *)s;
	char path[128];
	sqlite3 *db;
	sqlite3_stmt *st;
	db_path("run.db", path, sizeof path);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM applied", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	f->committed_at_ack[f->nacks] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	f->acked[f->nacks++] = tag;
	return ES_OK;
}

static void fake_where(es_source *s, char *url, size_t cap, uint64_t *failovers)
{
	(void)s;
	snprintf(url, cap, "fake");
	*failovers = 0;
}

static void fake_free(es_source *s)
{
	(void)s;
}

static void fake_quiesce(es_source *s)
{
	struct fake *f = (struct fake *)s;
	f->quiesced_at = f->i;
}

static const es_source_ops fake_ops = {.name = "fake",
				       .next = fake_next,
				       .ack = fake_ack,
				       .quiesce = fake_quiesce,
				       .where = fake_where,
				       .free = fake_free};

static void run_acks_after_commit(void **state)
{
	(void)state;
	char *e[6];
	for (unsigned i = 0; i < 6; i++) {
		char id[16];
		snprintf(id, sizeof id, "r-%u", i);
		e[i] = event(id, "sensor.reading", "dev-1", i + 1);
	}
	/* Batch 1: e0 e1 (then a pause ends it). Batch 2: e2 e3, then the
	 * connection is lost: dropped unapplied, never acked. Batch 3: e2 e3
	 * again (redelivered) and e4 e5 and e0 (a duplicate). */
	const char *script[] = {e[0], e[1], "PAUSE", e[2], e[3], "LOST",
				e[2], e[3], e[4],    e[5], e[0]};
	struct counter k = {0};
	es_consumer *c = open_consumer("run.db", 0, &k);
	struct fake f = {.base.ops = &fake_ops, .c = c, .script = script, .n = 11};
	assert_int_equal(es_consumer_run(c, &f.base), ES_OK);
	assert_int_equal(f.nacks, 2);
	assert_int_equal(f.acked[0], 2);
	assert_int_equal(f.committed_at_ack[0], 2);
	assert_int_equal(f.acked[1], 9); /* tags 3 and 4 were the lost connection's */
	assert_int_equal(f.committed_at_ack[1], 6);
	assert_int_equal(scalar(c, "SELECT count(*) FROM applied WHERE n = 1"), 6);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.applied, 6);
	assert_int_equal(st.duplicates, 1);
	es_consumer_free(c);
	for (unsigned i = 0; i < 6; i++)
		free(e[i]);
}

/* A stop finishes the batch, then quiesces the source and applies what it
 * had taken already (an MQTT client acknowledged those). */
static void stop_drains_what_was_taken(void **state)
{
	(void)state;
	char *e[3];
	for (unsigned i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "s-%u", i);
		e[i] = event(id, "sensor.reading", "dev-1", i + 1);
	}
	const char *script[] = {e[0], "STOP", e[1], e[2]};
	struct counter k = {0};
	es_consumer *c = open_consumer("run.db", 0, &k);
	assert_int_equal(sqlite3_exec(es_consumer_db(c), "DELETE FROM applied", NULL, NULL, NULL),
			 SQLITE_OK);
	struct fake f = {.base.ops = &fake_ops, .c = c, .script = script, .n = 4};
	assert_int_equal(es_consumer_run(c, &f.base), ES_OK);
	assert_int_equal(f.quiesced_at, 2); /* after the stop, before e1 */
	assert_int_equal(scalar(c, "SELECT count(*) FROM applied"), 3);
	es_consumer_free(c);
	for (unsigned i = 0; i < 3; i++)
		free(e[i]);
}

/* An asking source: records what is asked, answers "gone" for 3..4 with
 * the node's latest 5; after its script, idles until an answer was taken. */
struct asking {
	struct fake f;
	es_gap_request asked[8];
	size_t nasked;
	bool answered;
	uint64_t until_ms;
};

static es_err asking_next(es_source *s, uint64_t wait_ms, es_delivery *out)
{
	struct asking *a = (struct asking *)s;
	(void)wait_ms;
	if (a->f.i < a->f.n)
		return fake_next(s, wait_ms, out);
	if (a->answered || es_clock_mono_ms() > a->until_ms)
		es_consumer_stop(a->f.c);
	usleep(10000);
	return ES_ETIMEDOUT;
}

static es_err asking_ask(es_source *s, const char *node, uint64_t from, uint64_t to)
{
	struct asking *a = (struct asking *)s;
	assert_true(a->nasked < 8);
	es_gap_request *q = &a->asked[a->nasked++];
	snprintf(q->node, sizeof q->node, "%s", node);
	q->from = from;
	q->to = to;
	return ES_OK;
}

static bool asking_reply(es_source *s, es_source_reply *out)
{
	struct asking *a = (struct asking *)s;
	if (!a->nasked || a->answered)
		return false;
	a->answered = true;
	*out = (es_source_reply){.node = "/site-1/gw-1",
				 .r = {.from = 3,
				       .to = 4,
				       .status = ES_RESEND_GONE,
				       .gone_from = 3,
				       .gone_to = 4,
				       .latest_seq = 5}};
	snprintf(out->r.request_id, sizeof out->r.request_id, "c-1");
	return true;
}

static es_err asking_ack(es_source *s, uint64_t tag)
{
	(void)s;
	(void)tag;
	return ES_OK;
}

static const es_source_ops asking_ops = {.name = "asking",
					 .next = asking_next,
					 .ack = asking_ack,
					 .where = fake_where,
					 .ask = asking_ask,
					 .reply = asking_reply,
					 .free = fake_free};

/* With es_consumer_ask_source, a hole is asked for through the source (not
 * before it is due, and never by the apply itself), and a range answered
 * gone is counted lost once: no hole left, not asked again. */
static void run_asks_through_the_source(void **state)
{
	(void)state;
	char *e[3];
	unsigned seqs[3] = {1, 2, 5};
	for (unsigned i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "a-%u", i);
		e[i] = event(id, "sensor.reading", "dev-1", seqs[i]);
	}
	const char *script[] = {e[0], e[1], e[2]};
	struct counter k = {0};
	es_consumer *c = open_consumer("ask.db", 0, &k);
	assert_int_equal(es_consumer_ask_source(c, true), ES_OK);
	struct asking a = {.f = {.base.ops = &asking_ops, .c = c, .script = script, .n = 3},
			   .until_ms = es_clock_mono_ms() + 8000};
	assert_int_equal(es_consumer_run(c, &a.f.base), ES_OK);
	assert_int_equal(a.nasked, 1);
	assert_string_equal(a.asked[0].node, "/site-1/gw-1");
	assert_int_equal(a.asked[0].from, 3);
	assert_int_equal(a.asked[0].to, 4);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.applied, 3);
	assert_int_equal(st.lost, 2);
	assert_int_equal(st.holes_open, 0);
	es_gap_request r[2];
	assert_int_equal(es_consumer_holes_due(c, r, 2), 0);
	es_consumer_free(c);
	for (unsigned i = 0; i < 3; i++)
		free(e[i]);
}

/* Rebuild: the reset runs, then the log is re-applied in order. */
static int resets;
static es_err count_reset(void *arg)
{
	struct counter *k = arg;
	resets++;
	return sqlite3_exec(es_consumer_db(k->c), "DELETE FROM applied", NULL, NULL, NULL) ==
			       SQLITE_OK
		       ? ES_OK
		       : ES_EIO;
}

static void rebuild_replays_the_log(void **state)
{
	(void)state;
	struct counter k = {0};
	es_consumer *c = open_consumer("rebuild.db", 0, &k);
	assert_int_equal(es_consumer_on_reset(c, count_reset, &k), ES_OK);
	apply_ids(c, 1, 20, ES_OK);
	apply_ids(c, 5, 9, ES_OK); /* duplicates: not in the log */
	es_consumer_rebuilt r;
	assert_int_equal(es_consumer_rebuild(c, false, &r), ES_OK);
	assert_int_equal(r.applied, 20);
	assert_int_equal(r.snapshot_n, 0);
	assert_int_equal(resets, 1);
	assert_int_equal(scalar(c, "SELECT count(*) FROM applied WHERE n = 1"), 20);
	es_consumer_free(c);
}

/* Runs sql on a file with SQLite's own connection. */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* A store written before stores were marked and versioned (no mark, user
 * version 0, tables made with IF NOT EXISTS) opens with its checkpoint and
 * dedup memory, and is marked "ESC1", version 1. */
static void unmarked_store_is_adopted(void **state)
{
	(void)state;
	char path[128];
	db_path("old.db", path, sizeof path);
	raw_exec(path, "CREATE TABLE seen(id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);"
		       "CREATE INDEX seen_at ON seen(at_ms);"
		       "CREATE TABLE events(n INTEGER PRIMARY KEY, id TEXT NOT NULL,"
		       " type TEXT NOT NULL, source TEXT NOT NULL, seq INTEGER NOT NULL,"
		       " at_ms INTEGER NOT NULL, body TEXT NOT NULL);"
		       "CREATE TABLE deadletters(n INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL,"
		       " origin TEXT NOT NULL, reason TEXT NOT NULL, body BLOB);"
		       "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
		       "CREATE TABLE applied(id TEXT PRIMARY KEY, n);"
		       "INSERT INTO meta VALUES('applied', 3);"
		       "INSERT INTO seen VALUES('id-1', 1);");
	es_consumer_opts o = {.path = path, .keep_log = true};
	es_consumer *c;
	assert_int_equal(es_consumer_new(&o, &c), ES_OK);
	es_consumer_stats st;
	es_consumer_stats_get(c, &st);
	assert_int_equal(st.applied, 3);
	struct counter k = {.c = c};
	assert_int_equal(es_consumer_on(c, "#", count_handler, &k), ES_OK);
	apply_ids(c, 1, 2, ES_OK); /* id-1 is remembered */
	assert_int_equal(k.calls, 1);
	es_consumer_free(c);
	assert_int_equal(raw_int(path, "PRAGMA application_id"), 0x45534331);
	assert_int_equal(raw_int(path, "PRAGMA user_version"), 2);
}

/* Another application's file, or a store from a newer version, is refused
 * and left as it was. */
static void foreign_or_newer_store_is_refused(void **state)
{
	(void)state;
	char path[128];
	es_consumer *c = NULL;
	db_path("theirs.db", path, sizeof path);
	raw_exec(path, "CREATE TABLE theirs(x); PRAGMA application_id = 7;");
	es_consumer_opts o = {.path = path};
	assert_int_equal(es_consumer_new(&o, &c), ES_ECORRUPT);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_schema"), 1);
	db_path("newer.db", path, sizeof path);
	raw_exec(path, "PRAGMA application_id = 1163084593; PRAGMA user_version = 9;");
	o.path = path;
	assert_int_equal(es_consumer_new(&o, &c), ES_EVERSION);
	assert_int_equal(raw_int(path, "PRAGMA user_version"), 9);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(patterns_match_words),
		cmocka_unit_test(bad_patterns_are_refused),
		cmocka_unit_test(amqp_urls_are_checked),
		cmocka_unit_test(uplink_batches_event_by_event),
		cmocka_unit_test(duplicates_and_invalid_in_one_batch),
		cmocka_unit_test(failed_batch_rolls_back),
		cmocka_unit_test(dedup_is_bounded_and_persistent),
		cmocka_unit_test(sequence_holes_are_counted),
		cmocka_unit_test(holes_are_written_per_source),
		cmocka_unit_test(gone_is_lost_once),
		cmocka_unit_test(holes_of_one_text_are_adopted),
		cmocka_unit_test(unreadable_holes_start_afresh),
		cmocka_unit_test(run_acks_after_commit),
		cmocka_unit_test(stop_drains_what_was_taken),
		cmocka_unit_test(run_asks_through_the_source),
		cmocka_unit_test(rebuild_replays_the_log),
		cmocka_unit_test(unmarked_store_is_adopted),
		cmocka_unit_test(foreign_or_newer_store_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
