/* journal_query.c - the REST API's event browser: a filtered page of the
 * journal (type, subject, state, time, id), newest or oldest first, that
 * looks at ES_QUERY_SCAN_MAX rows at most and says where to go on.
 */
#include "journal_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

/* The query for q, with ?N placeholders numbered as bind_query binds them.
 * Rows are looked at only inside [lo, hi]: the scan is bounded. */
static void query_sql(const es_journal_query *q, char *sql, size_t cap)
{
	size_t n = (size_t)snprintf(sql, cap,
				    "SELECT " ES_JNL_ROW_COLUMNS " FROM events WHERE seq BETWEEN "
				    "?1 AND ?2");
	if (q->type && q->type[0] && q->type[strlen(q->type) - 1] == '*')
		n += (size_t)snprintf(sql + n, cap - n,
				      " AND substr(" ES_JNL_TYPE_SQL ", 1, ?3) = ?4");
	else if (q->type && q->type[0])
		n += (size_t)snprintf(sql + n, cap - n, " AND " ES_JNL_TYPE_SQL " = ?4");
	if (q->subject && q->subject[0])
		n += (size_t)snprintf(sql + n, cap - n, " AND " ES_JNL_SUBJECT_SQL " = ?5");
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

/* Steps the query, calling fn per row; *rows and *last: how many rows were
 * handed over and the last one's sequence. Releases st. */
static es_err run_query(es_journal_reader *r, sqlite3_stmt *st, uint64_t acked,
			es_journal_row_fn fn, void *ctx, size_t *rows, uint64_t *last)
{
	es_journal_row row;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		es_jnl_fill_row(st, acked, &row);
		*last = row.seq;
		(*rows)++;
		if (fn(ctx, &row))
			break;
	}
	es_err err = rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK
							   : es_db_err(r->db, rc, sqlite3_sql(st));
	es_db_release(r->db, st);
	return err;
}

es_err es_journal_query_rows(es_journal_reader *r, const es_journal_query *q, es_journal_row_fn fn,
			     void *ctx, uint64_t *next)
{
	char sql[1536];
	sqlite3_stmt *st;
	uint64_t acked, oldest = 0, newest = 0, lo, hi, last = 0;
	size_t rows = 0;
	if (!r || !q || !fn || !next || q->limit == 0)
		return ES_EINVAL;
	es_jnl_watermark(r, &acked);
	es_err err = es_db_query_u64(r->db, "SELECT min(seq) FROM events", &oldest);
	if (!err)
		err = es_db_query_u64(r->db, "SELECT max(seq) FROM events", &newest);
	*next = 0;
	if (err || newest == 0)
		return err;
	query_window(q, oldest, newest, &lo, &hi);
	query_sql(q, sql, sizeof sql);
	if ((err = es_db_stmt(r->db, sql, &st)))
		return err;
	bind_query(st, q, lo, hi, acked);
	if ((err = run_query(r, st, acked, fn, ctx, &rows, &last)) || (q->id && q->id[0]))
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

es_err es_journal_pending_types(es_journal_reader *r,
				int (*fn)(void *ctx, const char *type, uint64_t count,
					  uint64_t oldest_ms),
				void *ctx)
{
	uint64_t acked;
	sqlite3_stmt *st;
	if (!r || !fn)
		return ES_EINVAL;
	es_jnl_watermark(r, &acked);
	es_err err =
		es_db_stmt(r->db,
			   "SELECT " ES_JNL_TYPE_SQL ", count(*), min(journaled_ms) FROM events "
			   "WHERE seq > ?1 GROUP BY 1",
			   &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)acked);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		if (fn(ctx, type ? type : "", (uint64_t)sqlite3_column_int64(st, 1),
		       (uint64_t)sqlite3_column_int64(st, 2)))
			break;
	}
	err = rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : es_db_err(r->db, rc, "pending types");
	es_db_release(r->db, st);
	return err;
}
