/* config.c - the settings table: its validation, the lookups the sources
 * use, a table made of parts (a program's own rows and the shared rows of
 * common/ under their sections), the defaults, and the load that runs the
 * sources (config_source.c) and checks what is required.
 *
 * The es_config keeps, per setting, where its value came from (for
 * --print-config and for telling a repeated key in the file from a value
 * of an earlier source). It owns the strings and lists it stores in the
 * target struct, and the table it made from parts. Not thread-safe: the
 * program's main thread loads it before starting others.
 */
#include "config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Contract in config_internal.h. */
void es_cfg_say(char *buf, size_t cap, const char *fmt, ...)
{
	if (!buf || cap == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
}

/* ---- the table ----------------------------------------------------------- */

/* Contract in config_internal.h. */
void *es_cfg_field(const es_config *c, size_t i)
{
	return c->target + c->table[i].offset;
}

/* Contract in config_internal.h. */
bool es_cfg_bounded(const es_setting *row)
{
	return row->min != 0 || row->max != 0;
}

/* Contract in config_internal.h. */
bool es_cfg_hidden(const es_setting *row)
{
	return (row->flags & ES_CFG_HIDDEN) != 0;
}

/* Lower case letters, digits, '_', '-', and at least one inner '.'. */
static bool name_valid(const char *name)
{
	size_t len = strlen(name);
	const char *dot = strchr(name, '.');
	if (len > ES_CFG_NAME_MAX || !dot || dot == name || name[len - 1] == '.')
		return false;
	for (const char *p = name; *p; p++) {
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    !strchr("._-", *p))
			return false;
	}
	return strstr(name, "..") == NULL;
}

static bool row_valid(const es_setting *row)
{
	if (!row->name || !name_valid(row->name) || (unsigned)row->type > ES_CFG_LIST)
		return false;
	if (row->type == ES_CFG_ENUM && (!row->choices || !row->choices[0]))
		return false;
	if (es_cfg_bounded(row) && row->min > row->max)
		return false;
	/* Sizes and durations have no sign. */
	return row->type == ES_CFG_INT || !es_cfg_bounded(row) || row->min >= 0;
}

/* Row i's name or field is an earlier row's (the field would be freed
 * twice). */
static bool row_again(const es_setting *table, size_t i)
{
	for (size_t j = 0; j < i; j++) {
		if (strcmp(table[i].name, table[j].name) == 0) {
			es_error("config", "setting %s is in the table twice", table[i].name);
			return true;
		}
		if (table[i].offset == table[j].offset) {
			es_error("config", "settings %s and %s store into the same field",
				 table[j].name, table[i].name);
			return true;
		}
	}
	return false;
}

/* Every row valid, and no name or field twice. */
static bool table_valid(const es_setting *table, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!row_valid(&table[i])) {
			es_error("config", "settings table row %zu (%s) is invalid", i,
				 table[i].name ? table[i].name : "no name");
			return false;
		}
		if (row_again(table, i))
			return false;
	}
	return true;
}

/* ---- lookups ------------------------------------------------------------- */

/* Contract in config_internal.h. */
const char *es_cfg_env_name(const char *name, char *buf)
{
	size_t k;
	memcpy(buf, "ES_", 3);
	for (k = 0; name[k]; k++) {
		char ch = name[k] == '.' || name[k] == '-' ? '_' : name[k];
		buf[3 + k] = (char)toupper((unsigned char)ch);
	}
	buf[3 + k] = '\0';
	return buf;
}

/* Contract in config_internal.h. */
bool es_cfg_find_env(const es_config *c, const char *key, size_t len, size_t *out)
{
	char buf[ES_CFG_ENV_MAX];
	for (size_t i = 0; i < c->n; i++) {
		if (es_cfg_hidden(&c->table[i]))
			continue;
		es_cfg_env_name(c->table[i].name, buf);
		if (strlen(buf) == len && memcmp(buf, key, len) == 0) {
			*out = i;
			return true;
		}
	}
	return false;
}

