/* config.c - the settings table: defaults, an INI file (parsed by inih), the
 * environment and the command line, in that order, later sources winning.
 *
 * The es_config keeps, per setting, where its value came from (for
 * --print-config and for telling a repeated key in the file from a value
 * of an earlier source). It owns the strings and lists it stores in the
 * target struct. Not thread-safe: the program's main thread loads it before
 * starting others.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "log.h"

#define SETTING_NAME_MAX 100
#define ENV_NAME_MAX	 (SETTING_NAME_MAX + 4)
#define WHY_MAX		 256
#define NUM_TEXT_MAX	 32
#define CHOICES_MAX	 256
/* The longest line inih reads into its buffer (without the line ending). */
#define FILE_LINE_MAX (INI_MAX_LINE - 2)

typedef enum from_kind {
	FROM_UNSET, /* no default and no source set it */
	FROM_DEFAULT,
	FROM_FILE,
	FROM_ENV,
	FROM_FLAG,
} from_kind;

/* Where a setting's value came from. */
typedef struct origin {
	from_kind kind;
	int line;   /* FROM_FILE: the line of the value (of a list's first one) */
	int *lines; /* FROM_FILE lists: the line of each element */
} origin;

struct es_config {
	const es_setting *table;
	size_t n;
	unsigned char *target;
	origin *from; /* one per row */
	char *file;   /* the file read, for messages and printing */
	es_cfg_mode mode;
};

/* A source of one value, as given to apply(). */
typedef struct src {
	from_kind kind;
	int line; /* FROM_FILE */
} src;

typedef enum num_rc {
	NUM_OK,
	NUM_BAD, /* not a number of this kind */
	NUM_BIG, /* overflows */
} num_rc;

typedef struct unit {
	const char *name;
	uint64_t mult;
} unit;

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static const unit size_units[] = {
	{"", 1},      {"B", 1},		  {"k", KIB},	{"K", KIB},	     {"KB", 1000},
	{"kB", 1000}, {"KiB", KIB},	  {"M", MIB},	{"MB", 1000 * 1000}, {"MiB", MIB},
	{"G", GIB},   {"GB", 1000000000}, {"GiB", GIB}, {NULL, 0},
};
static const unit second_units[] = {
	{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {NULL, 0},
};
static const unit ms_units[] = {
	{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {NULL, 0},
};

/* Units for printing, largest first; the last one always divides. */
static const unit size_show[] = {{"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB}, {"", 1}};
static const unit second_show[] = {{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}};
static const unit ms_show[] = {{"m", 60000}, {"s", 1000}, {"ms", 1}};

static void say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* printf into buf[0..cap), if there is a buf. */
static void say(char *buf, size_t cap, const char *fmt, ...)
{
	if (!buf || cap == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, cap, fmt, ap);
	va_end(ap);
}

/* ---- number and word parsers ---------------------------------------- */

/* Reads one or more decimal digits at *s into *out and steps *s past them. */
static num_rc digits(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	if (!isdigit((unsigned char)*p))
		return NUM_BAD;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return NUM_BIG;
		v = v * 10 + d;
	}
	*s = p;
	*out = v;
	return NUM_OK;
}

/* A decimal integer with an optional sign, nothing around it. */
static num_rc parse_i64(const char *s, int64_t *out)
{
	bool neg = *s == '-';
	if (*s == '-' || *s == '+')
		s++;
	uint64_t mag;
	num_rc rc = digits(&s, &mag);
	if (rc != NUM_OK)
		return rc;
	if (*s != '\0')
		return NUM_BAD;
	if (mag > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
		return NUM_BIG;
	/* -(INT64_MAX + 1) cannot be negated in int64_t; go through it. */
	*out = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
	return NUM_OK;
}

/* Digits, optional spaces, then one of units' suffixes; at most limit. */
static num_rc parse_scaled(const char *s, const unit *units, uint64_t limit, uint64_t *out)
{
	uint64_t v;
	num_rc rc = digits(&s, &v);
	if (rc != NUM_OK)
		return rc;
	const char *digits_end = s;
	while (*s == ' ')
		s++;
	if (s != digits_end && *s == '\0')
		return NUM_BAD; /* "64 KiB" reads well, "64 " is a typo */
	for (const unit *u = units; u->name; u++) {
		if (strcmp(s, u->name) != 0)
			continue;
		if (v > limit / u->mult)
			return NUM_BIG;
		*out = v * u->mult;
		return NUM_OK;
	}
	return NUM_BAD;
}

/* Contract in config.h. */
bool es_cfg_parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	if (!s || !out || parse_scaled(s, size_units, UINT64_MAX, &v) != NUM_OK)
		return false;
	*out = v;
	return true;
}

/* Parses into an int64_t through the units given. */
static num_rc parse_duration(const char *s, const unit *units, int64_t *out)
{
	uint64_t v;
	num_rc rc = parse_scaled(s, units, (uint64_t)INT64_MAX, &v);
	if (rc == NUM_OK)
		*out = (int64_t)v;
	return rc;
}

/* Contract in config.h. */
bool es_cfg_parse_seconds(const char *s, int64_t *out)
{
	int64_t v;
	if (!s || !out || parse_duration(s, second_units, &v) != NUM_OK)
		return false;
	*out = v;
	return true;
}

/* Contract in config.h. */
bool es_cfg_parse_ms(const char *s, int64_t *out)
{
	int64_t v;
	if (!s || !out || parse_duration(s, ms_units, &v) != NUM_OK)
		return false;
	*out = v;
	return true;
}

/* Contract in config.h. Case does not matter. */
bool es_cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	if (!s || !out)
		return false;
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return true;
		}
	}
	return false;
}

