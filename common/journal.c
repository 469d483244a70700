/* journal.c - a journal's life: open (check, migrate, load the state,
 * prepare the writer's statements, start the writer), close, and the
 * figures any thread may read. The schema lives here.
 *
 * The module's other jobs are in the journal_*.c files (journal_int.h lists
 * them); SQLite is opened and tuned by the adapter (db.h).
 */
#include "journal_int.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Migration i brings user_version from i to i + 1. Append only. */
static const char *const migrations[] = {
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE events("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  type TEXT NOT NULL,"
	"  subject TEXT,"
	"  journaled_ms INTEGER NOT NULL,"
	"  body BLOB NOT NULL);"
	"PRAGMA application_id = 1163087921;", /* APPLICATION_ID, 0x45535031 */
	/* 2: a bridge's inbox keeps each event's origin node and sequence, and
	 * what could not be forwarded. */
	"ALTER TABLE events ADD COLUMN origin TEXT;"
	"ALTER TABLE events ADD COLUMN origin_seq INTEGER;"
	"CREATE INDEX events_origin ON events(origin, origin_seq) WHERE origin IS NOT NULL;"
	"CREATE TABLE deadletters("
	"  id INTEGER PRIMARY KEY,"
	"  received_ms INTEGER NOT NULL,"
	"  topic TEXT NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  payload BLOB NOT NULL);",
	/* 3: this node's own events are stored with type '' and subject NULL,
	 * both read from the body (journal_int.h, ES_JNL_ROW_COLUMNS). Nothing
	 * to change in the file: the version tells an older program the rows
	 * are not for it. */
	"SELECT 1;",
};

/* Journals made before the mark existed: ours if they have our tables. */
static bool adopt(es_db *db, uint64_t version)
{
	uint64_t ours = 0;
	return version > 0 &&
	       es_db_query_u64(db,
			       "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
			       "name IN ('meta', 'events')",
			       &ours) == ES_OK &&
	       ours == 2;
}

const es_db_schema es_jnl_schema = {
	.application_id = APPLICATION_ID,
	.migrations = migrations,
	.count = sizeof migrations / sizeof migrations[0],
	.adopt = adopt,
};

static const char *const stmt_sql[S_COUNT_] = {
	[S_INSERT] = "INSERT INTO events(seq, id, type, subject, journaled_ms, body, origin, "
		     "origin_seq) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_DEADLETTER] = "INSERT INTO deadletters(received_ms, topic, reason, payload) "
			 "VALUES(?1, ?2, ?3, ?4)",
	[S_PUT] = "INSERT INTO meta(key, value) VALUES(?1, ?2) "
		  "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	/* Dead letters are kept for inspection, the newest DEADLETTERS_KEPT. */
	[S_PRUNE_DEAD] = "DELETE FROM deadletters WHERE id <= "
			 "(SELECT max(id) FROM deadletters) - ?1",
	[S_FIND_ID] = "SELECT seq FROM events WHERE id = ?1",
	/* The newest sequence ever given, and the ack watermark. */
	[S_SET_LAST] = "INSERT INTO meta(key, value) VALUES('last_seq', ?1), ('acked_seq', ?2) "
		       "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[S_PAGES] = "PRAGMA page_count",
	[S_FREEPAGES] = "PRAGMA freelist_count",
	[S_OLDEST] = "SELECT min(seq) FROM events",
	/* The first row in [?1, ?2] that must stay: pending (above the
	 * watermark ?4), or journaled after ?3. */
	[S_FIRST_KEEP] = "SELECT seq FROM events WHERE seq BETWEEN ?1 AND ?2 "
			 "AND (seq > ?4 OR journaled_ms > ?3) ORDER BY seq LIMIT 1",
	[S_DELETE_BELOW] = "DELETE FROM events WHERE seq < ?1",
};

/* ---- the state in the file ---------------------------------------------- */

es_err es_jnl_meta_text(es_db *db, const char *key, char *buf, size_t cap)
{
	sqlite3_stmt *st;
	es_err err = es_db_stmt(db, "SELECT value FROM meta WHERE key = ?1", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	err = ES_ENOTFOUND;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
		err = ES_OK;
	}
	es_db_release(db, st);
	return err;
}

/* Gives a new journal its id; reads it back either way. */
static es_err ensure_journal_id(es_journal *j)
{
	es_uuid u;
	char text[ES_UUID_STR];
	sqlite3_stmt *st;
	es_err err = es_uuid4(&u);
	if (!err)
		err = es_db_stmt(j->db, "INSERT OR IGNORE INTO meta(key, value) VALUES(?1, ?2)",
				 &st);
	if (err)
		return err;
	es_uuid_format(&u, text);
	sqlite3_bind_text(st, 1, "journal_id", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
	err = es_db_step_done(j->db, st);
	es_db_release(j->db, st);
	if (err)
		return err;
	return es_jnl_meta_text(j->db, "journal_id", j->journal_id, sizeof j->journal_id);
}

/* next_seq continues after both the newest row and the recorded last_seq, so
 * a sequence is never reused even when retention emptied the table. The ack
 * watermark comes from meta: nothing is counted at start-up, however long
 * the backlog. */
static es_err load_state(es_journal *j)
{
	uint64_t max_row, last = 0, acked = 0;
	char text[32];
	es_err err = es_db_query_u64(j->db, "SELECT max(seq) FROM events", &max_row);
	if (err)
		return err;
	if (es_jnl_meta_text(j->db, "last_seq", text, sizeof text) == ES_OK)
		last = strtoull(text, NULL, 10);
	if (es_jnl_meta_text(j->db, "acked_seq", text, sizeof text) == ES_OK)
		acked = strtoull(text, NULL, 10);
	j->next_seq = (max_row > last ? max_row : last) + 1;
	if (acked >= j->next_seq) {
		es_error(TAG, "ack watermark %" PRIu64 " is past the newest sequence %" PRIu64,
			 acked, j->next_seq - 1);
		return ES_ECORRUPT;
	}
	j->acked_db = j->acked_mem = acked;
	atomic_store(&j->acked_seq, acked);
	atomic_store(&j->pending, j->next_seq - 1 - acked);
	atomic_store(&j->latest_seq, j->next_seq - 1);
	return ES_OK;
}

/* The writer's statements, taken from the cache for good. */
static es_err prepare_all(es_journal *j)
{
	for (int i = 0; i < S_COUNT_; i++) {
		es_err err = es_db_stmt(j->db, stmt_sql[i], &j->st[i]);
		if (err)
			return err;
	}
	return ES_OK;
}

/* ---- opening and closing ------------------------------------------------ */

static es_err check_opts(const es_journal_opts *o)
{
	if (!o || !o->path || !*o->path || !o->source || !*o->source)
		return ES_EINVAL;
	return ES_OK;
}

static es_err setup(es_journal *j)
{
	j->page_size = j->o.page_size ? j->o.page_size : ES_DB_PAGE_SIZE;
	es_jnl_shares(j);
	es_db_opts o = {.path = j->path,
			.tag = TAG,
			.sync_full = j->o.sync == ES_SYNC_FULL,
			.schema = &es_jnl_schema,
			.page_size = j->o.page_size,
			.wal_max = j->wal_share};
	es_err err = es_db_open(&o, &j->db);
	if (!err) {
		j->page_size = es_db_page_size(j->db); /* the file's, if it had one */
		es_jnl_shares(j);
		err = ensure_journal_id(j);
	}
	if (!err)
		err = load_state(j);
	if (!err)
		err = prepare_all(j);
	if (!err)
		err = es_uuid7_gen_new(&j->ids);
	return err;
}

static void teardown(es_journal *j)
{
	if (j->db) {
		/* Fold the WAL back so the file alone is the journal. */
		es_db_checkpoint(j->db);
		es_db_close(j->db);
	}
	es_uuid7_gen_free(j->ids);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->work);
	pthread_cond_destroy(&j->done);
	free(j->acks);
	es_jnl_ops_free(j->ops);
	es_seqset_free(&j->ooo);
	free(j->scratch);
	pthread_mutex_destroy(&j->id_lock);
	free(j->path);
	free(j->source);
	free(j);
}

es_err es_journal_open(const es_journal_opts *opts, es_journal **out)
{
	if (check_opts(opts))
		return ES_EINVAL;
	es_journal *j = calloc(1, sizeof *j);
	if (!j)
		return ES_ENOMEM;
	es_seqset_init(&j->ooo, OOO_MAX);
	j->o = *opts;
	if (!j->o.batch_max)
		j->o.batch_max = DEFAULT_BATCH;
	if (!j->o.max_event_bytes)
		j->o.max_event_bytes = ES_EVENT_MAX_BYTES_DEFAULT;
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->id_lock, NULL);
	pthread_cond_init(&j->work, NULL);
	pthread_cond_init(&j->done, NULL);
	j->path = strdup(opts->path);
	j->source = strdup(opts->source);
	es_err err = j->path && j->source ? setup(j) : ES_ENOMEM;
	if (!err && pthread_create(&j->thread, NULL, es_jnl_writer_main, j) != 0)
		err = ES_ESYS;
	if (err) {
		teardown(j);
		return err;
	}
	j->thread_started = true;
	j->o.path = j->path;
	j->o.source = j->source;
	es_info(TAG, "opened %s: journal %s, next sequence %" PRIu64 ", %" PRIu64 " pending",
		j->path, j->journal_id, j->next_seq, atomic_load(&j->pending));
	*out = j;
	return ES_OK;
}

