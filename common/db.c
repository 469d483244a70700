/* db.c - the SQLite adapter: open, check, tune and migrate a file; a
 * statement cache; transactions; SQLite's codes translated to es_err.
 *
 * Threads: none of its own; an es_db belongs to the thread using it.
 */
#include "db.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define CACHE_MAX	32
#define BUSY_TIMEOUT_MS 5000
#define WAL_FRAME_HEAD	24 /* bytes before each page in the WAL */
#define WAL_HEAD	32 /* the WAL file's header */

/* Transaction statements, prepared on first use: a writer runs them
 * thousands of times a second. */
enum fixed_id { T_BEGIN, T_BEGIN_READ, T_COMMIT, T_ROLLBACK, T_SAVE, T_RELEASE, T_UNDO, T_COUNT_ };

static const char *const fixed_sql[T_COUNT_] = {
	[T_BEGIN] = "BEGIN IMMEDIATE",	[T_BEGIN_READ] = "BEGIN",     [T_COMMIT] = "COMMIT",
	[T_ROLLBACK] = "ROLLBACK",	[T_SAVE] = "SAVEPOINT es_db", [T_RELEASE] = "RELEASE es_db",
	[T_UNDO] = "ROLLBACK TO es_db",
};

struct cached {
	sqlite3_stmt *st;
	bool out; /* handed out, not yet released */
};

struct es_db {
	sqlite3 *db;
	char tag[16];
	bool synced; /* synchronous=FULL now */
	uint64_t page_size;
	uint64_t wal_max;    /* the WAL's bound, bytes */
	uint64_t wal_frames; /* in the WAL after the last commit */
	uint64_t checkpoints;
	sqlite3_stmt *fixed[T_COUNT_];
	struct cached cache[CACHE_MAX];
	size_t ncache;
};

/* ---- errors ------------------------------------------------------------- */

