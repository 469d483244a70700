/* journal_write.c - the writer thread: group commit, kind to flash. It
 * applies acks in memory as they come, and runs a transaction when one is
 * due: queued requests (up to batch_max events), at low rates no sooner
 * than linger_ms after the last commit; side writes (dead letters, state
 * values) the same way; the ack watermark with the next transaction, or on
 * its own ack_flush_ms after the acks came at the latest. Each request runs under its
 * own savepoint, the transaction commits once, and every producer of the
 * batch is woken; retention runs between batches and when idle.
 */
#include "journal_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define RETRY_MS 100 /* after a failed transaction of side writes or acks */

uint64_t es_jnl_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Only events need a commit that survives a power cut (sync=full); a
 * transaction of acks, side writes or retention alone commits without an
 * fsync: SQLite's WAL stays consistent, such a commit is made durable by
 * the next synced one, and losing it costs a re-publish or a late deletion,
 * never an event. */
static void choose_sync(es_journal *j, bool events)
{
	es_db_set_sync(j->db, events && j->o.sync == ES_SYNC_FULL);
}

static void fail_all(struct batch *b, es_err err)
{
	for (struct request *r = b->reqs; r; r = r->next)
		if (!r->err)
			r->err = err;
}

/* A side write under its own savepoint: one that cannot be stored (an
 * oversized payload, a constraint) is logged and dropped instead of failing
 * the events and acks beside it -- or every later transaction, when
 * re-queued. */
static es_err run_op_alone(es_journal *j, const struct op *o)
{
	es_err err = es_db_savepoint(j->db);
	if (err)
		return err;
	err = o->kind == OP_DEADLETTER ? es_jnl_insert_dead(j, o)
				       : es_jnl_put_kv(j, o->key, o->blob, o->len);
	if (err && es_db_in_txn(j->db)) {
		es_error(TAG, "dropped a %s that could not be stored: %s",
			 o->kind == OP_DEADLETTER ? "dead letter" : "state value",
			 es_strerror(err));
		es_db_savepoint_undo(j->db);
		return ES_OK;
	}
	if (!err)
		es_db_savepoint_release(j->db);
	return err;
}

/* Undoes a transaction that failed: requests of the batch all fail. */
static es_err abandon(es_journal *j, struct batch *b, uint64_t first_seq, es_err err)
{
	es_db_rollback(j->db);
	j->next_seq = first_seq;
	fail_all(b, err);
	atomic_fetch_add(&j->errors, 1);
	return err;
}

/* Whether the transaction has anything to commit: a flood of refused
 * requests then writes nothing at all. */
static bool wrote(const es_journal *j, const struct batch *b)
{
	if (b->ops || b->flush || j->deleted)
		return true;
	for (const struct request *r = b->reqs; r; r = r->next)
		if (!r->err)
			return true;
	return false;
}

/* The requests, then the side writes, then meta when due. Requests get
 * their own error; the first error that ended the transaction is returned. */
static es_err fill(es_journal *j, struct batch *b, uint64_t now)
{
	es_err err = ES_OK;
	for (struct request *r = b->reqs; r && !err; r = r->next) {
		r->err = es_jnl_append_request(j, r, now);
		if (r->err && !es_db_in_txn(j->db))
			err = r->err;
	}
	for (struct op *o = b->ops; o && !err; o = o->next)
		err = run_op_alone(j, o);
	if (!err && (b->flush || j->deleted))
		err = es_jnl_save_meta(j);
	return err;
}

/* Runs one transaction and commits it once. A failed commit fails every
 * request; SQLite rolls a whole transaction back by itself after some
 * errors (full disk, I/O, out of memory): then every request has failed. */
static es_err run_batch(es_journal *j, struct batch *b, uint64_t *appended)
{
	uint64_t first_seq = j->next_seq;
	choose_sync(j, b->reqs != NULL);
	j->deleted = false;
	es_err err = es_db_begin(j->db);
	if (!err)
		err = fill(j, b, es_clock_wall_ms());
	if (!err && !wrote(j, b)) {
		es_db_rollback(j->db); /* nothing to keep: no commit, no page written */
		return ES_OK;
	}
	if (!err)
		err = es_db_commit(j->db);
	if (err)
		return abandon(j, b, first_seq, err);
	if (b->flush || j->deleted)
		es_jnl_meta_saved(j, b->watermark);
	if (b->reqs)
		j->last_commit_us = es_jnl_now_us();
	*appended = j->next_seq - first_seq;
	atomic_fetch_add(&j->commits, 1);
	return ES_OK;
}

