/* db.h - the SQLite adapter: every SQLite file of edgespool is opened,
 * checked, tuned and migrated here, and its errors become es_err here.
 *
 * The modules that own a schema (the journal, the consumer's store,
 * fleet-state's projection) write their SQL through an es_db: they take
 * statements from its cache, bind and read columns with SQLite's own calls
 * (so they include SQLite's header for that), and step them through the
 * helpers below, which translate and log a failure once, with the owner's
 * tag and the raw SQLite code. Everything else in edgespool sees no SQLite.
 *
 * A writable file is opened with the project's settings: WAL, synchronous
 * FULL or NORMAL, a bound on the WAL (wal_max: its file never stays larger,
 * and it is checkpointed once it holds half of that), a small page cache, a
 * 5 s busy timeout, extended result codes; a new file gets a page size
 * chosen for flash (ES_DB_PAGE_SIZE: a commit writes whole pages, so small
 * ones write less per commit). A read-only connection is also query_only.
 *
 * A schema (es_db_schema) marks the file with PRAGMA application_id and
 * versions it with PRAGMA user_version: a file that is not ours, or comes
 * from a newer version, is refused before anything in it is changed; an
 * older one is migrated forward, each step in its own transaction.
 *
 * Threads: an es_db is one connection, used by one thread at a time.
 */
#ifndef ES_DB_H
#define ES_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct es_db es_db;
/* SQLite's own types, declared (public headers include no third-party
 * header); the modules that bind and read include SQLite's header. */
struct sqlite3;
struct sqlite3_stmt;

/* How a file is recognised and brought up to date. */
typedef struct es_db_schema {
	uint32_t application_id; /* the mark; the first migration must set it */
	/* Migration i brings user_version from i to i + 1. Append only. */
	const char *const *migrations;
	size_t count;
	/* Asked about a file without the mark but with content (from before
	 * the mark existed): true when it is ours. A file at user_version > 0
	 * is then marked at once; one at 0 is marked by its migration. NULL:
	 * such a file is never ours. */
	bool (*adopt)(es_db *db, uint64_t version);
} es_db_schema;

/* The defaults of es_db_opts (docs/decisions.md, "flash"). */
#define ES_DB_PAGE_SIZE	       1024u	  /* bytes, a new file's pages */
#define ES_DB_WAL_MAX	       (4u << 20) /* bytes: the WAL's bound */
#define ES_DB_CACHE_KIB	       256u	  /* a writer's page cache */
#define ES_DB_READER_CACHE_KIB 128u	  /* a reader's */
/* The -shm file beside a WAL: 32 KiB for every 4096 frames of the WAL. */
#define ES_DB_SHM_BYTES 32768u

typedef struct es_db_opts {
	const char *path;
	const char *tag; /* the owner's log tag ("journal") */
	bool readonly;	 /* a read-only connection; the file must exist */
	bool sync_full;	 /* writable: synchronous=FULL, else NORMAL */
	/* NULL: the file is not checked. Read-only: the file must be at a
	 * version in [1, count] and carry the mark (nothing is migrated). */
	const es_db_schema *schema;
	/* Writable, a new file: its page size, a power of two in [512, 65536]
	 * (0: ES_DB_PAGE_SIZE). A file keeps the size it was made with. */
	uint32_t page_size;
	uint64_t wal_max;   /* writable: the WAL's bound (0: ES_DB_WAL_MAX) */
	uint32_t cache_kib; /* page cache (0: ES_DB_CACHE_KIB, readers less) */
} es_db_opts;

/* Opens path, checks it against o->schema, applies the settings above and
 * (writable) the migrations it lacks. Errors: ES_EINVAL, ES_ENOTFOUND
 * (cannot open or create), ES_ECORRUPT (not ours, or not a database),
 * ES_EVERSION (a newer schema), ES_EIO, ES_ENOMEM. A refused file is not
 * modified. */
es_err es_db_open(const es_db_opts *o, es_db **out);

/* Finalizes every statement of the connection and closes it. NULL ok. */
void es_db_close(es_db *db);

