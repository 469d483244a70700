/* journal.c - the SQLite adapter: the only file that includes <sqlite3.h>.
 *
 * Threads: the writer thread owns `db` and every prepared statement on it,
 * next_seq and the id generator. Producers and the publisher talk to it
 * through the queue below.
 *
 * Lock `lock` guards: head, tail, acks/nacks/capacks, closing, every
 * request's `done` and `err`, appenders, ack_gen_queued, ack_gen_done and
 * last_error. Counters are
 * atomics so readers need no lock.
 */
#include "journal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "log.h"

#define TAG		  "journal"
#define DEFAULT_BATCH	  4096
#define PRUNE_CHUNK	  1000	     /* rows removed at most per retention step */
#define EVICT_CHUNK	  16	     /* rows removed at most per step to make room */
#define APPLICATION_ID	  0x45535031 /* "ESP1" in the file header: a journal */
#define MAINTAIN_EVERY_MS 1000
#define DEADLETTERS_KEPT  100000
/* Acks above the watermark kept at most (an ack beyond is a re-publish). */
#define OOO_MAX (1u << 20)

/* One event as the writer inserts it, made ready in its producer's thread.
 * A node's own event is stamped and encoded there without its sequence
 * (`open`: the writer appends ,"sequence":"N"}); a forwarded one is stored
 * verbatim with its origin. */
struct prepared {
	const char *id, *type, *subject; /* borrowed from the event or item */
	const char *origin;		 /* NULL for this node's own events */
	uint64_t origin_seq;
	const char *body;
	size_t len;
	char *owned; /* body, when it was made here */
	bool open;
	bool fresh; /* its id was made here just now: no duplicate possible */
};

/* A write that rides along with the next transaction, like an ack. */
struct op {
	enum { OP_DEADLETTER, OP_PUT } kind;
	char *topic, *reason; /* OP_DEADLETTER */
	char *key;	      /* OP_PUT */
	void *blob;
	size_t len;
	uint64_t ms;
	struct op *next;
};

static void free_op(struct op *o);

struct request {
	struct prepared *prep;
	size_t n;
	const es_journal_kv *kv; /* written with the events, atomically */
	size_t nkv;
	es_append_result *res;
	es_err err;
	bool done;
	struct request *next;
};

/* What one transaction of the writer does. */
struct batch {
	struct request *reqs; /* a chain taken from the queue */
	uint64_t *acks;
	size_t nacks;
	uint64_t ack_gen;
	struct op *ops; /* dead letters and puts */
	uint64_t acked; /* sequences newly acknowledged */
	size_t advance; /* how far the watermark moves */
};

enum stmt_id {
	S_INSERT,
	S_FIND_ID,
	S_SET_LAST,
	S_PAGES,
	S_FREEPAGES,
	S_OLDEST,
	S_FIRST_KEEP,
	S_DELETE_BELOW,
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_DEADLETTER,
	S_PUT,
	S_PRUNE_DEAD,
	S_COUNT_
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
	/* Prepared once: the writer runs these thousands of times a second. */
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT req",
	[S_RELEASE] = "RELEASE req",
	[S_ROLLBACK_TO] = "ROLLBACK TO req",
};

struct es_journal {
	es_journal_opts o;
	char *path, *source;
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT_];
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t work, done;
	pthread_mutex_t id_lock; /* guards ids: producers make their own ids */
	struct request *head, *tail;
	uint64_t *acks;
	size_t nacks, capacks;
	bool closing;
	unsigned appenders; /* threads inside es_journal_append */
	struct op *ops;	    /* queued dead letters and puts */
	uint64_t ack_gen_queued, ack_gen_done;
	char last_error[160];

	/* writer thread only */
	uint64_t next_seq;
	uint64_t acked_db; /* the ack watermark as of the last commit */
	char *scratch;	   /* where bodies are finished */
	size_t capscratch;
	bool synced;   /* the connection is at synchronous=FULL now */
	uint64_t *ooo; /* acked sequences above the watermark, sorted */
	size_t nooo, capooo;
	uint64_t page_size;
	uint64_t last_maintain_ms;
	es_uuid7_gen *ids;

	char journal_id[ES_UUID_STR];
	_Atomic uint64_t appended, duplicates, refused_full, evicted, expired, acked, commits,
		errors, pending, latest_seq, acked_seq;
	atomic_bool failing;
};

struct es_journal_reader {
	sqlite3 *db;
	sqlite3_stmt *read_st; /* es_journal_read's query, prepared once */
	bool read_busy;	       /* in use (a callback reading again gets its own) */
	es_journal *j;	       /* NULL when opened by path */
	char *path;
};

/* ---- SQLite helpers ----------------------------------------------------- */

/* A row count as SQLite's int64 (size_t is 32 bits on some targets). */
static sqlite3_int64 sql_limit(size_t limit)
{
#if SIZE_MAX > INT64_MAX
	if (limit > INT64_MAX)
		return INT64_MAX;
#endif
	return (sqlite3_int64)limit;
}

/* Translates a SQLite result code, logging it with what was being done. */
static es_err sql_err(sqlite3 *db, int rc, const char *what)
{
	es_error(TAG, "%s: %s (sqlite %d: %s)", what, sqlite3_errstr(rc), rc,
		 db ? sqlite3_errmsg(db) : "-");
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return ES_EFULL;
	case SQLITE_NOMEM:
		return ES_ENOMEM;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return ES_ECORRUPT;
	case SQLITE_CANTOPEN:
		return ES_ENOTFOUND;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return ES_EBUSY;
	default:
		return ES_EIO;
	}
}

static es_err exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		return ES_OK;
	es_err err = sql_err(db, rc, sql);
	sqlite3_free(msg);
	return err;
}

/* Runs a one-row query returning an integer into *out (0 for NULL). */
static es_err query_u64(sqlite3 *db, const char *sql, uint64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(db, rc, sql);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		*out = 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : sql_err(db, rc, sql);
}

/* Steps a prepared statement that yields at most one integer. */
static es_err step_u64(sqlite3 *db, sqlite3_stmt *st, uint64_t *out, bool *found)
{
	int rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
	if (*found)
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : sql_err(db, rc, sqlite3_sql(st));
}

static es_err step_done(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? ES_OK : sql_err(db, rc, sqlite3_sql(st));
}

/* Runs one of the writer's prepared statements that return no rows. */
static es_err run(es_journal *j, enum stmt_id id)
{
	return step_done(j->db, j->st[id]);
}

/* ---- schema ------------------------------------------------------------ */

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
};
#define SCHEMA_VERSION (sizeof migrations / sizeof migrations[0])

static es_err set_meta_text(sqlite3 *db, const char *key, const char *value)
{
	sqlite3_stmt *st;
	const char *sql = "INSERT OR IGNORE INTO meta(key, value) VALUES(?1, ?2)";
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(db, rc, sql);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	es_err err = step_done(db, st);
	sqlite3_finalize(st);
	return err;
}

static es_err get_meta_text(sqlite3 *db, const char *key, char *buf, size_t cap)
{
	sqlite3_stmt *st;
	const char *sql = "SELECT value FROM meta WHERE key = ?1";
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(db, rc, sql);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	es_err err = ES_ENOTFOUND;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
		snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
		err = ES_OK;
	}
	sqlite3_finalize(st);
	return err;
}

/* Applies every migration above the file's version, each in its own
 * transaction together with its user_version bump. */
