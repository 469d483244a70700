/* consumer.c - batches applied once: decode, dedup, handlers, log,
 * checkpoint, snapshot, COMMIT, then ack. Owns the consumer store's schema
 * (seen, events, deadletters, meta, gap_nodes, snapshot), written through
 * the SQLite adapter (db.h).
 *
 * The holes are kept one row per source (gap_nodes: the source's part of
 * the gap tracker's saved state); a transaction rewrites the rows of the
 * sources it touched (`dirty`), so a checkpoint costs what the batch
 * changed, not what every source has. The event log's numbering (`n`)
 * never goes back: trimming always keeps the snapshot's last event, so
 * SQLite never reuses a number a snapshot's position refers to.
 *
 * Threads: the owner thread has everything; `st` is atomics (read by any
 * thread through es_consumer_stats_get), `stop` too.
 */
#include "consumer.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "clock.h"
#include "db.h"
#include "gap.h"
#include "grow.h"
#include "log.h"
#include "lograte.h"

#define TAG		 "consumer"
#define DEADLETTERS_KEPT 1000
#define RETRY_MS	 500
#define POLL_MS		 200
#define APPLICATION_ID	 0x45534331 /* "ESC1" in the file header: a consumer store */

struct handler {
	char *pattern;
	es_consumer_fn fn;
	void *arg;
};

struct counters {
	_Atomic uint64_t applied, duplicates, invalid, events, batches, commit_errors;
	_Atomic uint64_t holes_open, missing, holes_detected, lost, snapshot_n;
};

struct es_consumer {
	es_consumer_opts o;
	char *path;
	es_db *db;
	sqlite3_stmt *seen_ins, *log_ins, *dead_ins, *meta_put, *gap_put; /* out of db's cache */
	es_gap *gap;
	char **dirty; /* sources whose holes this transaction changed */
	size_t ndirty, dirty_cap;
	es_consumer_snap_fn snap_save, snap_restore;
	void *snap_arg;
	uint64_t since_snap; /* events logged after the latest snapshot */
	struct handler *h;
	size_t nh;
	es_consumer_reset_fn reset;
	void *reset_arg;
	es_consumer_idle_fn idle;
	void *idle_arg;
	bool ask_source;    /* es_consumer_ask_source */
	es_lograte ask_log; /* requests the source cannot make */
	struct counters st;
	atomic_bool stop;
};

/* Migration i brings user_version from i to i + 1. Append only. The first
 * is the schema of the stores made before versions (IF NOT EXISTS): it
 * marks and versions them as it is. */
static const char *const migrations[] = {
	"CREATE TABLE IF NOT EXISTS seen(id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS seen_at ON seen(at_ms);"
	"CREATE TABLE IF NOT EXISTS events(n INTEGER PRIMARY KEY, id TEXT NOT NULL,"
	" type TEXT NOT NULL, source TEXT NOT NULL, seq INTEGER NOT NULL,"
	" at_ms INTEGER NOT NULL, body TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS deadletters(n INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL,"
	" origin TEXT NOT NULL, reason TEXT NOT NULL, body BLOB);"
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value);",
	/* 2: the holes one row per source; the latest snapshot's checkpoint. */
	"CREATE TABLE gap_nodes(node TEXT PRIMARY KEY, part TEXT NOT NULL);"
	"CREATE TABLE snapshot(k INTEGER PRIMARY KEY CHECK(k = 1), n INTEGER NOT NULL,"
	" at_ms INTEGER NOT NULL, applied INTEGER NOT NULL, duplicates INTEGER NOT NULL,"
	" invalid INTEGER NOT NULL, lost INTEGER NOT NULL);",
};

/* A store from before the mark: any unmarked file was taken as one (the
 * handlers' tables share it), so it still is. */
static bool adopt(es_db *db, uint64_t version)
{
	(void)db;
	(void)version;
	return true;
}

static const es_db_schema schema = {
	.application_id = APPLICATION_ID,
	.migrations = migrations,
	.count = sizeof migrations / sizeof migrations[0],
	.adopt = adopt,
};

void es_delivery_clear(es_delivery *d)
{
	free(d->where);
	free(d->body);
	free(d->content_type);
	free(d->encoding);
	free(d->dict);
	memset(d, 0, sizeof *d);
}

void es_source_free(es_source *s)
{
	if (s)
		s->ops->free(s);
}

/* ---- patterns ----------------------------------------------------------- */

const char *es_consumer_check_pattern(const char *p)
{
	if (!p || !*p)
		return "is empty";
	if (strlen(p) > ES_EVENT_TYPE_MAX)
		return "is longer than a type";
	for (const char *w = p;; w++) {
		const char *e = strchr(w, '.');
		size_t n = e ? (size_t)(e - w) : strlen(w);
		if (n == 0)
			return "has an empty word";
		if ((memchr(w, '*', n) || memchr(w, '#', n)) && n != 1)
			return "has '*' or '#' inside a word (they stand for whole words)";
		for (size_t i = 0; i < n; i++)
			if (!strchr("*#", w[i]) && es_event_check_type((char[]){w[i], 0}))
				return "has a character a type cannot have";
		if (!e)
			return NULL;
		w = e;
	}
}

static size_t word_len(const char *s)
{
	const char *e = strchr(s, '.');
	return e ? (size_t)(e - s) : strlen(s);
}

