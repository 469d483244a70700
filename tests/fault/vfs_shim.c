/* vfs_shim.c - a test-only SQLite VFS that simulates power cuts and failing
 * disks under the real edge-agent. Loaded with LD_PRELOAD; never linked into
 * a program. Its constructor registers the VFS "es-shim", which wraps the
 * default ("unix") VFS, as SQLite's new default: the agent's
 * sqlite3_open_v2() uses it without any change to its code.
 *
 * Power cut. For every main database, WAL and rollback journal file the shim
 * keeps an undo log of what changed since that file's last xSync: before a
 * write or a truncate, the bytes it is about to change (only those below the
 * size the file had at its last sync: a cut restores that size anyway). An
 * xSync on any handle of the file empties its log (fsync covers the inode).
 * A cut applies every undo log, newest change first, then truncates each
 * file to its synced size -- the files are then exactly what a disk that
 * kept only synced data would hold -- and ends the process with _exit(137),
 * as abruptly as SIGKILL. The cut is made by a thread of the shim's own,
 * never in a signal handler:
 *   SIGUSR2                 the handler only sem_post()s the cutter thread;
 *   ES_SHIM_CUT_AFTER_MS=N  the cutter thread cuts N ms after the process
 *                           started.
 * The cutter takes the shim's lock, which every write, truncate and sync
 * holds across the real call and its bookkeeping, so a cut never falls
 * inside a write or between an fsync and the clearing of its undo log; and
 * it needs no VFS call to come (an idle agent is cut too).
 *
 * Failing disk. xWrite and xSync calls on main database and WAL files are
 * counted from 1, over the whole process:
 *   ES_SHIM_FAIL_WRITE=N    the Nth xWrite fails with SQLITE_IOERR_WRITE;
 *   ES_SHIM_FAIL_SYNC=N     the Nth xSync fails with SQLITE_IOERR_FSYNC;
 *   ES_SHIM_FAIL_PERSIST=1  from then on every xWrite, xSync and xTruncate on
 *                           those files fails too (a dead disk); without it
 *                           only that one call fails (a transient error).
 * A failed call leaves the file untouched. Every injected fault is logged on
 * stderr ("es-shim: ..."), which the tests read.
 *
 * Not modelled: directory entries (a file created and never synced survives
 * a cut), torn writes inside one call, and the -shm file, which is volatile
 * by nature (the next process to open the database rebuilds it from the WAL).
 *
 * State: SQLite's VFS registry is process-wide, so this test-only module
 * keeps its state in globals, unlike the project's modules. Lock `lock`
 * guards `files` and everything reachable from it, and `fault`; the cutter
 * takes it and never gives it back.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SHIM_NAME "es-shim"
#define CUT_EXIT  137

/* The bytes a write or truncate was about to change. */
struct undo {
	struct undo *next; /* the next older change */
	sqlite3_int64 off;
	size_t len;
	unsigned char bytes[];
};

/* One file on disk, shared by every handle SQLite opens on it; kept after
 * its handles close (unsynced data stays unsynced), dropped by xDelete. */
struct tracked {
	struct tracked *next;
	char *path;
	int refs;	/* open handles */
	bool listed;	/* in `files` (not deleted) */
	bool faultable; /* main database or WAL: faults are injected here */
	sqlite3_int64 synced_size;
	struct undo *undo; /* newest first */
};