static es_err migrate(sqlite3 *db)
{
	uint64_t v;
	es_err err = query_u64(db, "PRAGMA user_version", &v);
	if (err)
		return err;
	if (v > SCHEMA_VERSION) {
		es_error(TAG, "schema version %" PRIu64 " is newer than this program's %zu", v,
			 (size_t)SCHEMA_VERSION);
		return ES_EVERSION;
	}
	for (; v < SCHEMA_VERSION; v++) {
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %" PRIu64, v + 1);
		if ((err = exec(db, "BEGIN IMMEDIATE")) || (err = exec(db, migrations[v])) ||
		    (err = exec(db, bump)) || (err = exec(db, "COMMIT"))) {
			exec(db, "ROLLBACK");
			return err;
		}
		es_info(TAG, "schema migrated to version %" PRIu64, v + 1);
	}
	return ES_OK;
}

/* Gives a new journal its id; reads it back either way. */
static es_err ensure_journal_id(es_journal *j)
{
	es_uuid u;
	char text[ES_UUID_STR];
	es_err err = es_uuid4(&u);
	if (err)
		return err;
	es_uuid_format(&u, text);
	if ((err = set_meta_text(j->db, "journal_id", text)))
		return err;
	return get_meta_text(j->db, "journal_id", j->journal_id, sizeof j->journal_id);
}

static es_err configure(es_journal *j)
{
	char sql[160];
	es_err err = exec(j->db, "PRAGMA journal_mode = WAL");
	if (err)
		return err;
	snprintf(sql, sizeof sql, "PRAGMA synchronous = %s",
		 j->o.sync == ES_SYNC_FULL ? "FULL" : "NORMAL");
	if ((err = exec(j->db, sql)))
		return err;
	j->synced = j->o.sync == ES_SYNC_FULL;
	/* Keep the WAL from growing without bound between checkpoints. */
	if ((err = exec(j->db, "PRAGMA journal_size_limit = 16777216")))
		return err;
	if ((err = exec(j->db, "PRAGMA cache_size = -2048")))
		return err;
	return query_u64(j->db, "PRAGMA page_size", &j->page_size);
}

/* next_seq continues after both the newest row and the recorded last_seq, so
 * a sequence is never reused even when retention emptied the table. The ack
 * watermark comes from meta: nothing is counted at start-up, however long
 * the backlog. */
static es_err load_state(es_journal *j)
{
	uint64_t max_row, last = 0, acked = 0;
	char text[32];
	es_err err = query_u64(j->db, "SELECT max(seq) FROM events", &max_row);
	if (err)
		return err;
	if (get_meta_text(j->db, "last_seq", text, sizeof text) == ES_OK)
		last = strtoull(text, NULL, 10);
	if (get_meta_text(j->db, "acked_seq", text, sizeof text) == ES_OK)
		acked = strtoull(text, NULL, 10);
	j->next_seq = (max_row > last ? max_row : last) + 1;
	if (acked >= j->next_seq) {
		es_error(TAG, "ack watermark %" PRIu64 " is past the newest sequence %" PRIu64,
			 acked, j->next_seq - 1);
		return ES_ECORRUPT;
	}
	j->acked_db = acked;
	atomic_store(&j->acked_seq, acked);
	atomic_store(&j->pending, j->next_seq - 1 - acked);
	atomic_store(&j->latest_seq, j->next_seq - 1);
	return ES_OK;
}

static es_err prepare_all(es_journal *j)
{
	for (int i = 0; i < S_COUNT_; i++) {
		int rc = sqlite3_prepare_v3(j->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &j->st[i], NULL);
		if (rc != SQLITE_OK)
			return sql_err(j->db, rc, stmt_sql[i]);
	}
	return ES_OK;
}

static es_err open_db(const char *path, int flags, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		es_err err = sql_err(db, rc, path);
		sqlite3_close(db);
		return err;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_extended_result_codes(db, 1);
	*out = db;
	return ES_OK;
}

/* ---- writer: room under the cap ---------------------------------------- */

static es_err used_bytes(es_journal *j, uint64_t *out)
{
	uint64_t pages, free_pages;
	bool found;
	es_err err = step_u64(j->db, j->st[S_PAGES], &pages, &found);
	if (!err)
		err = step_u64(j->db, j->st[S_FREEPAGES], &free_pages, &found);
	if (!err)
		*out = (pages - free_pages) * j->page_size;
	return err;
}

/* Deletes the oldest acked rows that may go: those journaled at or before
 * cut_ms (UINT64_MAX: any acked row), at most chunk of them, stopping at the
 * first row that must stay so the kept range stays contiguous. *deleted gets
 * the count. */
static es_err prune_step(es_journal *j, uint64_t cut_ms, uint64_t chunk, uint64_t *deleted)
{
	uint64_t oldest, keep;
	bool found;
	*deleted = 0;
	es_err err = step_u64(j->db, j->st[S_OLDEST], &oldest, &found);
	if (err || !found)
		return err;
	sqlite3_stmt *st = j->st[S_FIRST_KEEP];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)oldest);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)(oldest + chunk - 1));
	sqlite3_bind_int64(st, 3, cut_ms > INT64_MAX ? INT64_MAX : (sqlite3_int64)cut_ms);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)j->acked_db);
	if ((err = step_u64(j->db, st, &keep, &found)))
		return err;
	if (!found)
		keep = oldest + chunk;
	if (keep <= oldest)
		return ES_OK;
	sqlite3_bind_int64(j->st[S_DELETE_BELOW], 1, (sqlite3_int64)keep);
	if ((err = step_done(j->db, j->st[S_DELETE_BELOW])))
		return err;
	*deleted = (uint64_t)sqlite3_changes(j->db);
	return ES_OK;
}

/* Makes room for `need` more bytes under the cap, evicting acked rows when the
 * policy allows. ES_EFULL when there is no room. */
static es_err make_room(es_journal *j, uint64_t need)
{
	if (!j->o.max_bytes)
		return ES_OK;
	for (;;) {
		uint64_t used, deleted;
		es_err err = used_bytes(j, &used);
		if (err)
			return err;
		if (used + need <= j->o.max_bytes)
			return ES_OK;
		if (j->o.on_full != ES_ON_FULL_EVICT)
			return ES_EFULL;
		if ((err = prune_step(j, UINT64_MAX, EVICT_CHUNK, &deleted)))
			return err;
		if (deleted == 0)
			return ES_EFULL;
		atomic_fetch_add(&j->evicted, deleted);
	}
}

/* ---- writer: appending -------------------------------------------------- */

static es_err find_id(es_journal *j, const char *id, uint64_t *seq, bool *found)
{
	sqlite3_stmt *st = j->st[S_FIND_ID];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	es_err err = step_u64(j->db, st, seq, found);
	sqlite3_clear_bindings(st);
	return err;
}

static void bind_text_or_null(sqlite3_stmt *st, int col, const char *text)
{
	if (text)
		sqlite3_bind_text(st, col, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, col);
}

static es_err insert_row(es_journal *j, const struct prepared *p, uint64_t now, const char *body,
			 size_t len)
{
	sqlite3_stmt *st = j->st[S_INSERT];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)j->next_seq);
	sqlite3_bind_text(st, 2, p->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, p->type, -1, SQLITE_STATIC);
	bind_text_or_null(st, 4, p->subject);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)now);
	sqlite3_bind_blob(st, 6, body, (int)len, SQLITE_STATIC);
	bind_text_or_null(st, 7, p->origin);
	if (p->origin)
		sqlite3_bind_int64(st, 8, (sqlite3_int64)p->origin_seq);
	else
		sqlite3_bind_null(st, 8);
	es_err err = step_done(j->db, st);
	sqlite3_clear_bindings(st);
	return err;
}

/* Appends ,"sequence":"N"} to p->body in the writer's scratch buffer. */
static es_err finish_body(es_journal *j, const struct prepared *p, size_t *len)
{
	char tail[40];
	int t = snprintf(tail, sizeof tail, ",\"sequence\":\"%" PRIu64 "\"}", j->next_seq);
	size_t need = p->len + (size_t)t + 1;
	if (need > j->capscratch) {
		char *grown = realloc(j->scratch, need);
		if (!grown)
			return ES_ENOMEM;
		j->scratch = grown;
		j->capscratch = need;
	}
	memcpy(j->scratch, p->body, p->len);
	memcpy(j->scratch + p->len, tail, (size_t)t + 1);
	*len = need - 1;
	return *len > j->o.max_event_bytes ? ES_ETOOBIG : ES_OK;
}