/* ---- formatting ------------------------------------------------------ */

/* v with the largest unit of show (largest first) that divides it. */
static const char *scaled_text(uint64_t v, const unit *show, char *buf, size_t cap)
{
	const unit *u = show;
	while (v != 0 && v % u->mult != 0)
		u++;
	if (v == 0) /* the smallest unit reads best: "0s", "0ms" */
		while (u->mult != 1)
			u++;
	snprintf(buf, cap, "%" PRIu64 "%s", v / u->mult, u->name);
	return buf;
}

/* A number of a setting of type t (INT, SIZE, SECONDS, MS) as text that
 * parses back to it. */
static const char *num_text(es_cfg_type t, int64_t v, char *buf, size_t cap)
{
	if (t == ES_CFG_INT || v < 0) {
		snprintf(buf, cap, "%" PRId64, v);
		return buf;
	}
	const unit *show = t == ES_CFG_SIZE	 ? size_show
			   : t == ES_CFG_SECONDS ? second_show
						 : ms_show;
	return scaled_text((uint64_t)v, show, buf, cap);
}

/* "a, b, c" from a row's choices. */
static const char *choices_text(const es_setting *row, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (const char *const *ch = row->choices; *ch && used < cap; ch++) {
		int n = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", *ch);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return buf;
}

/* ---- the table ------------------------------------------------------- */

static void *field(const es_config *c, size_t i)
{
	return c->target + c->table[i].offset;
}

static bool bounded(const es_setting *row)
{
	return row->min != 0 || row->max != 0;
}

/* Lower case letters, digits, '_', '-', and at least one inner '.'. */
static bool name_valid(const char *name)
{
	size_t len = strlen(name);
	const char *dot = strchr(name, '.');
	if (len > SETTING_NAME_MAX || !dot || dot == name || name[len - 1] == '.')
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
	if (bounded(row) && row->min > row->max)
		return false;
	/* Sizes and durations have no sign. */
	return row->type == ES_CFG_INT || !bounded(row) || row->min >= 0;
}

/* Every row valid and no name twice. */
static bool table_valid(const es_setting *table, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!row_valid(&table[i])) {
			es_error("config", "settings table row %zu (%s) is invalid", i,
				 table[i].name ? table[i].name : "no name");
			return false;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(table[i].name, table[j].name) == 0) {
				es_error("config", "setting %s is in the table twice",
					 table[i].name);
				return false;
			}
		}
	}
	return true;
}

/* "ES_" + name upper-cased, '.' and '-' as '_', into buf[ENV_NAME_MAX]. */
static const char *env_name(const char *name, char *buf)
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

static bool find_env(const es_config *c, const char *key, size_t len, size_t *out)
{
	char buf[ENV_NAME_MAX];
	for (size_t i = 0; i < c->n; i++) {
		env_name(c->table[i].name, buf);
		if (strlen(buf) == len && memcmp(buf, key, len) == 0) {
			*out = i;
			return true;
		}
	}
	return false;
}

/* The row named name[0..len). */
static bool find_name(const es_config *c, const char *name, size_t len, size_t *out)
{
	for (size_t i = 0; i < c->n; i++) {
		if (strncmp(c->table[i].name, name, len) == 0 && c->table[i].name[len] == '\0') {
			*out = i;
			return true;
		}
	}
	return false;
}

/* The row of key in section, as the file names it. */
static bool find_key(const es_config *c, const char *section, const char *key, size_t *out)
{
	size_t sl = strlen(section);
	for (size_t i = 0; i < c->n; i++) {
		const char *name = c->table[i].name;
		if (strncmp(name, section, sl) == 0 && name[sl] == '.' &&
		    strcmp(name + sl + 1, key) == 0) {
			*out = i;
			return true;
		}
	}
	return false;
}

/* ---- storing values -------------------------------------------------- */

static void list_clear(es_strlist *l)
{
	for (size_t k = 0; k < l->n; k++)
		free(l->v[k]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Appends a copy of s[0..len) to l, and line to *lines when lines is not
 * NULL (then *lines has l->n entries). On failure l is unchanged. */
static es_err list_push(es_strlist *l, int **lines, const char *s, size_t len, int line)
{
	char *copy = strndup(s, len);
	if (!copy)
		return ES_ENOMEM;
	char **v = realloc(l->v, (l->n + 1) * sizeof *v);
	if (!v)
		goto fail;
	l->v = v;
	if (lines) {
		int *ln = realloc(*lines, (l->n + 1) * sizeof *ln);
		if (!ln)
			goto fail;
		*lines = ln;
		ln[l->n] = line;
	}
	l->v[l->n++] = copy;
	return ES_OK;
fail:
	free(copy);
	return ES_ENOMEM;
}

/* A comma-separated list; elements are trimmed, empty ones dropped. */
static es_err split_list(const char *text, es_strlist *out)
{
	es_strlist l = {0};
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, ",");
		const char *a = p, *b = p + n;
		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (b > a && list_push(&l, NULL, a, (size_t)(b - a), 0) != ES_OK) {
			list_clear(&l);
			return ES_ENOMEM;
		}
		p += n + (p[n] == ',');
	}
	*out = l;
	return ES_OK;
}

