/* journal_dead.c - dead letters: what could not be journaled as an event
 * (a malformed payload, a refused publish), kept with its reason in the
 * next transaction without waiting, bounded to the newest DEADLETTERS_KEPT
 * by retention, and read back oldest or newest first.
 */
#include "journal_int.h"

#include <sqlite3.h>
#include <string.h>

es_err es_journal_dead_letter(es_journal *j, const char *topic, const char *reason,
			      const void *payload, size_t len)
{
	struct op *o;
	if (!j || !topic || !reason || (len && !payload))
		return ES_EINVAL;
	if (es_jnl_op_new(&o, payload, len))
		return ES_ENOMEM;
	o->kind = OP_DEADLETTER;
	if (!(o->topic = strdup(topic)) || !(o->reason = strdup(reason))) {
		es_jnl_ops_free(o);
		return ES_ENOMEM;
	}
	return es_jnl_op_enqueue(j, o);
}

/* Writer thread, inside its transaction. */
es_err es_jnl_insert_dead(es_journal *j, const struct op *o)
{
	sqlite3_stmt *st = j->st[S_DEADLETTER];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)o->ms);
	sqlite3_bind_text(st, 2, o->topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, o->reason, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, o->blob, (int)o->len, SQLITE_STATIC);
	es_err err = es_db_step_done(j->db, st);
	sqlite3_clear_bindings(st);
	return err;
}

/* Writer thread, inside retention's transaction. */
es_err es_jnl_prune_dead(es_journal *j)
{
	sqlite3_bind_int64(j->st[S_PRUNE_DEAD], 1, DEADLETTERS_KEPT);
	return es_db_step_done(j->db, j->st[S_PRUNE_DEAD]);
}

static es_err read_deadletters(es_journal_reader *r, const char *sql, uint64_t bound, size_t limit,
			       int (*fn)(void *ctx, const es_journal_deadletter *d), void *ctx)
{
	sqlite3_stmt *st;
	if (!r || !fn)
		return ES_EINVAL;
	es_err err = es_db_stmt(r->db, sql, &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)bound);
	sqlite3_bind_int64(st, 2, es_jnl_limit(limit));
	int rc;
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
	err = rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : es_db_err(r->db, rc, sql);
	es_db_release(r->db, st);
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