static const char *next_word(const char *s)
{
	size_t n = word_len(s);
	return s[n] ? s + n + 1 : NULL;
}

/* AMQP topic matching over words: '*' one word, '#' zero or more. p and t
 * point at a word, or are NULL when no words are left. */
static bool match_words(const char *p, const char *t)
{
	if (!p)
		return !t;
	size_t pn = word_len(p);
	if (pn == 1 && *p == '#')
		return match_words(next_word(p), t) || (t && match_words(p, next_word(t)));
	if (!t)
		return false;
	size_t tn = word_len(t);
	if (!(pn == 1 && *p == '*') && (pn != tn || memcmp(p, t, pn) != 0))
		return false;
	return match_words(next_word(p), next_word(t));
}

bool es_consumer_match(const char *pattern, const char *type)
{
	return pattern && type && match_words(pattern, type);
}

/* ---- the store ---------------------------------------------------------- */

/* Steps a statement that returns no row; its bindings are cleared (they
 * point into the caller's stack). */
static es_err step(es_consumer *c, sqlite3_stmt *st)
{
	es_err err = es_db_step_done(c->db, st);
	sqlite3_clear_bindings(st);
	return err;
}

static es_err prepare(es_consumer *c)
{
	struct {
		sqlite3_stmt **st;
		const char *sql;
	} q[] = {
		{&c->seen_ins, "INSERT OR IGNORE INTO seen(id, at_ms) VALUES(?1, ?2)"},
		{&c->log_ins, "INSERT INTO events(id, type, source, seq, at_ms, body)"
			      " VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
		{&c->dead_ins, "INSERT INTO deadletters(at_ms, origin, reason, body)"
			       " VALUES(?1, ?2, ?3, ?4)"},
		{&c->meta_put, "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)"},
		{&c->gap_put, "INSERT OR REPLACE INTO gap_nodes(node, part) VALUES(?1, ?2)"},
	};
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
		es_err err = es_db_stmt(c->db, q[i].sql, q[i].st);
		if (err)
			return err;
	}
	return ES_OK;
}

static uint64_t meta_u64(es_consumer *c, const char *key)
{
	sqlite3_stmt *st;
	uint64_t v = 0;
	if (es_db_stmt(c->db, "SELECT value FROM meta WHERE key = ?1", &st))
		return 0;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = (uint64_t)sqlite3_column_int64(st, 0);
	es_db_release(c->db, st);
	return v;
}

static es_err meta_put_u64(es_consumer *c, const char *key, uint64_t v)
{
	sqlite3_bind_text(c->meta_put, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(c->meta_put, 2, (sqlite3_int64)v);
	return step(c, c->meta_put);
}

static uint64_t count_events(es_consumer *c)
{
	uint64_t v = 0;
	return es_db_query_u64(c->db, "SELECT count(*) FROM events", &v) ? 0 : v;
}

/* ---- the holes, one row per source ------------------------------------ */

/* Remembers that source's holes changed in this transaction. */
static es_err mark_dirty(es_consumer *c, const char *source)
{
	for (size_t i = 0; i < c->ndirty; i++)
		if (strcmp(c->dirty[i], source) == 0)
			return ES_OK;
	char **grown = es_grow(c->dirty, &c->dirty_cap, c->ndirty + 1, sizeof *grown, 16);
	if (!grown)
		return ES_ENOMEM;
	c->dirty = grown;
	if (!(c->dirty[c->ndirty] = strdup(source)))
		return ES_ENOMEM;
	c->ndirty++;
	return ES_OK;
}

static void clear_dirty(es_consumer *c)
{
	for (size_t i = 0; i < c->ndirty; i++)
		free(c->dirty[i]);
	c->ndirty = 0;
}

/* Writes a node part (gap.h: "\n<name> ...") as its source's row, keyed by
 * the name as the part writes it. */
static es_err put_part(es_consumer *c, const char *part, size_t len)
{
	const char *sp = len > 1 ? memchr(part + 1, ' ', len - 1) : NULL;
	if (!sp || part[0] != '\n')
		return ES_EINVAL;
	sqlite3_bind_text(c->gap_put, 1, part + 1, (int)(sp - part - 1), SQLITE_STATIC);
	sqlite3_bind_text(c->gap_put, 2, part, (int)len, SQLITE_STATIC);
	return step(c, c->gap_put);
}

/* The rows of the sources this transaction touched. */
static es_err save_dirty(es_consumer *c)
{
	es_err err = ES_OK;
	for (size_t i = 0; !err && i < c->ndirty; i++) {
		char *part = NULL;
		size_t len = 0;
		err = es_gap_save_node(c->gap, c->dirty[i], &part, &len);
		if (err == ES_ENOTFOUND) { /* a source the tracker never took */
			err = ES_OK;
			continue;
		}
		if (!err)
			err = put_part(c, part, len);
		free(part);
	}
	return err;
}

/* Appends text to a growing buffer. */
static bool append(char **buf, size_t *len, size_t *cap, const char *text, size_t n)
{
	char *b = n < SIZE_MAX - *len ? es_grow(*buf, cap, *len + n + 1, 1, 256) : NULL;
	if (!b)
		return false;
	*buf = b;
	memcpy(*buf + *len, text, n);
	*len += n;
	(*buf)[*len] = '\0';
	return true;
}

/* Every source's part, concatenated into a malloc'd *out (NULL: none). */
static es_err read_parts(es_consumer *c, char **out, size_t *len)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc = SQLITE_DONE;
	es_err err = es_db_stmt(c->db, "SELECT part FROM gap_nodes", &st);
	if (err)
		return err;
	*out = NULL;
	*len = 0;
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW)
		if (!append(out, len, &cap, (const char *)sqlite3_column_text(st, 0),
			    (size_t)sqlite3_column_bytes(st, 0)))
			err = ES_ENOMEM;
	if (!err && rc != SQLITE_DONE)
		err = es_db_err(c->db, rc, "reading the holes");
	es_db_release(c->db, st);
	if (err)
		free(*out);
	return err;
}