/* Folds the WAL back into the file and truncates it (before a close, so
 * the file alone is the database). */
es_err es_db_checkpoint(es_db *db);

/* The WAL as this writable connection's last commit left it: the bytes of
 * its frames since it last started again (0 after a TRUNCATE checkpoint),
 * and its bound. The page size of the file. Checkpoints run so far. The
 * connection's thread. */
uint64_t es_db_wal_bytes(const es_db *db);
/* The WAL file's size now (it may hold more than the frames in use: a
 * transaction larger than the page cache spills there, even one rolled
 * back). */
uint64_t es_db_wal_file_bytes(const es_db *db);
/* Outside a transaction: a WAL file grown past its bound is checkpointed
 * and truncated (TRUNCATE waits for readers, up to the busy timeout). */
void es_db_wal_trim(es_db *db);
uint64_t es_db_wal_max(const es_db *db);
uint64_t es_db_page_size(const es_db *db);
uint64_t es_db_checkpoints(const es_db *db);

/* Translates a SQLite result code rc, logging it once with what was being
 * done, the raw code and SQLite's message: SQLITE_FULL -> ES_EFULL, NOMEM
 * -> ES_ENOMEM, CORRUPT/NOTADB -> ES_ECORRUPT, CANTOPEN -> ES_ENOTFOUND,
 * BUSY/LOCKED -> ES_EBUSY, anything else ES_EIO. */
es_err es_db_err(es_db *db, int rc, const char *what);

/* Runs sql (one or more statements, no rows wanted), prepared afresh each
 * time: the way to run a PRAGMA that takes effect when it is prepared. */
es_err es_db_exec(es_db *db, const char *sql);

/* The connection's statement for sql, from its cache: prepared once, kept
 * for the connection's life, and handed out until es_db_release gives it
 * back. While it is out, another call for the same text gets a statement
 * of its own (a callback reading again), finalized when released; so does
 * every call once the cache is full. A caller may keep a statement out for
 * as long as it likes (the journal's writer keeps its own for good). */
es_err es_db_stmt(es_db *db, const char *sql, struct sqlite3_stmt **out);

/* Gives st back: reset (ending its read), bindings cleared. NULL ok. */
void es_db_release(es_db *db, struct sqlite3_stmt *st);

/* Steps st once, expecting no row, and resets it. */
es_err es_db_step_done(es_db *db, struct sqlite3_stmt *st);

/* Steps st, which yields at most one integer, and resets it: *found says
 * whether it gave a non-NULL value, which then goes to *out. */
es_err es_db_step_u64(es_db *db, struct sqlite3_stmt *st, uint64_t *out, bool *found);

/* Runs a one-row query (cached) returning an integer into *out: 0 for
 * NULL or no row. */
es_err es_db_query_u64(es_db *db, const char *sql, uint64_t *out);

/* Transactions: BEGIN IMMEDIATE (a writer's), a plain BEGIN (a reader's
 * consistent snapshot), COMMIT. es_db_rollback rolls back the open
 * transaction, if any (SQLite ends one by itself after some errors). */
es_err es_db_begin(es_db *db);
es_err es_db_begin_read(es_db *db);
es_err es_db_commit(es_db *db);
void es_db_rollback(es_db *db);
/* False when no transaction is open (never begun, or lost to an error). */
bool es_db_in_txn(es_db *db);

/* One savepoint inside a transaction: opened, then either kept (release)
 * or undone (rolled back to and released). Not nested. */
es_err es_db_savepoint(es_db *db);
es_err es_db_savepoint_release(es_db *db);
void es_db_savepoint_undo(es_db *db);

/* Sets how the next commits sync: FULL (an fsync each: survives a power
 * cut) or NORMAL. Does nothing when that is already so. */
es_err es_db_set_sync(es_db *db, bool full);

/* Rows changed by the newest INSERT, UPDATE or DELETE. */
uint64_t es_db_changes(es_db *db);

/* The raw connection, for handlers written against SQLite directly (see
 * es_consumer_db). */
struct sqlite3 *es_db_handle(es_db *db);

#endif
