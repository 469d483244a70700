/* consumer.h - the consumer library: handlers by event-type pattern, each
 * batch of deliveries applied exactly once in one SQLite transaction.
 *
 * A cloud service registers handlers for CloudEvents type patterns
 * (es_consumer_on) and gives the consumer a source of deliveries (an
 * es_source: AMQP 0-9-1 or MQTT, source.h). es_consumer_run() then takes
 * batches from the source and, for each batch, in ONE transaction of the
 * consumer's SQLite file:
 *   - decodes each delivery as a CloudEvent, or as a batch of them (the
 *     uplink's, batch.h: known by its topic and properties, each of its
 *     events then taken as if it had come alone); one that is not (bad
 *     JSON, not a CloudEvent; a batch that cannot be read at all: one
 *     dead letter; one bad event inside a good batch: that event alone)
 *     is counted as invalid, logged with where it came from and the
 *     reason, and kept in the `deadletters` table (the newest 1000),
 *     never applied;
 *   - drops an id already applied (the `seen` table: persistent, bounded
 *     by count and age, oldest forgotten first), counted as a duplicate;
 *   - calls every handler whose pattern matches the type, inside the
 *     transaction (the handler writes its state through es_consumer_store(),
 *     or es_consumer_db());
 *   - appends the event to the consumer's own event log (`events`), which
 *     es_consumer_rebuild() replays;
 *   - writes the checkpoint: counters and the sequence holes (gap.h) of
 *     each source the batch touched (one row per source, so a batch writes
 *     what it changed, not every source's), so a restart resumes exactly
 *     where the last commit left;
 *   - every snapshot_every events, takes a snapshot (the handlers' state
 *     copied aside by their snapshot callback, with the checkpoint it
 *     includes: the event log's position and the counters) and trims the
 *     event log before it, keeping log_keep events;
 * and only after COMMIT acknowledges the batch to the source (AMQP
 * basic.ack multiple). A crash before COMMIT rolls everything back and the
 * broker redelivers; a crash after COMMIT and before the ack gives
 * redeliveries that the `seen` table drops. So: applied exactly once.
 *
 * Patterns match the type's dot-separated words, AMQP-style: `*` is one
 * word, `#` zero or more (`sensor.*`, `alarm.raised`, `#`, `sensor.#`).
 *
 * So the store stays bounded: the dedup table by dedup_max, the dead
 * letters by 1000, the holes by the sources, the event log by
 * snapshot_every + log_keep (when a snapshot callback is registered), and
 * the handlers' state by what it describes.
 *
 * Threads: one thread owns an es_consumer (runs it, calls everything but
 * es_consumer_stats_get and es_consumer_stop, which any thread may call).
 */
#ifndef ES_CONSUMER_H
#define ES_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "err.h"
#include "event.h"
#include "gap.h"
#include "source.h"

typedef struct es_consumer es_consumer;
/* The consumer's SQLite connection, for handlers (declared, not included:
 * public headers include no third-party header). */
struct sqlite3;

/* Called for each new event whose type matches; json is the event as it
 * arrived (len bytes, NUL-terminated). Runs inside the batch transaction:
 * an error rolls the whole batch back (it is retried). */
typedef es_err (*es_consumer_fn)(void *arg, const es_event *ev, const char *json, size_t len);
/* Called at the start of es_consumer_rebuild, inside its transaction, to
 * empty the state the handlers keep. */
typedef es_err (*es_consumer_reset_fn)(void *arg);
/* Snapshot callbacks, inside the consumer's transaction: save copies the
 * handlers' state aside (replacing the copy before); restore puts that
 * copy back in place of the state. */
typedef es_err (*es_consumer_snap_fn)(void *arg);

#define ES_CONSUMER_LINGER_MS 250

typedef struct es_consumer_opts {
	const char *path;	  /* the SQLite file (marked "ESC1", versioned) */
	uint64_t dedup_max;	  /* ids remembered at most; 0: 1,000,000 */
	uint64_t dedup_max_age_s; /* and at most this long; 0: forever */
	size_t event_max_bytes;	  /* 0: ES_EVENT_MAX_BYTES_DEFAULT */
	size_t batch_max;	  /* deliveries per transaction; 0: 256 */
	/* a batch takes what comes until this long after its first delivery
	 * (fewer commits, less flash worn; each waits as long to be applied);
	 * 0: ES_CONSUMER_LINGER_MS */
	uint64_t linger_ms;
	bool keep_log;		 /* keep the event log (for rebuild); usually true */
	bool sync_full;		 /* fsync each commit (power-loss safe) */
	uint64_t snapshot_every; /* events logged between snapshots; 0: none */
	uint64_t log_keep;	 /* events kept in the log before the latest snapshot */
} es_consumer_opts;

typedef struct es_consumer_stats {
	uint64_t applied, duplicates, invalid, events; /* events: in the log */
	uint64_t batches, commit_errors;
	uint64_t holes_open, missing, holes_detected; /* sequence holes (gap.h) */
	uint64_t lost;	     /* sequences a node answered are gone (es_consumer_gone) */
	uint64_t snapshot_n; /* the event log position of the latest snapshot; 0: none */
} es_consumer_stats;