static es_err map_rc(int rc)
{
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

static es_err log_rc(sqlite3 *h, const char *tag, int rc, const char *what)
{
	es_error(tag, "%s: %s (sqlite %d: %s)", what, sqlite3_errstr(rc), rc,
		 h ? sqlite3_errmsg(h) : "-");
	return map_rc(rc);
}

es_err es_db_err(es_db *db, int rc, const char *what)
{
	return log_rc(db ? db->db : NULL, db ? db->tag : "db", rc, what ? what : "-");
}

/* ---- statements --------------------------------------------------------- */

es_err es_db_exec(es_db *db, const char *sql)
{
	int rc = sqlite3_exec(db->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? ES_OK : es_db_err(db, rc, sql);
}

/* The cache entry holding sql, or NULL. */
static struct cached *find(es_db *db, const char *sql)
{
	for (size_t i = 0; i < db->ncache; i++)
		if (strcmp(sqlite3_sql(db->cache[i].st), sql) == 0)
			return &db->cache[i];
	return NULL;
}

es_err es_db_stmt(es_db *db, const char *sql, sqlite3_stmt **out)
{
	struct cached *c = find(db, sql);
	if (c && !c->out) {
		c->out = true;
		*out = c->st;
		return ES_OK;
	}
	bool keep = !c && db->ncache < CACHE_MAX;
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v3(db->db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st,
				    NULL);
	if (rc != SQLITE_OK)
		return es_db_err(db, rc, sql);
	if (keep)
		db->cache[db->ncache++] = (struct cached){.st = st, .out = true};
	*out = st;
	return ES_OK;
}

void es_db_release(es_db *db, sqlite3_stmt *st)
{
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (size_t i = 0; i < db->ncache; i++)
		if (db->cache[i].st == st) {
			db->cache[i].out = false;
			return;
		}
	sqlite3_finalize(st);
}

es_err es_db_step_done(es_db *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? ES_OK : es_db_err(db, rc, sqlite3_sql(st));
}

es_err es_db_step_u64(es_db *db, sqlite3_stmt *st, uint64_t *out, bool *found)
{
	int rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL;
	if (*found)
		*out = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : es_db_err(db, rc, sqlite3_sql(st));
}

es_err es_db_query_u64(es_db *db, const char *sql, uint64_t *out)
{
	sqlite3_stmt *st;
	uint64_t v = 0;
	bool found;
	es_err err = es_db_stmt(db, sql, &st);
	if (err)
		return err;
	err = es_db_step_u64(db, st, &v, &found);
	es_db_release(db, st);
	if (!err)
		*out = found ? v : 0;
	return err;
}

uint64_t es_db_changes(es_db *db)
{
	return (uint64_t)sqlite3_changes(db->db);
}

struct sqlite3 *es_db_handle(es_db *db)
{
	return db ? db->db : NULL;
}

/* ---- transactions ------------------------------------------------------- */

static es_err run_fixed(es_db *db, enum fixed_id id)
{
	if (!db->fixed[id]) {
		int rc = sqlite3_prepare_v3(db->db, fixed_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
					    &db->fixed[id], NULL);
		if (rc != SQLITE_OK)
			return es_db_err(db, rc, fixed_sql[id]);
	}
	return es_db_step_done(db, db->fixed[id]);
}

es_err es_db_begin(es_db *db)
{
	return run_fixed(db, T_BEGIN);
}

es_err es_db_begin_read(es_db *db)
{
	return run_fixed(db, T_BEGIN_READ);
}

es_err es_db_commit(es_db *db)
{
	return run_fixed(db, T_COMMIT);
}

void es_db_rollback(es_db *db)
{
	if (es_db_in_txn(db))
		run_fixed(db, T_ROLLBACK);
}

bool es_db_in_txn(es_db *db)
{
	return sqlite3_get_autocommit(db->db) == 0;
}

es_err es_db_savepoint(es_db *db)
{
	return run_fixed(db, T_SAVE);
}

es_err es_db_savepoint_release(es_db *db)
{
	return run_fixed(db, T_RELEASE);
}

void es_db_savepoint_undo(es_db *db)
{
	run_fixed(db, T_UNDO);
	run_fixed(db, T_RELEASE);
}

/* Not a cached statement: PRAGMA synchronous takes effect when it is
 * prepared, not when it is stepped (a cached "= NORMAL" prepared last left
 * sync=full journals unsynced for their first second). */
es_err es_db_set_sync(es_db *db, bool full)
{
	if (full == db->synced)
		return ES_OK;
	es_err err =
		es_db_exec(db, full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
	if (!err)
		db->synced = full;
	return err;
}

/* ---- the schema --------------------------------------------------------- */

static es_err header(es_db *db, uint64_t *version, uint64_t *app)
{
	es_err err = es_db_query_u64(db, "PRAGMA user_version", version);
	return err ? err : es_db_query_u64(db, "PRAGMA application_id", app);
}

static es_err newer(es_db *db, uint64_t version, size_t count)
{
	es_error(db->tag, "schema version %" PRIu64 " is newer than this program's %zu", version,
		 count);
	return ES_EVERSION;
}

static es_err set_app_id(es_db *db, uint32_t id)
{
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA application_id = %" PRId32, (int32_t)id);
	return es_db_exec(db, sql);
}

/* Refuses, before changing anything, a file that is not ours to write: one
 * from a newer version, or another application's database. An unmarked
 * file the owner adopts is marked (at version 0, by its migration). */
static es_err check_writable(es_db *db, const es_db_schema *s)
{
	uint64_t version, app, tables;
	es_err err = header(db, &version, &app);
	if (!err)
		err = es_db_query_u64(db, "SELECT count(*) FROM sqlite_schema", &tables);
	if (err)
		return err;
	if (version > s->count)
		return newer(db, version, s->count);
	if (version == 0 && tables == 0)
		return ES_OK; /* a new file */
	if (version > 0 && app == s->application_id)
		return ES_OK;
	if (app == 0 && s->adopt && s->adopt(db, version))
		return version > 0 ? set_app_id(db, s->application_id) : ES_OK;
	es_error(db->tag, "the file is another application's SQLite database");
	return ES_ECORRUPT;
}

/* A reader changes nothing: the file must be ours and up to a version it
 * knows. Not logged: the caller says what the file is. */
static es_err check_readonly(es_db *db, const es_db_schema *s)
{
	uint64_t version, app;
	es_err err = header(db, &version, &app);
	if (err)
		return err;
	if (version > s->count)
		return ES_EVERSION;
	return version == 0 || app != s->application_id ? ES_ECORRUPT : ES_OK;
}

static es_err migrate_one(es_db *db, const es_db_schema *s, uint64_t v)
{
	char bump[64];
	snprintf(bump, sizeof bump, "PRAGMA user_version = %" PRIu64, v + 1);
	es_err err = es_db_begin(db);
	if (!err)
		err = es_db_exec(db, s->migrations[v]);
	if (!err && v == 0)
		err = set_app_id(db, s->application_id);
	if (!err)
		err = es_db_exec(db, bump);
	if (!err)
		err = es_db_commit(db);
	if (err)
		es_db_rollback(db);
	return err;
}

/* Applies every migration above the file's version, each in its own
 * transaction together with its user_version bump. */
static es_err migrate(es_db *db, const es_db_schema *s)
{
	uint64_t v;
	es_err err = es_db_query_u64(db, "PRAGMA user_version", &v);
	if (err)
		return err;
	if (v > s->count)
		return newer(db, v, s->count);
	for (; v < s->count; v++) {
		if ((err = migrate_one(db, s, v)))
			return err;
		es_info(db->tag, "schema migrated to version %" PRIu64, v + 1);
	}
	return ES_OK;
}

/* ---- the WAL -------------------------------------------------------------- */

static uint64_t frame_bytes(const es_db *db)
{
	return db->page_size + WAL_FRAME_HEAD;
}

/* A checkpoint after a commit: PASSIVE once the WAL holds half its bound
 * (it copies what no reader needs and lets the next commit start the WAL
 * again from its beginning); TRUNCATE, which waits for the readers, once
 * readers kept the WAL from starting again until it reached its bound. */
static void checkpoint_if_due(es_db *db)
{
	uint64_t used = WAL_HEAD + db->wal_frames * frame_bytes(db);
	if (used < db->wal_max / 2)
		return;
	int mode = used >= db->wal_max ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE;
	int log = 0, done = 0;
	int rc = sqlite3_wal_checkpoint_v2(db->db, NULL, mode, &log, &done);
	db->checkpoints++;
	if (rc == SQLITE_OK && mode == SQLITE_CHECKPOINT_TRUNCATE)
		db->wal_frames = 0;
	else if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		es_warn(db->tag, "checkpoint: %s (sqlite %d)", sqlite3_errstr(rc), rc);
}

/* SQLite's WAL hook, after each commit of this connection: it replaces the
 * automatic checkpoint, so the WAL's bound is ours to keep. */
static int on_wal_commit(void *arg, sqlite3 *h, const char *name, int frames)
{
	es_db *db = arg;
	(void)h;
	(void)name;
	db->wal_frames = frames > 0 ? (uint64_t)frames : 0;
	checkpoint_if_due(db);
	return SQLITE_OK;
}

uint64_t es_db_wal_bytes(const es_db *db)
{
	return db->wal_frames ? WAL_HEAD + db->wal_frames * frame_bytes(db) : 0;
}

uint64_t es_db_wal_file_bytes(const es_db *db)
{
	const char *path = sqlite3_db_filename(db->db, "main");
	char wal[4096];
	struct stat sb;
	if (!path || !*path || (size_t)snprintf(wal, sizeof wal, "%s-wal", path) >= sizeof wal)
		return 0;
	return stat(wal, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

void es_db_wal_trim(es_db *db)
{
	if (es_db_wal_file_bytes(db) > db->wal_max)
		es_db_checkpoint(db);
}

uint64_t es_db_wal_max(const es_db *db)
{
	return db->wal_max;
}

uint64_t es_db_page_size(const es_db *db)
{
	return db->page_size;
}

uint64_t es_db_checkpoints(const es_db *db)
{
	return db->checkpoints;
}

/* ---- opening and closing ------------------------------------------------ */

/* Runs "PRAGMA name = v". */
static es_err pragma_u64(es_db *db, const char *name, uint64_t v)
{
	char sql[96];
	snprintf(sql, sizeof sql, "PRAGMA %s = %" PRIu64, name, v);
	return es_db_exec(db, sql);
}

/* The page size first: it applies only to a file that has no page yet,
 * before WAL mode writes the first. */
static es_err configure(es_db *db, const es_db_opts *o)
{
	uint64_t page = o->page_size ? o->page_size : ES_DB_PAGE_SIZE;
	es_err err = pragma_u64(db, "page_size", page);
	if (!err)
		err = es_db_exec(db, "PRAGMA journal_mode = WAL");
	if (!err)
		err = es_db_exec(db, o->sync_full ? "PRAGMA synchronous = FULL"
						  : "PRAGMA synchronous = NORMAL");
	if (!err)
		err = pragma_u64(db, "journal_size_limit", db->wal_max);
	if (!err)
		err = es_db_query_u64(db, "PRAGMA page_size", &db->page_size);
	if (!err)
		sqlite3_wal_hook(db->db, on_wal_commit, db);
	db->synced = o->sync_full;
	return err;
}

static es_err open_connection(es_db *db, const es_db_opts *o)
{
	int flags =
		(o->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
		SQLITE_OPEN_NOMUTEX;
	int rc = sqlite3_open_v2(o->path, &db->db, flags, NULL);
	if (rc != SQLITE_OK)
		return es_db_err(db, rc, o->path);
	sqlite3_busy_timeout(db->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db->db, 1);
	return ES_OK;
}

/* The page cache, in KiB (SQLite's negative cache_size). */
static es_err cache(es_db *db, const es_db_opts *o)
{
	char sql[64];
	unsigned kib = o->cache_kib  ? o->cache_kib
		       : o->readonly ? ES_DB_READER_CACHE_KIB
				     : ES_DB_CACHE_KIB;
	snprintf(sql, sizeof sql, "PRAGMA cache_size = -%u", kib);
	return es_db_exec(db, sql);
}

static es_err setup(es_db *db, const es_db_opts *o)
{
	es_err err = open_connection(db, o);
	if (!err)
		err = cache(db, o);
	if (!err && o->readonly)
		err = es_db_exec(db, "PRAGMA query_only = 1");
	if (!err && o->schema)
		err = o->readonly ? check_readonly(db, o->schema) : check_writable(db, o->schema);
	if (!err && !o->readonly)
		err = configure(db, o);
	if (!err && o->readonly)
		err = es_db_query_u64(db, "PRAGMA page_size", &db->page_size);
	if (!err && !o->readonly && o->schema)
		err = migrate(db, o->schema);
	return err;
}

es_err es_db_open(const es_db_opts *o, es_db **out)
{
	if (!o || !o->path || !*o->path || !out)
		return ES_EINVAL;
	es_db *db = calloc(1, sizeof *db);
	if (!db)
		return ES_ENOMEM;
	snprintf(db->tag, sizeof db->tag, "%s", o->tag ? o->tag : "db");
	db->wal_max = o->wal_max ? o->wal_max : ES_DB_WAL_MAX;
	es_err err = setup(db, o);
	if (err) {
		es_db_close(db);
		return err;
	}
	*out = db;
	return ES_OK;
}

es_err es_db_checkpoint(es_db *db)
{
	int rc = sqlite3_wal_checkpoint_v2(db->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	db->checkpoints++;
	if (rc == SQLITE_OK) {
		db->wal_frames = 0;
		return ES_OK;
	}
	/* Readers of other processes may hold the WAL: not an error worth a
	 * line at every close, and SQLite checkpoints again later. */
	es_debug(db->tag, "checkpoint: %s (sqlite %d)", sqlite3_errstr(rc), rc);
	return map_rc(rc);
}

void es_db_close(es_db *db)
{
	if (!db)
		return;
	sqlite3_stmt *st;
	while (db->db && (st = sqlite3_next_stmt(db->db, NULL)))
		sqlite3_finalize(st);
	int rc = sqlite3_close(db->db);
	if (rc != SQLITE_OK)
		es_error(db->tag, "close: %s", sqlite3_errstr(rc));
	free(db);
}
