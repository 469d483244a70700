/* journal_ack.c - acknowledgement as a watermark: every sequence up to
 * acked_db is acked (kept in meta.acked_seq), plus a small sorted set of
 * acks above it in memory (ooo). Producers queue acks without waiting; the
 * writer folds them into the set in its next transaction and moves the
 * watermark over whatever follows it without a gap, once committed.
 */
#include "journal_int.h"

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
	pthread_cond_signal(&j->work);
	while (j->ack_gen_done < gen)
		pthread_cond_wait(&j->done, &j->lock);
	pthread_mutex_unlock(&j->lock);
	return ES_OK;
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

/* Folds the batch's acks into the set; b->advance counts how many of its
 * first entries now follow the watermark without a gap. PUBACKs of one
 * connection come in publish order, so the set is nearly always consumed
 * whole. The set only shrinks in es_jnl_acks_committed, after the commit. */
void es_jnl_apply_acks(es_journal *j, struct batch *b)
{
	uint64_t newest = j->next_seq - 1;
	qsort(b->acks, b->nacks, sizeof *b->acks, cmp_u64);
	size_t before = j->nooo;
	for (size_t i = 0; i < b->nacks; i++)
		if (b->acks[i] > j->acked_db && b->acks[i] <= newest)
			ooo_add(j, b->acks[i]);
	b->acked = j->nooo - before;
	b->advance = 0;
	while (b->advance < j->nooo && j->ooo[b->advance] == j->acked_db + b->advance + 1)
		b->advance++;
}

/* After the commit of b: the watermark moves and the figures follow. */
void es_jnl_acks_committed(es_journal *j, const struct batch *b)
{
	if (b->advance) {
		j->acked_db += b->advance;
		j->nooo -= b->advance;
		memmove(j->ooo, j->ooo + b->advance, j->nooo * sizeof *j->ooo);
	}
	atomic_fetch_add(&j->acked, b->acked);
	atomic_store(&j->acked_seq, j->acked_db);
}

/* Caller holds the lock. Puts acks of a failed batch back in the queue. */
void es_jnl_requeue_acks(es_journal *j, struct batch *b)
{
	if (!b->nacks)
		return;
	uint64_t *merged = realloc(b->acks, (b->nacks + j->nacks) * sizeof *merged);
	if (!merged) {
		es_error(TAG, "out of memory re-queuing %zu acks; they will be re-published",
			 b->nacks);
		return;
	}
	if (j->nacks)
		memcpy(merged + b->nacks, j->acks, j->nacks * sizeof *merged);
	free(j->acks);
	j->acks = merged;
	j->nacks = j->capacks = b->nacks + j->nacks;
	b->acks = NULL;
}