/* Loads the holes saved by the last commit into c->gap; *unreadable when
 * they did not parse. */
static es_err load_gaps(es_consumer *c, bool *unreadable)
{
	char *text;
	size_t len;
	es_err err = read_parts(c, &text, &len);
	if (err)
		return err;
	*unreadable = es_gap_load_nodes(c->gap, text, len, es_clock_mono_ms()) != ES_OK;
	free(text);
	return ES_OK;
}

struct adopt {
	es_consumer *c;
	es_err err;
};

/* One node of the tracker as a row, in the current format. */
static void adopt_node(void *ctx, const char *node, const es_gap_node_info *info)
{
	struct adopt *a = ctx;
	char *part = NULL;
	size_t len = 0;
	(void)info;
	if (a->err)
		return;
	a->err = es_gap_save_node(a->c->gap, node, &part, &len);
	if (!a->err)
		a->err = put_part(a->c, part, len);
	free(part);
}

/* Writes each node of a whole saved state (gap.h, any version es_gap_load
 * reads) as a row of the current format; ES_EINVAL when it does not read. */
static es_err put_parts(es_consumer *c, const char *text, size_t len)
{
	struct adopt a = {c, ES_OK};
	es_err err = es_gap_load(c->gap, text, len, es_clock_mono_ms());
	if (err)
		return err;
	es_gap_each(c->gap, adopt_node, &a);
	return a.err;
}

/* Before one row per source, every source's holes were one text (meta
 * 'gaps'), rewritten whole by each commit: it becomes rows, once. */
static es_err adopt_gaps(es_consumer *c)
{
	sqlite3_stmt *st;
	char *text = NULL;
	size_t len = 0;
	es_err err = es_db_stmt(c->db, "SELECT value FROM meta WHERE key = 'gaps'", &st);
	if (err)
		return err;
	if (sqlite3_step(st) == SQLITE_ROW) {
		len = (size_t)sqlite3_column_bytes(st, 0);
		text = strndup((const char *)sqlite3_column_text(st, 0), len);
		err = text ? ES_OK : ES_ENOMEM;
	}
	es_db_release(c->db, st);
	if (err || !text)
		return err;
	err = es_db_begin(c->db);
	es_err perr = err ? ES_OK : put_parts(c, text, len);
	if (perr == ES_EINVAL) /* load_gaps says so, and starts afresh */
		err = es_db_exec(c->db, "DELETE FROM gap_nodes");
	else
		err = err ? err : perr;
	if (!err)
		err = es_db_exec(c->db, "DELETE FROM meta WHERE key = 'gaps'");
	err = err ? err : es_db_commit(c->db);
	if (err)
		es_db_rollback(c->db);
	free(text);
	return err;
}

/* ---- the checkpoint ------------------------------------------------------ */

static uint64_t since_snapshot(es_consumer *c)
{
	uint64_t v = 0;
	return es_db_query_u64(c->db,
			       "SELECT count(*) FROM events WHERE n >"
			       " (SELECT coalesce(max(n), 0) FROM snapshot)",
			       &v)
		       ? 0
		       : v;
}

/* Restores the counters and the holes from the last commit. */
static es_err load_checkpoint(es_consumer *c)
{
	bool unreadable;
	atomic_store(&c->st.applied, meta_u64(c, "applied"));
	atomic_store(&c->st.duplicates, meta_u64(c, "duplicates"));
	atomic_store(&c->st.invalid, meta_u64(c, "invalid"));
	atomic_store(&c->st.events, count_events(c));
	atomic_store(&c->st.lost, meta_u64(c, "lost"));
	uint64_t snap_n = 0;
	(void)es_db_query_u64(c->db, "SELECT coalesce(max(n), 0) FROM snapshot", &snap_n);
	atomic_store(&c->st.snapshot_n, snap_n);
	c->since_snap = since_snapshot(c);
	es_err err = adopt_gaps(c);
	if (!err)
		err = load_gaps(c, &unreadable);
	if (err)
		return err;
	if (unreadable) { /* and for good: rows of the new start will not mix with them */
		es_warn(TAG, "%s: the saved sequence holes are unreadable; starting afresh",
			c->path);
		(void)es_db_exec(c->db, "DELETE FROM gap_nodes");
	}
	es_gap_stats g;
	es_gap_stats_get(c->gap, &g);
	atomic_store(&c->st.holes_open, g.holes_open);
	atomic_store(&c->st.missing, g.missing);
	atomic_store(&c->st.holes_detected, g.holes_detected);
	return ES_OK;
}

static es_err open_db(es_consumer *c)
{
	es_db_opts o = {
		.path = c->path, .tag = TAG, .sync_full = c->o.sync_full, .schema = &schema};
	es_err err = es_db_open(&o, &c->db);
	return err ? err : prepare(c);
}

