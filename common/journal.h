/* journal.h - the SQLite journal: every event is written here first.
 *
 * One file in WAL mode. Events get a strictly increasing sequence when they
 * are committed; they are *pending* until the broker acknowledges them, then
 * *acked*. Acknowledgement is kept as a watermark (every sequence up to it is
 * acked; PUBACKs of one connection arrive in publish order) plus a small set
 * of acks above it in memory, so an ack costs no row update. Acked events
 * stay as the node's event store until retention removes them (journaled
 * more than retain_ms ago, or to make room under the evict policy); pending
 * events are never deleted. Retention only ever removes the oldest events,
 * so the held sequences are always one contiguous range.
 *
 * Writes go through one writer thread that owns the write connection and
 * applies group commit: appends from any number of producer threads are
 * batched into one transaction (one fsync with sync=full for many events);
 * es_journal_append() returns only after its transaction committed. Each
 * append call is atomic: all its events are committed, or none. Flash
 * wears by the page written, so the writer makes few commits: at low rates
 * commits come at most every linger_ms, and acks move the
 * watermark in memory at once but reach the file only every ack_flush_ms
 * (a crash then re-publishes what was acked since: duplicates, never a
 * loss). The cap, max_bytes, holds for every file of the journal: the
 * database, its WAL (bounded to a share of the cap) and the -shm file.
 *
 * Reads go through es_journal_reader objects, one per thread, each with its
 * own read-only connection (WAL lets them run beside the writer).
 *
 * Schema: versioned with PRAGMA user_version and migrated forward on open; a
 * file from a newer version is refused (ES_EVERSION), never rewritten.
 */
#ifndef ES_JOURNAL_H
#define ES_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "event.h"
#include "uuid.h"

typedef struct es_journal es_journal;
typedef struct es_journal_reader es_journal_reader;

typedef enum es_journal_sync {
	ES_SYNC_FULL,	/* fsync every commit: survives a power cut */
	ES_SYNC_NORMAL, /* WAL without fsync per commit: survives a process
			   crash, may lose the last commits on power loss */
} es_journal_sync;

typedef enum es_journal_on_full {
	ES_ON_FULL_REFUSE, /* new events refused (ES_EFULL), counted */
	ES_ON_FULL_EVICT,  /* oldest acked events deleted first, counted */
} es_journal_on_full;

typedef struct es_journal_opts {
	const char *path;
	es_journal_sync sync;
	uint64_t max_bytes; /* cap on the journal's used size; 0 = none */
	uint64_t retain_ms; /* acked events journaled longer ago go; 0 = at once */
	es_journal_on_full on_full;
	const char *source;	/* "/site/node", stamped on events without one */
	size_t max_event_bytes; /* 0 = ES_EVENT_MAX_BYTES_DEFAULT */
	size_t batch_max;	/* events per transaction at most; 0 = 4096 */
	/* Commits of events come at most this often, unless a few pages of
	 * them are queued: an append after a quiet spell commits at once, one
	 * soon after a commit waits for the next, up to this long; 0 = every
	 * append commits at once (with whatever else is queued). */
	uint64_t linger_ms;
	/* Acks reach the file with the next commit of events or side writes
	 * (es_journal_put, dead letters: these come like events, at most
	 * linger_ms after the last commit), or this long after they came at
	 * the latest; 0 = in the next transaction, at once. */
	uint64_t ack_flush_ms;
	uint32_t page_size; /* a new file's page size; 0 = ES_DB_PAGE_SIZE */
	/* Called on the writer thread after each commit that added events, with
	 * the newest sequence; keep it short (post to your own loop). */
	void (*committed)(void *ctx, uint64_t latest_seq);
	void *ctx;
} es_journal_opts;

/* The outcome of one event of an append. */
typedef struct es_append_result {
	uint64_t seq;
	bool duplicate; /* its id was already journaled (seq is
			   the earlier event's) */
	char id[ES_EVENT_ID_MAX + 1];
} es_append_result;

typedef struct es_journal_counters {
	uint64_t appended;     /* events committed */
	uint64_t duplicates;   /* appends of an id already journaled */
	uint64_t refused_full; /* events refused for lack of room */
	uint64_t evicted;      /* acked events deleted to make room */
	uint64_t expired;      /* acked events deleted by age */
	uint64_t acked;	       /* events marked acked */
	uint64_t commits;      /* transactions committed */
	uint64_t errors;       /* transactions that failed */
	uint64_t pending;      /* events now pending */
	uint64_t latest_seq;   /* newest committed sequence */
	uint64_t acked_seq;    /* the ack watermark: all <= it are acked */
} es_journal_counters;

/* Opens or creates the journal at opts->path, migrates it, and starts the
 * writer thread. Errors: ES_EINVAL (bad options), ES_ENOTFOUND (the path
 * cannot be opened or created), ES_EIO (cannot write), ES_ECORRUPT (not a
 * journal: another application's database, or fails its checks),
 * ES_EVERSION (written by a newer version). A file that is refused is not
 * modified. */
es_err es_journal_open(const es_journal_opts *opts, es_journal **out);

