/* journal_int.h - what the journal's files share, private to them.
 *
 * The journal module is split by job (each file names its job at its top):
 *   journal.c         open, schema and migrations, statements, close, counters
 *   journal_append.c  producers: events made ready in the caller's thread,
 *                     queued for the writer, waited for
 *   journal_write.c   the writer thread: one transaction per batch (group
 *                     commit), then every producer answered
 *   journal_insert.c  one request inside that transaction, the cap checked
 *   journal_retain.c  room under the cap (eviction) and age retention
 *   journal_ack.c     the ack watermark and the acks above it
 *   journal_kv.c      state values stored beside the events
 *   journal_dead.c    dead letters: kept, pruned, read
 *   journal_read.c    readers: rows in sequence order, by origin, stats
 *   journal_query.c   the REST API's filtered pages
 *   journal_verify.c  the file's checks
 * Functions shared between them are prefixed es_jnl_.
 *
 * Threads: the writer thread owns `db`, every statement in `st`, next_seq,
 * acked_db, acked_mem, ooo, flush_at, last_commit_us, ack_gen_applied and
 * scratch.
 * Producers and the publisher talk to it through the queue. Lock `lock`
 * guards: head, tail, queued_bytes, acks/nacks/capacks, ops, closing, every
 * request's `done` and `err`, appenders, ack_gen_queued, ack_gen_done,
 * flush_gen, on_wait/wait_ctx and last_error. `id_lock` guards ids
 * (producers make their own ids). Counters are atomics so readers need no
 * lock.
 *
 * Flash (docs/decisions.md): a commit writes whole pages, so the writer
 * makes few of them. Acks move the watermark in memory at once (acked_mem:
 * what readers, the publisher and the figures see) and reach the file
 * (acked_db) only every ack_flush_ms, with the next commit that has events
 * or side writes, or in one of their own. Commits of events and side
 * writes come at most every linger_ms, unless LINGER_FILL_BYTES of events
 * are queued. The last sequence given is written only by transactions
 * that delete rows: otherwise max(seq) says it.
 */
#ifndef ES_JOURNAL_INT_H
#define ES_JOURNAL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "journal.h"
#include "seqset.h"
#include "uuid.h"

#define TAG		  "journal"
#define DEFAULT_BATCH	  4096
#define PRUNE_CHUNK	  1000	     /* rows removed at most per retention step */
#define EVICT_CHUNK	  16	     /* rows removed at most per step to make room */
#define APPLICATION_ID	  0x45535031 /* "ESP1" in the file header: a journal */
#define MAINTAIN_EVERY_MS 1000
#define DEADLETTERS_KEPT  100000
/* Acks above the watermark kept at most (an ack beyond is a re-publish). */
#define OOO_MAX (1u << 20)
/* Queued events of this many bytes commit without lingering (a batch of a
 * hundred small events does). */
#define LINGER_FILL_BYTES (16u * 1024u)
/* Pages a transaction changes besides the ones it adds (the last leaf of
 * the events and of the id index, meta, the header page, a freelist trunk,
 * interior pages), for the WAL's share of the cap. */
#define TXN_PAGES_CHANGED 8

/* One event as the writer inserts it, made ready in its producer's thread.
 * A node's own event is stamped and encoded there without its sequence
 * (`open`: the writer appends ,"sequence":"N"}); a forwarded one is stored
 * verbatim with its origin. */
struct prepared {
	const char *id, *type, *subject; /* borrowed from the event or item */
	const char *origin;		 /* NULL for this node's own events */
	uint64_t origin_seq;
	const char *body;
	size_t len;
	char *owned; /* body, when it was made here */
	bool open;
	bool fresh; /* its id was made here just now: no duplicate possible */
};

/* A write that rides along with the next transaction, like an ack. */
struct op {
	enum { OP_DEADLETTER, OP_PUT } kind;
	char *topic, *reason; /* OP_DEADLETTER */
	char *key;	      /* OP_PUT */
	void *blob;
	size_t len;
	uint64_t ms;
	struct op *next;
};

/* One append call, on its producer's stack while it waits. */
struct request {
	struct prepared *prep;
	size_t n;
	const es_journal_kv *kv; /* written with the events, atomically */
	size_t nkv;
	es_append_result *res;
	size_t bytes;	    /* the events' encoded size */
	uint64_t queued_us; /* monotonic, when it was queued */
	es_err err;
	bool done;
	struct request *next;
};

/* What one transaction of the writer does. */
struct batch {
	struct request *reqs; /* a chain taken from the queue */
	struct op *ops;	      /* dead letters and puts */
	bool flush;	      /* write the ack watermark */
	uint64_t ack_gen;     /* acks applied before it, for es_journal_sync_acks */
	uint64_t watermark;   /* acked_mem when it began */
};

/* The writer's statements, prepared once at open (journal.c has the SQL):
 * it runs them thousands of times a second. */
enum stmt_id {
	S_INSERT,
	S_FIND_ID,
	S_SET_LAST,
	S_PAGES,
	S_FREEPAGES,
	S_OLDEST,
	S_FIRST_KEEP,
	S_DELETE_BELOW,
	S_DEADLETTER,
	S_PUT,
	S_PRUNE_DEAD,
	S_COUNT_
};