/* Caller holds the lock. A flush of the acks is wanted now. */
static bool flush_wanted(const es_journal *j)
{
	uint64_t seen = j->ack_gen_done > j->ack_gen_failed ? j->ack_gen_done : j->ack_gen_failed;
	return j->flush_gen > seen;
}

/* Caller holds the lock. Whether the ack watermark goes into the next
 * transaction: unsaved, and due (or riding along with side writes, which
 * change the same meta pages). */
static bool flush_now(const es_journal *j, uint64_t now)
{
	return es_jnl_acks_unsaved(j) &&
	       (j->closing || flush_wanted(j) || j->ops || (j->flush_at && now >= j->flush_at));
}

/* Caller holds the lock. Takes queued requests (up to batch_max events and
 * a quarter of the WAL's bound in bytes, at least one request), the side
 * writes, and the watermark when it is due. */
static void take_batch(es_journal *j, struct batch *b, uint64_t now)
{
	size_t events = 0, bytes = 0, max_bytes = (size_t)(es_db_wal_max(j->db) / 4);
	struct request *last = NULL;
	b->reqs = j->head;
	for (struct request *r = j->head; r; r = r->next) {
		if (last && (events + r->n > j->o.batch_max || bytes + r->bytes > max_bytes))
			break;
		events += r->n;
		bytes += r->bytes;
		last = r;
	}
	if (last) {
		j->head = last->next;
		if (!j->head)
			j->tail = NULL;
		last->next = NULL;
	}
	j->queued_bytes -= bytes;
	b->flush = flush_now(j, now);
	b->ops = j->ops;
	j->ops = NULL;
	b->ack_gen = j->ack_gen_applied;
	b->watermark = j->acked_mem;
	if (b->flush || !es_jnl_acks_unsaved(j))
		j->flush_at = 0;
}

/* Caller holds the lock. The side writes of a failed batch go back to the
 * front. */
static void requeue_ops(es_journal *j, struct batch *b)
{
	if (!b->ops)
		return;
	struct op *last = b->ops;
	while (last->next)
		last = last->next;
	last->next = j->ops;
	j->ops = b->ops;
	b->ops = NULL;
}

/* The figures after a commit (err == ES_OK) or a failure. */
static void publish(es_journal *j, const struct batch *b, es_err err, uint64_t appended)
{
	for (struct request *r = b->reqs; r; r = r->next)
		for (size_t i = 0; !r->err && i < r->n; i++)
			if (r->res[i].duplicate)
				atomic_fetch_add(&j->duplicates, 1);
	if (!err) {
		atomic_fetch_add(&j->appended, appended);
		atomic_store(&j->pending,
			     j->next_seq - 1 - j->acked_mem - es_seqset_count(&j->ooo));
		atomic_store(&j->latest_seq, j->next_seq - 1);
	}
	atomic_store(&j->failing, err != ES_OK);
}

/* Caller holds the lock. What es_journal_sync_acks waits for. */
static void settle_acks(es_journal *j, const struct batch *b, es_err err)
{
	if (err) {
		snprintf(j->last_error, sizeof j->last_error, "a commit failed: %s",
			 es_strerror(err));
		if (b->flush && b->ack_gen > j->ack_gen_failed)
			j->ack_gen_failed = b->ack_gen;
		requeue_ops(j, (struct batch *)b);
	} else if ((b->flush || b->watermark <= j->acked_db) && b->ack_gen > j->ack_gen_done) {
		j->ack_gen_done = b->ack_gen;
	}
}

/* Answers the producers of the batch (and times their wait), puts back
 * what a failure left. */
static void finish_batch(es_journal *j, struct batch *b, es_err err, uint64_t appended)
{
	uint64_t now = es_jnl_now_us();
	publish(j, b, err, appended);
	pthread_mutex_lock(&j->lock);
	for (struct request *r = b->reqs, *next; r; r = next) {
		next = r->next;		   /* r lives on its producer's stack */
		if (j->on_wait && !r->err) /* under the lock: es_journal_on_wait may clear it */
			j->on_wait(j->wait_ctx, (double)(now - r->queued_us) / 1e6);
		r->done = true;
	}
	settle_acks(j, b, err);
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);
	es_jnl_ops_free(b->ops);
	if (appended && j->o.committed)
		j->o.committed(j->o.ctx, j->next_seq - 1);
}