es_err es_consumer_new(const es_consumer_opts *o, es_consumer **out)
{
	if (!o || !o->path || !out)
		return ES_EINVAL;
	es_consumer *c = calloc(1, sizeof *c);
	if (!c)
		return ES_ENOMEM;
	c->o = *o;
	c->o.dedup_max = o->dedup_max ? o->dedup_max : 1000000;
	c->o.event_max_bytes = o->event_max_bytes ? o->event_max_bytes : ES_EVENT_MAX_BYTES_DEFAULT;
	c->o.batch_max = o->batch_max ? o->batch_max : 256;
	c->o.linger_ms = o->linger_ms ? o->linger_ms : ES_CONSUMER_LINGER_MS;
	c->path = strdup(o->path);
	es_gap_opts go = {.from_start = false};
	es_err err = c->path ? es_gap_new(&go, &c->gap) : ES_ENOMEM;
	if (!err)
		err = open_db(c);
	if (!err)
		err = load_checkpoint(c);
	if (err) {
		es_error(TAG, "%s: cannot open the consumer's state: %s", o->path,
			 es_strerror(err));
		es_consumer_free(c);
		return err;
	}
	*out = c;
	return ES_OK;
}

void es_consumer_free(es_consumer *c)
{
	if (!c)
		return;
	es_db_close(c->db); /* and the statements taken from it */
	es_gap_free(c->gap);
	clear_dirty(c);
	free(c->dirty);
	for (size_t i = 0; i < c->nh; i++)
		free(c->h[i].pattern);
	free(c->h);
	free(c->path);
	free(c);
}

es_err es_consumer_on(es_consumer *c, const char *pattern, es_consumer_fn fn, void *arg)
{
	if (!c || !fn || es_consumer_check_pattern(pattern))
		return ES_EINVAL;
	struct handler *h = realloc(c->h, (c->nh + 1) * sizeof *h);
	if (!h)
		return ES_ENOMEM;
	c->h = h;
	h[c->nh] = (struct handler){.pattern = strdup(pattern), .fn = fn, .arg = arg};
	if (!h[c->nh].pattern)
		return ES_ENOMEM;
	c->nh++;
	return ES_OK;
}

es_err es_consumer_on_reset(es_consumer *c, es_consumer_reset_fn fn, void *arg)
{
	if (!c)
		return ES_EINVAL;
	c->reset = fn;
	c->reset_arg = arg;
	return ES_OK;
}

es_err es_consumer_on_snapshot(es_consumer *c, es_consumer_snap_fn save,
			       es_consumer_snap_fn restore, void *arg)
{
	if (!c || !save || !restore)
		return ES_EINVAL;
	c->snap_save = save;
	c->snap_restore = restore;
	c->snap_arg = arg;
	return ES_OK;
}

struct sqlite3 *es_consumer_db(es_consumer *c)
{
	return c ? es_db_handle(c->db) : NULL;
}

es_db *es_consumer_store(es_consumer *c)
{
	return c ? c->db : NULL;
}

es_err es_consumer_on_idle(es_consumer *c, es_consumer_idle_fn fn, void *arg)
{
	if (!c)
		return ES_EINVAL;
	c->idle = fn;
	c->idle_arg = arg;
	return ES_OK;
}

size_t es_consumer_holes_due(es_consumer *c, es_gap_request *out, size_t cap)
{
	return c && out ? es_gap_due(c->gap, es_clock_mono_ms(), out, cap) : 0;
}

void es_consumer_stop(es_consumer *c)
{
	atomic_store(&c->stop, true);
}

void es_consumer_stats_get(es_consumer *c, es_consumer_stats *out)
{
	*out = (es_consumer_stats){
		.applied = atomic_load(&c->st.applied),
		.duplicates = atomic_load(&c->st.duplicates),
		.invalid = atomic_load(&c->st.invalid),
		.events = atomic_load(&c->st.events),
		.batches = atomic_load(&c->st.batches),
		.commit_errors = atomic_load(&c->st.commit_errors),
		.holes_open = atomic_load(&c->st.holes_open),
		.missing = atomic_load(&c->st.missing),
		.holes_detected = atomic_load(&c->st.holes_detected),
		.lost = atomic_load(&c->st.lost),
		.snapshot_n = atomic_load(&c->st.snapshot_n),
	};
}

/* ---- one batch ---------------------------------------------------------- */

/* What a transaction changed, published to `st` only after its COMMIT. */
struct tally {
	uint64_t applied, duplicates, invalid, logged, lost;
	uint64_t lost_before; /* the tracker's count when the transaction began */
	uint64_t trimmed;     /* events trimmed from the log */
	uint64_t snapshot_n;  /* a snapshot taken at this position; 0: none */
};

static es_err dispatch(es_consumer *c, const es_event *ev, const char *json, size_t len)
{
	for (size_t i = 0; i < c->nh; i++) {
		if (!es_consumer_match(c->h[i].pattern, es_event_type(ev)))
			continue;
		es_err err = c->h[i].fn(c->h[i].arg, ev, json, len);
		if (err) {
			es_error(TAG, "handler for '%s' failed on event %s: %s", c->h[i].pattern,
				 es_event_id(ev), es_strerror(err));
			return err;
		}
	}
	return ES_OK;
}