struct shim_file {
	sqlite3_file base;
	sqlite3_file *real; /* the wrapped VFS's file, right after this struct */
	struct tracked *t;  /* NULL: not tracked (temporary files) */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct tracked *files;
static sem_t cut_sem;
static long cut_after_ms;

static struct {
	long write_at, sync_at; /* the call to fail; 0: none */
	bool persist;
	long writes, syncs; /* calls counted so far */
	bool dead;	    /* a persistent fault fired */
	long refused;	    /* calls failed since */
} fault;

/* ---- undo logs -------------------------------------------------------- */

static void free_undo(struct tracked *t)
{
	while (t->undo) {
		struct undo *next = t->undo->next;
		free(t->undo);
		t->undo = next;
	}
}

/* Caller holds the lock. Saves the bytes of [off, off + len) that exist now
 * and lie below the synced size. SQLITE_OK, SQLITE_NOMEM or a read error. */
static int save(struct shim_file *s, sqlite3_int64 off, sqlite3_int64 len)
{
	sqlite3_int64 size, end = off + len;
	int rc = s->real->pMethods->xFileSize(s->real, &size);
	if (rc != SQLITE_OK)
		return rc;
	if (end > size)
		end = size;
	if (end > s->t->synced_size)
		end = s->t->synced_size;
	if (end - off > INT_MAX)
		end = off + INT_MAX; /* files here are far smaller */
	if (end <= off)
		return SQLITE_OK;
	struct undo *u = malloc(sizeof *u + (size_t)(end - off));
	if (!u)
		return SQLITE_NOMEM;
	u->off = off;
	u->len = (size_t)(end - off);
	rc = s->real->pMethods->xRead(s->real, u->bytes, (int)u->len, off);
	if (rc != SQLITE_OK) {
		free(u);
		return rc;
	}
	u->next = s->t->undo;
	s->t->undo = u;
	return SQLITE_OK;
}

/* Caller holds the lock. The file's current contents are now durable. */
static int mark_synced(struct shim_file *s)
{
	sqlite3_int64 size;
	int rc = s->real->pMethods->xFileSize(s->real, &size);
	if (rc != SQLITE_OK)
		return rc;
	free_undo(s->t);
	s->t->synced_size = size;
	return SQLITE_OK;
}

static bool write_all(int fd, const unsigned char *p, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return true;
}

/* Puts t back as it was at its last sync (newest change undone first). */
static void restore(const struct tracked *t)
{
	int fd = open(t->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		dprintf(2, "es-shim: cannot restore %s: %s\n", t->path, strerror(errno));
		return;
	}
	size_t regions = 0, bytes = 0;
	bool ok = true;
	for (const struct undo *u = t->undo; u && ok; u = u->next, regions++) {
		ok = write_all(fd, u->bytes, u->len, (off_t)u->off);
		bytes += u->len;
	}
	if (!ok || ftruncate(fd, (off_t)t->synced_size) != 0)
		dprintf(2, "es-shim: restoring %s failed: %s\n", t->path, strerror(errno));
	close(fd);
	dprintf(2, "es-shim: %s: %zu unsynced changes undone (%zu bytes), size %lld\n", t->path,
		regions, bytes, (long long)t->synced_size);
}

/* Restores every file to its last sync and ends the process. */
static void cut(const char *why)
{
	pthread_mutex_lock(&lock); /* no write or sync is half done now */
	dprintf(2, "es-shim: POWER CUT (%s)\n", why);
	for (const struct tracked *t = files; t; t = t->next)
		restore(t);
	_exit(CUT_EXIT);
}

/* ---- injected faults -------------------------------------------------- */

/* Caller holds the lock. SQLITE_OK, or err when this call is to fail:
 * the count-th call of its kind, or any call once the disk is dead. */
static int inject(const struct tracked *t, long *count, long at, int err, const char *what)
{
	if (!t->faultable)
		return SQLITE_OK;
	if (fault.dead) {
		fault.refused++;
		return err;
	}
	if (!count || ++*count != at)
		return SQLITE_OK;
	fault.dead = fault.persist;
	dprintf(2, "es-shim: FAULT injected: %s #%ld of %s fails (%s)\n", what, at, t->path,
		fault.persist ? "persistent: the disk is dead from now on" : "transient");
	return err;
}

/* ---- the file methods ------------------------------------------------- */

static void untrack(struct tracked *t)
{
	if (--t->refs > 0 || t->listed)
		return;
	free_undo(t);
	free(t->path);
	free(t);
}

static int shim_close(sqlite3_file *f)
{
	struct shim_file *s = (struct shim_file *)f;
	int rc = s->real->pMethods->xClose(s->real);
	if (s->t) {
		pthread_mutex_lock(&lock);
		untrack(s->t);
		pthread_mutex_unlock(&lock);
	}
	return rc;
}

static int shim_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xRead(s->real, buf, amt, off);
}

static int shim_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	struct shim_file *s = (struct shim_file *)f;
	if (!s->t)
		return s->real->pMethods->xWrite(s->real, buf, amt, off);
	pthread_mutex_lock(&lock);
	int rc = inject(s->t, &fault.writes, fault.write_at, SQLITE_IOERR_WRITE, "write");
	if (rc == SQLITE_OK)
		rc = save(s, off, amt);
	if (rc == SQLITE_OK)
		rc = s->real->pMethods->xWrite(s->real, buf, amt, off);
	pthread_mutex_unlock(&lock);
	return rc;
}