/* What es_consumer_rebuild did. */
typedef struct es_consumer_rebuilt {
	uint64_t applied;	 /* events re-applied from the log */
	uint64_t snapshot_n;	 /* the snapshot it started from (its log position); 0: scratch */
	uint64_t snapshot_at_ms; /* when that snapshot was taken (wall clock) */
	uint64_t trimmed;	 /* from scratch: events trimmed from the log before it */
} es_consumer_rebuilt;

/* Opens (creating) the SQLite file through the adapter (db.h: checked,
 * tuned, migrated) and loads the checkpoint. ES_EIO, ES_ECORRUPT (another
 * application's file; logged with the path), ES_EVERSION (a newer store),
 * ES_ENOTFOUND (cannot be created), ES_ENOMEM. */
es_err es_consumer_new(const es_consumer_opts *o, es_consumer **out);
void es_consumer_free(es_consumer *c);

/* Checks a pattern: NULL when valid, else why not. */
const char *es_consumer_check_pattern(const char *pattern);
/* True when type matches pattern (both valid). */
bool es_consumer_match(const char *pattern, const char *type);

/* Registers fn for events whose type matches pattern (copied). ES_EINVAL. */
es_err es_consumer_on(es_consumer *c, const char *pattern, es_consumer_fn fn, void *arg);
es_err es_consumer_on_reset(es_consumer *c, es_consumer_reset_fn fn, void *arg);
/* Registers the snapshot callbacks; without them no snapshot is taken and
 * the event log is never trimmed. ES_EINVAL. */
es_err es_consumer_on_snapshot(es_consumer *c, es_consumer_snap_fn save,
			       es_consumer_snap_fn restore, void *arg);

/* The consumer's store, for handlers: statements from its cache, its
 * error mapping (db.h). Owner thread. */
es_db *es_consumer_store(es_consumer *c);
/* The same connection raw, for handlers written against SQLite itself. */
struct sqlite3 *es_consumer_db(es_consumer *c);

/* Called by es_consumer_run on its thread between batches (at least every
 * 200 ms), outside any transaction: it may call es_consumer_apply (to
 * apply events fetched from elsewhere, e.g. a node's journal). */
typedef void (*es_consumer_idle_fn)(void *arg);
es_err es_consumer_on_idle(es_consumer *c, es_consumer_idle_fn fn, void *arg);

/* Writes up to cap sequence holes that are due to be asked for (open for
 * the gap tracker's grace period, or again after its retry period) into
 * out, marks them asked, and returns how many. Owner thread. */
size_t es_consumer_holes_due(es_consumer *c, es_gap_request *out, size_t cap);

/* Makes es_consumer_run close holes through its source, when the source
 * can ask (source.h's ask and reply: an MQTT or AMQP source made with a
 * resend_root): between batches the holes due are asked for on the
 * source's broker without waiting (the request goes out on the source's
 * thread); an answer's latest_seq voids what lies above it, and a range
 * answered gone (or refused) is counted lost once (es_consumer_gone's
 * counter, logged with its range) and never asked for again. Owner
 * thread, before es_consumer_run. ES_EINVAL. */
es_err es_consumer_ask_source(es_consumer *c, bool on);

/* Records, in one transaction, that source answered the sequences
 * from..to are no longer held: the holes there are counted lost (once) and
 * never asked for again. Owner thread. ES_EINVAL, ES_EIO, ES_ENOMEM. */
es_err es_consumer_gone(es_consumer *c, const char *source, uint64_t from, uint64_t to);

/* Applies deliveries d[0..n) in one transaction (the steps above).
 * ES_OK after COMMIT; otherwise everything was rolled back (ES_EIO,
 * ES_EFULL, or a handler's error). */
es_err es_consumer_apply(es_consumer *c, const es_delivery *d, size_t n);

/* Takes batches from src and applies them until es_consumer_stop(): the
 * batch under way is finished, committed and acknowledged first. A batch
 * that fails to commit is retried (after a pause) and never acknowledged
 * before it commits. Returns ES_OK when stopped. */
es_err es_consumer_run(es_consumer *c, es_source *src);
void es_consumer_stop(es_consumer *c);

/* Rebuilds the handlers' state in one transaction: from the latest
 * snapshot (restore callback) plus the event log after it, or, when
 * from_scratch is true or there is no snapshot, empties it (reset
 * callbacks) and re-applies the whole log, which holds only what trimming
 * kept (out->trimmed says how much it dropped). ES_EINVAL, ES_EIO, or a
 * handler's error (nothing changed then). */
es_err es_consumer_rebuild(es_consumer *c, bool from_scratch, es_consumer_rebuilt *out);

/* Any thread. */
void es_consumer_stats_get(es_consumer *c, es_consumer_stats *out);

#endif