/* Appends the comma-separated elements of text to l. */
static es_err list_append(es_strlist *l, const char *text)
{
	es_strlist more = {0};
	es_err rc = split_list(text, &more);
	for (size_t k = 0; rc == ES_OK && k < more.n; k++)
		rc = list_push(l, NULL, more.v[k], strlen(more.v[k]), 0);
	list_clear(&more);
	return rc;
}

/* A key in the file appends to the list the file began, and so does a flag
 * repeated on the command line (s->line 1: es_config_load's flags, not
 * es_config_set); anything else replaces the list. */
static es_err set_list(es_config *c, size_t i, const char *text, const src *s)
{
	es_strlist *l = field(c, i);
	origin *o = &c->from[i];
	if (s->kind == FROM_FILE && o->kind == FROM_FILE)
		return text[0] ? list_push(l, &o->lines, text, strlen(text), s->line) : ES_OK;
	if (s->kind == FROM_FLAG && s->line == 1 && o->kind == FROM_FLAG)
		return list_append(l, text);
	es_strlist fresh = {0};
	int *lines = NULL;
	es_err rc = ES_OK;
	if (s->kind != FROM_FILE)
		rc = split_list(text, &fresh);
	else if (text[0])
		rc = list_push(&fresh, &lines, text, strlen(text), s->line);
	if (rc != ES_OK)
		return rc;
	list_clear(l);
	free(o->lines);
	*l = fresh;
	o->lines = lines;
	return ES_OK;
}

/* An empty string unsets: "ES_MQTT_USERNAME=" removes a default. */
static es_err set_str(es_config *c, size_t i, const char *text)
{
	char **f = field(c, i);
	char *copy = NULL;
	if (text[0] && !(copy = strdup(text)))
		return ES_ENOMEM;
	free(*f);
	*f = copy;
	return ES_OK;
}

static es_err bad_number(num_rc rc, const char *text, const char *what, char *why, size_t cap)
{
	if (rc == NUM_BIG)
		say(why, cap, "'%.80s' is too large", text);
	else
		say(why, cap, "'%.80s' is not %s", text, what);
	return ES_EINVAL;
}

/* Checks v against the row's range (when it has one). */
static es_err check_range(const es_setting *row, int64_t v, char *why, size_t cap)
{
	char a[NUM_TEXT_MAX], b[NUM_TEXT_MAX];
	if (!bounded(row))
		return ES_OK;
	if (v < row->min) {
		say(why, cap, "%s is below the minimum %s", num_text(row->type, v, a, sizeof a),
		    num_text(row->type, row->min, b, sizeof b));
		return ES_EINVAL;
	}
	if (v > row->max) {
		say(why, cap, "%s is above the maximum %s", num_text(row->type, v, a, sizeof a),
		    num_text(row->type, row->max, b, sizeof b));
		return ES_EINVAL;
	}
	return ES_OK;
}

static es_err set_int(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	int64_t v;
	num_rc rc = parse_i64(text, &v);
	if (rc != NUM_OK)
		return bad_number(rc, text, "an integer", why, cap);
	if (check_range(&c->table[i], v, why, cap) != ES_OK)
		return ES_EINVAL;
	*(int64_t *)field(c, i) = v;
	return ES_OK;
}

static es_err set_size(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	uint64_t v;
	const es_setting *row = &c->table[i];
	num_rc rc = parse_scaled(text, size_units, UINT64_MAX, &v);
	if (rc != NUM_OK)
		return bad_number(rc, text, "a size (e.g. 65536, 64KiB, 16MiB, 1GB)", why, cap);
	/* Above INT64_MAX only the maximum can object; the row has no sign. */
	if (v > (uint64_t)INT64_MAX && bounded(row)) {
		char b[NUM_TEXT_MAX];
		say(why, cap, "'%.80s' is above the maximum %s", text,
		    num_text(row->type, row->max, b, sizeof b));
		return ES_EINVAL;
	}
	if (v <= (uint64_t)INT64_MAX && check_range(row, (int64_t)v, why, cap) != ES_OK)
		return ES_EINVAL;
	*(uint64_t *)field(c, i) = v;
	return ES_OK;
}

/* SECONDS and MS: a duration through units. */
static es_err set_duration(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	bool ms = c->table[i].type == ES_CFG_MS;
	int64_t v;
	num_rc rc = parse_duration(text, ms ? ms_units : second_units, &v);
	if (rc != NUM_OK)
		return bad_number(rc, text,
				  ms ? "a duration in ms (e.g. 250, 250ms, 2s, 1m)"
				     : "a duration in seconds (e.g. 30, 30s, 15m, 2h, 7d)",
				  why, cap);
	if (check_range(&c->table[i], v, why, cap) != ES_OK)
		return ES_EINVAL;
	*(int64_t *)field(c, i) = v;
	return ES_OK;
}

static es_err set_bool(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	bool v;
	if (!es_cfg_parse_bool(text, &v)) {
		say(why, cap, "'%.80s' is not a boolean (true/false, yes/no, on/off, 1/0)", text);
		return ES_EINVAL;
	}
	*(bool *)field(c, i) = v;
	return ES_OK;
}

static es_err set_enum(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	const es_setting *row = &c->table[i];
	for (int k = 0; row->choices[k]; k++) {
		if (strcasecmp(text, row->choices[k]) == 0) {
			*(int *)field(c, i) = k;
			return ES_OK;
		}
	}
	char list[CHOICES_MAX];
	say(why, cap, "'%.80s' is not one of: %s", text, choices_text(row, list, sizeof list));
	return ES_EINVAL;
}