/* Finishes queued work, stops the writer, checkpoints and closes. NULL ok.
 * Appends after or during close fail with ES_ECLOSED. */
void es_journal_close(es_journal *j);

/* Journals evs[0..n) in one atomic step and returns once committed, with
 * one result per event (its id and sequence). The events are stamped in
 * place with id, source and time, and encoded, in the calling thread; the
 * sequence goes into the journaled body only (not into evs).
 * Errors: ES_EFULL (no room under the cap, or the disk is full: nothing
 * written), ES_ETOOBIG (an event's encoding exceeds the size limit), ES_EIO,
 * ES_ECLOSED, ES_ENOMEM. Any thread. */
es_err es_journal_append(es_journal *j, es_event **evs, size_t n, es_append_result *res);

/* A value stored with an append, in the same transaction (see
 * es_journal_put for keys). */
typedef struct es_journal_kv {
	const char *key;
	const void *value;
	size_t len;
} es_journal_kv;
#define ES_JOURNAL_KV_MAX 4096

/* es_journal_append, and with the events kv[0..nkv) are stored under their
 * keys in the same atomic step: all of it is committed, or none. So a
 * producer's own progress (e.g. the last record taken from a device) can
 * never disagree with the events it made. n may be 0. ES_EINVAL for a key
 * without "x." or a value over ES_JOURNAL_KV_MAX bytes. */
es_err es_journal_append_kv(es_journal *j, es_event **evs, size_t n, es_append_result *res,
			    const es_journal_kv *kv, size_t nkv);

/* An event received from elsewhere, to be journaled verbatim (a bridge's
 * inbox): its body is stored and forwarded as it came, never re-encoded,
 * and its origin node and that node's sequence are kept beside it. */
typedef struct es_journal_item {
	const char *id, *type, *subject; /* subject may be NULL */
	const char *origin;		 /* the node it came from, "site/node" */
	uint64_t origin_seq;		 /* the origin node's sequence */
	const char *body;
	size_t len;
} es_journal_item;

/* Journals items[0..n) verbatim, in one atomic step like es_journal_append:
 * each gets this journal's next sequence; an id already journaled is a
 * duplicate (res[i].duplicate, nothing stored). ES_ETOOBIG for a body over
 * max_event_bytes. Any thread. */
es_err es_journal_append_items(es_journal *j, const es_journal_item *items, size_t n,
			       es_append_result *res);

/* Keeps something that could not be journaled as an event (a malformed
 * payload, a refused publish) in the dead-letter table with its reason, in
 * the next transaction; the newest 100,000 are kept. Does not wait. */
es_err es_journal_dead_letter(es_journal *j, const char *topic, const char *reason,
			      const void *payload, size_t len);

/* Stores a small value under key (which must start with "x.") in the next
 * transaction, atomically with the events and acks committed there. Does
 * not wait. For a program's own state (e.g. a consumer's progress). */
es_err es_journal_put(es_journal *j, const char *key, const void *value, size_t len);

/* Marks seq acked. Does not wait: the writer applies it in memory when it
 * next wakes (readers and the counters see it then) and writes the
 * watermark to the file lazily (ack_flush_ms). An ack lost in a crash only
 * means the event is published again. Acking an acked or unknown sequence
 * is harmless. Any thread. ES_ENOMEM. */
es_err es_journal_ack(es_journal *j, uint64_t seq);

/* Waits until every ack queued so far is written to the file (tests,
 * shutdown), whatever ack_flush_ms says. ES_EIO if that commit failed. */
es_err es_journal_sync_acks(es_journal *j);

/* Has fn(ctx, seconds) called on the writer thread, for every request
 * committed, with the time from its queuing to its commit (a metric).
 * fn NULL: none. Any thread. */
void es_journal_on_wait(es_journal *j, void (*fn)(void *ctx, double seconds), void *ctx);

void es_journal_counters_get(const es_journal *j, es_journal_counters *out);

/* False while the most recent transaction failed (an I/O error, a full
 * disk); true again after the next one that commits. */
bool es_journal_writable(const es_journal *j);

/* The most recent failure as text into buf ("" if none). Any thread. */
void es_journal_last_error(es_journal *j, char *buf, size_t cap);

/* The id made when the journal file was created, as text. */
const char *es_journal_id(const es_journal *j);

/* ---- reading ---------------------------------------------------------- */

enum { ES_STATE_PENDING = 0, ES_STATE_ACKED = 1 };

typedef struct es_journal_row {
	uint64_t seq;
	const char *id, *type, *subject; /* subject may be NULL */
	const char *body;		 /* the encoded CloudEvent */
	size_t body_len;
	int state; /* ES_STATE_PENDING or ES_STATE_ACKED */
	uint64_t journaled_ms;
	const char *origin; /* for es_journal_append_items, else NULL */
	uint64_t origin_seq;
} es_journal_row;

/* Returning non-zero from a row callback stops the read early. */
typedef int (*es_journal_row_fn)(void *ctx, const es_journal_row *row);

