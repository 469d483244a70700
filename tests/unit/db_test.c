/* db_test.c - the SQLite adapter: a file's settings, its mark and version
 * checked before anything changes, migrations, adoption of unmarked files,
 * read-only connections, the statement cache, transactions and savepoints,
 * and SQLite's codes mapped to es_err; on real files in a temporary folder.
 * It looks at the files with SQLite directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpdir.h"
#include "db.h"

#define APP 0x54535431 /* "TST1" */

typedef struct fixture {
	char dir[64];
	char path[128];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	if (es_tmpdir_make(f->dir, sizeof f->dir, "db-test")) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	const char *suffix[] = {"", "-wal", "-shm", "-journal"};
	char name[160];
	for (size_t i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "%s%s", f->path, suffix[i]);
		unlink(name);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static const char *const two[] = {
	"CREATE TABLE a(x INTEGER);",
	"CREATE TABLE b(y TEXT);",
};

static es_db_schema schema_of(size_t count, bool (*adopt)(es_db *, uint64_t))
{
	return (es_db_schema){
		.application_id = APP, .migrations = two, .count = count, .adopt = adopt};
}

static es_err open_with(const char *path, const es_db_schema *s, bool readonly, es_db **out)
{
	es_db_opts o = {.path = path, .tag = "test", .readonly = readonly, .schema = s};
	return es_db_open(&o, out);
}

/* Runs sql on path with a connection of SQLite's own. */
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
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The file's bytes, malloc'd (*len). */
static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	assert_non_null(fp);
	struct stat sb;
	assert_int_equal(fstat(fileno(fp), &sb), 0);
	unsigned char *buf = malloc((size_t)sb.st_size + 1);
	assert_non_null(buf);
	*len = fread(buf, 1, (size_t)sb.st_size, fp);
	fclose(fp);
	return buf;
}

static void expect_unchanged_after(const char *path, const es_db_schema *s, es_err want)
{
	size_t before_len, after_len;
	unsigned char *before = slurp(path, &before_len);
	es_db *db = NULL;
	assert_int_equal(open_with(path, s, false, &db), want);
	assert_null(db);
	unsigned char *after = slurp(path, &after_len);
	assert_int_equal(before_len, after_len);
	assert_memory_equal(before, after, before_len);
	free(before);
	free(after);
}

static bool adopt_all(es_db *db, uint64_t version)
{
	(void)db;
	(void)version;
	return true;
}

/* ---- opening ------------------------------------------------------------ */

/* A new file gets every migration, the mark and the version; writable
 * connections get the project's settings. */
static void new_file_is_marked_migrated_and_tuned(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL);
	es_db *db;
	es_db_opts o = {.path = f->path, .tag = "test", .sync_full = true, .schema = &s};
	assert_int_equal(es_db_open(&o, &db), ES_OK);
	uint64_t v;
	assert_int_equal(es_db_query_u64(db, "PRAGMA synchronous", &v), ES_OK);
	assert_int_equal(v, 2); /* FULL */
	assert_int_equal(es_db_query_u64(db, "PRAGMA journal_size_limit", &v), ES_OK);
	assert_int_equal(v, ES_DB_WAL_MAX);
	assert_int_equal(es_db_page_size(db), ES_DB_PAGE_SIZE);
	assert_int_equal(es_db_wal_max(db), ES_DB_WAL_MAX);
	assert_int_equal(es_db_query_u64(db, "PRAGMA cache_size", &v), ES_OK);
	assert_int_equal((int64_t)v, -(int64_t)ES_DB_CACHE_KIB);
	assert_int_equal(es_db_set_sync(db, false), ES_OK);
	assert_int_equal(es_db_query_u64(db, "PRAGMA synchronous", &v), ES_OK);
	assert_int_equal(v, 1); /* NORMAL */
	es_db_close(db);
	assert_int_equal(raw_int(f->path, "PRAGMA application_id"), APP);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_schema"), 2);
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(raw);
}