/* Parses text for row i and stores it, noting where it came from. On
 * ES_EINVAL or ES_ENOMEM, why says what is wrong and the target is
 * unchanged. */
static es_err apply(es_config *c, size_t i, const char *text, const src *s, char *why, size_t cap)
{
	es_err rc = ES_EINVAL;
	switch (c->table[i].type) {
	case ES_CFG_STR:
		rc = set_str(c, i, text);
		break;
	case ES_CFG_INT:
		rc = set_int(c, i, text, why, cap);
		break;
	case ES_CFG_BOOL:
		rc = set_bool(c, i, text, why, cap);
		break;
	case ES_CFG_ENUM:
		rc = set_enum(c, i, text, why, cap);
		break;
	case ES_CFG_SIZE:
		rc = set_size(c, i, text, why, cap);
		break;
	case ES_CFG_SECONDS:
	case ES_CFG_MS:
		rc = set_duration(c, i, text, why, cap);
		break;
	case ES_CFG_LIST:
		rc = set_list(c, i, text, s);
		break;
	}
	if (rc == ES_ENOMEM)
		say(why, cap, "out of memory");
	if (rc == ES_OK && !(s->kind == FROM_FILE && c->from[i].kind == FROM_FILE))
		c->from[i] = (origin){s->kind, s->line, c->from[i].lines};
	return rc;
}

/* ---- new and free ---------------------------------------------------- */

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
		memset(field(c, i), 0, field_size[c->table[i].type]);
	for (size_t i = 0; i < c->n; i++) {
		const es_setting *row = &c->table[i];
		char why[WHY_MAX];
		src s = {FROM_DEFAULT, 0};
		if (!row->def)
			continue;
		es_err rc = apply(c, i, row->def, &s, why, sizeof why);
		if (rc != ES_OK) {
			es_error("config", "%s: default '%s': %s", row->name, row->def, why);
			return rc;
		}
	}
	return ES_OK;
}

/* Contract in config.h. ES_EINVAL for an invalid table (a bad name, type,
 * range or default; logged), ES_ENOMEM. The defaults are stored in target
 * here already, so target is usable (and es_config_set works) before
 * es_config_load. */
es_err es_config_new(const es_setting *table, size_t n, void *target, es_config **out)
{
	if (!table || !target || !out || !table_valid(table, n))
		return ES_EINVAL;
	es_config *c = calloc(1, sizeof *c);
	if (!c)
		return ES_ENOMEM;
	c->from = calloc(n ? n : 1, sizeof *c->from);
	if (!c->from) {
		free(c);
		return ES_ENOMEM;
	}
	c->table = table;
	c->n = n;
	c->target = target;
	es_err rc = apply_defaults(c);
	if (rc != ES_OK) {
		es_config_free(c);
		return rc;
	}
	*out = c;
	return ES_OK;
}

/* Contract in config.h. Strings become NULL and lists empty. */
void es_config_free(es_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		if (c->table[i].type == ES_CFG_STR) {
			char **s = field(c, i);
			free(*s);
			*s = NULL;
		} else if (c->table[i].type == ES_CFG_LIST) {
			list_clear(field(c, i));
		}
		free(c->from[i].lines);
	}
	free(c->from);
	free(c->file);
	free(c);
}

/* ---- the command line ------------------------------------------------ */

typedef struct flag_val {
	size_t i;
	const char *value;
} flag_val;

/* The command line, parsed before any source is applied. */
typedef struct cmdline {
	flag_val *v; /* argc entries */
	size_t n;
	const char *config; /* --config FILE */
	es_cfg_mode mode;
} cmdline;

/* Sets the mode for a special flag; --help beats --version beats
 * --print-config, whatever their order. */
static bool mode_flag(const char *a, cmdline *cl)
{
	static const struct {
		const char *flag;
		es_cfg_mode mode;
	} flags[] = {
		{"--help", ES_CFG_HELP},
		{"-h", ES_CFG_HELP},
		{"--version", ES_CFG_VERSION},
		{"--print-config", ES_CFG_PRINT},
		{"--print-reference", ES_CFG_REFERENCE},
	};
	static const int rank[] = {[ES_CFG_RUN] = 0,
				   [ES_CFG_PRINT] = 1,
				   [ES_CFG_REFERENCE] = 2,
				   [ES_CFG_VERSION] = 3,
				   [ES_CFG_HELP] = 4};
	for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
		if (strcmp(a, flags[k].flag) != 0)
			continue;
		if (rank[flags[k].mode] > rank[cl->mode])
			cl->mode = flags[k].mode;
		return true;
	}
	return false;
}

static es_err config_flag(int argc, char *const *argv, int *k, cmdline *cl, char *err, size_t cap)
{
	const char *a = argv[*k];
	if (a[8] == '=') {
		cl->config = a + 9;
		return ES_OK;
	}
	if (*k + 1 >= argc) {
		say(err, cap, "--config: needs a file name");
		return ES_EINVAL;
	}
	cl->config = argv[++*k];
	return ES_OK;
}

/* The value of a flag given without "=": the next argument, which a BOOL
 * takes only if it reads as one (a bare BOOL flag means true). NULL if
 * there is none. */
