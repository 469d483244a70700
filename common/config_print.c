/* config_print.c - what a program shows of its settings: the effective
 * configuration as an INI file that reads back (--print-config, each value
 * with where it came from), the usage text (--help) and the Markdown
 * reference (--print-reference, kept in docs/configuration.md). Hidden rows
 * (ES_CFG_HIDDEN) are not settings of the program: none of these show them.
 */
#include "config_internal.h"

#include <stdio.h>
#include <string.h>

/* ---- --print-config ----------------------------------------------------- */

/* The value of a non-list row i as text that parses back to it. */
static const char *value_text(const es_config *c, size_t i, char *buf, size_t cap)
{
	const es_setting *row = &c->table[i];
	const void *f = es_cfg_field(c, i);
	switch (row->type) {
	case ES_CFG_STR:
		return *(char *const *)f ? *(char *const *)f : "";
	case ES_CFG_BOOL:
		return *(const bool *)f ? "true" : "false";
	case ES_CFG_ENUM:
		return es_cfg_enum_text(row, *(const int *)f);
	case ES_CFG_SIZE:
		return es_cfg_size_text(*(const uint64_t *)f, buf, cap);
	case ES_CFG_INT:
	case ES_CFG_SECONDS:
	case ES_CFG_MS:
		return es_cfg_num_text(row->type, *(const int64_t *)f, buf, cap);
	case ES_CFG_LIST:
		break;
	}
	return "";
}

/* "; from ..." for row i (element k of a list from the file) into
 * buf[0..cap), cut to fit. */
static void origin_text(const es_config *c, size_t i, size_t k, char *buf, size_t cap)
{
	const es_cfg_origin *o = &c->from[i];
	char env[ES_CFG_ENV_MAX];
	switch (o->kind) {
	case ES_FROM_UNSET:
	case ES_FROM_DEFAULT:
		snprintf(buf, cap, "; default");
		break;
	case ES_FROM_FILE:
		snprintf(buf, cap, "; from %s:%d", c->file, o->lines ? o->lines[k] : o->line);
		break;
	case ES_FROM_ENV:
		snprintf(buf, cap, "; from %s", es_cfg_env_name(c->table[i].name, env));
		break;
	case ES_FROM_FLAG:
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
	char note[ES_CFG_LINE_MAX + 1];
	const char *key = strchr(c->table[i].name, '.') + 1;
	const char *eq = value[0] == ';' || value[0] == '\0' ? " =" : " = ";
	size_t len = strlen(key) + strlen(eq) + strlen(value);
	origin_text(c, i, k, note, sizeof note);
	if (len + 2 + strlen(note) <= ES_CFG_LINE_MAX) {
		fprintf(out, "%s%s%s  %s\n", key, eq, value, note);
		return;
	}
	fprintf(out, "%s\n%s%s%s\n", note, key, len <= ES_CFG_LINE_MAX ? eq : "=", value);
}

/* One line per value; a list one per element, or "key =" when empty. */
static void print_setting(const es_config *c, size_t i, FILE *out)
{
	char buf[ES_CFG_NUM_MAX];
	if (c->table[i].type != ES_CFG_LIST) {
		print_line(c, i, 0, value_text(c, i, buf, sizeof buf), out);
		return;
	}
	const es_strlist *l = es_cfg_field(c, i);
	if (l->n == 0)
		print_line(c, i, 0, "", out);
	for (size_t k = 0; k < l->n; k++)
		print_line(c, i, k, l->v[k], out);
}

static size_t section_len(const char *name)
{
	return (size_t)(strchr(name, '.') - name);
}

/* Row j is shown and in the section of name. */
static bool in_section(const es_config *c, size_t j, const char *name)
{
	const char *other = c->table[j].name;
	size_t n = section_len(name);
	return !es_cfg_hidden(&c->table[j]) && n == section_len(other) &&
	       strncmp(name, other, n) == 0;
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
		while (j < i && !in_section(c, j, name))
			j++;
		if (j < i || es_cfg_hidden(&c->table[i]))
			continue; /* printed with an earlier row, or not at all */
		fprintf(out, "%s[%.*s]\n", first ? "" : "\n", (int)section_len(name), name);
		first = false;
		for (j = i; j < c->n; j++) {
			if (in_section(c, j, name))
				print_setting(c, j, out);
		}
	}
}

/* ---- --help and --print-reference ----------------------------------------- */

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
	char a[ES_CFG_NUM_MAX], b[ES_CFG_NUM_MAX], list[ES_CFG_CHOICES_MAX];
	bool path = row->type == ES_CFG_STR && (row->flags & ES_CFG_PATH);
	fputs(path ? "file path" : type_desc[row->type], out);
	if (row->type == ES_CFG_ENUM)
		fprintf(out, " %s", es_cfg_choices_text(row, list, sizeof list));
	if (es_cfg_bounded(row))
		fprintf(out, ", %s..%s", es_cfg_num_text(row->type, row->min, a, sizeof a),
			es_cfg_num_text(row->type, row->max, b, sizeof b));
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
	char env[ES_CFG_ENV_MAX];
	bool path = row->type == ES_CFG_STR && (row->flags & ES_CFG_PATH);
	fprintf(out, "\n  --%s %s  (env %s)\n", row->name, path ? "FILE" : metavar[row->type],
		es_cfg_env_name(row->name, env));
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
		if (!es_cfg_hidden(&c->table[i]))
			help_setting(&c->table[i], out);
}

/* One table row: | `name` | `ENV` | type, range | default | help | */
static void reference_row(const es_setting *row, FILE *out)
{
	char env[ES_CFG_ENV_MAX];
	fprintf(out, "| `%s` | `%s` | ", row->name, es_cfg_env_name(row->name, env));
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
		if (!es_cfg_hidden(&c->table[i]))
			reference_row(&c->table[i], out);
}