/* Inserts one prepared event with the next sequence; an id already
 * journaled is reported as a duplicate instead. */
static es_err append_one(es_journal *j, const struct prepared *p, uint64_t now,
			 es_append_result *res)
{
	bool found = false;
	const char *body = p->body;
	size_t len = p->len;
	es_err err = p->fresh ? ES_OK : find_id(j, p->id, &res->seq, &found);
	if (err)
		return err;
	res->duplicate = found;
	snprintf(res->id, sizeof res->id, "%s", p->id);
	if (found)
		return ES_OK;
	if (p->open) {
		if ((err = finish_body(j, p, &len)))
			return err;
		body = j->scratch;
	} else if (len > j->o.max_event_bytes) {
		return ES_ETOOBIG;
	}
	if ((err = insert_row(j, p, now, body, len)))
		return err;
	res->seq = j->next_seq++;
	return ES_OK;
}

static es_err put_kv(es_journal *j, const es_journal_kv *kv)
{
	sqlite3_stmt *st = j->st[S_PUT];
	sqlite3_bind_text(st, 1, kv->key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, kv->value, (int)kv->len, SQLITE_STATIC);
	es_err err = step_done(j->db, st);
	sqlite3_clear_bindings(st);
	return err;
}

static es_err insert_all(es_journal *j, struct request *r, uint64_t now)
{
	es_err err = run(j, S_SAVEPOINT);
	for (size_t i = 0; i < r->n && !err; i++)
		err = append_one(j, &r->prep[i], now, &r->res[i]);
	for (size_t i = 0; i < r->nkv && !err; i++)
		err = put_kv(j, &r->kv[i]);
	return err;
}

static void undo_request(es_journal *j, uint64_t first_seq)
{
	run(j, S_ROLLBACK_TO);
	run(j, S_RELEASE);
	j->next_seq = first_seq;
}

/* One request inside the group transaction, under its own savepoint so a
 * failure leaves the others intact. The cap is checked exactly: insert, look
 * at the used size, and if it went over, undo, make room (evict policy) and
 * insert again, or refuse. */
static es_err append_request(es_journal *j, struct request *r, uint64_t now)
{
	uint64_t first_seq = j->next_seq, before = 0, after = 0;
	es_err err;
	if (j->o.max_bytes && (err = used_bytes(j, &before)))
		return err;
	if ((err = insert_all(j, r, now))) {
		undo_request(j, first_seq);
		return err;
	}
	if (!j->o.max_bytes || (err = used_bytes(j, &after)) || after <= j->o.max_bytes) {
		if (err)
			undo_request(j, first_seq);
		else
			run(j, S_RELEASE);
		return err;
	}
	undo_request(j, first_seq);
	err = make_room(j, after > before ? after - before : 0);
	if (!err) {
		if (!(err = insert_all(j, r, now))) {
			run(j, S_RELEASE);
			return ES_OK;
		}
		undo_request(j, first_seq);
	}
	if (err == ES_EFULL)
		atomic_fetch_add(&j->refused_full, r->n);
	return err;
}

/* ---- writer: acks and maintenance --------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Adds seq to the sorted set of acks above the watermark (no duplicates). */
static void ooo_add(es_journal *j, uint64_t seq)
{
	size_t lo = 0, hi = j->nooo;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (j->ooo[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < j->nooo && j->ooo[lo] == seq)
		return;
	if (j->nooo == j->capooo) {
		size_t cap = j->capooo ? j->capooo * 2 : 1024;
		uint64_t *grown = cap <= OOO_MAX ? realloc(j->ooo, cap * sizeof *grown) : NULL;
		if (!grown) /* the event stays pending: a duplicate after a reconnect */
			return;
		j->ooo = grown;
		j->capooo = cap;
	}
	memmove(&j->ooo[lo + 1], &j->ooo[lo], (j->nooo - lo) * sizeof *j->ooo);
	j->ooo[lo] = seq;
	j->nooo++;
}

/* Folds the batch's acks into the set; b->advance counts how many of its
 * first entries now follow the watermark without a gap. PUBACKs of one
 * connection come in publish order, so the set is nearly always consumed
 * whole. The set only shrinks in finish_batch, after the commit. */
static void apply_acks(es_journal *j, struct batch *b)
{
	uint64_t newest = j->next_seq - 1;
	qsort(b->acks, b->nacks, sizeof *b->acks, cmp_u64);
	size_t before = j->nooo;
	for (size_t i = 0; i < b->nacks; i++)
		if (b->acks[i] > j->acked_db && b->acks[i] <= newest)
			ooo_add(j, b->acks[i]);
	b->acked = j->nooo - before;
	b->advance = 0;
	while (b->advance < j->nooo && j->ooo[b->advance] == j->acked_db + b->advance + 1)
		b->advance++;
}

/* Sets how the next commit syncs. Only events need a commit that survives a
 * power cut (sync=full); a transaction of acks or retention alone commits
 * without an fsync: SQLite's WAL stays consistent, such a commit is made
 * durable by the next synced one, and losing it costs a re-publish or a
 * late deletion, never an event. */
static void choose_sync(es_journal *j, bool events)
{
	/* Not a statement prepared once: PRAGMA synchronous takes effect when it
	 * is prepared, not when it is stepped (preparing "= NORMAL" last left
	 * sync=full journals unsynced for their first second). sqlite3_exec
	 * prepares it afresh each time. */
	bool full = events && j->o.sync == ES_SYNC_FULL;
	const char *sql = full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
	if (full != j->synced && exec(j->db, sql) == ES_OK)
		j->synced = full;
}

/* Age-based retention, a chunk at a time, in its own transaction. */
static void maintain(es_journal *j, uint64_t now)
{
	uint64_t cut = now > j->o.retain_ms ? now - j->o.retain_ms : 0, deleted = 0;
	j->last_maintain_ms = es_clock_mono_ms();
	choose_sync(j, false);
	if (run(j, S_BEGIN))
		return;
	es_err err = prune_step(j, cut, PRUNE_CHUNK, &deleted);
	if (!err) {
		sqlite3_bind_int64(j->st[S_PRUNE_DEAD], 1, DEADLETTERS_KEPT);
		err = run(j, S_PRUNE_DEAD);
	}
	if (err || run(j, S_COMMIT)) {
		run(j, S_ROLLBACK);
		return;
	}
	atomic_fetch_add(&j->expired, deleted);
	if (deleted)
		es_debug(TAG, "retention removed %" PRIu64 " acked events", deleted);
}

/* ---- writer: the group commit ------------------------------------------ */

/* SQLite rolls a whole transaction back by itself after some errors (full
 * disk, I/O, out of memory); then every request of the batch has failed. */
static bool txn_lost(es_journal *j)
{
	return sqlite3_get_autocommit(j->db) != 0;
}

static void fail_all(struct batch *b, es_err err)
{
	for (struct request *r = b->reqs; r; r = r->next)
		if (!r->err)
			r->err = err;
}

static es_err set_meta(es_journal *j, uint64_t watermark)
{
	sqlite3_bind_int64(j->st[S_SET_LAST], 1, (sqlite3_int64)(j->next_seq - 1));
	sqlite3_bind_int64(j->st[S_SET_LAST], 2, (sqlite3_int64)watermark);
	return step_done(j->db, j->st[S_SET_LAST]);
}

/* Runs one transaction: every request, every ack, one commit. Requests get
 * their own error; a failed commit fails them all. Returns the commit's
 * error (acks are then put back by the caller). */
static es_err run_op(es_journal *j, const struct op *o)
{
	sqlite3_stmt *st = j->st[o->kind == OP_DEADLETTER ? S_DEADLETTER : S_PUT];
	if (o->kind == OP_DEADLETTER) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)o->ms);
		sqlite3_bind_text(st, 2, o->topic, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, o->reason, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, o->blob, (int)o->len, SQLITE_STATIC);
	} else {
		sqlite3_bind_text(st, 1, o->key, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, o->blob, (int)o->len, SQLITE_STATIC);
	}
	es_err err = step_done(j->db, st);
	sqlite3_clear_bindings(st);
	return err;
}

