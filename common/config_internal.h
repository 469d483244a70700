/* config_internal.h - what the files of the settings loader share; not for
 * programs (they use config.h).
 *
 * The loader is six files, one job each:
 *   config.c         the table: validation, lookups, new/free, defaults, load
 *   config_parts.c   one table made from a program's parts
 *   config_value.c   values as text: parsers and the text that reads back
 *   config_store.c   storing a value into a setting's field, with its origin
 *   config_source.c  the sources: the INI file, the environment, the flags
 *   config_print.c   --print-config, --help and the Markdown reference
 */
#ifndef ES_CONFIG_INTERNAL_H
#define ES_CONFIG_INTERNAL_H

#include "config.h"

#define ES_CFG_NAME_MAX	   100
#define ES_CFG_ENV_MAX	   (ES_CFG_NAME_MAX + 4)
#define ES_CFG_WHY_MAX	   256
#define ES_CFG_NUM_MAX	   32
#define ES_CFG_CHOICES_MAX 256
/* The longest line the file reader takes: inih's INI_MAX_LINE (200 as
 * Debian builds it) less the line ending and NUL; config_source.c checks. */
#define ES_CFG_LINE_MAX 198

typedef enum es_cfg_from {
	ES_FROM_UNSET, /* no default and no source set it */
	ES_FROM_DEFAULT,
	ES_FROM_FILE,
	ES_FROM_ENV,
	ES_FROM_FLAG,
} es_cfg_from;

/* Where a setting's value came from. */
typedef struct es_cfg_origin {
	es_cfg_from kind;
	int line;   /* ES_FROM_FILE: the line of the value (of a list's first one) */
	int *lines; /* ES_FROM_FILE lists: the line of each element */
} es_cfg_origin;

struct es_config {
	const es_setting *table;
	size_t n;
	unsigned char *target;
	es_cfg_origin *from; /* one per row */
	char *file;	     /* the file read, for messages and printing */
	es_cfg_mode mode;
	es_setting *owned; /* the table made from parts (es_config_new_parts) */
	char *names;	   /* its composed names */
};

/* A source of one value, as given to es_cfg_apply(). */
typedef struct es_cfg_src {
	es_cfg_from kind;
	int line; /* ES_FROM_FILE; ES_FROM_FLAG: 1 from es_config_load's flags */
} es_cfg_src;

typedef enum es_cfg_num {
	ES_NUM_OK,
	ES_NUM_BAD, /* not a number of this kind */
	ES_NUM_BIG, /* overflows */
} es_cfg_num;

/* ---- config.c: the table ----------------------------------------------- */

/* printf into buf[0..cap), if there is a buf. */
void es_cfg_say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The field of row i in the target. */
void *es_cfg_field(const es_config *c, size_t i);
/* The row has a range (min or max not 0). */
bool es_cfg_bounded(const es_setting *row);
/* A row no source reads and nothing shows (ES_CFG_HIDDEN). */
bool es_cfg_hidden(const es_setting *row);
/* "ES_" + name upper-cased, '.' and '-' as '_', into buf[ES_CFG_ENV_MAX]. */
const char *es_cfg_env_name(const char *name, char *buf);
/* The row a source names, by environment name, setting name[0..len), or
 * [section] and key; hidden rows are never found. */
bool es_cfg_find_env(const es_config *c, const char *key, size_t len, size_t *out);
bool es_cfg_find_name(const es_config *c, const char *name, size_t len, size_t *out);
bool es_cfg_find_key(const es_config *c, const char *section, const char *key, size_t *out);

/* ---- config_parts.c: a table from parts --------------------------------- */

/* The rows of every part, in order, named and placed (config.h), into a
 * malloc'd *table of *n rows whose names are in the malloc'd *names.
 * ES_EINVAL (logged) for a row without a name or an edit of no row;
 * ES_ENOMEM. */
es_err es_cfg_flatten(const es_settings_part *parts, size_t nparts, es_setting **table, size_t *n,
		      char **names);

/* ---- config_value.c: values as text ------------------------------------- */

/* A decimal integer with an optional sign, nothing around it. */
es_cfg_num es_cfg_int(const char *s, int64_t *out);
/* A size with an optional unit (64KiB). */
es_cfg_num es_cfg_size(const char *s, uint64_t *out);
/* A duration with an optional unit; in ms (ES_CFG_MS) or seconds. */
es_cfg_num es_cfg_duration(const char *s, es_cfg_type t, int64_t *out);
/* A number of a setting of type t (INT, SIZE, SECONDS, MS) as text that
 * parses back to it: "64KiB", "7d", "250ms". */
const char *es_cfg_num_text(es_cfg_type t, int64_t v, char *buf, size_t cap);
const char *es_cfg_size_text(uint64_t v, char *buf, size_t cap);
/* "a, b, c" from a row's choices. */
const char *es_cfg_choices_text(const es_setting *row, char *buf, size_t cap);
/* The choice at index k, or "" if the program stored a bad index. */
const char *es_cfg_enum_text(const es_setting *row, int k);

/* ---- config_store.c: storing values ------------------------------------- */

/* Parses text for row i and stores it, noting where it came from. On
 * ES_EINVAL or ES_ENOMEM, why says what is wrong and the target is
 * unchanged. */
es_err es_cfg_apply(es_config *c, size_t i, const char *text, const es_cfg_src *s, char *why,
		    size_t cap);
/* Frees a list's elements; the list becomes empty. */
void es_cfg_list_clear(es_strlist *l);

/* ---- config_source.c: the sources --------------------------------------- */

/* Steps 2 to 4 of es_config_load (config.h): the command line is parsed
 * first (its special flags set c->mode); with --help, --version or
 * --print-reference nothing else is read. */
es_err es_cfg_read_sources(es_config *c, int argc, char *const *argv, char *const *env, char *err,
			   size_t cap);

#endif