/* A file keeps the page size it was made with; a new one gets the one
 * asked for. */
static void page_size_is_a_new_files(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL);
	es_db *db;
	es_db_opts o = {.path = f->path, .tag = "test", .schema = &s, .page_size = 4096};
	assert_int_equal(es_db_open(&o, &db), ES_OK);
	assert_int_equal(es_db_page_size(db), 4096);
	es_db_close(db);
	o.page_size = 0; /* the default, 1 KiB, does not change a file made before */
	assert_int_equal(es_db_open(&o, &db), ES_OK);
	assert_int_equal(es_db_page_size(db), 4096);
	es_db_close(db);
	assert_int_equal(raw_int(f->path, "PRAGMA page_size"), 4096);
}

/* The WAL stays within wal_max through many commits: checkpointed at half
 * of it, its file never kept larger. */
static void wal_stays_within_its_bound(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL);
	es_db *db;
	es_db_opts o = {.path = f->path, .tag = "test", .schema = &s, .wal_max = 65536};
	assert_int_equal(es_db_open(&o, &db), ES_OK);
	uint64_t most = 0;
	for (int i = 0; i < 400; i++) {
		assert_int_equal(es_db_begin(db), ES_OK);
		assert_int_equal(es_db_exec(db, "INSERT INTO b(y) VALUES(printf('%.600c', 'y'))"),
				 ES_OK);
		assert_int_equal(es_db_commit(db), ES_OK);
		uint64_t w = es_db_wal_file_bytes(db);
		most = w > most ? w : most;
		assert_true(es_db_wal_bytes(db) <= 65536);
	}
	print_message("WAL file at most %" PRIu64 " bytes (bound 65536); %" PRIu64 " checkpoints\n",
		      most, es_db_checkpoints(db));
	assert_true(most <= 65536);
	assert_true(es_db_checkpoints(db) >= 3);
	es_db_close(db);
}

/* A file at version 1 gets migration 2 only (a second run of 1 would fail:
 * its table exists). */
static void older_file_is_migrated_forward(void **state)
{
	fixture *f = *state;
	es_db_schema one = schema_of(1, NULL), both = schema_of(2, NULL);
	es_db *db;
	assert_int_equal(open_with(f->path, &one, false, &db), ES_OK);
	es_db_close(db);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 1);
	assert_int_equal(open_with(f->path, &both, false, &db), ES_OK);
	es_db_close(db);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_schema WHERE name = 'b'"),
			 1);
}

/* A failing migration leaves the file at the version before it. */
static void failed_migration_changes_nothing(void **state)
{
	fixture *f = *state;
	static const char *const bad[] = {"CREATE TABLE a(x);", "CREATE TABLE a(y);"};
	es_db_schema s = {.application_id = APP, .migrations = bad, .count = 2};
	es_db *db = NULL;
	assert_int_not_equal(open_with(f->path, &s, false, &db), ES_OK);
	assert_null(db);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 1);
}

static void newer_file_is_refused_untouched(void **state)
{
	fixture *f = *state;
	raw_exec(f->path, "CREATE TABLE a(x); PRAGMA application_id = 1414747185;"
			  "PRAGMA user_version = 3;");
	es_db_schema s = schema_of(2, NULL);
	expect_unchanged_after(f->path, &s, ES_EVERSION);
	es_db *db = NULL;
	assert_int_equal(open_with(f->path, &s, true, &db), ES_EVERSION);
	assert_null(db);
}

/* Another application's file, marked otherwise: never adopted. */
static void foreign_file_is_refused_untouched(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL), adopting = schema_of(2, adopt_all);
	raw_exec(f->path, "CREATE TABLE theirs(x); PRAGMA user_version = 1;"
			  "PRAGMA application_id = 7;");
	expect_unchanged_after(f->path, &s, ES_ECORRUPT);
	expect_unchanged_after(f->path, &adopting, ES_ECORRUPT);
	es_db *db = NULL;
	assert_int_equal(open_with(f->path, &s, true, &db), ES_ECORRUPT);
	assert_null(db);
}