/* Caller holds the lock. Milliseconds until a transaction is due: 0 now,
 * UINT64_MAX when there is nothing to write. Commits of events come at
 * most every linger_ms, unless LINGER_FILL_BYTES of them are queued: a request
 * that comes after a quiet spell is committed at once, one that comes soon
 * after a commit waits for the next (with whatever else came meanwhile).
 * Side writes (dead letters, state values) come like events; the watermark
 * alone waits for its flush time. */
static uint64_t due_in(es_journal *j, uint64_t now)
{
	uint64_t in = UINT64_MAX;
	if (j->head || j->ops) {
		uint64_t since = (es_jnl_now_us() - j->last_commit_us) / 1000;
		if (j->closing || flush_wanted(j) || since >= j->o.linger_ms ||
		    j->queued_bytes >= LINGER_FILL_BYTES)
			return 0;
		in = j->o.linger_ms - since;
	}
	if (es_jnl_acks_unsaved(j)) {
		if (!j->flush_at)
			j->flush_at = now + j->o.ack_flush_ms;
		if (j->closing || flush_wanted(j) || now >= j->flush_at)
			return 0;
		if (j->flush_at - now < in)
			in = j->flush_at - now;
	}
	return in;
}

/* Caller holds the lock. Runs the transaction that is due. */
static void run_one(es_journal *j, uint64_t now)
{
	struct batch b = {0};
	take_batch(j, &b, now);
	pthread_mutex_unlock(&j->lock);
	uint64_t appended = 0;
	es_err err = run_batch(j, &b, &appended);
	finish_batch(j, &b, err, appended);
	if (j->o.max_bytes)
		es_db_wal_trim(j->db); /* a spilled transaction may have grown it */
	if (es_clock_mono_ms() - j->last_maintain_ms >= MAINTAIN_EVERY_MS)
		es_jnl_maintain(j, es_clock_wall_ms());
	pthread_mutex_lock(&j->lock);
	if (!err)
		return;
	if (j->closing) {
		/* Closing on a failing disk: the acks since the last saved
		 * watermark are published again after the next start (duplicates
		 * only); the dead letters and state values are lost, and said so. */
		if (j->ops)
			es_error(TAG, "closing on a failing disk: dropping queued dead "
				      "letters and state");
		es_jnl_ops_free(j->ops);
		j->ops = NULL;
		j->acked_db = j->acked_mem;
	} else {
		j->flush_at = es_clock_mono_ms() + RETRY_MS; /* do not spin on them */
	}
}

/* Caller holds the lock. Waits for work up to ms. */
static void wait_work(es_journal *j, uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&j->work, &j->lock, &ts);
}

/* Caller holds the lock. Nothing is due: a flush asked for with nothing
 * left to write is done; retention runs now and then; else wait for work
 * or the next deadline. */
static void idle(es_journal *j, uint64_t in)
{
	if (flush_wanted(j) && !j->nacks && !es_jnl_acks_unsaved(j) && !j->ops) {
		j->ack_gen_done = j->ack_gen_applied;
		pthread_cond_broadcast(&j->done);
	}
	uint64_t since = es_clock_mono_ms() - j->last_maintain_ms;
	if (since >= MAINTAIN_EVERY_MS) {
		pthread_mutex_unlock(&j->lock);
		es_jnl_maintain(j, es_clock_wall_ms());
		pthread_mutex_lock(&j->lock);
		return;
	}
	uint64_t until_maintain = MAINTAIN_EVERY_MS - since;
	wait_work(j, in < until_maintain ? (in ? in : 1) : until_maintain);
}

void *es_jnl_writer_main(void *arg)
{
	es_journal *j = arg;
	pthread_mutex_lock(&j->lock);
	for (;;) {
		es_jnl_take_acks(j);
		uint64_t now = es_clock_mono_ms(), in = due_in(j, now);
		if (in == 0)
			run_one(j, now);
		else if (j->closing && in == UINT64_MAX)
			break; /* closing, and nothing left */
		else
			idle(j, in);
	}
	j->ack_gen_done = j->ack_gen_queued;
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}
