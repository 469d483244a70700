/* journal_ack.c - acknowledgement as a watermark: every sequence up to
 * acked_mem is acked, plus a small sorted set of acks above it (ooo), both
 * in memory. Producers queue acks without waiting; the writer folds them
 * into the set as soon as it wakes and moves the watermark over whatever
 * follows it without a gap. The file (meta.acked_seq, acked_db) gets the
 * watermark lazily (journal_write.c says when): after a crash the events
 * acked since are published again, duplicates the contract allows, never
 * a loss.
 */
#include "journal_int.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "log.h"

es_err es_journal_ack(es_journal *j, uint64_t seq)
{
	if (!j || seq == 0)
		return ES_EINVAL;
	pthread_mutex_lock(&j->lock);
	uint64_t *grown = es_grow(j->acks, &j->capacks, j->nacks + 1, sizeof *grown, 256);
	if (!grown) {
		pthread_mutex_unlock(&j->lock);
		return ES_ENOMEM;
	}
	j->acks = grown;
	j->acks[j->nacks++] = seq;
	j->ack_gen_queued++;
	if (j->nacks == 1)
		pthread_cond_signal(&j->work);
	pthread_mutex_unlock(&j->lock);
	return ES_OK;
}

es_err es_journal_sync_acks(es_journal *j)
{
	pthread_mutex_lock(&j->lock);
	uint64_t gen = j->ack_gen_queued;
	if (gen > j->flush_gen)
		j->flush_gen = gen;
	pthread_cond_signal(&j->work);
	while (j->ack_gen_done < gen && j->ack_gen_failed < gen)
		pthread_cond_wait(&j->done, &j->lock);
	es_err err = j->ack_gen_done >= gen ? ES_OK : ES_EIO;
	pthread_mutex_unlock(&j->lock);
	return err;
}

/* ---- the writer's side -------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Caller holds the lock (acks come in under it; applying them is a sort
 * and a merge). In memory only: readers, the publisher and the figures
 * see the new watermark at once; the file gets it with a later commit. */
bool es_jnl_take_acks(es_journal *j)
{
	if (!j->nacks)
		return false;
	uint64_t newest = j->next_seq - 1, mark = j->acked_mem;
	size_t before = es_seqset_count(&j->ooo);
	qsort(j->acks, j->nacks, sizeof *j->acks, cmp_u64);
	/* At the bound or out of memory, an ack is let go: the event stays
	 * pending, a duplicate after a reconnect. */
	for (size_t i = 0; i < j->nacks; i++)
		if (j->acks[i] > j->acked_mem && j->acks[i] <= newest)
			(void)es_seqset_add(&j->ooo, j->acks[i]);
	uint64_t added = es_seqset_count(&j->ooo) - before;
	j->nacks = 0;
	j->ack_gen_applied = j->ack_gen_queued;
	/* PUBACKs of one connection come in publish order, so the set is nearly
	 * always taken whole. */
	j->acked_mem += es_seqset_take_run(&j->ooo, j->acked_mem);
	atomic_fetch_add(&j->acked, added);
	atomic_store(&j->acked_seq, j->acked_mem);
	atomic_store(&j->pending, newest - j->acked_mem - es_seqset_count(&j->ooo));
	return added > 0 || j->acked_mem != mark;
}

bool es_jnl_acks_unsaved(const es_journal *j)
{
	return j->acked_mem > j->acked_db;
}

/* In the open transaction: the newest sequence given and the watermark. */
es_err es_jnl_save_meta(es_journal *j)
{
	sqlite3_stmt *st = j->st[S_SET_LAST];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)(j->next_seq - 1));
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->acked_mem);
	return es_db_step_done(j->db, st);
}

/* After the commit of a transaction that saved watermark. */
void es_jnl_meta_saved(es_journal *j, uint64_t watermark)
{
	if (watermark > j->acked_db)
		j->acked_db = watermark;
}