typedef struct es_journal_stats {
	uint64_t count, pending;
	uint64_t oldest_seq, latest_seq; /* 0 when empty */
	uint64_t oldest_pending_seq;	 /* 0 when none pending */
	uint64_t oldest_pending_ms;	 /* journaled_ms of that event */
	uint64_t acked_seq;		 /* all <= this are acked */
	/* The database's pages in use, and its file's size (at least all its
	 * pages, some of which may be in the WAL still); each with the WAL and
	 * the -shm file as they are on disk now. */
	uint64_t used_bytes, file_bytes;
	uint64_t deadletters; /* dead letters kept */
} es_journal_stats;

/* A read connection for the calling thread, on an open journal. */
es_err es_journal_reader_new(es_journal *j, es_journal_reader **out);
/* A read-only connection to a journal file not opened by this process
 * (command-line tools). ES_ENOTFOUND, ES_ECORRUPT, ES_EVERSION. */
es_err es_journal_reader_open_path(const char *path, es_journal_reader **out);
void es_journal_reader_free(es_journal_reader *r);

/* Rows with seq in [from, to] in sequence order, at most limit of them;
 * pending_only restricts to pending events. Row pointers are valid during
 * the callback only. */
es_err es_journal_read(es_journal_reader *r, uint64_t from, uint64_t to, size_t limit,
		       bool pending_only, es_journal_row_fn fn, void *ctx);

/* Pending rows stored with es_journal_append_items from origin, with
 * origin_seq in [from, to], in origin_seq order, at most limit. */
es_err es_journal_read_origin(es_journal_reader *r, const char *origin, uint64_t from, uint64_t to,
			      size_t limit, es_journal_row_fn fn, void *ctx);
/* Rows of any state stored with es_journal_append_items from origin with
 * this origin_seq and a sequence above after, newest first, at most limit:
 * what an inbox already holds for one of a node's sequences. */
es_err es_journal_find_origin(es_journal_reader *r, const char *origin, uint64_t origin_seq,
			      uint64_t after, size_t limit, es_journal_row_fn fn, void *ctx);
es_err es_journal_stats_get(es_journal_reader *r, es_journal_stats *out);

/* The pending rows (above the acked mark) by type: how many, and when the
 * oldest was journaled; fn returning non-zero stops early. One scan of the
 * pending rows (a bridge counts its lanes' backlogs with it). */
es_err es_journal_pending_types(es_journal_reader *r,
				int (*fn)(void *ctx, const char *type, uint64_t count,
					  uint64_t oldest_ms),
				void *ctx);

/* The value stored under key by es_journal_put, malloc'd into *value.
 * ES_ENOTFOUND if there is none. */
es_err es_journal_get(es_journal_reader *r, const char *key, void **value, size_t *len);

/* Every value whose key starts with prefix (which starts with "x."), in key
 * order; fn returning non-zero stops early. Pointers are valid during the
 * callback only. */
es_err es_journal_scan(es_journal_reader *r, const char *prefix,
		       int (*fn)(void *ctx, const char *key, const void *value, size_t len),
		       void *ctx);

typedef struct es_journal_deadletter {
	uint64_t id, received_ms;
	const char *topic, *reason;
	const void *payload;
	size_t len;
} es_journal_deadletter;

/* Dead letters with id > after, oldest first, at most limit. */
es_err es_journal_read_deadletters(es_journal_reader *r, uint64_t after, size_t limit,
				   int (*fn)(void *ctx, const es_journal_deadletter *d), void *ctx);
/* Dead letters with id < before (0: all), newest first, at most limit. */
es_err es_journal_read_deadletters_before(es_journal_reader *r, uint64_t before, size_t limit,
					  int (*fn)(void *ctx, const es_journal_deadletter *d),
					  void *ctx);

/* A filtered page of the journal (the REST API's event browser). */
typedef struct es_journal_query {
	uint64_t before; /* newest first, below this (0: from the newest) */
	uint64_t after;	 /* with ascending: oldest first, above this */
	bool ascending;
	size_t limit;		     /* rows at most, >= 1 */
	const char *type;	     /* exact, or a prefix ending in '*'; NULL/"": any */
	const char *subject;	     /* exact; NULL/"": any */
	int state;		     /* -1 any, ES_STATE_PENDING, ES_STATE_ACKED */
	uint64_t since_ms, until_ms; /* journaled in [since, until); 0: open */
	const char *id;		     /* just this event (then no cursor) */
} es_journal_query;
/* Rows looked at per query at most: a query with rare filters returns a
 * short page and a cursor to go on with, never a scan of the whole file. */
#define ES_QUERY_SCAN_MAX 20000

/* Calls fn for each row matching q, in q's order. *next is the cursor for
 * the next page (a `before` or `after` value), 0 when there is no more. */
es_err es_journal_query_rows(es_journal_reader *r, const es_journal_query *q, es_journal_row_fn fn,
			     void *ctx, uint64_t *next);

/* Checks the file: SQLite's integrity_check, the sequence range has no
 * holes, every body decodes as a CloudEvent whose id and sequence match its
 * row. Each problem goes to fn(ctx, text); returns ES_ECORRUPT if any was
 * found, else ES_OK. */
es_err es_journal_verify(es_journal_reader *r, void (*fn)(void *ctx, const char *problem),
			 void *ctx);

#endif