static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct shim_file *s = (struct shim_file *)f;
	if (!s->t)
		return s->real->pMethods->xTruncate(s->real, size);
	pthread_mutex_lock(&lock);
	int rc = inject(s->t, NULL, 0, SQLITE_IOERR_TRUNCATE, "truncate");
	if (rc == SQLITE_OK)
		rc = save(s, size, s->t->synced_size - size);
	if (rc == SQLITE_OK)
		rc = s->real->pMethods->xTruncate(s->real, size);
	pthread_mutex_unlock(&lock);
	return rc;
}

static int shim_sync(sqlite3_file *f, int flags)
{
	struct shim_file *s = (struct shim_file *)f;
	if (!s->t)
		return s->real->pMethods->xSync(s->real, flags);
	pthread_mutex_lock(&lock);
	int rc = inject(s->t, &fault.syncs, fault.sync_at, SQLITE_IOERR_FSYNC, "sync");
	if (rc == SQLITE_OK)
		rc = s->real->pMethods->xSync(s->real, flags);
	if (rc == SQLITE_OK)
		rc = mark_synced(s);
	pthread_mutex_unlock(&lock);
	return rc;
}

static int shim_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xFileSize(s->real, size);
}

static int shim_lock(sqlite3_file *f, int level)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xLock(s->real, level);
}

static int shim_unlock(sqlite3_file *f, int level)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xUnlock(s->real, level);
}

static int shim_check_reserved(sqlite3_file *f, int *out)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xCheckReservedLock(s->real, out);
}

static int shim_file_control(sqlite3_file *f, int op, void *arg)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xFileControl(s->real, op, arg);
}

static int shim_sector_size(sqlite3_file *f)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xSectorSize(s->real);
}

static int shim_device_characteristics(sqlite3_file *f)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xDeviceCharacteristics(s->real);
}

static int shim_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xShmMap(s->real, region, size, extend, out);
}

static int shim_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xShmLock(s->real, offset, n, flags);
}

static void shim_shm_barrier(sqlite3_file *f)
{
	struct shim_file *s = (struct shim_file *)f;
	s->real->pMethods->xShmBarrier(s->real);
}

static int shim_shm_unmap(sqlite3_file *f, int delete_flag)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xShmUnmap(s->real, delete_flag);
}

static int shim_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **out)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xFetch(s->real, off, amt, out);
}

static int shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	struct shim_file *s = (struct shim_file *)f;
	return s->real->pMethods->xUnfetch(s->real, off, p);
}

static const sqlite3_io_methods shim_io = {
	.iVersion = 3,
	.xClose = shim_close,
	.xRead = shim_read,
	.xWrite = shim_write,
	.xTruncate = shim_truncate,
	.xSync = shim_sync,
	.xFileSize = shim_file_size,
	.xLock = shim_lock,
	.xUnlock = shim_unlock,
	.xCheckReservedLock = shim_check_reserved,
	.xFileControl = shim_file_control,
	.xSectorSize = shim_sector_size,
	.xDeviceCharacteristics = shim_device_characteristics,
	.xShmMap = shim_shm_map,
	.xShmLock = shim_shm_lock,
	.xShmBarrier = shim_shm_barrier,
	.xShmUnmap = shim_shm_unmap,
	.xFetch = shim_fetch,
	.xUnfetch = shim_unfetch,
};

/* ---- the VFS ---------------------------------------------------------- */

/* Caller holds the lock. The listed entry for path, or NULL. */
static struct tracked *find(const char *path)
{
	for (struct tracked *t = files; t; t = t->next)
		if (strcmp(t->path, path) == 0)
			return t;
	return NULL;
}

/* Caller holds the lock. The entry for a file just opened (made on its
 * first open, with the size it has now taken as synced), or NULL. */
static struct tracked *track(const char *path, sqlite3_file *real, int flags)
{
	struct tracked *t = find(path);
	if (!t) {
		sqlite3_int64 size;
		if (real->pMethods->xFileSize(real, &size) != SQLITE_OK ||
		    !(t = calloc(1, sizeof *t)) || !(t->path = strdup(path))) {
			free(t);
			return NULL;
		}
		t->synced_size = size;
		t->faultable = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
		t->listed = true;
		t->next = files;
		files = t;
	}
	t->refs++;
	return t;
}

