/* config.h - one table of settings, read from an INI file, the environment
 * and the command line, validated as a whole.
 *
 * A program describes its settings as a table of es_setting rows (name,
 * type, range, default, help) pointing into its own settings struct by
 * offset, the way redis's config table does, or as parts (below) so that
 * settings several programs share are declared once, in common/. The
 * loader's files, one job each, are listed in config_internal.h.
 * es_config_load() then:
 *   1. applies every default;
 *   2. reads the INI file named by --config FILE (or ES_CONFIG) if any:
 *      `[mqtt]` then `url = ...` sets "mqtt.url" (parsed by inih);
 *   3. reads ES_<SECTION>_<KEY> environment variables (ES_MQTT_URL);
 *   4. reads --section.key VALUE and --section.key=VALUE flags;
 * later sources win. Every value is checked against its row (type, range,
 * choices); the first error is reported with where it came from:
 *   "agent.ini:12: mqtt.inflight: 0 is below the minimum 1"
 *   "environment ES_MQTT_INFLIGHT: ..."   "--mqtt.inflight: ..."
 * Unknown keys are errors in the file and on the command line; unknown ES_
 * variables are logged as warnings (another program may own them).
 *
 * Storage by type (the field at `offset` in the target struct):
 *   ES_CFG_STR      char *         (owned by the es_config, NULL if unset)
 *   ES_CFG_INT      int64_t        min..max
 *   ES_CFG_BOOL     bool           true/false/yes/no/on/off/1/0
 *   ES_CFG_ENUM     int            index into choices
 *   ES_CFG_SIZE     uint64_t bytes "65536", "64KiB", "64k", "16MiB", "1GB"
 *   ES_CFG_SECONDS  int64_t        "30", "30s", "15m", "2h", "7d"
 *   ES_CFG_MS       int64_t        "250", "250ms", "2s", "1m"
 *   ES_CFG_LIST     es_strlist     repeated keys in the file append; env
 *                                  and flags take comma-separated lists; a
 *                                  flag repeated on the command line
 *                                  appends; a later source replaces the
 *                                  earlier list
 */
#ifndef ES_CONFIG_H
#define ES_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef enum es_cfg_type {
	ES_CFG_STR,
	ES_CFG_INT,
	ES_CFG_BOOL,
	ES_CFG_ENUM,
	ES_CFG_SIZE,
	ES_CFG_SECONDS,
	ES_CFG_MS,
	ES_CFG_LIST,
} es_cfg_type;

enum {
	ES_CFG_REQUIRED = 1u << 0, /* must be set (non-empty) by some source */
	ES_CFG_PATH = 1u << 1,	   /* a file path; shown as such in help */
	/* Not a setting of this program: the field holds the default, no
	 * source sets it, and help, reference and --print-config leave it out
	 * (a row of a shared part that a program does not offer; see below). */
	ES_CFG_HIDDEN = 1u << 2,
};

typedef struct es_strlist {
	char **v;
	size_t n;
} es_strlist;

typedef struct es_setting {
	const char *name; /* "section.key", lower case */
	es_cfg_type type;
	size_t offset;		    /* offsetof(program_settings, field) */
	const char *def;	    /* default as text; NULL: unset */
	int64_t min, max;	    /* INT, SIZE, SECONDS, MS; both 0: unbounded */
	const char *const *choices; /* ENUM: NULL-terminated */
	unsigned flags;
	const char *help; /* one line */
} es_setting;

/* A program's table can be made of parts (es_config_new_parts): runs of
 * its own rows, and shared parts. A shared part is a settings concern
 * declared once in common/ (the journal, an MQTT link, HTTP, ...) as rows
 * named by key ("path") at offsets into the concern's struct; the program
 * places it under a section (prefix "journal": "journal.path") at the
 * offset of that struct in its own (base), and may edit rows: its own
 * default or help, or a row hidden (ES_CFG_HIDDEN) that it does not offer.
 * The table's order, and so --help and the reference, is the parts' order,
 * each in its rows' order. */
typedef struct es_setting_edit {
	const char *key;  /* a row of the part, by key: "path" */
	const char *def;  /* the program's default; NULL: the part's */
	const char *help; /* the program's help line; NULL: the part's */
	bool hide;	  /* not a setting of this program */
} es_setting_edit;

