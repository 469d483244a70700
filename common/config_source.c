/* config_source.c - the sources of settings, read in this order, later
 * ones winning: the INI file named by --config or ES_CONFIG (parsed by
 * inih), the ES_<SECTION>_<KEY> environment variables, then the flags
 * --section.key VALUE. The command line is parsed before anything is read,
 * so its special flags (--help, ...) decide what is read at all. Each value
 * goes through es_cfg_apply (config_store.c) with where it came from.
 */
#include "config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "log.h"

_Static_assert(ES_CFG_LINE_MAX == INI_MAX_LINE - 2, "ES_CFG_LINE_MAX is inih's line less 2");

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
		es_cfg_say(err, cap, "--config: needs a file name");
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
	if (!es_cfg_find_name(c, name, len, &i)) {
		es_cfg_say(err, cap, "unknown option '--%.*s'", (int)(len > 80 ? 80 : len), name);
		return ES_EINVAL;
	}
	const char *value = eq ? eq + 1 : next_value(&c->table[i], argc, argv, k);
	if (!value) {
		es_cfg_say(err, cap, "--%s: needs a value", c->table[i].name);
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
		es_cfg_say(err, cap, "unexpected argument '%.80s'", a);
		return ES_EINVAL;
	}
	if (a[1] != '-' || a[2] == '\0') {
		es_cfg_say(err, cap, "unknown option '%.80s'", a);
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
		es_cfg_say(err, cap, "out of memory");
		return ES_ENOMEM;
	}
	for (int k = 1; k < argc; k++) {
		if (!argv[k]) {
			es_cfg_say(err, cap, "argument %d is NULL", k);
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
		char why[ES_CFG_WHY_MAX];
		es_cfg_src s = {ES_FROM_FLAG, 1}; /* 1: a list flag repeated here appends */
		es_err rc = es_cfg_apply(c, cl->v[k].i, cl->v[k].value, &s, why, sizeof why);
		if (rc != ES_OK) {
			es_cfg_say(err, cap, "--%s: %s", c->table[cl->v[k].i].name, why);
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
	char why[ES_CFG_WHY_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	es_cfg_say(f->err, f->errcap, "%s:%d: %s", f->path, f->line, why);
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
	if (!es_cfg_find_key(c, section, name, &i))
		return file_fail(f, ES_EINVAL, "%s.%s: unknown setting", section, name);
	if (c->table[i].type != ES_CFG_LIST && c->from[i].kind == ES_FROM_FILE)
		return file_fail(f, ES_EINVAL,
				 "%s: set again (first on line %d; an indented line continues "
				 "the value before it)",
				 c->table[i].name, c->from[i].line);
	char why[ES_CFG_WHY_MAX], cut[INI_MAX_LINE];
	es_cfg_src s = {ES_FROM_FILE, f->line};
	es_err rc = es_cfg_apply(c, i, cut_comment(value, cut, sizeof cut), &s, why, sizeof why);
	if (rc != ES_OK)
		return file_fail(f, rc, "%s: %s", c->table[i].name, why);
	return 1;
}

/* Picks the first error of the file: a syntax error inih found (it returns
 * the first line with any error) or one of ours. */
static es_err file_result(const file_ctx *f, int first)
{
	if (f->read_rc != ES_OK) {
		es_cfg_say(f->err, f->errcap, "%s: %s", f->path,
			   f->read_rc == ES_ENOMEM ? "out of memory" : "read failed");
		return f->read_rc;
	}
	if (first < 0) {
		es_cfg_say(f->err, f->errcap, "%s: out of memory", f->path);
		return ES_ENOMEM;
	}
	if (first > 0 && (f->bad_line == 0 || first < f->bad_line)) {
		es_cfg_say(f->err, f->errcap, "%s:%d: expected '[section]' or 'key = value'",
			   f->path, first);
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
		es_cfg_say(err, cap, "out of memory");
		return ES_ENOMEM;
	}
	FILE *fp = fopen(path, "r");
	if (!fp) {
		int e = errno;
		es_cfg_say(err, cap, "config file %s: %s", path, strerror(e));
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
	if (!es_cfg_find_env(c, e, len, &i)) {
		es_warn("config", "ignoring unknown environment variable %.*s", (int)len, e);
		return ES_OK;
	}
	char why[ES_CFG_WHY_MAX];
	es_cfg_src s = {ES_FROM_ENV, 0};
	es_err rc = es_cfg_apply(c, i, eq + 1, &s, why, sizeof why);
	if (rc != ES_OK)
		es_cfg_say(err, cap, "environment %.*s: %s", (int)len, e, why);
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

/* ---- all of them --------------------------------------------------------- */

/* Contract in config_internal.h. */
es_err es_cfg_read_sources(es_config *c, int argc, char *const *argv, char *const *env, char *err,
			   size_t cap)
{
	cmdline cl = {0};
	es_err rc = parse_cmdline(c, argc, argv, &cl, err, cap);
	if (rc != ES_OK)
		goto out;
	c->mode = cl.mode;
	if (cl.mode == ES_CFG_HELP || cl.mode == ES_CFG_VERSION || cl.mode == ES_CFG_REFERENCE)
		goto out;
	rc = load_file(c, cl.config ? cl.config : env_get(env, "ES_CONFIG"), err, cap);
	if (rc == ES_OK)
		rc = load_env(c, env, err, cap);
	if (rc == ES_OK)
		rc = apply_flags(c, &cl, err, cap);
out:
	free(cl.v);
	return rc;
}