/* An op under its own savepoint: one that cannot be stored (an oversized
 * payload, a constraint) is logged and dropped instead of failing the events
 * and acks beside it -- or every later transaction, when re-queued. */
static es_err run_op_alone(es_journal *j, const struct op *o)
{
	es_err err = run(j, S_SAVEPOINT);
	if (!err && (err = run_op(j, o)) && !txn_lost(j)) {
		run(j, S_ROLLBACK_TO);
		es_error(TAG, "dropped a %s that could not be stored: %s",
			 o->kind == OP_DEADLETTER ? "dead letter" : "state value",
			 es_strerror(err));
		err = ES_OK;
	}
	if (!err)
		run(j, S_RELEASE);
	return err;
}

static es_err run_batch(es_journal *j, struct batch *b, uint64_t *appended)
{
	uint64_t first_seq = j->next_seq, now = es_clock_wall_ms();
	choose_sync(j, b->reqs != NULL);
	es_err err = run(j, S_BEGIN);
	for (struct request *r = b->reqs; r && !err; r = r->next) {
		r->err = append_request(j, r, now);
		if (r->err && txn_lost(j))
			err = r->err;
	}
	if (!err && b->nacks)
		apply_acks(j, b);
	for (struct op *o = b->ops; o && !err; o = o->next)
		err = run_op_alone(j, o);
	if (!err && (j->next_seq != first_seq || b->advance || b->ops))
		err = set_meta(j, j->acked_db + b->advance);
	if (!err)
		err = run(j, S_COMMIT);
	if (err) {
		if (!txn_lost(j))
			run(j, S_ROLLBACK);
		j->next_seq = first_seq;
		fail_all(b, err);
		atomic_fetch_add(&j->errors, 1);
		return err;
	}
	*appended = j->next_seq - first_seq;
	atomic_fetch_add(&j->commits, 1);
	return ES_OK;
}

/* Takes queued requests (up to batch_max events, at least one request) and
 * every queued ack. Caller holds the lock. */
static void take_batch(es_journal *j, struct batch *b)
{
	size_t events = 0;
	struct request *last = NULL;
	b->reqs = j->head;
	for (struct request *r = j->head; r; r = r->next) {
		if (last && events + r->n > j->o.batch_max)
			break;
		events += r->n;
		last = r;
	}
	if (last) {
		j->head = last->next;
		if (!j->head)
			j->tail = NULL;
		last->next = NULL;
	}
	b->ops = j->ops;
	j->ops = NULL;
	b->acks = j->acks;
	b->nacks = j->nacks;
	b->ack_gen = j->ack_gen_queued;
	j->acks = NULL;
	j->nacks = j->capacks = 0;
}

/* Caller holds the lock. Puts acks of a failed batch back in the queue. */
static void requeue_acks(es_journal *j, struct batch *b)
{
	if (!b->nacks)
		return;
	uint64_t *merged = realloc(b->acks, (b->nacks + j->nacks) * sizeof *merged);
	if (!merged) {
		es_error(TAG, "out of memory re-queuing %zu acks; they will be re-published",
			 b->nacks);
		return;
	}
	if (j->nacks)
		memcpy(merged + b->nacks, j->acks, j->nacks * sizeof *merged);
	free(j->acks);
	j->acks = merged;
	j->nacks = j->capacks = b->nacks + j->nacks;
	b->acks = NULL;
}

static void free_ops(struct op *o)
{
	while (o) {
		struct op *next = o->next;
		free_op(o);
		o = next;
	}
}

/* Caller holds the lock. The ops of a failed batch go back to the front. */
static void requeue_ops(es_journal *j, struct batch *b)
{
	if (!b->ops)
		return;
	struct op *last = b->ops;
	while (last->next)
		last = last->next;
	last->next = j->ops;
	j->ops = b->ops;
	b->ops = NULL;
}

static void finish_batch(es_journal *j, struct batch *b, es_err err, uint64_t appended)
{
	for (struct request *r = b->reqs; r; r = r->next)
		for (size_t i = 0; !r->err && i < r->n; i++)
			if (r->res[i].duplicate)
				atomic_fetch_add(&j->duplicates, 1);
	if (!err) {
		if (b->advance) {
			j->acked_db += b->advance;
			j->nooo -= b->advance;
			memmove(j->ooo, j->ooo + b->advance, j->nooo * sizeof *j->ooo);
		}
		atomic_fetch_add(&j->appended, appended);
		atomic_fetch_add(&j->acked, b->acked);
		atomic_store(&j->acked_seq, j->acked_db);
		atomic_store(&j->pending, j->next_seq - 1 - j->acked_db - j->nooo);
		atomic_store(&j->latest_seq, j->next_seq - 1);
	}
	atomic_store(&j->failing, err != ES_OK);
	pthread_mutex_lock(&j->lock);
	if (err)
		snprintf(j->last_error, sizeof j->last_error, "a commit failed: %s",
			 es_strerror(err));
	for (struct request *r = b->reqs, *next; r; r = next) {
		next = r->next; /* r lives on its producer's stack */
		r->done = true;
	}
	if (err) {
		requeue_acks(j, b);
		requeue_ops(j, b);
	} else if (b->ack_gen > j->ack_gen_done) {
		j->ack_gen_done = b->ack_gen;
	}
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);
	free(b->acks);
	free_ops(b->ops);
	if (appended && j->o.committed)
		j->o.committed(j->o.ctx, j->next_seq - 1);
}

/* Caller holds the lock. Acks are applied as soon as they come: those that
 * arrive while a commit is being synced ride together in the next one (the
 * watermark makes an ack-only commit one page). Holding them back for bigger
 * commits was measured slower: the publishing threads then idle more. */
static bool has_work(const es_journal *j)
{
	return j->head || j->nacks || j->ops;
}

/* Caller holds the lock. Waits for work up to ms. */
static void wait_work(es_journal *j, uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&j->work, &j->lock, &ts);
}

/* Caller holds the lock. Idle: nothing queued, so every ack ever queued has
 * been applied (failed ones are re-queued, never dropped while memory
 * lasts); run retention now and then. */
static void idle(es_journal *j)
{
	if (!j->nacks && j->ack_gen_done != j->ack_gen_queued) {
		j->ack_gen_done = j->ack_gen_queued;
		pthread_cond_broadcast(&j->done);
	}
	if (es_clock_mono_ms() - j->last_maintain_ms >= MAINTAIN_EVERY_MS) {
		pthread_mutex_unlock(&j->lock);
		maintain(j, es_clock_wall_ms());
		pthread_mutex_lock(&j->lock);
		return;
	}
	wait_work(j, MAINTAIN_EVERY_MS);
}

