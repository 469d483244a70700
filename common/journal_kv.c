/* journal_kv.c - a program's own state kept in the journal (meta rows with
 * keys starting "x."): stored with an append or on its own in the next
 * transaction, atomically with the events and acks committed there, and
 * read back through a reader.
 */
#include "journal_int.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

es_err es_journal_put(es_journal *j, const char *key, const void *value, size_t len)
{
	struct op *o;
	if (!j || !key || (len && !value) || strncmp(key, "x.", 2) != 0)
		return ES_EINVAL;
	if (es_jnl_op_new(&o, value, len))
		return ES_ENOMEM;
	o->kind = OP_PUT;
	if (!(o->key = strdup(key))) {
		es_jnl_ops_free(o);
		return ES_ENOMEM;
	}
	return es_jnl_op_enqueue(j, o);
}

/* Writer thread, inside its transaction. */
es_err es_jnl_put_kv(es_journal *j, const char *key, const void *value, size_t len)
{
	sqlite3_stmt *st = j->st[S_PUT];
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, value, (int)len, SQLITE_STATIC);
	es_err err = es_db_step_done(j->db, st);
	sqlite3_clear_bindings(st);
	return err;
}

es_err es_journal_get(es_journal_reader *r, const char *key, void **value, size_t *len)
{
	sqlite3_stmt *st;
	if (!r || !key || !value || !len)
		return ES_EINVAL;
	es_err err = es_db_stmt(r->db, "SELECT value FROM meta WHERE key = ?1", &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	err = ES_ENOTFOUND;
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
	es_db_release(r->db, st);
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
	es_err err = es_db_stmt(r->db, sql, &st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		const void *value = sqlite3_column_blob(st, 1);
		if (fn(ctx, key ? key : "", value, (size_t)sqlite3_column_bytes(st, 1))) {
			rc = SQLITE_DONE;
			break;
		}
	}
	err = rc == SQLITE_DONE ? ES_OK : es_db_err(r->db, rc, sql);
	es_db_release(r->db, st);
	return err;
}
