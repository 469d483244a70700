/* journal_read.c - readers: a read-only connection each (one per thread;
 * WAL lets them run beside the writer), rows in sequence order (the
 * publisher's pending rows, replay, the CLI), a bridge's rows by origin,
 * and the stats of the file.
 */
#include "journal_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static es_err reader_make(const char *path, es_journal *j, es_journal_reader **out)
{
	es_journal_reader *r = calloc(1, sizeof *r);
	if (!r)
		return ES_ENOMEM;
	r->j = j;
	r->path = strdup(path);
	/* Opened by path, the file is checked (a reader migrates nothing). */
	es_db_opts o = {
		.path = path, .tag = TAG, .readonly = true, .schema = j ? NULL : &es_jnl_schema};
	es_err err = r->path ? es_db_open(&o, &r->db) : ES_ENOMEM;
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
	return reader_make(path, NULL, out);
}

void es_journal_reader_free(es_journal_reader *r)
{
	if (!r)
		return;
	es_db_close(r->db);
	free(r->path);
	free(r);
}

/* The ack watermark as this reader sees it: the writer's when attached,
 * else what the file says. */
es_err es_jnl_watermark(es_journal_reader *r, uint64_t *out)
{
	char text[32];
	if (r->j) {
		*out = atomic_load(&r->j->acked_seq);
		return ES_OK;
	}
	*out = es_jnl_meta_text(r->db, "acked_seq", text, sizeof text) == ES_OK
		       ? strtoull(text, NULL, 10)
		       : 0;
	return ES_OK;
}

void es_jnl_fill_row(sqlite3_stmt *st, uint64_t acked, es_journal_row *row)
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

/* Steps st, calling fn for each row until it returns non-zero; releases
 * st (which ends the read transaction). */
static es_err each_row(es_journal_reader *r, sqlite3_stmt *st, uint64_t acked, es_journal_row_fn fn,
		       void *ctx)
{
	es_journal_row row;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		es_jnl_fill_row(st, acked, &row);
		if (fn(ctx, &row))
			break;
	}
	es_err err = rc == SQLITE_ROW || rc == SQLITE_DONE ? ES_OK : es_db_err(r->db, rc, "read");
	es_db_release(r->db, st);
	return err;
}

es_err es_journal_read(es_journal_reader *r, uint64_t from, uint64_t to, size_t limit,
		       bool pending_only, es_journal_row_fn fn, void *ctx)
{
	uint64_t acked;
	sqlite3_stmt *st;
	if (!r || !fn)
		return ES_EINVAL;
	es_jnl_watermark(r, &acked);
	if (pending_only && from <= acked)
		from = acked + 1;
	/* Cached; a callback reading again gets a statement of its own. */
	es_err err = es_db_stmt(r->db,
				"SELECT " ES_JNL_ROW_COLUMNS " FROM events WHERE seq BETWEEN ?1 "
				"AND ?2 ORDER BY seq LIMIT ?3",
				&st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
	sqlite3_bind_int64(st, 2, es_jnl_bound(to));
	sqlite3_bind_int64(st, 3, es_jnl_limit(limit));
	return each_row(r, st, acked, fn, ctx);
}

es_err es_journal_read_origin(es_journal_reader *r, const char *origin, uint64_t from, uint64_t to,
			      size_t limit, es_journal_row_fn fn, void *ctx)
{
	uint64_t acked;
	sqlite3_stmt *st;
	if (!r || !origin || !fn)
		return ES_EINVAL;
	es_jnl_watermark(r, &acked);
	es_err err = es_db_stmt(r->db,
				"SELECT " ES_JNL_ROW_COLUMNS " FROM events WHERE origin = ?1 AND "
				"origin_seq BETWEEN ?2 AND ?3 AND seq > ?4 ORDER BY origin_seq "
				"LIMIT ?5",
				&st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, es_jnl_bound(from));
	sqlite3_bind_int64(st, 3, es_jnl_bound(to));
	sqlite3_bind_int64(st, 4, (sqlite3_int64)acked);
	sqlite3_bind_int64(st, 5, es_jnl_limit(limit));
	return each_row(r, st, acked, fn, ctx);
}

es_err es_journal_find_origin(es_journal_reader *r, const char *origin, uint64_t origin_seq,
			      uint64_t after, size_t limit, es_journal_row_fn fn, void *ctx)
{
	uint64_t acked;
	sqlite3_stmt *st;
	if (!r || !origin || !fn)
		return ES_EINVAL;
	es_jnl_watermark(r, &acked);
	es_err err = es_db_stmt(r->db,
				"SELECT " ES_JNL_ROW_COLUMNS " FROM events WHERE origin = ?1 AND "
				"origin_seq = ?2 AND seq > ?3 ORDER BY seq DESC LIMIT ?4",
				&st);
	if (err)
		return err;
	sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, es_jnl_bound(origin_seq));
	sqlite3_bind_int64(st, 3, es_jnl_bound(after));
	sqlite3_bind_int64(st, 4, es_jnl_limit(limit));
	return each_row(r, st, acked, fn, ctx);
}

