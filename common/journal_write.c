/* journal_write.c - the writer thread: group commit. It takes everything
 * queued (requests up to batch_max events, every ack, every side write),
 * runs one transaction (each request under its own savepoint), commits
 * once, and wakes every producer of the batch; retention runs between
 * batches and when idle.
 */
#include "journal_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

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

/* The newest sequence given and the ack watermark, in meta. */
static es_err set_meta(es_journal *j, uint64_t watermark)
{
	sqlite3_bind_int64(j->st[S_SET_LAST], 1, (sqlite3_int64)(j->next_seq - 1));
	sqlite3_bind_int64(j->st[S_SET_LAST], 2, (sqlite3_int64)watermark);
	return es_db_step_done(j->db, j->st[S_SET_LAST]);
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

/* Runs one transaction: every request, every ack, every side write, one
 * commit. Requests get their own error; a failed commit fails them all.
 * Returns the commit's error (acks and side writes are then put back by
 * the caller). SQLite rolls a whole transaction back by itself after some
 * errors (full disk, I/O, out of memory): then every request has failed. */
static es_err run_batch(es_journal *j, struct batch *b, uint64_t *appended)
{
	uint64_t first_seq = j->next_seq, now = es_clock_wall_ms();
	choose_sync(j, b->reqs != NULL);
	es_err err = es_db_begin(j->db);
	for (struct request *r = b->reqs; r && !err; r = r->next) {
		r->err = es_jnl_append_request(j, r, now);
		if (r->err && !es_db_in_txn(j->db))
			err = r->err;
	}
	if (!err && b->nacks)
		es_jnl_apply_acks(j, b);
	for (struct op *o = b->ops; o && !err; o = o->next)
		err = run_op_alone(j, o);
	if (!err && (j->next_seq != first_seq || b->advance || b->ops))
		err = set_meta(j, j->acked_db + b->advance);
	if (!err)
		err = es_db_commit(j->db);
	if (err)
		return abandon(j, b, first_seq, err);
	*appended = j->next_seq - first_seq;
	atomic_fetch_add(&j->commits, 1);
	return ES_OK;
}

/* Takes queued requests (up to batch_max events, at least one request),
 * every queued ack and side write. Caller holds the lock. */
static void take_batch(es_journal *j, struct batch *b)
{
	size_t events = 0;
	struct request *last = NULL;
	b->reqs = j->head;
	for (struct request *r = j->head; r; r = r->next) {
		if (last && events + r->n > j->o.batch_max)
			break;
		events += r->n;
		last = r;
	}
	if (last) {
		j->head = last->next;
		if (!j->head)
			j->tail = NULL;
		last->next = NULL;
	}
	b->ops = j->ops;
	j->ops = NULL;
	b->acks = j->acks;
	b->nacks = j->nacks;
	b->ack_gen = j->ack_gen_queued;
	j->acks = NULL;
	j->nacks = j->capacks = 0;
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
		es_jnl_acks_committed(j, b);
		atomic_fetch_add(&j->appended, appended);
		atomic_store(&j->pending, j->next_seq - 1 - j->acked_db - j->nooo);
		atomic_store(&j->latest_seq, j->next_seq - 1);
	}
	atomic_store(&j->failing, err != ES_OK);
}

/* Answers the producers of the batch, puts back what a failure left. */
static void finish_batch(es_journal *j, struct batch *b, es_err err, uint64_t appended)
{
	publish(j, b, err, appended);
	pthread_mutex_lock(&j->lock);
	if (err)
		snprintf(j->last_error, sizeof j->last_error, "a commit failed: %s",
			 es_strerror(err));
	for (struct request *r = b->reqs, *next; r; r = next) {
		next = r->next; /* r lives on its producer's stack */
		r->done = true;
	}
	if (err) {
		es_jnl_requeue_acks(j, b);
		requeue_ops(j, b);
	} else if (b->ack_gen > j->ack_gen_done) {
		j->ack_gen_done = b->ack_gen;
	}
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);
	free(b->acks);
	es_jnl_ops_free(b->ops);
	if (appended && j->o.committed)
		j->o.committed(j->o.ctx, j->next_seq - 1);
}

/* Caller holds the lock. Acks are applied as soon as they come: those that
 * arrive while a commit is being synced ride together in the next one (the
 * watermark makes an ack-only commit one page). Holding them back for bigger
 * commits was measured slower: the publishing threads then idle more. */
static bool has_work(const es_journal *j)
{
	return j->head || j->nacks || j->ops;
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

/* Caller holds the lock. Idle: nothing queued, so every ack ever queued has
 * been applied (failed ones are re-queued, never dropped while memory
 * lasts); run retention now and then. */
static void idle(es_journal *j)
{
	if (!j->nacks && j->ack_gen_done != j->ack_gen_queued) {
		j->ack_gen_done = j->ack_gen_queued;
		pthread_cond_broadcast(&j->done);
	}
	if (es_clock_mono_ms() - j->last_maintain_ms >= MAINTAIN_EVERY_MS) {
		pthread_mutex_unlock(&j->lock);
		es_jnl_maintain(j, es_clock_wall_ms());
		pthread_mutex_lock(&j->lock);
		return;
	}
	wait_work(j, MAINTAIN_EVERY_MS);
}

/* Caller holds the lock, after a failed batch. */
static void after_failure(es_journal *j)
{
	if (j->closing) {
		/* Closing on a failing disk: those acks are re-published after
		 * the next start, which costs duplicates only; the dead letters
		 * and state values are lost, and said so. */
		j->nacks = 0;
		if (j->ops)
			es_error(TAG, "closing on a failing disk: dropping queued dead "
				      "letters and state");
		es_jnl_ops_free(j->ops);
		j->ops = NULL;
	} else if (!j->head) {
		wait_work(j, 100); /* do not spin on re-queued acks */
	}
}

void *es_jnl_writer_main(void *arg)
{
	es_journal *j = arg;
	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (!has_work(j) && !j->closing)
			idle(j);
		if (!has_work(j))
			break; /* closing, and nothing left */
		struct batch b = {0};
		take_batch(j, &b);
		pthread_mutex_unlock(&j->lock);
		uint64_t appended = 0;
		es_err err = run_batch(j, &b, &appended);
		finish_batch(j, &b, err, appended);
		if (es_clock_mono_ms() - j->last_maintain_ms >= MAINTAIN_EVERY_MS)
			es_jnl_maintain(j, es_clock_wall_ms());
		pthread_mutex_lock(&j->lock);
		if (err)
			after_failure(j);
	}
	j->ack_gen_done = j->ack_gen_queued;
	pthread_cond_broadcast(&j->done);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}
