/* journal_verify.c - checks a journal file: SQLite's integrity_check, the
 * ack watermark within the sequences given, no holes in the held range,
 * every body a CloudEvent whose id and sequence match its row.
 */
#include "journal_int.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	es_err err = es_db_stmt(r->db, "PRAGMA integrity_check", &st);
	if (err)
		return err;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(st, 0);
		if (line && strcmp(line, "ok") != 0) {
			v->problems++;
			if (v->fn)
				v->fn(v->ctx, line);
		}
	}
	err = rc == SQLITE_DONE ? ES_OK : es_db_err(r->db, rc, "integrity_check");
	es_db_release(r->db, st);
	return err;
}

/* The ack watermark cannot be past the newest event. */
static es_err check_watermark(es_journal_reader *r, struct verify_ctx *v)
{
	uint64_t acked, newest = 0, last = 0;
	char text[32];
	es_err err = es_jnl_watermark(r, &acked);
	if (!err)
		err = es_db_query_u64(r->db, "SELECT max(seq) FROM events", &newest);
	if (es_jnl_meta_text(r->db, "last_seq", text, sizeof text) == ES_OK)
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