/* Unmarked with tables, and no one to adopt it. */
static void unmarked_file_without_adopter_is_refused(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL);
	raw_exec(f->path, "CREATE TABLE theirs(x);");
	expect_unchanged_after(f->path, &s, ES_ECORRUPT);
	es_db *db = NULL;
	assert_int_equal(open_with(f->path, &s, true, &db), ES_ECORRUPT);
	assert_null(db);
}

/* Unmarked files the owner recognises: at version 0 migrated (and marked)
 * from the start, above it marked as they are. */
static void unmarked_file_is_adopted(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, adopt_all);
	raw_exec(f->path, "CREATE TABLE kept(x); INSERT INTO kept VALUES(42);");
	es_db *db;
	assert_int_equal(open_with(f->path, &s, false, &db), ES_OK);
	es_db_close(db);
	assert_int_equal(raw_int(f->path, "PRAGMA application_id"), APP);
	assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(f->path, "SELECT x FROM kept"), 42);
	raw_exec(f->path, "PRAGMA application_id = 0;");
	assert_int_equal(open_with(f->path, &s, false, &db), ES_OK);
	es_db_close(db);
	assert_int_equal(raw_int(f->path, "PRAGMA application_id"), APP);
}

static void unopenable_paths(void **state)
{
	fixture *f = *state;
	char path[192];
	es_db *db = NULL;
	snprintf(path, sizeof path, "%s/no/such/dir/t.db", f->dir);
	es_db_schema s = schema_of(2, NULL);
	assert_int_equal(open_with(path, &s, false, &db), ES_ENOTFOUND);
	assert_int_equal(open_with(f->path, &s, true, &db), ES_ENOTFOUND); /* not there */
	assert_null(db);
	es_db_opts o = {.path = ""};
	assert_int_equal(es_db_open(&o, &db), ES_EINVAL);
	assert_int_equal(es_db_open(NULL, &db), ES_EINVAL);
	es_db_close(NULL);
}

/* A reader sees the file, writes nothing, and checks the mark. */
static void readonly_connection_reads_only(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL);
	es_db *w, *r;
	assert_int_equal(open_with(f->path, &s, false, &w), ES_OK);
	assert_int_equal(es_db_exec(w, "INSERT INTO a VALUES(7)"), ES_OK);
	assert_int_equal(open_with(f->path, &s, true, &r), ES_OK);
	uint64_t v;
	assert_int_equal(es_db_query_u64(r, "SELECT x FROM a", &v), ES_OK);
	assert_int_equal(v, 7);
	assert_int_not_equal(es_db_exec(r, "INSERT INTO a VALUES(8)"), ES_OK);
	es_db_close(r);
	es_db_close(w);
}

/* ---- statements --------------------------------------------------------- */

/* The same text gives the cached statement back; one still out gives a
 * statement of its own; a full cache still serves. */