static const char *next_value(const es_setting *row, int argc, char *const *argv, int *k)
{
	bool b;
	const char *next = *k + 1 < argc ? argv[*k + 1] : NULL;
	if (row->type == ES_CFG_BOOL && (!next || !es_cfg_parse_bool(next, &b)))
		return "true";
	if (next)
		++*k;
	return next;
}

static es_err setting_flag(const es_config *c, int argc, char *const *argv, int *k, cmdline *cl,
			   char *err, size_t cap)
{
	const char *name = argv[*k] + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name), i;
	if (!find_name(c, name, len, &i)) {
		say(err, cap, "unknown option '--%.*s'", (int)(len > 80 ? 80 : len), name);
		return ES_EINVAL;
	}
	const char *value = eq ? eq + 1 : next_value(&c->table[i], argc, argv, k);
	if (!value) {
		say(err, cap, "--%s: needs a value", c->table[i].name);
		return ES_EINVAL;
	}
	cl->v[cl->n++] = (flag_val){i, value};
	return ES_OK;
}

/* One argument (and its value, stepping *k past it). */
static es_err one_arg(const es_config *c, int argc, char *const *argv, int *k, cmdline *cl,
		      char *err, size_t cap)
{
	const char *a = argv[*k];
	if (mode_flag(a, cl))
		return ES_OK;
	if (strncmp(a, "--config", 8) == 0 && (a[8] == '\0' || a[8] == '='))
		return config_flag(argc, argv, k, cl, err, cap);
	if (a[0] != '-') {
		say(err, cap, "unexpected argument '%.80s'", a);
		return ES_EINVAL;
	}
	if (a[1] != '-' || a[2] == '\0') {
		say(err, cap, "unknown option '%.80s'", a);
		return ES_EINVAL;
	}
	return setting_flag(c, argc, argv, k, cl, err, cap);
}

static es_err parse_cmdline(const es_config *c, int argc, char *const *argv, cmdline *cl, char *err,
			    size_t cap)
{
	if (argc <= 1)
		return ES_OK;
	cl->v = calloc((size_t)argc, sizeof *cl->v);
	if (!cl->v) {
		say(err, cap, "out of memory");
		return ES_ENOMEM;
	}
	for (int k = 1; k < argc; k++) {
		if (!argv[k]) {
			say(err, cap, "argument %d is NULL", k);
			return ES_EINVAL;
		}
		es_err rc = one_arg(c, argc, argv, &k, cl, err, cap);
		if (rc != ES_OK)
			return rc;
	}
	return ES_OK;
}

static es_err apply_flags(es_config *c, const cmdline *cl, char *err, size_t cap)
{
	for (size_t k = 0; k < cl->n; k++) {
		char why[WHY_MAX];
		src s = {FROM_FLAG, 1}; /* 1: a list flag repeated here appends */
		es_err rc = apply(c, cl->v[k].i, cl->v[k].value, &s, why, sizeof why);
		if (rc != ES_OK) {
			say(err, cap, "--%s: %s", c->table[cl->v[k].i].name, why);
			return rc;
		}
	}
	return ES_OK;
}

/* ---- the file -------------------------------------------------------- */

/* State of one ini_parse_stream() run. inih (as built by Debian) hands the
 * handler no line number, so the reader counts lines: it returns exactly
 * one line per call, and the handler runs on the line read last. */
typedef struct file_ctx {
	es_config *c;
	const char *path;
	FILE *fp;
	char *buf; /* getline's */
	size_t bufcap;
	int line;     /* lines read so far */
	int bad_line; /* the line of the first error found here; 0: none */
	es_err rc;    /* that error */
	es_err read_rc;
	char *err;
	size_t errcap;
} file_ctx;