static void *writer_main(void *arg)
{
	es_journal *j = arg;
	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (!has_work(j) && !j->closing)
			idle(j);
		if (!has_work(j))
			break; /* closing, and nothing left */
		struct batch b = {0};
		take_batch(j, &b);
		pthread_mutex_unlock(&j->lock);
		uint64_t appended = 0;
		es_err err = run_batch(j, &b, &appended);
		finish_batch(j, &b, err, appended);
		if (es_clock_mono_ms() - j->last_maintain_ms >= MAINTAIN_EVERY_MS)
			maintain(j, es_clock_wall_ms());
		pthread_mutex_lock(&j->lock);
		if (err && j->closing) {
			/* Closing on a failing disk: those acks are re-published
			 * after the next start, which costs duplicates only; the
			 * dead letters and state values are lost, and said so. */
			j->nacks = 0;
			if (j->ops)
				es_error(TAG, "closing on a failing disk: dropping queued dead "
					      "letters and state");
			free_ops(j->ops);
			j->ops = NULL;
		} else if (err && !j->head) {
			wait_work(j, 100); /* do not spin on re-queued acks */
		}
	}
	j->ack_gen_done = j->ack_gen_queued;
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* ---- opening and closing ----------------------------------------------- */

static es_err check_opts(const es_journal_opts *o)
{
	if (!o || !o->path || !*o->path || !o->source || !*o->source)
		return ES_EINVAL;
	return ES_OK;
}

/* Refuses, before changing anything, a file that is not ours to write: one
 * from a newer version, or another application's database. */
static es_err check_owner(sqlite3 *db)
{
	uint64_t version, app, tables;
	es_err err = query_u64(db, "PRAGMA user_version", &version);
	if (!err)
		err = query_u64(db, "PRAGMA application_id", &app);
	if (!err)
		err = query_u64(db, "SELECT count(*) FROM sqlite_schema", &tables);
	if (err)
		return err;
	if (version > SCHEMA_VERSION) {
		es_error(TAG, "schema version %" PRIu64 " is newer than this program's %zu",
			 version, (size_t)SCHEMA_VERSION);
		return ES_EVERSION;
	}
	if (version > 0 && app == 0) {
		/* Journals made before the mark existed: ours if they have our
		 * tables; marked now. */
		uint64_t ours;
		err = query_u64(db,
				"SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
				"name IN ('meta', 'events')",
				&ours);
		if (!err && ours == 2)
			return exec(db, "PRAGMA application_id = 1163087921");
	}
	if ((version == 0 && tables > 0) || (version > 0 && app != APPLICATION_ID)) {
		es_error(TAG, "the file is another application's SQLite database");
		return ES_ECORRUPT;
	}
	return err;
}

static es_err setup(es_journal *j)
{
	es_err err = open_db(j->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &j->db);
	if (!err)
		err = check_owner(j->db);
	if (!err)
		err = configure(j);
	if (!err)
		err = migrate(j->db);
	if (!err)
		err = ensure_journal_id(j);
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
	for (int i = 0; i < S_COUNT_; i++)
		sqlite3_finalize(j->st[i]);
	if (j->db) {
		/* Fold the WAL back so the file alone is the journal. */
		sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
		int rc = sqlite3_close(j->db);
		if (rc != SQLITE_OK)
			es_error(TAG, "close: %s", sqlite3_errstr(rc));
	}
	es_uuid7_gen_free(j->ids);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->work);
	pthread_cond_destroy(&j->done);
	free(j->acks);
	free_ops(j->ops);
	free(j->ooo);
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
	if (!err && pthread_create(&j->thread, NULL, writer_main, j) != 0)
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

/* ---- producers ---------------------------------------------------------- */

/* In the producer's thread: an id if it has none, the source and time, and
 * the encoding -- everything but the sequence, which only the writer knows. */
static es_err prepare_one(es_journal *j, es_event *ev, uint64_t now, struct prepared *p)
{
	char id[ES_UUID_STR] = "";
	p->fresh = es_event_id(ev) == NULL;
	if (p->fresh) {
		es_uuid u;
		pthread_mutex_lock(&j->id_lock);
		es_err err = es_uuid7_next(j->ids, now, &u);
		pthread_mutex_unlock(&j->id_lock);
		if (err)
			return err;
		es_uuid_format(&u, id);
	}
	es_err err = es_event_stamp(ev, p->fresh ? id : "unused", j->source, now, 0);
	if (!err)
		err = es_event_encode_open(ev, j->o.max_event_bytes, &p->owned, &p->len);
	if (err)
		return err;
	p->body = p->owned;
	p->open = true;
	p->id = es_event_id(ev);
	p->type = es_event_type(ev);
	p->subject = es_event_subject(ev);
	return ES_OK;
}

static void free_prepared(struct prepared *prep, size_t n)
{
	for (size_t i = 0; prep && i < n; i++)
		free(prep[i].owned);
	free(prep);
}

static es_err prepare(es_journal *j, es_event **evs, size_t n, struct prepared **out)
{
	struct prepared *prep = calloc(n, sizeof *prep);
	if (!prep)
		return ES_ENOMEM;
	uint64_t now = es_clock_wall_ms();
	for (size_t i = 0; i < n; i++) {
		es_err err = prepare_one(j, evs[i], now, &prep[i]);
		if (err) {
			free_prepared(prep, n);
			return err;
		}
	}
	*out = prep;
	return ES_OK;
}

/* Queues r for the writer and waits for its commit. Takes prep. */
static es_err submit(es_journal *j, struct request *r)
{
	pthread_mutex_lock(&j->lock);
	if (j->closing) {
		pthread_mutex_unlock(&j->lock);
		free_prepared(r->prep, r->n);
		return ES_ECLOSED;
	}
	j->appenders++;
	if (j->tail)
		j->tail->next = r;
	else
		j->head = r;
	j->tail = r;
	pthread_cond_signal(&j->work);
	while (!r->done)
		pthread_cond_wait(&j->done, &j->lock);
	if (--j->appenders == 0 && j->closing)
		pthread_cond_broadcast(&j->done); /* es_journal_close waits for this */
	pthread_mutex_unlock(&j->lock);
	free_prepared(r->prep, r->n);
	return r->err;
}

es_err es_journal_append(es_journal *j, es_event **evs, size_t n, es_append_result *res)
{
	if (!j || (n && (!evs || !res)))
		return ES_EINVAL;
	if (n == 0)
		return ES_OK;
	struct request r = {.n = n, .res = res};
	es_err err = prepare(j, evs, n, &r.prep);
	return err ? err : submit(j, &r);
}

static bool kv_valid(const es_journal_kv *kv, size_t nkv)
{
	for (size_t i = 0; i < nkv; i++)
		if (!kv[i].key || strncmp(kv[i].key, "x.", 2) != 0 || (kv[i].len && !kv[i].value) ||
		    kv[i].len > ES_JOURNAL_KV_MAX)
			return false;
	return true;
}

es_err es_journal_append_kv(es_journal *j, es_event **evs, size_t n, es_append_result *res,
			    const es_journal_kv *kv, size_t nkv)
{
	if (!j || (n && (!evs || !res)) || (nkv && !kv) || !kv_valid(kv, nkv))
		return ES_EINVAL;
	if (n == 0 && nkv == 0)
		return ES_OK;
	struct request r = {.n = n, .res = res, .kv = kv, .nkv = nkv};
	es_err err = n ? prepare(j, evs, n, &r.prep) : ES_OK;
	return err ? err : submit(j, &r);
}

es_err es_journal_append_items(es_journal *j, const es_journal_item *items, size_t n,
			       es_append_result *res)
{
	if (!j || (n && (!items || !res)))
		return ES_EINVAL;
	if (n == 0)
		return ES_OK;
	struct request r = {.n = n, .res = res, .prep = calloc(n, sizeof *r.prep)};
	if (!r.prep)
		return ES_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const es_journal_item *it = &items[i];
		if (!it->id || !it->type || !it->body || !it->origin) {
			free(r.prep);
			return ES_EINVAL;
		}
		r.prep[i] = (struct prepared){.id = it->id,
					      .type = it->type,
					      .subject = it->subject,
					      .origin = it->origin,
					      .origin_seq = it->origin_seq,
					      .body = it->body,
					      .len = it->len};
	}
	return submit(j, &r);
}

