/* config_fuzz.c - libFuzzer target for the settings loader.
 *
 * The input is an INI file, handed to es_config_load as --config
 * /proc/self/fd/N (a memfd), for a small table with one setting of every
 * type, made of parts as the programs' are (es_config_new_parts): rows of
 * its own and a shared part under a section, one row of it hidden. Loading
 * must never crash, whatever the file holds, and never sets the hidden
 * row. When it loads,
 * what --print-config writes (es_config_print) must load again, as a file,
 * to the same values (unless a value is longer than inih reads in a line,
 * see FILE_LINE_MAX). Any difference abort()s; the sanitizers catch the
 * rest. Built by tests/fuzz/run_fuzz.sh, and with replay_main.c by CMake. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct settings {
	char *name;
	char *path;
	int64_t count;
	int64_t offset;
	bool on;
	int mode;
	uint64_t size;
	uint64_t any_size;
	int64_t every;
	int64_t wait;
	es_strlist hosts;
	es_strlist empty;
	int64_t fixed; /* hidden: always its default */
} settings;

/* The longest line the file reader takes: inih's INI_MAX_LINE (200, as
 * Debian builds it) less the line ending and its NUL. An indented line that
 * continues a list's value can carry an element longer than a "key = value"
 * line can; that element cannot be printed in a form that reads back. */
#define FILE_LINE_MAX 198

static const char *const modes[] = {"off", "on", "auto", NULL};

#define ROW(n, t, f, d, lo, hi)                                                                    \
	{                                                                                          \
		n, t, offsetof(settings, f), d, lo, hi, NULL, 0, NULL                              \
	}
static const es_setting table[] = {
	ROW("node.name", ES_CFG_STR, name, "gw-1", 0, 0),
	{"node.path", ES_CFG_STR, offsetof(settings, path), NULL, 0, 0, NULL, ES_CFG_PATH, NULL},
	ROW("node.count", ES_CFG_INT, count, "3", 1, 1000000),
	ROW("node.offset", ES_CFG_INT, offset, NULL, 0, 0),
	ROW("node.on", ES_CFG_BOOL, on, "false", 0, 0),
	{"node.mode", ES_CFG_ENUM, offsetof(settings, mode), "auto", 0, 0, modes, 0, NULL},
	ROW("store.size", ES_CFG_SIZE, size, "64KiB", 1024, INT64_MAX),
	ROW("store.any-size", ES_CFG_SIZE, any_size, NULL, 0, 0),
	ROW("store.every", ES_CFG_SECONDS, every, "30s", 1, 7 * 86400),
	ROW("store.wait", ES_CFG_MS, wait, "250ms", 0, 0),
};

/* A shared part, keyed without its section, as common/'s are. */
static const es_setting net_rows[] = {
	ROW("hosts", ES_CFG_LIST, hosts, "a, b", 0, 0),
	ROW("empty", ES_CFG_LIST, empty, NULL, 0, 0),
	ROW("fixed", ES_CFG_INT, fixed, "7", 0, 0),
};
static const es_setting_edit net_edits[] = {{"fixed", .hide = true}};

static const es_settings_part parts[] = {
	ES_OWN_ROWS(table),
	ES_SHARED_EDITED("net", 0, net_rows, net_edits),
};

/* Loads text[0..len) as the config file into *s; NULL if it does not load. */
static es_config *load(const void *text, size_t len, settings *s)
{
	es_config *c = NULL;
	char path[64], err[512];
	int fd = memfd_create("config_fuzz", 0);
	if (fd < 0)
		abort();
	if (len && write(fd, text, len) != (ssize_t)len)
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	char *argv[] = {"config_fuzz", "--config", path, NULL};
	memset(s, 0, sizeof *s);
	if (es_config_new_parts(parts, ES_NELEM(parts), s, &c) != ES_OK)
		abort();
	if (es_config_load(c, 3, argv, NULL, err, sizeof err) != ES_OK) {
		if (err[0] == '\0')
			abort(); /* a failure always says why */
		es_config_free(c);
		c = NULL;
	}
	close(fd);
	if (c && s->fixed != 7)
		abort(); /* a hidden row was set */
	return c;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_list(const es_strlist *a, const es_strlist *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]) != 0)
			return false;
	return true;
}

static bool same(const settings *a, const settings *b)
{
	return same_str(a->name, b->name) && same_str(a->path, b->path) && a->count == b->count &&
	       a->offset == b->offset && a->on == b->on && a->mode == b->mode &&
	       a->size == b->size && a->any_size == b->any_size && a->every == b->every &&
	       a->wait == b->wait && same_list(&a->hosts, &b->hosts) &&
	       same_list(&a->empty, &b->empty);
}

/* True when text has a line too long for the file reader that is a bare
 * "key=value" (no " ;" note on it): a value no layout can read back. A
 * long line with a note means the printer should have moved the note. */
static bool unreadable(const char *text)
{
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		char *line = strndup(p, n);
		if (!line)
			abort();
		bool bare = n > FILE_LINE_MAX && !strstr(line, " ;");
		free(line);
		if (bare)
			return true;
		p += n + (p[n] == '\n');
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	settings first, again;
	es_config *c = load(data, size, &first);
	if (!c)
		return 0;
	char *printed = NULL;
	size_t plen = 0;
	FILE *out = open_memstream(&printed, &plen);
	if (!out)
		abort();
	es_config_print(c, out);
	if (fclose(out) != 0)
		abort();
	es_config *c2 = load(printed, plen, &again);
	if (c2 ? !same(&first, &again) : !unreadable(printed))
		abort();
	es_config_free(c2);
	es_config_free(c);
	free(printed);
	return 0;
}
