/* replay_main.c - runs a libFuzzer target without libFuzzer: a main() that
 * calls LLVMFuzzerTestOneInput once on every file of the directories (or
 * files) named on its command line. Linked with each *_fuzz.c by CMake and
 * built with the build's own compiler and flags, so every build replays
 * the seed corpora (under ASan and UBSan in the sanitizer build). A target
 * abort()s on a broken invariant, which fails the run; so does an empty
 * or unreadable corpus. */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the file at path into a malloc'd *out of *len bytes (at least one
 * byte allocated, so an empty file works too). False on any error. */
static bool read_all(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	FILE *f = fopen(path, "rb");
	if (!f)
		return false;
	uint8_t *buf = NULL;
	bool ok = fstat(fileno(f), &st) == 0 && st.st_size >= 0 &&
		  (buf = malloc((size_t)st.st_size + 1)) != NULL &&
		  fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size;
	fclose(f);
	if (!ok) {
		free(buf);
		return false;
	}
	*out = buf;
	*len = (size_t)st.st_size;
	return true;
}

static bool run_file(const char *path)
{
	uint8_t *data;
	size_t len;
	if (!read_all(path, &data, &len)) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		return false;
	}
	/* The name first, so a crash's report says which input it was. */
	fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	return true;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir, in name order; returns how many ran, or
 * -1 on an error. */
static long run_dir(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, NULL);
	if (n < 0) {
		fprintf(stderr, "replay: cannot read the folder %s\n", dir);
		return -1;
	}
	char **paths = calloc((size_t)n + 1, sizeof *paths);
	long ran = 0, k = 0;
	for (int i = 0; i < n; i++) {
		char *p = NULL;
		struct stat st;
		if (paths && asprintf(&p, "%s/%s", dir, names[i]->d_name) > 0 &&
		    stat(p, &st) == 0 && S_ISREG(st.st_mode))
			paths[k++] = p;
		else
			free(p);
		free(names[i]);
	}
	free(names);
	if (!paths)
		return -1;
	qsort(paths, (size_t)k, sizeof *paths, cmp_names);
	for (long i = 0; i < k; i++) {
		if (ran >= 0 && run_file(paths[i]))
			ran++;
		else
			ran = -1;
		free(paths[i]);
	}
	free(paths);
	return ran;
}

int main(int argc, char **argv)
{
	long total = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		long ran = stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)
				   ? run_dir(argv[i])
				   : (run_file(argv[i]) ? 1 : -1);
		if (ran <= 0) {
			fprintf(stderr, "replay: FAIL: %s: %s\n", argv[i],
				ran == 0 ? "no inputs" : "unreadable");
			return 1;
		}
		total += ran;
	}
	printf("replay: %ld inputs, no crash\n", total);
	return 0;
}
