/* tmpdir.c - a test's own folder under /tmp (see tmpdir.h). */
#include "tmpdir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int es_tmpdir_make(char *dir, size_t cap, const char *tag)
{
	int n = snprintf(dir, cap, "/tmp/es-%s-XXXXXX", tag);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return mkdtemp(dir) ? 0 : -1;
}

void es_tmpdir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		char name[1024];
		for (struct dirent *e; (e = readdir(d));) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(name, sizeof name, "%s/%s", dir, e->d_name);
			unlink(name);
		}
		closedir(d);
	}
	rmdir(dir);
}