static void statement_cache(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL);
	es_db *db;
	sqlite3_stmt *a, *b, *c;
	assert_int_equal(open_with(f->path, &s, false, &db), ES_OK);
	const char *sql = "SELECT ?1 + 1";
	assert_int_equal(es_db_stmt(db, sql, &a), ES_OK);
	assert_int_equal(es_db_stmt(db, sql, &b), ES_OK);
	assert_ptr_not_equal(a, b);
	sqlite3_bind_int(a, 1, 1);
	sqlite3_bind_int(b, 1, 10);
	assert_int_equal(sqlite3_step(a), SQLITE_ROW);
	assert_int_equal(sqlite3_step(b), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(a, 0), 2);
	assert_int_equal(sqlite3_column_int(b, 0), 11);
	es_db_release(db, b);
	es_db_release(db, a);
	char text[] = "SELECT ?1 + 1"; /* the same text elsewhere in memory */
	assert_int_equal(es_db_stmt(db, text, &c), ES_OK);
	assert_ptr_equal(c, a);
	assert_int_equal(sqlite3_bind_parameter_count(c), 1);
	assert_int_equal(sqlite3_step(c), SQLITE_ROW); /* bindings were cleared */
	assert_int_equal(sqlite3_column_type(c, 0), SQLITE_NULL);
	es_db_release(db, c);
	sqlite3_stmt *many[40];
	char q[40][32];
	for (int i = 0; i < 40; i++) {
		snprintf(q[i], sizeof q[i], "SELECT %d", i);
		assert_int_equal(es_db_stmt(db, q[i], &many[i]), ES_OK);
		uint64_t v;
		bool found;
		assert_int_equal(es_db_step_u64(db, many[i], &v, &found), ES_OK);
		assert_true(found);
		assert_int_equal(v, (uint64_t)i);
	}
	for (int i = 0; i < 40; i++)
		es_db_release(db, many[i]);
	assert_int_equal(es_db_stmt(db, "SELECT nonsense FROM nowhere", &c), ES_EIO);
	es_db_close(db);
}

static void step_helpers(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL);
	es_db *db;
	sqlite3_stmt *st;
	uint64_t v = 99;
	bool found = true;
	assert_int_equal(open_with(f->path, &s, false, &db), ES_OK);
	assert_int_equal(es_db_query_u64(db, "SELECT max(x) FROM a", &v), ES_OK);
	assert_int_equal(v, 0); /* NULL */
	assert_int_equal(es_db_stmt(db, "SELECT x FROM a", &st), ES_OK);
	assert_int_equal(es_db_step_u64(db, st, &v, &found), ES_OK);
	assert_false(found); /* no row */
	es_db_release(db, st);
	assert_int_equal(es_db_stmt(db, "INSERT INTO a VALUES(?1)", &st), ES_OK);
	sqlite3_bind_int(st, 1, 5);
	assert_int_equal(es_db_step_done(db, st), ES_OK);
	assert_int_equal(es_db_changes(db), 1);
	es_db_release(db, st);
	assert_int_equal(es_db_exec(db, "CREATE UNIQUE INDEX ax ON a(x)"), ES_OK);
	assert_int_equal(es_db_stmt(db, "INSERT INTO a VALUES(5)", &st), ES_OK);
	assert_int_equal(es_db_step_done(db, st), ES_EIO); /* a constraint */
	es_db_release(db, st);
	assert_non_null(es_db_handle(db));
	es_db_close(db);
}

/* ---- transactions ------------------------------------------------------- */

static void transactions_and_savepoints(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL);
	es_db *db;
	uint64_t n;
	assert_int_equal(open_with(f->path, &s, false, &db), ES_OK);
	assert_false(es_db_in_txn(db));
	es_db_rollback(db); /* none open: nothing happens */
	assert_int_equal(es_db_begin(db), ES_OK);
	assert_true(es_db_in_txn(db));
	assert_int_equal(es_db_exec(db, "INSERT INTO a VALUES(1)"), ES_OK);
	assert_int_equal(es_db_savepoint(db), ES_OK);
	assert_int_equal(es_db_exec(db, "INSERT INTO a VALUES(2)"), ES_OK);
	es_db_savepoint_undo(db);
	assert_true(es_db_in_txn(db));
	assert_int_equal(es_db_savepoint(db), ES_OK);
	assert_int_equal(es_db_exec(db, "INSERT INTO a VALUES(3)"), ES_OK);
	assert_int_equal(es_db_savepoint_release(db), ES_OK);
	assert_int_equal(es_db_commit(db), ES_OK);
	assert_false(es_db_in_txn(db));
	assert_int_equal(es_db_query_u64(db, "SELECT sum(x) FROM a", &n), ES_OK);
	assert_int_equal(n, 4);
	assert_int_equal(es_db_begin(db), ES_OK);
	assert_int_equal(es_db_exec(db, "DELETE FROM a"), ES_OK);
	es_db_rollback(db);
	assert_false(es_db_in_txn(db));
	assert_int_equal(es_db_query_u64(db, "SELECT count(*) FROM a", &n), ES_OK);
	assert_int_equal(n, 2);
	es_db_close(db);
}