static int shim_open(sqlite3_vfs *vfs, const char *path, sqlite3_file *f, int flags, int *out)
{
	struct shim_file *s = (struct shim_file *)f;
	s->real = (sqlite3_file *)(s + 1);
	s->t = NULL;
	int rc = real_vfs->xOpen(real_vfs, path, s->real, flags, out);
	if (rc != SQLITE_OK) {
		f->pMethods = NULL;
		return rc;
	}
	f->pMethods = &shim_io;
	if (path && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL))) {
		pthread_mutex_lock(&lock);
		s->t = track(path, s->real, flags);
		pthread_mutex_unlock(&lock);
		if (!s->t) {
			shim_close(f);
			f->pMethods = NULL;
			return SQLITE_NOMEM;
		}
	}
	return SQLITE_OK;
}

/* Unlinking a file ends its tracking (its handles may outlive it). */
static int shim_delete(sqlite3_vfs *vfs, const char *path, int sync_dir)
{
	pthread_mutex_lock(&lock);
	for (struct tracked **p = &files; *p; p = &(*p)->next) {
		if (strcmp((*p)->path, path) == 0) {
			struct tracked *t = *p;
			*p = t->next;
			t->listed = false;
			t->refs++; /* untrack() drops it, and frees it if unused */
			untrack(t);
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	return real_vfs->xDelete(real_vfs, path, sync_dir);
}

/* ---- the cutter thread and set-up -------------------------------------- */

static void on_sigusr2(int sig)
{
	sem_post(&cut_sem); /* async-signal-safe; the cutter does the rest */
}

static void *cutter(void *arg)
{
	/* Every other signal stays with the program's threads (it may take
	 * SIGTERM through a signalfd); SIGUSR2 comes here, one already sent
	 * arrives now. */
	sigset_t set;
	sigfillset(&set);
	sigdelset(&set, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	struct timespec at;
	clock_gettime(CLOCK_REALTIME, &at);
	at.tv_sec += cut_after_ms / 1000;
	at.tv_nsec += (cut_after_ms % 1000) * 1000000L;
	if (at.tv_nsec >= 1000000000L) {
		at.tv_sec++;
		at.tv_nsec -= 1000000000L;
	}
	int rc;
	do
		rc = cut_after_ms > 0 ? sem_timedwait(&cut_sem, &at) : sem_wait(&cut_sem);
	while (rc != 0 && errno == EINTR);
	cut(rc == 0 ? "SIGUSR2" : "ES_SHIM_CUT_AFTER_MS");
	return NULL;
}

static long env_long(const char *name)
{
	const char *v = getenv(name);
	return v ? strtol(v, NULL, 10) : 0;
}

/* Only the cutter thread takes SIGUSR2: it stays blocked in the calling
 * (main) thread, so in every thread the program starts later, and none of
 * them sees an EINTR because of it. The cutter is made with every signal
 * blocked and takes SIGUSR2 alone. */
static int start_cutter(void)
{
	sigset_t set, all, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	sigfillset(&all);
	struct sigaction sa = {.sa_handler = on_sigusr2, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	pthread_t th;
	if (sem_init(&cut_sem, 0, 0) != 0 || sigaction(SIGUSR2, &sa, NULL) != 0 ||
	    pthread_sigmask(SIG_BLOCK, &all, &old) != 0)
		return -1;
	int rc = pthread_create(&th, NULL, cutter, NULL);
	sigaddset(&old, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -1;
	pthread_detach(th);
	return 0;
}

__attribute__((constructor)) static void shim_init(void)
{
	fault.write_at = env_long("ES_SHIM_FAIL_WRITE");
	fault.sync_at = env_long("ES_SHIM_FAIL_SYNC");
	fault.persist = env_long("ES_SHIM_FAIL_PERSIST") != 0;
	cut_after_ms = env_long("ES_SHIM_CUT_AFTER_MS");
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs) {
		dprintf(2, "es-shim: no default SQLite VFS to wrap\n");
		_exit(70);
	}
	shim_vfs = *real_vfs; /* the calls not wrapped pass straight through */
	shim_vfs.zName = SHIM_NAME;
	shim_vfs.szOsFile = (int)sizeof(struct shim_file) + real_vfs->szOsFile;
	shim_vfs.pNext = NULL;
	shim_vfs.xOpen = shim_open;
	shim_vfs.xDelete = shim_delete;
	if (sqlite3_vfs_register(&shim_vfs, 1) != SQLITE_OK || start_cutter() != 0) {
		dprintf(2, "es-shim: cannot set up\n");
		_exit(70);
	}
	dprintf(2,
		"es-shim: loaded over \"%s\" (fail write #%ld, sync #%ld, %s; cut after %ld ms; "
		"SIGUSR2 cuts)\n",
		real_vfs->zName, fault.write_at, fault.sync_at,
		fault.persist ? "persistent" : "transient", cut_after_ms);
}