/* Keeps body (an event, or a whole batch that cannot be read) with why. */
static es_err deadletter(es_consumer *c, const char *where, const char *reason, const char *body,
			 size_t len, uint64_t now)
{
	es_warn(TAG, "invalid message from %s: %s (kept in deadletters)", where ? where : "?",
		reason);
	sqlite3_bind_int64(c->dead_ins, 1, (sqlite3_int64)now);
	sqlite3_bind_text(c->dead_ins, 2, where ? where : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(c->dead_ins, 3, reason, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(c->dead_ins, 4, body, (int)(len < 65536 ? len : 65536), SQLITE_STATIC);
	return step(c, c->dead_ins);
}

static es_err deadletter_event(es_consumer *c, const char *where, const es_verr *v,
			       const char *json, size_t len, uint64_t now)
{
	char reason[256];
	snprintf(reason, sizeof reason, "%s%s%s", v->field, v->field[0] ? ": " : "", v->reason);
	return deadletter(c, where, reason, json, len, now);
}

/* Inserts the id into `seen`; *dup when it was there already. */
static es_err seen(es_consumer *c, const char *id, uint64_t now, bool *dup)
{
	sqlite3_bind_text(c->seen_ins, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(c->seen_ins, 2, (sqlite3_int64)now);
	es_err err = step(c, c->seen_ins);
	if (!err)
		*dup = es_db_changes(c->db) == 0;
	return err;
}

static es_err log_event(es_consumer *c, const es_event *ev, const char *json, size_t len,
			uint64_t now)
{
	sqlite3_bind_text(c->log_ins, 1, es_event_id(ev), -1, SQLITE_STATIC);
	sqlite3_bind_text(c->log_ins, 2, es_event_type(ev), -1, SQLITE_STATIC);
	sqlite3_bind_text(c->log_ins, 3, es_event_source(ev), -1, SQLITE_STATIC);
	sqlite3_bind_int64(c->log_ins, 4, (sqlite3_int64)es_event_seq(ev));
	sqlite3_bind_int64(c->log_ins, 5, (sqlite3_int64)now);
	sqlite3_bind_text(c->log_ins, 6, json, (int)len, SQLITE_STATIC);
	return step(c, c->log_ins);
}

/* A source the tracker cannot take (a name too long) is not tracked. An
 * id applied before also covers its sequence: a copy that comes while the
 * tracker holds it missing (its checkpoint older than the commit that
 * applied it) fills the hole rather than have it asked for forever. */
static es_err track_seq(es_consumer *c, const es_event *ev, bool dup)
{
	es_gap_verdict v;
	if (!es_event_seq(ev) ||
	    es_gap_seen(c->gap, es_event_source(ev), es_event_seq(ev), es_clock_mono_ms(), &v) ||
	    (dup && v == ES_GAP_DUP))
		return ES_OK;
	return mark_dirty(c, es_event_source(ev));
}

/* A valid event (its text json): dedup, handlers, log. Frees ev. */
static es_err apply_event(es_consumer *c, es_event *ev, const char *json, size_t len, uint64_t now,
			  struct tally *t)
{
	bool dup = false;
	es_err err = seen(c, es_event_id(ev), now, &dup);
	if (!err && dup)
		t->duplicates++;
	if (!err && !dup)
		err = dispatch(c, ev, json, len);
	if (!err && !dup && c->o.keep_log && !(err = log_event(c, ev, json, len, now)))
		t->logged++;
	if (!err && !dup)
		t->applied++;
	if (!err)
		err = track_seq(c, ev, dup);
	es_event_free(ev);
	return err;
}

/* Each event of a batch on its own: a bad one is dead-lettered alone (its
 * index in the reason), the others applied. */
static es_err apply_batch(es_consumer *c, const es_delivery *d, const es_batch *b, uint64_t now,
			  struct tally *t)
{
	es_err err = ES_OK;
	for (size_t i = 0; !err && i < es_batch_count(b); i++) {
		size_t len;
		const char *json = es_batch_json(b, i, &len);
		es_event *ev = NULL;
		es_verr v;
		memset(&v, 0, sizeof v);
		if (es_batch_event_decode(b, i, &ev, &v)) {
			t->invalid++;
			err = deadletter_event(c, d->where, &v, json, len, now);
		} else {
			err = apply_event(c, ev, json, len, now, t);
		}
	}
	return err;
}

/* A delivery: one event, or a batch of them (batch.h). A batch that cannot
 * be read at all is one dead letter, with the reason. */
static es_err apply_one(es_consumer *c, const es_delivery *d, uint64_t now, struct tally *t)
{
	es_batch_meta meta = {d->content_type, d->encoding, d->dict};
	es_batch_limits lim = {.event_max_bytes = c->o.event_max_bytes};
	es_batch *b = NULL;
	char why[256] = "";
	es_err err = es_batch_read(d->where ? d->where : "", d->sep ? d->sep : '/', &meta, d->body,
				   d->len, &lim, &b, why, sizeof why);
	if (err == ES_ENOMEM)
		return err;
	if (err) {
		t->invalid++;
		return deadletter(c, d->where, why, d->body, d->len, now);
	}
	if (b) {
		err = apply_batch(c, d, b, now, t);
		es_batch_free(b);
		return err;
	}
	es_event *ev = NULL;
	es_verr v;
	memset(&v, 0, sizeof v);
	if (es_event_decode(d->body, d->len, c->o.event_max_bytes, &ev, &v)) {
		t->invalid++;
		return deadletter_event(c, d->where, &v, d->body, d->len, now);
	}
	return apply_event(c, ev, d->body, d->len, now, t);
}

static es_err prune(es_consumer *c, uint64_t now)
{
	char sql[256];
	snprintf(sql, sizeof sql,
		 "DELETE FROM seen WHERE rowid <= (SELECT max(rowid) FROM seen) - %llu;"
		 "DELETE FROM deadletters WHERE n <= (SELECT max(n) FROM deadletters) - %d;",
		 (unsigned long long)c->o.dedup_max, DEADLETTERS_KEPT);
	es_err err = es_db_exec(c->db, sql);
	if (!err && c->o.dedup_max_age_s && now > c->o.dedup_max_age_s * 1000) {
		snprintf(sql, sizeof sql, "DELETE FROM seen WHERE at_ms < %llu",
			 (unsigned long long)(now - c->o.dedup_max_age_s * 1000));
		err = es_db_exec(c->db, sql);
	}
	return err;
}

/* The checkpoint: counters as they will be after this transaction, and
 * the holes of the sources it touched. */
static es_err checkpoint(es_consumer *c, const struct tally *t)
{
	es_err err = meta_put_u64(c, "applied", atomic_load(&c->st.applied) + t->applied);
	if (!err)
		err = meta_put_u64(c, "duplicates", atomic_load(&c->st.duplicates) + t->duplicates);
	if (!err)
		err = meta_put_u64(c, "invalid", atomic_load(&c->st.invalid) + t->invalid);
	if (!err && t->lost)
		err = meta_put_u64(c, "lost", atomic_load(&c->st.lost) + t->lost);
	return err ? err : save_dirty(c);
}

/* ---- snapshots ---------------------------------------------------------- */

static bool snapshot_due(const es_consumer *c, const struct tally *t)
{
	return c->snap_save && c->o.keep_log && c->o.snapshot_every &&
	       c->since_snap + t->logged >= c->o.snapshot_every;
}

/* The snapshot's checkpoint: its position and the counters it includes. */
static es_err snapshot_row(es_consumer *c, uint64_t n, uint64_t now, const struct tally *t)
{
	sqlite3_stmt *st;
	es_err err = es_db_stmt(c->db,
				"INSERT OR REPLACE INTO snapshot(k, n, at_ms, applied, duplicates,"
				" invalid, lost) VALUES(1, ?1, ?2, ?3, ?4, ?5, ?6)",
				&st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)n);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)(atomic_load(&c->st.applied) + t->applied));
	sqlite3_bind_int64(st, 4, (sqlite3_int64)(atomic_load(&c->st.duplicates) + t->duplicates));
	sqlite3_bind_int64(st, 5, (sqlite3_int64)(atomic_load(&c->st.invalid) + t->invalid));
	sqlite3_bind_int64(st, 6, (sqlite3_int64)(atomic_load(&c->st.lost) + t->lost));
	err = es_db_step_done(c->db, st);
	es_db_release(c->db, st);
	return err;
}