/* Caller holds the lock. */
static void queue_op(es_journal *j, struct op *o)
{
	struct op **pp = &j->ops;
	while (*pp)
		pp = &(*pp)->next;
	*pp = o;
	pthread_cond_signal(&j->work);
}

static void free_op(struct op *o)
{
	free(o->topic);
	free(o->reason);
	free(o->key);
	free(o->blob);
	free(o);
}

static es_err make_op(struct op **out, const void *blob, size_t len)
{
	struct op *o = calloc(1, sizeof *o);
	if (!o || !(o->blob = malloc(len ? len : 1))) {
		free(o);
		return ES_ENOMEM;
	}
	if (len)
		memcpy(o->blob, blob, len);
	o->len = len;
	o->ms = es_clock_wall_ms();
	*out = o;
	return ES_OK;
}

static es_err enqueue(es_journal *j, struct op *o)
{
	pthread_mutex_lock(&j->lock);
	bool closed = j->closing;
	if (!closed)
		queue_op(j, o);
	pthread_mutex_unlock(&j->lock);
	if (closed)
		free_op(o);
	return closed ? ES_ECLOSED : ES_OK;
}

es_err es_journal_dead_letter(es_journal *j, const char *topic, const char *reason,
			      const void *payload, size_t len)
{
	struct op *o;
	if (!j || !topic || !reason || (len && !payload))
		return ES_EINVAL;
	if (make_op(&o, payload, len))
		return ES_ENOMEM;
	o->kind = OP_DEADLETTER;
	if (!(o->topic = strdup(topic)) || !(o->reason = strdup(reason))) {
		free_op(o);
		return ES_ENOMEM;
	}
	return enqueue(j, o);
}

es_err es_journal_put(es_journal *j, const char *key, const void *value, size_t len)
{
	struct op *o;
	if (!j || !key || (len && !value) || strncmp(key, "x.", 2) != 0)
		return ES_EINVAL;
	if (make_op(&o, value, len))
		return ES_ENOMEM;
	o->kind = OP_PUT;
	if (!(o->key = strdup(key))) {
		free_op(o);
		return ES_ENOMEM;
	}
	return enqueue(j, o);
}

es_err es_journal_ack(es_journal *j, uint64_t seq)
{
	if (!j || seq == 0)
		return ES_EINVAL;
	pthread_mutex_lock(&j->lock);
	if (j->nacks == j->capacks) {
		size_t cap = j->capacks ? j->capacks * 2 : 256;
		uint64_t *grown = realloc(j->acks, cap * sizeof *grown);
		if (!grown) {
			pthread_mutex_unlock(&j->lock);
			return ES_ENOMEM;
		}
		j->acks = grown;
		j->capacks = cap;
	}
	j->acks[j->nacks++] = seq;
	j->ack_gen_queued++;
	if (j->nacks == 1)
		pthread_cond_signal(&j->work);
	pthread_mutex_unlock(&j->lock);
	return ES_OK;
}

es_err es_journal_sync_acks(es_journal *j)
{
	pthread_mutex_lock(&j->lock);
	uint64_t gen = j->ack_gen_queued;
	pthread_cond_signal(&j->work);
	while (j->ack_gen_done < gen)
		pthread_cond_wait(&j->done, &j->lock);
	pthread_mutex_unlock(&j->lock);
	return ES_OK;
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

/* ---- readers ------------------------------------------------------------ */

static es_err reader_make(const char *path, es_journal *j, es_journal_reader **out)
{
	es_journal_reader *r = calloc(1, sizeof *r);
	if (!r)
		return ES_ENOMEM;
	r->j = j;
	r->path = strdup(path);
	es_err err = r->path ? open_db(path, SQLITE_OPEN_READONLY, &r->db) : ES_ENOMEM;
	if (!err)
		err = exec(r->db, "PRAGMA query_only = 1");
	if (err) {
		es_journal_reader_free(r);
		return err;
	}
	*out = r;
	return ES_OK;
}

es_err es_journal_reader_new(es_journal *j, es_journal_reader **out)
{
	if (!j || !out)
		return ES_EINVAL;
	return reader_make(j->path, j, out);
}

es_err es_journal_reader_open_path(const char *path, es_journal_reader **out)
{
	struct stat sb;
	if (!path || !out)
		return ES_EINVAL;
	if (stat(path, &sb) != 0)
		return ES_ENOTFOUND;
	es_journal_reader *r;
	es_err err = reader_make(path, NULL, &r);
	if (err)
		return err;
	uint64_t v, app = 0;
	err = query_u64(r->db, "PRAGMA user_version", &v);
	if (!err)
		err = query_u64(r->db, "PRAGMA application_id", &app);
	if (!err && v > SCHEMA_VERSION)
		err = ES_EVERSION;
	else if (!err && (v == 0 || app != APPLICATION_ID))
		err = ES_ECORRUPT; /* not a journal (or an empty file) */
	if (err) {
		es_journal_reader_free(r);
		return err;
	}
	*out = r;
	return ES_OK;
}

void es_journal_reader_free(es_journal_reader *r)
{
	if (!r)
		return;
	sqlite3_finalize(r->read_st);
	sqlite3_close(r->db);
	free(r->path);
	free(r);
}

/* The ack watermark as this reader sees it: the writer's when attached,
 * else what the file says. */
static es_err watermark(es_journal_reader *r, uint64_t *out)
{
	char text[32];
	if (r->j) {
		*out = atomic_load(&r->j->acked_seq);
		return ES_OK;
	}
	*out = get_meta_text(r->db, "acked_seq", text, sizeof text) == ES_OK
		       ? strtoull(text, NULL, 10)
		       : 0;
	return ES_OK;
}

static void fill_row(sqlite3_stmt *st, uint64_t acked, es_journal_row *row)
{
	row->seq = (uint64_t)sqlite3_column_int64(st, 0);
	row->id = (const char *)sqlite3_column_text(st, 1);
	row->type = (const char *)sqlite3_column_text(st, 2);
	row->subject = (const char *)sqlite3_column_text(st, 3);
	row->journaled_ms = (uint64_t)sqlite3_column_int64(st, 4);
	row->body = sqlite3_column_blob(st, 5);
	row->body_len = (size_t)sqlite3_column_bytes(st, 5);
	row->state = row->seq <= acked ? ES_STATE_ACKED : ES_STATE_PENDING;
	row->origin = (const char *)sqlite3_column_text(st, 6);
	row->origin_seq = (uint64_t)sqlite3_column_int64(st, 7);
}

/* The read statement: the reader's cached one unless it is in use. */
static es_err read_statement(es_journal_reader *r, sqlite3_stmt **out, bool *cached)
{
	static const char sql[] = "SELECT seq, id, type, subject, journaled_ms, body, origin, "
				  "origin_seq FROM events WHERE seq BETWEEN ?1 AND ?2 "
				  "ORDER BY seq LIMIT ?3";
	*cached = !r->read_busy;
	if (*cached && r->read_st) {
		*out = r->read_st;
		return ES_OK;
	}
	int rc = sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
	if (rc != SQLITE_OK)
		return sql_err(r->db, rc, "prepare read");
	if (*cached)
		r->read_st = *out;
	return ES_OK;
}

es_err es_journal_read(es_journal_reader *r, uint64_t from, uint64_t to, size_t limit,
		       bool pending_only, es_journal_row_fn fn, void *ctx)
{
	uint64_t acked;
	sqlite3_stmt *st;
	bool cached;
	if (!r || !fn)
		return ES_EINVAL;
	watermark(r, &acked);
	if (pending_only && from <= acked)
		from = acked + 1;
	es_err err = read_statement(r, &st, &cached);
	if (err)
		return err;
	r->read_busy = true;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
	sqlite3_bind_int64(st, 2, to > INT64_MAX ? INT64_MAX : (sqlite3_int64)to);
	sqlite3_bind_int64(st, 3, sql_limit(limit));
	es_journal_row row;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fill_row(st, acked, &row);
		if (fn(ctx, &row))
			break;
	}
	err = rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : sql_err(r->db, rc, "read");
	if (cached) {
		sqlite3_reset(st); /* ends the read transaction */
		r->read_busy = false;
	} else {
		sqlite3_finalize(st);
	}
	return err;
}