/* ---- stats -------------------------------------------------------------- */

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
	bool found;
	es_err err = es_db_stmt(r->db, "SELECT journaled_ms FROM events WHERE seq = ?1", &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)s->oldest_pending_seq);
	err = es_db_step_u64(r->db, st, &s->oldest_pending_ms, &found);
	es_db_release(r->db, st);
	return err;
}

/* The figures read from the file, in the caller's read transaction. */
static es_err read_figures(es_journal_reader *r, es_journal_stats *s, uint64_t *pages,
			   uint64_t *free_pages, uint64_t *page_size)
{
	es_err err;
	if ((err = es_db_query_u64(r->db, "SELECT min(seq) FROM events", &s->oldest_seq)) ||
	    (err = es_db_query_u64(r->db, "SELECT max(seq) FROM events", &s->latest_seq)) ||
	    (err = es_jnl_watermark(r, &s->acked_seq)) ||
	    (err = es_db_query_u64(r->db, "PRAGMA page_count", pages)) ||
	    (err = es_db_query_u64(r->db, "PRAGMA freelist_count", free_pages)) ||
	    (err = es_db_query_u64(r->db, "PRAGMA page_size", page_size)) ||
	    (err = es_db_query_u64(r->db, "SELECT count(*) FROM deadletters", &s->deadletters)))
		return err;
	if (s->latest_seq > s->acked_seq) {
		s->oldest_pending_seq = s->acked_seq + 1;
		err = oldest_pending(r, s);
	}
	return err;
}

/* One read transaction so the figures agree with each other. Pending is
 * everything above the ack watermark (for an attached reader, less the
 * acks already taken above it). */
es_err es_journal_stats_get(es_journal_reader *r, es_journal_stats *out)
{
	es_journal_stats s = {0};
	uint64_t pages = 0, free_pages = 0, page_size = 0;
	es_err err = es_db_begin_read(r->db);
	if (!err)
		err = read_figures(r, &s, &pages, &free_pages, &page_size);
	es_db_rollback(r->db); /* a read: ending it is all */
	if (err)
		return err;
	s.pending = r->j ? atomic_load(&r->j->pending)
			 : (s.latest_seq > s.acked_seq ? s.latest_seq - s.acked_seq : 0);
	s.count = s.latest_seq ? s.latest_seq - s.oldest_seq + 1 : 0;
	/* Pages in the WAL only are in the database as soon as it is folded
	 * back: the file counts at least page_count pages. */
	uint64_t wal = file_size(r->path, "-wal") + file_size(r->path, "-shm");
	uint64_t file = file_size(r->path, "");
	s.used_bytes = (pages - free_pages) * page_size + wal;
	s.file_bytes = (file > pages * page_size ? file : pages * page_size) + wal;
	*out = s;
	return ES_OK;
}