/* Trims the log before the snapshot at n, keeping log_keep events and at
 * least n itself (so the numbering goes on from it). */
static es_err trim(es_consumer *c, uint64_t n, struct tally *t)
{
	uint64_t keep = c->o.log_keep ? c->o.log_keep : 1;
	if (n <= keep)
		return ES_OK;
	char sql[96];
	snprintf(sql, sizeof sql, "DELETE FROM events WHERE n <= %llu",
		 (unsigned long long)(n - keep));
	es_err err = es_db_exec(c->db, sql);
	if (!err)
		t->trimmed = es_db_changes(c->db);
	return err ? err : meta_put_u64(c, "trimmed", n - keep);
}

/* The handlers' state copied aside with its checkpoint, and the log before
 * it trimmed: all in the transaction of the batch that made it due. */
static es_err take_snapshot(es_consumer *c, uint64_t now, struct tally *t)
{
	uint64_t n = 0;
	es_err err = es_db_query_u64(c->db, "SELECT coalesce(max(n), 0) FROM events", &n);
	if (!err)
		err = c->snap_save(c->snap_arg);
	if (!err)
		err = snapshot_row(c, n, now, t);
	if (!err)
		err = trim(c, n, t);
	if (!err)
		t->snapshot_n = n;
	return err;
}

static void publish(es_consumer *c, const struct tally *t)
{
	es_gap_stats g;
	atomic_fetch_add(&c->st.applied, t->applied);
	atomic_fetch_add(&c->st.duplicates, t->duplicates);
	atomic_fetch_add(&c->st.invalid, t->invalid);
	atomic_fetch_add(&c->st.lost, t->lost);
	atomic_fetch_add(&c->st.events, t->logged);
	atomic_fetch_sub(&c->st.events, t->trimmed);
	atomic_fetch_add(&c->st.batches, 1);
	c->since_snap += t->logged;
	if (t->snapshot_n) {
		c->since_snap = 0;
		atomic_store(&c->st.snapshot_n, t->snapshot_n);
	}
	es_gap_stats_get(c->gap, &g);
	atomic_store(&c->st.holes_open, g.holes_open);
	atomic_store(&c->st.missing, g.missing);
	atomic_store(&c->st.holes_detected, g.holes_detected);
}

/* The gap tracker saw the rolled-back events: reload it from the checkpoint
 * so a retry counts them once. */