static int file_fail(file_ctx *f, es_err rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the first error found on the current line. Returns 0 for inih. */
static int file_fail(file_ctx *f, es_err rc, const char *fmt, ...)
{
	if (f->bad_line)
		return 0;
	char why[WHY_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	say(f->err, f->errcap, "%s:%d: %s", f->path, f->line, why);
	f->bad_line = f->line;
	f->rc = rc;
	return 0;
}

/* An ini_reader (fgets-like). A line too long for inih's buffer is an error
 * of its own, and inih sees an empty line instead. */
static char *read_line(char *str, int num, void *stream)
{
	file_ctx *f = stream;
	errno = 0;
	ssize_t n = getline(&f->buf, &f->bufcap, f->fp);
	if (n < 0) {
		if (!feof(f->fp))
			f->read_rc = errno == ENOMEM ? ES_ENOMEM : ES_EIO;
		return NULL;
	}
	f->line++;
	if (n + 1 > num) {
		file_fail(f, ES_EINVAL, "line longer than %d bytes", num - 2);
		memcpy(str, "\n", 2);
		return str;
	}
	memcpy(str, f->buf, (size_t)n + 1);
	return str;
}

/* value without a trailing "  ; comment". inih cuts one off a "key = value"
 * line but not off an indented line that continues the value before it;
 * cutting here too reads both alike (and a value --print-config writes
 * reads back). The result is value or buf[0..cap). */
static const char *cut_comment(const char *value, char *buf, size_t cap)
{
	size_t i = 0;
	while (value[i] && !(i > 0 && value[i] == ';' && isspace((unsigned char)value[i - 1])))
		i++;
	if (!value[i])
		return value;
	while (i > 0 && isspace((unsigned char)value[i - 1]))
		i--;
	snprintf(buf, cap, "%.*s", (int)i, value);
	return buf;
}

/* inih's handler: one "key = value" of section. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
	file_ctx *f = user;
	es_config *c = f->c;
	size_t i;
	if (f->bad_line)
		return 1; /* only the first error counts; stop applying */
	if (section[0] == '\0')
		return file_fail(f, ES_EINVAL, "%s: key outside a section", name);
	if (!find_key(c, section, name, &i))
		return file_fail(f, ES_EINVAL, "%s.%s: unknown setting", section, name);
	if (c->table[i].type != ES_CFG_LIST && c->from[i].kind == FROM_FILE)
		return file_fail(f, ES_EINVAL,
				 "%s: set again (first on line %d; an indented line continues "
				 "the value before it)",
				 c->table[i].name, c->from[i].line);
	char why[WHY_MAX], cut[INI_MAX_LINE];
	src s = {FROM_FILE, f->line};
	es_err rc = apply(c, i, cut_comment(value, cut, sizeof cut), &s, why, sizeof why);
	if (rc != ES_OK)
		return file_fail(f, rc, "%s: %s", c->table[i].name, why);
	return 1;
}

/* Picks the first error of the file: a syntax error inih found (it returns
 * the first line with any error) or one of ours. */
static es_err file_result(const file_ctx *f, int first)
{
	if (f->read_rc != ES_OK) {
		say(f->err, f->errcap, "%s: %s", f->path,
		    f->read_rc == ES_ENOMEM ? "out of memory" : "read failed");
		return f->read_rc;
	}
	if (first < 0) {
		say(f->err, f->errcap, "%s: out of memory", f->path);
		return ES_ENOMEM;
	}
	if (first > 0 && (f->bad_line == 0 || first < f->bad_line)) {
		say(f->err, f->errcap, "%s:%d: expected '[section]' or 'key = value'", f->path,
		    first);
		return ES_EINVAL;
	}
	return f->bad_line ? f->rc : ES_OK;
}

static es_err load_file(es_config *c, const char *path, char *err, size_t cap)
{
	if (!path || !path[0])
		return ES_OK;
	free(c->file);
	c->file = strdup(path);
	if (!c->file) {
		say(err, cap, "out of memory");
		return ES_ENOMEM;
	}
	FILE *fp = fopen(path, "r");
	if (!fp) {
		int e = errno;
		say(err, cap, "config file %s: %s", path, strerror(e));
		return e == ENOENT ? ES_ENOTFOUND : ES_EIO;
	}
	file_ctx f = {.c = c, .path = c->file, .fp = fp, .err = err, .errcap = cap};
	int first = ini_parse_stream(read_line, &f, on_key, &f);
	free(f.buf);
	fclose(fp);
	return file_result(&f, first);
}

/* ---- the environment ------------------------------------------------- */

/* The value of env's NAME, or NULL. */
static const char *env_get(char *const *env, const char *name)
{
	size_t len = strlen(name);
	for (; env && *env; env++) {
		if (strncmp(*env, name, len) == 0 && (*env)[len] == '=')
			return *env + len + 1;
	}
	return NULL;
}

/* One "ES_..." entry; unknown names are another program's, or a typo. */
static es_err env_one(es_config *c, const char *e, char *err, size_t cap)
{
	const char *eq = strchr(e, '=');
	size_t len = eq ? (size_t)(eq - e) : 0, i;
	if (!eq || (len == 9 && memcmp(e, "ES_CONFIG", 9) == 0))
		return ES_OK;
	if (!find_env(c, e, len, &i)) {
		es_warn("config", "ignoring unknown environment variable %.*s", (int)len, e);
		return ES_OK;
	}
	char why[WHY_MAX];
	src s = {FROM_ENV, 0};
	es_err rc = apply(c, i, eq + 1, &s, why, sizeof why);
	if (rc != ES_OK)
		say(err, cap, "environment %.*s: %s", (int)len, e, why);
	return rc;
}

static es_err load_env(es_config *c, char *const *env, char *err, size_t cap)
{
	for (; env && *env; env++) {
		if (strncmp(*env, "ES_", 3) != 0)
			continue;
		es_err rc = env_one(c, *env, err, cap);
		if (rc != ES_OK)
			return rc;
	}
	return ES_OK;
}

/* ---- load ------------------------------------------------------------ */

static bool is_set(const es_config *c, size_t i)
{
	const void *f = field(c, i);
	if (c->from[i].kind == FROM_UNSET)
		return false;
	if (c->table[i].type == ES_CFG_STR)
		return *(char *const *)f != NULL;
	if (c->table[i].type == ES_CFG_LIST)
		return ((const es_strlist *)f)->n > 0;
	return true;
}

static es_err check_required(const es_config *c, char *err, size_t cap)
{
	char env[ENV_NAME_MAX];
	for (size_t i = 0; i < c->n; i++) {
		const char *name = c->table[i].name;
		if (!(c->table[i].flags & ES_CFG_REQUIRED) || is_set(c, i))
			continue;
		say(err, cap, "%s is required (set it in the file, %s or --%s)", name,
		    env_name(name, env), name);
		return ES_EINVAL;
	}
	return ES_OK;
}

/* Contract in config.h. With --help or --version nothing but the command
 * line is read (the file and environment are not needed to show help, and a
 * broken one must not prevent it), and required settings are not checked. */
es_err es_config_load(es_config *c, int argc, char *const *argv, char *const *env, char *err,
		      size_t errcap)
{
	say(err, errcap, "%s", "");
	if (!c || argc < 0 || (argc > 0 && !argv)) {
		say(err, errcap, "es_config_load: invalid argument");
		return ES_EINVAL;
	}
	cmdline cl = {0};
	es_err rc = parse_cmdline(c, argc, argv, &cl, err, errcap);
	if (rc != ES_OK)
		goto out;
	c->mode = cl.mode;
	if (cl.mode == ES_CFG_HELP || cl.mode == ES_CFG_VERSION || cl.mode == ES_CFG_REFERENCE)
		goto out;
	rc = load_file(c, cl.config ? cl.config : env_get(env, "ES_CONFIG"), err, errcap);
	if (rc == ES_OK)
		rc = load_env(c, env, err, errcap);
	if (rc == ES_OK)
		rc = apply_flags(c, &cl, err, errcap);
	if (rc == ES_OK)
		rc = check_required(c, err, errcap);
out:
	free(cl.v);
	return rc;
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
		say(err, errcap, "es_config_set: invalid argument");
		return ES_EINVAL;
	}
	if (!find_name(c, name, strlen(name), &i)) {
		say(err, errcap, "unknown setting '%.80s'", name);
		return ES_EINVAL;
	}
	char why[WHY_MAX];
	src s = {FROM_FLAG, 0};
	es_err rc = apply(c, i, value, &s, why, sizeof why);
	if (rc != ES_OK)
		say(err, errcap, "--%s: %s", name, why);
	return rc;
}