void es_journal_close(es_journal *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->closing = true;
	pthread_cond_signal(&j->work);
	pthread_mutex_unlock(&j->lock);
	if (j->thread_started)
		pthread_join(j->thread, NULL);
	/* Producers woken by the last batch may still be on their way out. */
	pthread_mutex_lock(&j->lock);
	while (j->appenders)
		pthread_cond_wait(&j->done, &j->lock);
	pthread_mutex_unlock(&j->lock);
	teardown(j);
}

/* ---- figures ------------------------------------------------------------ */

void es_journal_on_wait(es_journal *j, void (*fn)(void *ctx, double seconds), void *ctx)
{
	pthread_mutex_lock(&j->lock);
	j->on_wait = fn;
	j->wait_ctx = ctx;
	pthread_mutex_unlock(&j->lock);
}

void es_journal_counters_get(const es_journal *j, es_journal_counters *out)
{
	es_journal *m = (es_journal *)j; /* atomics: loads only */
	*out = (es_journal_counters){
		.appended = atomic_load(&m->appended),
		.duplicates = atomic_load(&m->duplicates),
		.refused_full = atomic_load(&m->refused_full),
		.evicted = atomic_load(&m->evicted),
		.expired = atomic_load(&m->expired),
		.acked = atomic_load(&m->acked),
		.commits = atomic_load(&m->commits),
		.errors = atomic_load(&m->errors),
		.pending = atomic_load(&m->pending),
		.latest_seq = atomic_load(&m->latest_seq),
		.acked_seq = atomic_load(&m->acked_seq),
	};
}

bool es_journal_writable(const es_journal *j)
{
	return !atomic_load(&((es_journal *)j)->failing);
}

void es_journal_last_error(es_journal *j, char *buf, size_t cap)
{
	pthread_mutex_lock(&j->lock);
	snprintf(buf, cap, "%s", j->last_error);
	pthread_mutex_unlock(&j->lock);
}

const char *es_journal_id(const es_journal *j)
{
	return j->journal_id;
}