static void rollback(es_consumer *c)
{
	bool unreadable;
	es_db_rollback(c->db);
	atomic_fetch_add(&c->st.commit_errors, 1);
	es_gap *g;
	es_gap_opts go = {.from_start = false};
	if (es_gap_new(&go, &g))
		return;
	es_gap_free(c->gap);
	c->gap = g;
	(void)load_gaps(c, &unreadable);
}

static es_err begin(es_consumer *c, struct tally *t)
{
	es_gap_stats g;
	es_gap_stats_get(c->gap, &g);
	*t = (struct tally){.lost_before = g.lost};
	return es_db_begin(c->db);
}

/* Ends the transaction begun with begin(): the checkpoint, a snapshot when
 * one is due, COMMIT and the counters; or, after an error (err), ROLLBACK. */
static es_err finish(es_consumer *c, struct tally *t, uint64_t now, es_err err)
{
	es_gap_stats g;
	es_gap_stats_get(c->gap, &g);
	t->lost = g.lost - t->lost_before;
	if (!err)
		err = checkpoint(c, t);
	if (!err && snapshot_due(c, t))
		err = take_snapshot(c, now, t);
	if (!err)
		err = es_db_commit(c->db);
	clear_dirty(c);
	if (err) {
		rollback(c);
		return err;
	}
	publish(c, t);
	return ES_OK;
}

es_err es_consumer_apply(es_consumer *c, const es_delivery *d, size_t n)
{
	if (!c || (n && !d))
		return ES_EINVAL;
	struct tally t;
	uint64_t now = es_clock_wall_ms();
	es_err err = begin(c, &t);
	for (size_t i = 0; !err && i < n; i++)
		err = apply_one(c, &d[i], now, &t);
	if (!err)
		err = prune(c, now);
	return finish(c, &t, now, err);
}

es_err es_consumer_gone(es_consumer *c, const char *source, uint64_t from, uint64_t to)
{
	if (!c || !source || from == 0 || from > to)
		return ES_EINVAL;
	struct tally t;
	es_err err = begin(c, &t);
	if (!err)
		err = es_gap_gone(c->gap, source, from, to);
	if (!err)
		err = mark_dirty(c, source);
	return finish(c, &t, es_clock_wall_ms(), err);
}

/* What a node answered of our request, in one transaction: nothing above
 * its latest exists (void, not lost); a range gone, or refused, is lost. */
static es_err take_answer(es_consumer *c, const es_source_reply *a)
{
	const es_resend_reply *r = &a->r;
	uint64_t gone_from = r->gone_from, gone_to = r->gone_to;
	if (r->status == ES_RESEND_INVALID && r->from && r->from <= r->to)
		gone_from = r->from, gone_to = r->to;
	if (!r->latest_seq && !(gone_from && gone_from <= gone_to))
		return ES_OK;
	struct tally t;
	es_err err = begin(c, &t);
	if (!err && r->latest_seq)
		err = es_gap_void(c->gap, a->node, r->latest_seq);
	if (!err && gone_from && gone_from <= gone_to)
		err = es_gap_gone(c->gap, a->node, gone_from, gone_to);
	if (!err)
		err = mark_dirty(c, a->node);
	return finish(c, &t, es_clock_wall_ms(), err);
}

/* Between batches, never waiting: the holes due are asked for through the
 * source; its answers are taken. A range counted lost is logged once. */
static void ask_through(es_consumer *c, es_source *src)
{
	es_gap_request q[8];
	es_source_reply a;
	size_t n = es_consumer_holes_due(c, q, 8);
	for (size_t i = 0; i < n; i++) {
		/* busy or down: the tracker asks again when the hole is due */
		es_err err = src->ops->ask(src, q[i].node, q[i].from, q[i].to);
		if (err == ES_EINVAL && es_lograte_line(&c->ask_log, TAG, "refused requests"))
			es_warn(TAG,
				"cannot ask %s for %" PRIu64 "..%" PRIu64
				" through this source (a name it cannot address); "
				"the hole stays open (repair.node fetches it over HTTP)",
				q[i].node, q[i].from, q[i].to);
	}
	while (src->ops->reply(src, &a)) {
		uint64_t before = atomic_load(&c->st.lost);
		es_err err = take_answer(c, &a);
		uint64_t lost = atomic_load(&c->st.lost) - before;
		if (err)
			es_warn(TAG, "re-send answer of %s: %s (asked again later)", a.node,
				es_strerror(err));
		else if (lost)
			es_error(TAG,
				 "%s no longer holds %" PRIu64 "..%" PRIu64 ": %" PRIu64
				 " events LOST (%s)",
				 a.node, a.r.gone_from ? a.r.gone_from : a.r.from,
				 a.r.gone_to ? a.r.gone_to : a.r.to, lost,
				 es_resend_status_name(a.r.status));
	}
}

es_err es_consumer_ask_source(es_consumer *c, bool on)
{
	if (!c)
		return ES_EINVAL;
	c->ask_source = on;
	c->ask_log.max = 1; /* a refused hole is asked again each retry */
	return ES_OK;
}

/* ---- the run loop ------------------------------------------------------- */

static void pause_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static void drop(es_delivery *b, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		es_delivery_clear(&b[i]);
	*n = 0;
}