/* A second writer waits (busy timeout), then is told it is busy. */
static void a_held_write_lock_is_busy(void **state)
{
	fixture *f = *state;
	es_db_schema s = schema_of(2, NULL);
	es_db *a, *b;
	assert_int_equal(open_with(f->path, &s, false, &a), ES_OK);
	assert_int_equal(open_with(f->path, &s, false, &b), ES_OK);
	sqlite3_busy_timeout(es_db_handle(b), 50);
	assert_int_equal(es_db_begin(a), ES_OK);
	assert_int_equal(es_db_begin(b), ES_EBUSY);
	assert_false(es_db_in_txn(b));
	assert_int_equal(es_db_commit(a), ES_OK);
	assert_int_equal(es_db_begin(b), ES_OK);
	assert_int_equal(es_db_commit(b), ES_OK);
	es_db_close(b);
	es_db_close(a);
}

/* ---- errors ------------------------------------------------------------- */

static void sqlite_codes_become_es_err(void **state)
{
	(void)state;
	assert_int_equal(es_db_err(NULL, SQLITE_FULL, "t"), ES_EFULL);
	assert_int_equal(es_db_err(NULL, SQLITE_IOERR_FSYNC, "t"), ES_EIO);
	assert_int_equal(es_db_err(NULL, SQLITE_NOMEM, "t"), ES_ENOMEM);
	assert_int_equal(es_db_err(NULL, SQLITE_CORRUPT, "t"), ES_ECORRUPT);
	assert_int_equal(es_db_err(NULL, SQLITE_NOTADB, "t"), ES_ECORRUPT);
	assert_int_equal(es_db_err(NULL, SQLITE_CANTOPEN, "t"), ES_ENOTFOUND);
	assert_int_equal(es_db_err(NULL, SQLITE_BUSY_SNAPSHOT, "t"), ES_EBUSY);
	assert_int_equal(es_db_err(NULL, SQLITE_LOCKED, "t"), ES_EBUSY);
	assert_int_equal(es_db_err(NULL, SQLITE_CONSTRAINT_UNIQUE, "t"), ES_EIO);
}

/* Random bytes are not a database: refused as corrupt, untouched. */
static void random_bytes_are_refused(void **state)
{
	fixture *f = *state;
	FILE *fp = fopen(f->path, "wb");
	assert_non_null(fp);
	for (int i = 0; i < 8192; i++)
		fputc((i * 131 + 7) & 0xff, fp);
	fclose(fp);
	es_db_schema s = schema_of(2, adopt_all);
	expect_unchanged_after(f->path, &s, ES_ECORRUPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(new_file_is_marked_migrated_and_tuned, setup,
						teardown),
		cmocka_unit_test_setup_teardown(page_size_is_a_new_files, setup, teardown),
		cmocka_unit_test_setup_teardown(wal_stays_within_its_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(older_file_is_migrated_forward, setup, teardown),
		cmocka_unit_test_setup_teardown(failed_migration_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_file_is_refused_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(foreign_file_is_refused_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(unmarked_file_without_adopter_is_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(unmarked_file_is_adopted, setup, teardown),
		cmocka_unit_test_setup_teardown(unopenable_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(readonly_connection_reads_only, setup, teardown),
		cmocka_unit_test_setup_teardown(statement_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(step_helpers, setup, teardown),
		cmocka_unit_test_setup_teardown(transactions_and_savepoints, setup, teardown),
		cmocka_unit_test_setup_teardown(a_held_write_lock_is_busy, setup, teardown),
		cmocka_unit_test(sqlite_codes_become_es_err),
		cmocka_unit_test_setup_teardown(random_bytes_are_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