/* Contract in config_internal.h. */
bool es_cfg_find_name(const es_config *c, const char *name, size_t len, size_t *out)
{
	for (size_t i = 0; i < c->n; i++) {
		const es_setting *row = &c->table[i];
		if (!es_cfg_hidden(row) && strncmp(row->name, name, len) == 0 &&
		    row->name[len] == '\0') {
			*out = i;
			return true;
		}
	}
	return false;
}

/* Contract in config_internal.h. */
bool es_cfg_find_key(const es_config *c, const char *section, const char *key, size_t *out)
{
	size_t sl = strlen(section);
	for (size_t i = 0; i < c->n; i++) {
		const char *name = c->table[i].name;
		if (!es_cfg_hidden(&c->table[i]) && strncmp(name, section, sl) == 0 &&
		    name[sl] == '.' && strcmp(name + sl + 1, key) == 0) {
			*out = i;
			return true;
		}
	}
	return false;
}

/* ---- new and free -------------------------------------------------------- */

static const size_t field_size[] = {
	[ES_CFG_STR] = sizeof(char *),	  [ES_CFG_INT] = sizeof(int64_t),
	[ES_CFG_BOOL] = sizeof(bool),	  [ES_CFG_ENUM] = sizeof(int),
	[ES_CFG_SIZE] = sizeof(uint64_t), [ES_CFG_SECONDS] = sizeof(int64_t),
	[ES_CFG_MS] = sizeof(int64_t),	  [ES_CFG_LIST] = sizeof(es_strlist),
};

/* Zeroes every field, then stores every default. */
static es_err apply_defaults(es_config *c)
{
	for (size_t i = 0; i < c->n; i++)
		memset(es_cfg_field(c, i), 0, field_size[c->table[i].type]);
	for (size_t i = 0; i < c->n; i++) {
		const es_setting *row = &c->table[i];
		char why[ES_CFG_WHY_MAX];
		es_cfg_src s = {ES_FROM_DEFAULT, 0};
		if (!row->def)
			continue;
		es_err rc = es_cfg_apply(c, i, row->def, &s, why, sizeof why);
		if (rc != ES_OK) {
			es_error("config", "%s: default '%s': %s", row->name, row->def, why);
			return rc;
		}
	}
	return ES_OK;
}

/* The config of table[0..n); owned (a table made from parts, and its
 * names) passes to it, even on failure. The table is checked before the
 * target is touched: until the defaults are stored, its fields are not
 * ours to free. */
static es_err config_make(const es_setting *table, size_t n, es_setting *owned, char *names,
			  void *target, es_config **out)
{
	es_config *c = NULL;
	es_cfg_origin *from = NULL;
	es_err rc = ES_EINVAL;
	if (!table_valid(table, n))
		goto fail;
	rc = ES_ENOMEM;
	c = calloc(1, sizeof *c);
	from = calloc(n ? n : 1, sizeof *from);
	if (!c || !from)
		goto fail;
	*c = (es_config){.table = table,
			 .n = n,
			 .target = target,
			 .from = from,
			 .owned = owned,
			 .names = names};
	rc = apply_defaults(c);
	if (rc != ES_OK) {
		es_config_free(c);
		return rc;
	}
	*out = c;
	return ES_OK;
fail:
	free(c);
	free(from);
	free(owned);
	free(names);
	return rc;
}

/* Contract in config.h. ES_EINVAL for an invalid table (a bad name, type,
 * range or default, a name or field twice; logged), ES_ENOMEM. The defaults
 * are stored in target here already, so target is usable (and
 * es_config_set works) before es_config_load. */
es_err es_config_new(const es_setting *table, size_t n, void *target, es_config **out)
{
	if (!table || !target || !out)
		return ES_EINVAL;
	return config_make(table, n, NULL, NULL, target, out);
}

/* Contract in config.h. The parts are flattened into one table
 * (config_parts.c); from there on as es_config_new. */
es_err es_config_new_parts(const es_settings_part *parts, size_t nparts, void *target,
			   es_config **out)
{
	es_setting *table;
	char *names;
	size_t n;
	if (!parts || !target || !out)
		return ES_EINVAL;
	es_err rc = es_cfg_flatten(parts, nparts, &table, &n, &names);
	if (rc != ES_OK)
		return rc;
	return config_make(table, n, table, names, target, out);
}

