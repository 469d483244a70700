/* journal_retain.c - what may leave the journal, and when: acked events
 * journaled longer ago than retain_ms (a chunk a second, in a transaction
 * of its own), and, under the evict policy, the oldest acked events when a
 * request needs room under the cap. Only a prefix is ever removed, so the
 * held sequences stay one contiguous range.
 *
 * Writer thread only.
 */
#include "journal_int.h"

#include <inttypes.h>
#include <sqlite3.h>

#include "clock.h"
#include "log.h"

/* The database's used size: pages in use, not the file's size (pages
 * freed by retention are used again before the file grows). */
es_err es_jnl_used_bytes(es_journal *j, uint64_t *out)
{
	uint64_t pages = 0, free_pages = 0;
	bool found;
	es_err err = es_db_step_u64(j->db, j->st[S_PAGES], &pages, &found);
	if (!err)
		err = es_db_step_u64(j->db, j->st[S_FREEPAGES], &free_pages, &found);
	if (!err)
		*out = (pages - free_pages) * j->page_size;
	return err;
}

/* The -shm file for a WAL of wal bytes: 32 KiB per 4096 frames. */
static uint64_t shm_for(const es_journal *j, uint64_t wal)
{
	uint64_t frames = wal / (j->page_size + 24);
	return ES_DB_SHM_BYTES * (1 + frames / 4096);
}

/* The shares of max_bytes that are not the database's: the WAL's bound
 * (an eighth of the cap, from 8 KiB to ES_DB_WAL_MAX) and its -shm file. */
void es_jnl_shares(es_journal *j)
{
	uint64_t wal = j->o.max_bytes / 8;
	if (!j->o.max_bytes || wal > ES_DB_WAL_MAX)
		wal = ES_DB_WAL_MAX;
	if (wal < 8192)
		wal = 8192;
	j->wal_share = wal;
	j->shm_share = shm_for(j, wal);
}

/* The database's share of the cap. */
uint64_t es_jnl_db_share(const es_journal *j)
{
	uint64_t others = j->wal_share + j->shm_share;
	return j->o.max_bytes > others ? j->o.max_bytes - others : 0;
}

/* Inside the open transaction, after its inserts: by how many bytes the
 * cap is passed (0: it is not). It holds for every file the journal owns:
 * the database's pages in use must stay within its share, and the moment
 * after this commit -- the database, the WAL grown by what this
 * transaction writes (the pages it added and those it changed), the -shm
 * file -- within max_bytes (which bites when readers kept the WAL from
 * starting again, or one transaction outgrows the WAL's share). *after
 * gets the database's used size. */
es_err es_jnl_cap_check(es_journal *j, uint64_t before, uint64_t *after, uint64_t *over)
{
	es_err err = es_jnl_used_bytes(j, after);
	if (err)
		return err;
	uint64_t grew = *after > before ? *after - before : 0;
	uint64_t wal = es_db_wal_bytes(j->db) +
		       (grew / j->page_size + TXN_PAGES_CHANGED) * (j->page_size + 24);
	uint64_t file = es_db_wal_file_bytes(j->db);
	if (wal < file)
		wal = file;
	if (wal < j->wal_share)
		wal = j->wal_share;
	uint64_t total = *after + wal + shm_for(j, wal), share = es_jnl_db_share(j);
	uint64_t by_files = total > j->o.max_bytes ? total - j->o.max_bytes : 0;
	uint64_t by_db = *after > share ? *after - share : 0;
	*over = by_files > by_db ? by_files : by_db;
	return ES_OK;
}

/* Deletes the oldest acked rows that may go: those journaled at or before
 * cut_ms (UINT64_MAX: any acked row), at most chunk of them, stopping at the
 * first row that must stay so the kept range stays contiguous. *deleted gets
 * the count. */
static es_err prune_step(es_journal *j, uint64_t cut_ms, uint64_t chunk, uint64_t *deleted)
{
	uint64_t oldest, keep;
	bool found;
	*deleted = 0;
	es_err err = es_db_step_u64(j->db, j->st[S_OLDEST], &oldest, &found);
	if (err || !found)
		return err;
	sqlite3_stmt *st = j->st[S_FIRST_KEEP];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)oldest);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)(oldest + chunk - 1));
	sqlite3_bind_int64(st, 3, es_jnl_bound(cut_ms));
	sqlite3_bind_int64(st, 4, (sqlite3_int64)j->acked_mem);
	if ((err = es_db_step_u64(j->db, st, &keep, &found)))
		return err;
	if (!found)
		keep = oldest + chunk;
	if (keep <= oldest)
		return ES_OK;
	sqlite3_bind_int64(j->st[S_DELETE_BELOW], 1, (sqlite3_int64)keep);
	if ((err = es_db_step_done(j->db, j->st[S_DELETE_BELOW])))
		return err;
	*deleted = es_db_changes(j->db);
	if (*deleted)
		j->deleted = true; /* the transaction saves last_seq and the watermark */
	return ES_OK;
}

/* Makes room for `need` more bytes in the database's share of the cap,
 * evicting acked rows when the policy allows. ES_EFULL when there is no
 * room. */
es_err es_jnl_make_room(es_journal *j, uint64_t need)
{
	if (!j->o.max_bytes)
		return ES_OK;
	for (;;) {
		uint64_t used, deleted;
		es_err err = es_jnl_used_bytes(j, &used);
		if (err)
			return err;
		if (used + need <= es_jnl_db_share(j))
			return ES_OK;
		if (j->o.on_full != ES_ON_FULL_EVICT)
			return ES_EFULL;
		if ((err = prune_step(j, UINT64_MAX, EVICT_CHUNK, &deleted)))
			return err;
		if (deleted == 0)
			return ES_EFULL;
		atomic_fetch_add(&j->evicted, deleted);
	}
}

/* Age-based retention, a chunk at a time, and the dead letters' bound, in
 * a transaction of its own (not synced: see choose_sync; it writes nothing
 * when nothing went). Deleting events saves the watermark with them. */
void es_jnl_maintain(es_journal *j, uint64_t now)
{
	uint64_t cut = now > j->o.retain_ms ? now - j->o.retain_ms : 0, deleted = 0;
	uint64_t mark = j->acked_mem;
	j->last_maintain_ms = es_clock_mono_ms();
	es_db_set_sync(j->db, false);
	j->deleted = false;
	if (es_db_begin(j->db))
		return;
	es_err err = prune_step(j, cut, PRUNE_CHUNK, &deleted);
	if (!err)
		err = es_jnl_prune_dead(j);
	if (!err && deleted)
		err = es_jnl_save_meta(j);
	if (err || es_db_commit(j->db)) {
		es_db_rollback(j->db);
		return;
	}
	if (deleted)
		es_jnl_meta_saved(j, mark);
	atomic_fetch_add(&j->expired, deleted);
	if (deleted)
		es_debug(TAG, "retention removed %" PRIu64 " acked events", deleted);
}
