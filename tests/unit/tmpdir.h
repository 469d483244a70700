/* tmpdir.h - a test's own folder under /tmp: made fresh, removed whole.
 *
 * The unit tests keep their SQLite files, sockets and configs in one
 * folder per test (or per fixture), so that a failed test leaves nothing
 * that the next run could read.
 */
#ifndef ES_TEST_TMPDIR_H
#define ES_TEST_TMPDIR_H

#include <stddef.h>

/* Makes "/tmp/es-<tag>-XXXXXX" (mkdtemp) and writes its name into dir
 * (cap bytes). 0, or -1 when it does not fit or cannot be made. */
int es_tmpdir_make(char *dir, size_t cap, const char *tag);

/* Removes the files in dir (the tests make no subfolders), then dir.
 * Anything that cannot be removed is left: a teardown never fails. */
void es_tmpdir_remove(const char *dir);

#endif
