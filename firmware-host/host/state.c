/* state.c - the nv counters' file; see state.h. */
#include "state.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One line: three unsigned 32-bit numbers, nothing else. */
static bool parse_line(const char *line, uint32_t out[3])
{
	unsigned long long v[3];
	int used = 0;

	if (sscanf(line, "%llu %llu %llu %n", &v[0], &v[1], &v[2], &used) != 3 ||
	    line[used] != '\0')
		return false;
	for (int i = 0; i < 3; i++) {
		if (v[i] > UINT32_MAX)
			return false;
		out[i] = (uint32_t)v[i];
	}
	return true;
}

bool state_load(const char *path, uint32_t first_id, uint32_t n, struct state_nv *nv, char *err,
		size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[128];
	unsigned lineno = 0;
	bool ok = true;

	if (!f) {
		if (errno == ENOENT)
			return true;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return false;
	}
	while (ok && fgets(line, sizeof line, f)) {
		uint32_t v[3];

		lineno++;
		if (!parse_line(line, v)) {
			snprintf(err, errlen, "%s:%u: expected 'ID BOOT SEQ'", path, lineno);
			ok = false;
		} else if (v[0] >= first_id && v[0] - first_id < n) {
			nv[v[0] - first_id].v[0] = v[1];
			nv[v[0] - first_id].v[1] = v[2];
		}
	}
	fclose(f);
	return ok;
}

bool state_save(const char *path, uint32_t first_id, uint32_t n, const struct state_nv *nv,
		char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	FILE *f;
	bool ok;

	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	if (!(f = fopen(tmp, "w")))
		goto fail;
	for (uint32_t i = 0; i < n; i++)
		fprintf(f, "%" PRIu32 " %" PRIu32 " %" PRIu32 "\n", first_id + i, nv[i].v[0],
			nv[i].v[1]);
	ok = !ferror(f);
	if (fclose(f) != 0 || !ok || rename(tmp, path) < 0)
		goto fail;
	return true;
fail:
	snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
	(void)unlink(tmp);
	return false;
}