es_err es_journal_read_origin(es_journal_reader *r, const char *origin, uint64_t from, uint64_t to,
			      size_t limit, es_journal_row_fn fn, void *ctx)
{
	static const char sql[] = "SELECT seq, id, type, subject, journaled_ms, body, origin, "
				  "origin_seq FROM events WHERE origin = ?1 AND origin_seq "
				  "BETWEEN ?2 AND ?3 AND seq > ?4 ORDER BY origin_seq LIMIT ?5";
	uint64_t acked;
	sqlite3_stmt *st;
	if (!r || !origin || !fn)
		return ES_EINVAL;
	watermark(r, &acked);
	int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(r->db, rc, "prepare read by origin");
	sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, from > INT64_MAX ? INT64_MAX : (sqlite3_int64)from);
	sqlite3_bind_int64(st, 3, to > INT64_MAX ? INT64_MAX : (sqlite3_int64)to);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)acked);
	sqlite3_bind_int64(st, 5, sql_limit(limit));
	es_journal_row row;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fill_row(st, acked, &row);
		if (fn(ctx, &row))
			break;
	}
	es_err err = rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : sql_err(r->db, rc, "read");
	sqlite3_finalize(st);
	return err;
}

static uint64_t file_size(const char *path, const char *suffix)
{
	char name[4096];
	struct stat sb;
	snprintf(name, sizeof name, "%s%s", path, suffix);
	return stat(name, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* When the oldest pending event was journaled. */
static es_err oldest_pending(es_journal_reader *r, es_journal_stats *s)
{
	sqlite3_stmt *st;
	const char *sql = "SELECT journaled_ms FROM events WHERE seq = ?1";
	int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(r->db, rc, sql);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)s->oldest_pending_seq);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		s->oldest_pending_ms = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : sql_err(r->db, rc, sql);
}

/* One read transaction so the figures agree with each other. Pending is
 * everything above the ack watermark (for an attached reader, less the
 * acks already taken above it). */
es_err es_journal_stats_get(es_journal_reader *r, es_journal_stats *out)
{
	es_journal_stats s = {0};
	uint64_t pages = 0, free_pages = 0, page_size = 0;
	es_err err = exec(r->db, "BEGIN");
	if (!err && !(err = query_u64(r->db, "SELECT min(seq) FROM events", &s.oldest_seq)) &&
	    !(err = query_u64(r->db, "SELECT max(seq) FROM events", &s.latest_seq)) &&
	    !(err = watermark(r, &s.acked_seq)) &&
	    !(err = query_u64(r->db, "PRAGMA page_count", &pages)) &&
	    !(err = query_u64(r->db, "PRAGMA freelist_count", &free_pages)) &&
	    !(err = query_u64(r->db, "PRAGMA page_size", &page_size)) &&
	    !(err = query_u64(r->db, "SELECT count(*) FROM deadletters", &s.deadletters))) {
		if (s.latest_seq > s.acked_seq) {
			s.oldest_pending_seq = s.acked_seq + 1;
			err = oldest_pending(r, &s);
		}
	}
	exec(r->db, "COMMIT");
	if (err)
		return err;
	s.pending = r->j ? atomic_load(&r->j->pending)
			 : (s.latest_seq > s.acked_seq ? s.latest_seq - s.acked_seq : 0);
	s.count = s.latest_seq ? s.latest_seq - s.oldest_seq + 1 : 0;
	s.used_bytes = (pages - free_pages) * page_size;
	s.file_bytes = file_size(r->path, "") + file_size(r->path, "-wal");
	*out = s;
	return ES_OK;
}

/* ---- verification -------------------------------------------------------- */

struct verify_ctx {
	void (*fn)(void *ctx, const char *problem);
	void *ctx;
	uint64_t expect, problems;
};

static void problem(struct verify_ctx *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct verify_ctx *v, const char *fmt, ...)
{
	char text[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	v->problems++;
	if (v->fn)
		v->fn(v->ctx, text);
}

static int verify_row(void *arg, const es_journal_row *row)
{
	struct verify_ctx *v = arg;
	if (v->expect && row->seq != v->expect)
		problem(v, "sequence hole: expected %" PRIu64 ", found %" PRIu64, v->expect,
			row->seq);
	v->expect = row->seq + 1;
	es_event *ev;
	es_verr verr;
	if (es_event_decode(row->body, row->body_len, 0, &ev, &verr)) {
		problem(v, "event %" PRIu64 " does not decode as a CloudEvent: %s: %s", row->seq,
			verr.field, verr.reason);
		return 0;
	}
	/* A forwarded event carries its origin's sequence, ours its own. */
	uint64_t want = row->origin ? row->origin_seq : row->seq;
	if (es_event_seq(ev) != want)
		problem(v, "event %" PRIu64 " carries sequence %" PRIu64 ", not %" PRIu64, row->seq,
			es_event_seq(ev), want);
	if (strcmp(es_event_id(ev), row->id) != 0)
		problem(v, "event %" PRIu64 " body id differs from its row", row->seq);
	es_event_free(ev);
	return 0;
}

static es_err integrity(es_journal_reader *r, struct verify_ctx *v)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(r->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(r->db, rc, "integrity_check");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(st, 0);
		if (line && strcmp(line, "ok") != 0) {
			v->problems++;
			if (v->fn)
				v->fn(v->ctx, line);
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? ES_OK : sql_err(r->db, rc, "integrity_check");
}

/* The ack watermark cannot be past the newest event. */
static es_err check_watermark(es_journal_reader *r, struct verify_ctx *v)
{
	uint64_t acked, newest, last = 0;
	char text[32];
	es_err err = watermark(r, &acked);
	if (!err)
		err = query_u64(r->db, "SELECT max(seq) FROM events", &newest);
	if (get_meta_text(r->db, "last_seq", text, sizeof text) == ES_OK)
		last = strtoull(text, NULL, 10);
	if (!err && acked > (newest > last ? newest : last))
		problem(v, "ack watermark %" PRIu64 " is past the newest sequence %" PRIu64, acked,
			newest > last ? newest : last);
	return err;
}

es_err es_journal_verify(es_journal_reader *r, void (*fn)(void *ctx, const char *problem),
			 void *ctx)
{
	if (!r)
		return ES_EINVAL;
	struct verify_ctx v = {.fn = fn, .ctx = ctx};
	es_err err = integrity(r, &v);
	if (!err)
		err = check_watermark(r, &v);
	if (err)
		return err;
	if ((err = es_journal_read(r, 0, UINT64_MAX, SIZE_MAX, false, verify_row, &v)))
		return err;
	return v.problems ? ES_ECORRUPT : ES_OK;
}

/* ---- state and dead letters ---------------------------------------------- */

es_err es_journal_get(es_journal_reader *r, const char *key, void **value, size_t *len)
{
	sqlite3_stmt *st;
	const char *sql = "SELECT value FROM meta WHERE key = ?1";
	if (!r || !key || !value || !len)
		return ES_EINVAL;
	int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(r->db, rc, sql);
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	es_err err = ES_ENOTFOUND;
	if (sqlite3_step(st) == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		void *copy = malloc(n + 1);
		err = copy ? ES_OK : ES_ENOMEM;
		if (copy) {
			if (n)
				memcpy(copy, sqlite3_column_blob(st, 0), n);
			((char *)copy)[n] = '\0';
			*value = copy;
			*len = n;
		}
	}
	sqlite3_finalize(st);
	return err;
}

es_err es_journal_scan(es_journal_reader *r, const char *prefix,
		       int (*fn)(void *ctx, const char *key, const void *value, size_t len),
		       void *ctx)
{
	sqlite3_stmt *st;
	/* key >= prefix AND key < prefix + U+10FFFF: the index range of the prefix */
	const char *sql = "SELECT key, value FROM meta WHERE key >= ?1 AND key < ?1 || x'f48fbfbf' "
			  "ORDER BY key";
	if (!r || !prefix || strncmp(prefix, "x.", 2) != 0 || !fn)
		return ES_EINVAL;
	int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(r->db, rc, sql);
	sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		const void *value = sqlite3_column_blob(st, 1);
		if (fn(ctx, key ? key : "", value, (size_t)sqlite3_column_bytes(st, 1))) {
			rc = SQLITE_DONE;
			break;
		}
	}
	es_err err = rc == SQLITE_DONE ? ES_OK : sql_err(r->db, rc, sql);
	sqlite3_finalize(st);
	return err;
}

static es_err read_deadletters(es_journal_reader *r, const char *sql, uint64_t bound, size_t limit,
			       int (*fn)(void *ctx, const es_journal_deadletter *d), void *ctx)
{
	sqlite3_stmt *st;
	if (!r || !fn)
		return ES_EINVAL;
	int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(r->db, rc, sql);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)bound);
	sqlite3_bind_int64(st, 2, sql_limit(limit));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		es_journal_deadletter d = {
			.id = (uint64_t)sqlite3_column_int64(st, 0),
			.received_ms = (uint64_t)sqlite3_column_int64(st, 1),
			.topic = (const char *)sqlite3_column_text(st, 2),
			.reason = (const char *)sqlite3_column_text(st, 3),
			.payload = sqlite3_column_blob(st, 4),
			.len = (size_t)sqlite3_column_bytes(st, 4),
		};
		if (fn(ctx, &d))
			break;
	}
	es_err err = rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : sql_err(r->db, rc, sql);
	sqlite3_finalize(st);
	return err;
}