/* ---- printing -------------------------------------------------------- */

/* The choice at index k, or "" if the program stored a bad index. */
static const char *enum_text(const es_setting *row, int k)
{
	for (int j = 0; row->choices[j]; j++) {
		if (j == k)
			return row->choices[j];
	}
	return "";
}

/* The value of a non-list row i as text that parses back to it. */
static const char *value_text(const es_config *c, size_t i, char *buf, size_t cap)
{
	const es_setting *row = &c->table[i];
	const void *f = field(c, i);
	switch (row->type) {
	case ES_CFG_STR:
		return *(char *const *)f ? *(char *const *)f : "";
	case ES_CFG_BOOL:
		return *(const bool *)f ? "true" : "false";
	case ES_CFG_ENUM:
		return enum_text(row, *(const int *)f);
	case ES_CFG_SIZE:
		return scaled_text(*(const uint64_t *)f, size_show, buf, cap);
	case ES_CFG_INT:
	case ES_CFG_SECONDS:
	case ES_CFG_MS:
		return num_text(row->type, *(const int64_t *)f, buf, cap);
	case ES_CFG_LIST:
		break;
	}
	return "";
}

/* "; from ..." for row i (element k of a list from the file) into
 * buf[0..cap), cut to fit. */
static void origin_text(const es_config *c, size_t i, size_t k, char *buf, size_t cap)
{
	const origin *o = &c->from[i];
	char env[ENV_NAME_MAX];
	switch (o->kind) {
	case FROM_UNSET:
	case FROM_DEFAULT:
		snprintf(buf, cap, "; default");
		break;
	case FROM_FILE:
		snprintf(buf, cap, "; from %s:%d", c->file, o->lines ? o->lines[k] : o->line);
		break;
	case FROM_ENV:
		snprintf(buf, cap, "; from %s", env_name(c->table[i].name, env));
		break;
	case FROM_FLAG:
		snprintf(buf, cap, "; from --%s", c->table[i].name);
		break;
	}
}

/* "key = value  ; from ..." ("key =" for an empty value), written so that
 * inih reads the value back: no space after '=' before a value starting
 * with ';' (inih would take it for a comment), and when the line would be
 * longer than the file reader takes, the note goes on a line of its own
 * above and the spaces around '=' go. */
static void print_line(const es_config *c, size_t i, size_t k, const char *value, FILE *out)
{
	char note[FILE_LINE_MAX + 1];
	const char *key = strchr(c->table[i].name, '.') + 1;
	const char *eq = value[0] == ';' || value[0] == '\0' ? " =" : " = ";
	size_t len = strlen(key) + strlen(eq) + strlen(value);
	origin_text(c, i, k, note, sizeof note);
	if (len + 2 + strlen(note) <= FILE_LINE_MAX) {
		fprintf(out, "%s%s%s  %s\n", key, eq, value, note);
		return;
	}
	fprintf(out, "%s\n%s%s%s\n", note, key, len <= FILE_LINE_MAX ? eq : "=", value);
}

/* One line per value; a list one per element, or "key =" when empty. */
static void print_setting(const es_config *c, size_t i, FILE *out)
{
	char buf[NUM_TEXT_MAX];
	if (c->table[i].type != ES_CFG_LIST) {
		print_line(c, i, 0, value_text(c, i, buf, sizeof buf), out);
		return;
	}
	const es_strlist *l = field(c, i);
	if (l->n == 0)
		print_line(c, i, 0, "", out);
	for (size_t k = 0; k < l->n; k++)
		print_line(c, i, k, l->v[k], out);
}

static size_t section_len(const char *name)
{
	return (size_t)(strchr(name, '.') - name);
}

static bool same_section(const char *a, const char *b)
{
	size_t n = section_len(a);
	return n == section_len(b) && strncmp(a, b, n) == 0;
}

/* Contract in config.h. Sections appear in the order the table first names
 * them, each with all its settings, so the output reads back as a file. */