typedef struct es_settings_part {
	const char *prefix; /* the section; NULL: the rows are named in full */
	size_t base;	    /* added to every row's offset */
	const es_setting *rows;
	size_t n;
	const es_setting_edit *edits; /* may be NULL */
	size_t nedits;
} es_settings_part;

#define ES_NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* A run of the program's own rows (full names, offsets in its struct). */
#define ES_OWN_ROWS(rows)                                                                          \
	{                                                                                          \
		NULL, 0, (rows), ES_NELEM(rows), NULL, 0                                           \
	}
/* The shared rows under section prefix, at offset base, as declared. */
#define ES_SHARED(prefix, base, rows)                                                              \
	{                                                                                          \
		(prefix), (base), (rows), ES_NELEM(rows), NULL, 0                                  \
	}
/* The same with the program's edits (an array of es_setting_edit). */
#define ES_SHARED_EDITED(prefix, base, rows, edits)                                                \
	{                                                                                          \
		(prefix), (base), (rows), ES_NELEM(rows), (edits), ES_NELEM(edits)                 \
	}

typedef enum es_cfg_mode {
	ES_CFG_RUN,	  /* no special flag: run the program */
	ES_CFG_HELP,	  /* --help / -h */
	ES_CFG_VERSION,	  /* --version */
	ES_CFG_PRINT,	  /* --print-config */
	ES_CFG_REFERENCE, /* --print-reference: the settings as Markdown */
} es_cfg_mode;

typedef struct es_config es_config;

/* Makes a config for table[0..n) writing into target. The table and target
 * must outlive the config. */
es_err es_config_new(const es_setting *table, size_t n, void *target, es_config **out);

/* Makes a config for the table the parts make (above), writing into
 * target, which must outlive it; so must the strings of the parts' rows and
 * edits (the rows are copied, the composed names are the config's own).
 * Errors as es_config_new's, and ES_EINVAL (logged) for an edit of a key
 * the part does not have. */
es_err es_config_new_parts(const es_settings_part *parts, size_t nparts, void *target,
			   es_config **out);

/* Frees the config and every string and list it stored in the target. */
void es_config_free(es_config *c);

/* Runs the four steps above. argv[0] is skipped; env is a NULL-terminated
 * "NAME=value" array (environ), or NULL for none. On failure returns
 * ES_EINVAL (or ES_ENOMEM, ES_ENOTFOUND for a missing --config file) and
 * writes the message into err[0..errcap). Call once. */
es_err es_config_load(es_config *c, int argc, char *const *argv, char *const *env, char *err,
		      size_t errcap);

/* Which special flag the command line held. */
es_cfg_mode es_config_mode(const es_config *c);

/* Sets one value by name as if from the command line (for programs and
 * tests); same checks and errors as es_config_load. */
es_err es_config_set(es_config *c, const char *name, const char *value, char *err, size_t errcap);

/* Writes the effective configuration as an INI file, each value followed by
 * a comment saying where it came from (default, file:line, environment,
 * command line). */
void es_config_print(const es_config *c, FILE *out);

/* Writes a usage text listing every setting: its flag, environment name,
 * type or choices, default and help. */
void es_config_help(const es_config *c, FILE *out, const char *usage);

/* Writes every setting as a Markdown table (setting, environment variable,
 * type and range, default, meaning): the reference in docs/. */
void es_config_reference(const es_config *c, FILE *out);

/* Reads a secret (a password) from the first line of the file at path,
 * without its line ending, into a malloc'd *out. ES_ENOTFOUND (err says
 * why) or ES_ENOMEM. */
es_err es_config_read_secret(const char *path, char **out, char *err, size_t errcap);

/* Parsers shared with programs (for their own flags). Return false for
 * invalid text. */
bool es_cfg_parse_size(const char *s, uint64_t *out);
bool es_cfg_parse_seconds(const char *s, int64_t *out);
bool es_cfg_parse_ms(const char *s, int64_t *out);
bool es_cfg_parse_bool(const char *s, bool *out);

#endif