struct es_journal {
	es_journal_opts o;
	char *path, *source;
	es_db *db;
	struct sqlite3_stmt *st[S_COUNT_];
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	pthread_cond_t work, done;
	pthread_mutex_t id_lock;
	struct request *head, *tail;
	size_t queued_bytes; /* of the requests queued */
	uint64_t *acks;
	size_t nacks, capacks;
	bool closing;
	unsigned appenders; /* threads inside es_journal_append */
	struct op *ops;	    /* queued dead letters and puts */
	uint64_t ack_gen_queued, ack_gen_done;
	uint64_t flush_gen;	 /* es_journal_sync_acks wants acks up to it written */
	uint64_t ack_gen_failed; /* a flush of acks up to it failed */
	void (*on_wait)(void *ctx, double seconds);
	void *wait_ctx;
	char last_error[160];

	/* writer thread only */
	uint64_t next_seq;
	uint64_t acked_db;	 /* the ack watermark in the file */
	uint64_t acked_mem;	 /* the ack watermark (>= acked_db) */
	uint64_t flush_at;	 /* mono ms: acks or side writes wait till then; 0 none */
	uint64_t last_commit_us; /* of events, monotonic */
	uint64_t ack_gen_applied;
	bool deleted;  /* the open transaction deleted rows */
	char *scratch; /* where bodies are finished */
	size_t capscratch;
	es_seqset ooo; /* acked sequences above acked_mem (OOO_MAX at most) */
	uint64_t page_size;
	uint64_t wal_share, shm_share; /* of max_bytes, theirs */
	uint64_t last_maintain_ms;
	es_uuid7_gen *ids;

	char journal_id[ES_UUID_STR];
	_Atomic uint64_t appended, duplicates, refused_full, evicted, expired, acked, commits,
		errors, pending, latest_seq, acked_seq;
	atomic_bool failing;
};

struct es_journal_reader {
	es_db *db;
	es_journal *j; /* NULL when opened by path */
	char *path;
};

/* A row count as SQLite's int64 (size_t is 32 bits on some targets). */
static inline int64_t es_jnl_limit(size_t limit)
{
#if SIZE_MAX > INT64_MAX
	if (limit > INT64_MAX)
		return INT64_MAX;
#endif
	return (int64_t)limit;
}

/* An unsigned bound as SQLite's int64, clamped. */
static inline int64_t es_jnl_bound(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

/* journal.c: the schema (readers by path check a file against it), and a
 * meta value as text into buf. ES_ENOTFOUND if absent. */
extern const es_db_schema es_jnl_schema;
es_err es_jnl_meta_text(es_db *db, const char *key, char *buf, size_t cap);

/* journal_append.c: the queue of side writes. */
es_err es_jnl_op_new(struct op **out, const void *blob, size_t len);
es_err es_jnl_op_enqueue(es_journal *j, struct op *o); /* takes o */
void es_jnl_ops_free(struct op *o);

/* journal_write.c; es_jnl_now_us: a monotonic clock in microseconds. */
void *es_jnl_writer_main(void *arg);
uint64_t es_jnl_now_us(void);

/* journal_insert.c: one request in the open transaction, under its own
 * savepoint; its error is the request's. */
es_err es_jnl_append_request(es_journal *j, struct request *r, uint64_t now);

/* journal_retain.c */
es_err es_jnl_used_bytes(es_journal *j, uint64_t *out);
es_err es_jnl_cap_check(es_journal *j, uint64_t before, uint64_t *after, uint64_t *over);
uint64_t es_jnl_db_share(const es_journal *j);
void es_jnl_shares(es_journal *j);
es_err es_jnl_make_room(es_journal *j, uint64_t need);
void es_jnl_maintain(es_journal *j, uint64_t now);

/* journal_ack.c (writer thread). take_acks with the lock held: applies
 * (in memory) every ack queued and returns whether the watermark or the
 * set above it changed. */
bool es_jnl_take_acks(es_journal *j);
bool es_jnl_acks_unsaved(const es_journal *j);
es_err es_jnl_save_meta(es_journal *j);
void es_jnl_meta_saved(es_journal *j, uint64_t watermark);

/* journal_kv.c and journal_dead.c: the writer's inserts */
es_err es_jnl_put_kv(es_journal *j, const char *key, const void *value, size_t len);
es_err es_jnl_insert_dead(es_journal *j, const struct op *o);
es_err es_jnl_prune_dead(es_journal *j);

/* journal_read.c */
es_err es_jnl_watermark(es_journal_reader *r, uint64_t *out);
void es_jnl_fill_row(struct sqlite3_stmt *st, uint64_t acked, es_journal_row *row);
/* This node's own events keep their type and subject in the body only
 * (since schema 3 the row holds '' and NULL: 20-40 bytes less a row, and a
 * device's event of ~430 B then fits two to a 1 KiB page); rows from before
 * and forwarded ones hold them. Readers ask for them through these. */
#define ES_JNL_BODY_TEXT "CAST(body AS TEXT)"
#define ES_JNL_FROM_BODY(col, key)                                                                 \
	"(CASE WHEN type <> '' THEN " col " WHEN json_valid(" ES_JNL_BODY_TEXT                     \
	") THEN json_extract(" ES_JNL_BODY_TEXT ", '$." key "') ELSE " col " END)"
#define ES_JNL_TYPE_SQL	   ES_JNL_FROM_BODY("type", "type")
#define ES_JNL_SUBJECT_SQL ES_JNL_FROM_BODY("subject", "subject")
/* The columns es_jnl_fill_row reads, for a SELECT on events. */
#define ES_JNL_ROW_COLUMNS                                                                         \
	"seq, id, " ES_JNL_TYPE_SQL ", " ES_JNL_SUBJECT_SQL                                        \
	", journaled_ms, body, origin, origin_seq"

#endif
