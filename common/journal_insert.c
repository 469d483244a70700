/* journal_insert.c - one request inside the writer's transaction: each
 * event gets the next sequence (or is found a duplicate) and is inserted
 * with its finished body, the request's state values beside them, all
 * under one savepoint; and the cap is checked exactly.
 *
 * Writer thread only.
 */
#include "journal_int.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static es_err find_id(es_journal *j, const char *id, uint64_t *seq, bool *found)
{
	sqlite3_stmt *st = j->st[S_FIND_ID];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	es_err err = es_db_step_u64(j->db, st, seq, found);
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
	/* An event made here has both in its body (ES_JNL_ROW_COLUMNS). */
	sqlite3_bind_text(st, 3, p->open ? "" : p->type, -1, SQLITE_STATIC);
	bind_text_or_null(st, 4, p->open ? NULL : p->subject);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)now);
	sqlite3_bind_blob(st, 6, body, (int)len, SQLITE_STATIC);
	bind_text_or_null(st, 7, p->origin);
	if (p->origin)
		sqlite3_bind_int64(st, 8, (sqlite3_int64)p->origin_seq);
	else
		sqlite3_bind_null(st, 8);
	es_err err = es_db_step_done(j->db, st);
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

static es_err insert_all(es_journal *j, struct request *r, uint64_t now)
{
	es_err err = es_db_savepoint(j->db);
	for (size_t i = 0; i < r->n && !err; i++)
		err = append_one(j, &r->prep[i], now, &r->res[i]);
	for (size_t i = 0; i < r->nkv && !err; i++)
		err = es_jnl_put_kv(j, r->kv[i].key, r->kv[i].value, r->kv[i].len);
	return err;
}

static void undo_request(es_journal *j, uint64_t first_seq)
{
	es_db_savepoint_undo(j->db);
	j->next_seq = first_seq;
}

/* Room to make for r, inserted over a database of `used` bytes, that grew
 * it by `grew` and passed the cap by `over`: the database must shrink by
 * that much before r goes in again (its WAL may outgrow the WAL's share;
 * the database then leaves room for it), and by `grew` more: a try undone
 * inside the transaction leaves its spilled pages in the WAL file, so the
 * next one finds the WAL larger. */
static uint64_t room_needed(const es_journal *j, uint64_t used, uint64_t grew, uint64_t over)
{
	uint64_t shrink = over + grew;
	uint64_t keep = used > shrink ? used - shrink : 0, share = es_jnl_db_share(j);
	return share > keep ? share - keep : 0;
}

/* Inserts r again after making room (evict policy), checking the cap once
 * more, a few times; or refuses it. */
static es_err insert_again(es_journal *j, struct request *r, uint64_t now, uint64_t first_seq,
			   uint64_t need)
{
	es_err err = ES_EFULL;
	bool held = true; /* r's rows are in, under their savepoint */
	for (int tries = 0; tries < 4 && j->o.on_full == ES_ON_FULL_EVICT; tries++) {
		uint64_t before = 0, after = 0, over = 0;
		undo_request(j, first_seq);
		held = false;
		if ((err = es_jnl_make_room(j, need)) || (err = es_jnl_used_bytes(j, &before)))
			break;
		err = insert_all(j, r, now);
		held = true;
		if (err || (err = es_jnl_cap_check(j, before, &after, &over)))
			break;
		if (!over) {
			es_db_savepoint_release(j->db);
			return ES_OK;
		}
		need = room_needed(j, before, after > before ? after - before : 0, over);
		err = ES_EFULL;
	}
	if (held)
		undo_request(j, first_seq);
	if (err == ES_EFULL)
		atomic_fetch_add(&j->refused_full, r->n);
	return err;
}

/* Before inserting: a request whose bodies alone pass the database's share
 * of the cap is refused (or makes room) at once. Inserted and then undone,
 * it would still have written its pages to the WAL (a transaction larger
 * than the page cache spills there), beyond the cap. *used gets the
 * database's used size. */
static es_err room_first(es_journal *j, const struct request *r, uint64_t *used)
{
	es_err err = es_jnl_used_bytes(j, used);
	if (err || *used + r->bytes <= es_jnl_db_share(j))
		return err;
	if ((err = es_jnl_make_room(j, r->bytes))) {
		if (err == ES_EFULL)
			atomic_fetch_add(&j->refused_full, r->n);
		return err;
	}
	return es_jnl_used_bytes(j, used);
}

/* One request inside the group transaction, under its own savepoint so a
 * failure leaves the others intact. The cap is checked exactly: insert, look
 * at what the files would take (es_jnl_cap_check), and if that passes the
 * cap, undo, make room (evict policy) and insert again, or refuse. */
es_err es_jnl_append_request(es_journal *j, struct request *r, uint64_t now)
{
	uint64_t first_seq = j->next_seq, before = 0, after = 0, over = 0;
	es_err err;
	if (j->o.max_bytes && (err = room_first(j, r, &before)))
		return err;
	if ((err = insert_all(j, r, now))) {
		undo_request(j, first_seq);
		return err;
	}
	if (!j->o.max_bytes || (err = es_jnl_cap_check(j, before, &after, &over)) || !over) {
		if (err)
			undo_request(j, first_seq);
		else
			es_db_savepoint_release(j->db);
		return err;
	}
	return insert_again(j, r, now, first_seq,
			    room_needed(j, before, after > before ? after - before : 0, over));
}