es_err es_journal_read_deadletters(es_journal_reader *r, uint64_t after, size_t limit,
				   int (*fn)(void *ctx, const es_journal_deadletter *d), void *ctx)
{
	return read_deadletters(r,
				"SELECT id, received_ms, topic, reason, payload FROM deadletters "
				"WHERE id > ?1 ORDER BY id LIMIT ?2",
				after, limit, fn, ctx);
}

es_err es_journal_read_deadletters_before(es_journal_reader *r, uint64_t before, size_t limit,
					  int (*fn)(void *ctx, const es_journal_deadletter *d),
					  void *ctx)
{
	return read_deadletters(r,
				"SELECT id, received_ms, topic, reason, payload FROM deadletters "
				"WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
				before ? before : UINT64_MAX >> 1, limit, fn, ctx);
}

/* ---- queries -------------------------------------------------------------- */

/* The WHERE clause of q, with ?N placeholders numbered as bind_query binds
 * them. Rows are looked at only inside [lo, hi]: the scan is bounded. */
static void query_sql(const es_journal_query *q, char *sql, size_t cap)
{
	size_t n = (size_t)snprintf(sql, cap,
				    "SELECT seq, id, type, subject, journaled_ms, body, origin, "
				    "origin_seq FROM events WHERE seq BETWEEN ?1 AND ?2");
	if (q->type && q->type[0] && q->type[strlen(q->type) - 1] == '*')
		n += (size_t)snprintf(sql + n, cap - n, " AND substr(type, 1, ?3) = ?4");
	else if (q->type && q->type[0])
		n += (size_t)snprintf(sql + n, cap - n, " AND type = ?4");
	if (q->subject && q->subject[0])
		n += (size_t)snprintf(sql + n, cap - n, " AND subject = ?5");
	if (q->state == ES_STATE_PENDING)
		n += (size_t)snprintf(sql + n, cap - n, " AND seq > ?6");
	else if (q->state == ES_STATE_ACKED)
		n += (size_t)snprintf(sql + n, cap - n, " AND seq <= ?6");
	if (q->since_ms)
		n += (size_t)snprintf(sql + n, cap - n, " AND journaled_ms >= ?7");
	if (q->until_ms)
		n += (size_t)snprintf(sql + n, cap - n, " AND journaled_ms < ?8");
	if (q->id && q->id[0])
		n += (size_t)snprintf(sql + n, cap - n, " AND id = ?9");
	snprintf(sql + n, cap - n, " ORDER BY seq %s LIMIT ?10", q->ascending ? "ASC" : "DESC");
}

static void bind_query(sqlite3_stmt *st, const es_journal_query *q, uint64_t lo, uint64_t hi,
		       uint64_t acked)
{
	sqlite3_bind_int64(st, 1, (sqlite3_int64)lo);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)hi);
	if (q->type && q->type[0]) {
		size_t len = strlen(q->type);
		bool prefix = q->type[len - 1] == '*';
		sqlite3_bind_int64(st, 3, (sqlite3_int64)(prefix ? len - 1 : len));
		sqlite3_bind_text(st, 4, q->type, (int)(prefix ? len - 1 : len), SQLITE_STATIC);
	}
	sqlite3_bind_text(st, 5, q->subject ? q->subject : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)acked);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)q->since_ms);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)q->until_ms);
	sqlite3_bind_text(st, 9, q->id ? q->id : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)q->limit);
}

/* The window of sequences the query may look at: at most ES_QUERY_SCAN_MAX
 * rows from its cursor, in its direction. */
static void query_window(const es_journal_query *q, uint64_t oldest, uint64_t newest, uint64_t *lo,
			 uint64_t *hi)
{
	if (q->id && q->id[0]) { /* by id: the unique index finds it */
		*lo = 0, *hi = INT64_MAX;
		return;
	}
	if (q->ascending) {
		*lo = q->after + 1 > oldest ? q->after + 1 : oldest;
		*hi = *lo + ES_QUERY_SCAN_MAX - 1;
		return;
	}
	*hi = q->before && q->before - 1 < newest ? q->before - 1 : newest;
	*lo = *hi >= oldest + ES_QUERY_SCAN_MAX ? *hi - ES_QUERY_SCAN_MAX + 1 : oldest;
}

es_err es_journal_query_rows(es_journal_reader *r, const es_journal_query *q, es_journal_row_fn fn,
			     void *ctx, uint64_t *next)
{
	char sql[640];
	sqlite3_stmt *st;
	uint64_t acked, oldest = 0, newest = 0, lo, hi, last = 0;
	size_t rows = 0;
	if (!r || !q || !fn || !next || q->limit == 0)
		return ES_EINVAL;
	watermark(r, &acked);
	es_err err = query_u64(r->db, "SELECT min(seq) FROM events", &oldest);
	if (!err)
		err = query_u64(r->db, "SELECT max(seq) FROM events", &newest);
	*next = 0;
	if (err || newest == 0)
		return err;
	query_window(q, oldest, newest, &lo, &hi);
	query_sql(q, sql, sizeof sql);
	int rc = sqlite3_prepare_v2(r->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_err(r->db, rc, sql);
	bind_query(st, q, lo, hi, acked);
	es_journal_row row;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fill_row(st, acked, &row);
		last = row.seq;
		rows++;
		if (fn(ctx, &row))
			break;
	}
	err = rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : sql_err(r->db, rc, sql);
	sqlite3_finalize(st);
	if (err || (q->id && q->id[0]))
		return err;
	/* A full page goes on from its last row; a short one from the end of
	 * the window, unless the window reached the end of the journal. */
	if (rows == q->limit)
		*next = last;
	else if (q->ascending)
		*next = hi < newest ? hi : 0;
	else
		*next = lo > oldest ? lo : 0;
	return ES_OK;
}