/* Contract in config.h. Strings become NULL and lists empty. */
void es_config_free(es_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		if (c->table[i].type == ES_CFG_STR) {
			char **s = es_cfg_field(c, i);
			free(*s);
			*s = NULL;
		} else if (c->table[i].type == ES_CFG_LIST) {
			es_cfg_list_clear(es_cfg_field(c, i));
		}
		free(c->from[i].lines);
	}
	free(c->from);
	free(c->file);
	free(c->owned);
	free(c->names);
	free(c);
}

/* ---- load ---------------------------------------------------------------- */

static bool is_set(const es_config *c, size_t i)
{
	const void *f = es_cfg_field(c, i);
	if (c->from[i].kind == ES_FROM_UNSET)
		return false;
	if (c->table[i].type == ES_CFG_STR)
		return *(char *const *)f != NULL;
	if (c->table[i].type == ES_CFG_LIST)
		return ((const es_strlist *)f)->n > 0;
	return true;
}

static es_err check_required(const es_config *c, char *err, size_t cap)
{
	char env[ES_CFG_ENV_MAX];
	for (size_t i = 0; i < c->n; i++) {
		const es_setting *row = &c->table[i];
		if (!(row->flags & ES_CFG_REQUIRED) || es_cfg_hidden(row) || is_set(c, i))
			continue;
		es_cfg_say(err, cap, "%s is required (set it in the file, %s or --%s)", row->name,
			   es_cfg_env_name(row->name, env), row->name);
		return ES_EINVAL;
	}
	return ES_OK;
}

/* Contract in config.h. With --help, --version or --print-reference nothing
 * but the command line is read (the file and environment are not needed to
 * show help, and a broken one must not prevent it), and required settings
 * are not checked. */
es_err es_config_load(es_config *c, int argc, char *const *argv, char *const *env, char *err,
		      size_t errcap)
{
	es_cfg_say(err, errcap, "%s", "");
	if (!c || argc < 0 || (argc > 0 && !argv)) {
		es_cfg_say(err, errcap, "es_config_load: invalid argument");
		return ES_EINVAL;
	}
	es_err rc = es_cfg_read_sources(c, argc, argv, env, err, errcap);
	if (rc != ES_OK || c->mode == ES_CFG_HELP || c->mode == ES_CFG_VERSION ||
	    c->mode == ES_CFG_REFERENCE)
		return rc;
	return check_required(c, err, errcap);
}

/* Contract in config.h. */
es_cfg_mode es_config_mode(const es_config *c)
{
	return c ? c->mode : ES_CFG_RUN;
}

/* Contract in config.h. Errors read "--name: why"; an unknown name is
 * "unknown setting 'name'". */
es_err es_config_set(es_config *c, const char *name, const char *value, char *err, size_t errcap)
{
	size_t i;
	if (!c || !name || !value) {
		es_cfg_say(err, errcap, "es_config_set: invalid argument");
		return ES_EINVAL;
	}
	if (!es_cfg_find_name(c, name, strlen(name), &i)) {
		es_cfg_say(err, errcap, "unknown setting '%.80s'", name);
		return ES_EINVAL;
	}
	char why[ES_CFG_WHY_MAX];
	es_cfg_src s = {ES_FROM_FLAG, 0};
	es_err rc = es_cfg_apply(c, i, value, &s, why, sizeof why);
	if (rc != ES_OK)
		es_cfg_say(err, errcap, "--%s: %s", name, why);
	return rc;
}

/* Contract in config.h. */
es_err es_config_read_secret(const char *path, char **out, char *err, size_t errcap)
{
	char line[1024] = "";
	FILE *f = path ? fopen(path, "r") : NULL;
	if (!f) {
		es_cfg_say(err, errcap, "%s: %s", path ? path : "(none)", strerror(errno));
		return ES_ENOTFOUND;
	}
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	char *copy = strdup(line);
	memset(line, 0, sizeof line);
	if (!copy)
		return ES_ENOMEM;
	*out = copy;
	return ES_OK;
}