/* Fills b with up to batch_max deliveries: waits POLL_MS for the first,
 * then takes what comes until linger_ms after it (one transaction for
 * them all: a commit writes whole pages to flash, and at low rates every
 * delivery would otherwise be a commit of its own). ES_ENOTCONN: the
 * connection of those gathered was lost (they are dropped: the broker has
 * them still). */
static es_err gather(es_consumer *c, es_source *src, es_delivery *b, size_t *n)
{
	uint64_t until = 0;
	while (*n < c->o.batch_max) {
		uint64_t now = es_clock_mono_ms(), wait = POLL_MS;
		if (*n && now >= until)
			return ES_OK;
		if (*n)
			wait = until - now;
		es_err err = es_source_next(src, wait, &b[*n]);
		if (err == ES_ETIMEDOUT)
			return ES_OK;
		if (err == ES_ENOTCONN) {
			drop(b, n);
			return err;
		}
		if (err)
			return err;
		if ((*n)++ == 0)
			until = es_clock_mono_ms() + c->o.linger_ms;
	}
	return ES_OK;
}

/* Applies b until it commits (or stop is asked), then acks the batch. */
static void settle(es_consumer *c, es_source *src, es_delivery *b, size_t *n)
{
	while (es_consumer_apply(c, b, *n) != ES_OK) {
		if (atomic_load(&c->stop)) {
			es_warn(TAG, "stopping with %zu deliveries not applied (not acked)", *n);
			drop(b, n);
			return;
		}
		pause_ms(RETRY_MS);
	}
	if (b[*n - 1].tag && es_source_ack(src, b[*n - 1].tag))
		es_warn(TAG, "ack of %zu deliveries failed; they come again and are dropped then",
			*n);
	drop(b, n);
}

es_err es_consumer_run(es_consumer *c, es_source *src)
{
	if (!c || !src)
		return ES_EINVAL;
	es_delivery *b = calloc(c->o.batch_max, sizeof *b);
	size_t n = 0;
	if (!b)
		return ES_ENOMEM;
	while (!atomic_load(&c->stop)) {
		es_err err = gather(c, src, b, &n);
		if (err && err != ES_ENOTCONN)
			pause_ms(RETRY_MS);
		if (n)
			settle(c, src, b, &n);
		if (c->idle)
			c->idle(c->idle_arg);
		if (c->ask_source && src->ops->ask && src->ops->reply)
			ask_through(c, src);
	}
	/* What an MQTT client acknowledged already is applied, not lost. */
	if (src->ops->quiesce) {
		src->ops->quiesce(src);
		while (gather(c, src, b, &n) == ES_OK && n)
			settle(c, src, b, &n);
	}
	drop(b, &n);
	free(b);
	return ES_OK;
}

/* ---- rebuild ------------------------------------------------------------ */

/* Re-applies the events of the log after position `after`, in order. */
static es_err replay(es_consumer *c, uint64_t after, uint64_t *applied)
{
	sqlite3_stmt *st;
	int rc = SQLITE_DONE;
	es_err err = es_db_stmt(c->db, "SELECT body FROM events WHERE n > ?1 ORDER BY n", &st);
	if (err)
		return err;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)after);
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *body = (const char *)sqlite3_column_text(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		es_event *ev;
		es_verr v;
		if (es_event_decode(body, len, SIZE_MAX / 2, &ev, &v)) {
			es_warn(TAG, "event log: an unreadable event (%s: %s) skipped", v.field,
				v.reason);
			continue;
		}
		err = dispatch(c, ev, body, len);
		es_event_free(ev);
		if (!err)
			(*applied)++;
	}
	if (!err && rc != SQLITE_DONE)
		err = es_db_err(c->db, rc, "replay");
	es_db_release(c->db, st);
	return err;
}

/* The latest snapshot's position and time (0, 0: none). */
static es_err latest_snapshot(es_consumer *c, uint64_t *n, uint64_t *at_ms)
{
	sqlite3_stmt *st;
	es_err err = es_db_stmt(c->db, "SELECT n, at_ms FROM snapshot WHERE k = 1", &st);
	if (err)
		return err;
	*n = *at_ms = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*n = (uint64_t)sqlite3_column_int64(st, 0);
		*at_ms = (uint64_t)sqlite3_column_int64(st, 1);
	}
	es_db_release(c->db, st);
	return ES_OK;
}

/* The state to replay onto: the snapshot's, or empty (from scratch). */
static es_err rebuild_base(es_consumer *c, bool from_scratch, es_consumer_rebuilt *r)
{
	uint64_t n, at;
	es_err err = latest_snapshot(c, &n, &at);
	if (!err && !from_scratch && n && c->snap_restore) {
		r->snapshot_n = n;
		r->snapshot_at_ms = at;
		return c->snap_restore(c->snap_arg);
	}
	r->trimmed = meta_u64(c, "trimmed");
	return err || !c->reset ? err : c->reset(c->reset_arg);
}

es_err es_consumer_rebuild(es_consumer *c, bool from_scratch, es_consumer_rebuilt *out)
{
	if (!c || !out)
		return ES_EINVAL;
	es_consumer_rebuilt r = {0};
	es_err err = es_db_begin(c->db);
	if (!err)
		err = rebuild_base(c, from_scratch, &r);
	if (!err)
		err = replay(c, r.snapshot_n, &r.applied);
	if (!err)
		err = es_db_commit(c->db);
	if (err) {
		es_db_rollback(c->db);
		return err;
	}
	*out = r;
	return ES_OK;
}
