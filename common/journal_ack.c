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

#include "log.h"

es_err es_journal_ack(es_journal *j, uint64_t seq)
{
	if (!j || seq == 0)
		return ES_EINVAL;
	pthread_mutex_lock(&j->lock);
	if (j->nacks == j->capacks) {
		size_t cap = j->capacks ? j->capacks * 2 : 256;
		uint64_t *grown = realloc(j->acks, cap * sizeof *grown);
		if (!grown) {
			pthread_mutex_unlock(&j->lock);
			return ES_ENOMEM;
		}
		j->acks = grown;
		j->capacks = cap;
	}
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

/* Adds seq to the sorted set of acks above the watermark (no duplicates). */
static void ooo_add(es_journal *j, uint64_t seq)
{
	size_t lo = 0, hi = j->nooo;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (j->ooo[mid] < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < j->nooo && j->ooo[lo] == seq)
		return;
	if (j->nooo == j->capooo) {
		size_t cap = j->capooo ? j->capooo * 2 : 1024;
		uint64_t *grown = cap <= OOO_MAX ? realloc(j->ooo, cap * sizeof *grown) : NULL;
		if (!grown) /* the event stays pending: a duplicate after a reconnect */
			return;
		j->ooo = grown;
		j->capooo = cap;
	}
	memmove(&j->ooo[lo + 1], &j->ooo[lo], (j->nooo - lo) * sizeof *j->ooo);
	j->ooo[lo] = seq;
	j->nooo++;
}

/* Moves the watermark over the acks that follow it without a gap. PUBACKs
 * of one connection come in publish order, so the set is nearly always
 * consumed whole. */
static void advance(es_journal *j)
{
	size_t n = 0;
	while (n < j->nooo && j->ooo[n] == j->acked_mem + n + 1)
		n++;
	if (!n)
		return;
	j->acked_mem += n;
	j->nooo -= n;
	memmove(j->ooo, j->ooo + n, j->nooo * sizeof *j->ooo);
}

/* Caller holds the lock (acks come in under it; applying them is a sort
 * and a merge). In memory only: readers, the publisher and the figures
 * see the new watermark at once; the file gets it with a later commit. */
bool es_jnl_take_acks(es_journal *j)
{
	if (!j->nacks)
		return false;
	uint64_t newest = j->next_seq - 1, before = j->nooo, mark = j->acked_mem;
	qsort(j->acks, j->nacks, sizeof *j->acks, cmp_u64);
	for (size_t i = 0; i < j->nacks; i++)
		if (j->acks[i] > j->acked_mem && j->acks[i] <= newest)
			ooo_add(j, j->acks[i]);
	uint64_t added = j->nooo - before;
	j->nacks = 0;
	j->ack_gen_applied = j->ack_gen_queued;
	advance(j);
	atomic_fetch_add(&j->acked, added);
	atomic_store(&j->acked_seq, j->acked_mem);
	atomic_store(&j->pending, newest - j->acked_mem - j->nooo);
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