void es_config_print(const es_config *c, FILE *out)
{
	if (!c || !out)
		return;
	bool first = true;
	for (size_t i = 0; i < c->n; i++) {
		const char *name = c->table[i].name;
		size_t j = 0;
		while (j < i && !same_section(c->table[j].name, name))
			j++;
		if (j < i)
			continue; /* printed with an earlier row */
		fprintf(out, "%s[%.*s]\n", first ? "" : "\n", (int)section_len(name), name);
		first = false;
		for (j = i; j < c->n; j++) {
			if (same_section(c->table[j].name, name))
				print_setting(c, j, out);
		}
	}
}

/* ---- help ------------------------------------------------------------ */

static const char *const metavar[] = {
	[ES_CFG_STR] = "TEXT",	  [ES_CFG_INT] = "N",	     [ES_CFG_BOOL] = "[BOOL]",
	[ES_CFG_ENUM] = "CHOICE", [ES_CFG_SIZE] = "SIZE",    [ES_CFG_SECONDS] = "DURATION",
	[ES_CFG_MS] = "DURATION", [ES_CFG_LIST] = "A,B,...",
};

static const char *const type_desc[] = {
	[ES_CFG_STR] = "text",
	[ES_CFG_INT] = "integer",
	[ES_CFG_BOOL] = "boolean (true/false, yes/no, on/off, 1/0)",
	[ES_CFG_ENUM] = "one of",
	[ES_CFG_SIZE] = "size (e.g. 65536, 64KiB, 16MiB, 1GB)",
	[ES_CFG_SECONDS] = "duration (e.g. 30s, 15m, 2h, 7d)",
	[ES_CFG_MS] = "duration (e.g. 250ms, 2s, 1m)",
	[ES_CFG_LIST] = "list (comma-separated; repeat the key in the file)",
};

/* What a setting takes: its type, choices or range, and whether required. */
static void describe(const es_setting *row, FILE *out)
{
	char a[NUM_TEXT_MAX], b[NUM_TEXT_MAX], list[CHOICES_MAX];
	bool path = row->type == ES_CFG_STR && (row->flags & ES_CFG_PATH);
	fputs(path ? "file path" : type_desc[row->type], out);
	if (row->type == ES_CFG_ENUM)
		fprintf(out, " %s", choices_text(row, list, sizeof list));
	if (bounded(row))
		fprintf(out, ", %s..%s", num_text(row->type, row->min, a, sizeof a),
			num_text(row->type, row->max, b, sizeof b));
	if (row->flags & ES_CFG_REQUIRED)
		fputs(", required", out);
}

/* The type line: type, choices or range, required, default. */
static void help_type(const es_setting *row, FILE *out)
{
	fputs("      ", out);
	describe(row, out);
	if (row->def)
		fprintf(out, "; default: %s\n", row->def[0] ? row->def : "(empty)");
	else
		fputs("; no default\n", out);
}

static void help_setting(const es_setting *row, FILE *out)
{
	char env[ENV_NAME_MAX];
	bool path = row->type == ES_CFG_STR && (row->flags & ES_CFG_PATH);
	fprintf(out, "\n  --%s %s  (env %s)\n", row->name, path ? "FILE" : metavar[row->type],
		env_name(row->name, env));
	if (row->help)
		fprintf(out, "      %s\n", row->help);
	help_type(row, out);
}

/* Contract in config.h. usage (e.g. "edge-agent [OPTIONS]") may be NULL. */
void es_config_help(const es_config *c, FILE *out, const char *usage)
{
	if (!c || !out)
		return;
	if (usage)
		fprintf(out, "%s\n", usage);
	fputs("Options:\n"
	      "  -h, --help        show this help and exit\n"
	      "  --version         show the version and exit\n"
	      "  --config FILE     read settings from the INI file FILE (env ES_CONFIG)\n"
	      "  --print-config    print the effective configuration and exit\n"
	      "  --print-reference print every setting as a Markdown table and exit\n"
	      "\n"
	      "Settings: in the file as [section] then key = value, in the environment as\n"
	      "ES_SECTION_KEY=value, on the command line as --section.key VALUE or\n"
	      "--section.key=VALUE. The command line beats the environment, which beats\n"
	      "the file.\n",
	      out);
	for (size_t i = 0; i < c->n; i++)
		help_setting(&c->table[i], out);
}

/* One table row: | `name` | `ENV` | type, range | default | help | */
static void reference_row(const es_setting *row, FILE *out)
{
	char env[ENV_NAME_MAX];
	fprintf(out, "| `%s` | `%s` | ", row->name, env_name(row->name, env));
	describe(row, out);
	fprintf(out, " | %s%s%s | %s |\n", row->def ? "`" : "", row->def ? row->def : "-",
		row->def ? "`" : "", row->help ? row->help : "");
}

/* Contract in config.h. */
void es_config_reference(const es_config *c, FILE *out)
{
	if (!c || !out)
		return;
	fputs("| setting | environment | type | default | meaning |\n"
	      "|---|---|---|---|---|\n",
	      out);
	for (size_t i = 0; i < c->n; i++)
		reference_row(&c->table[i], out);
}

/* Contract in config.h. */
es_err es_config_read_secret(const char *path, char **out, char *err, size_t errcap)
{
	char line[1024] = "";
	FILE *f = path ? fopen(path, "r") : NULL;
	if (!f) {
		say(err, errcap, "%s: %s", path ? path : "(none)", strerror(errno));
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
