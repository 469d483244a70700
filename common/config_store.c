/* config_store.c - storing a value into a setting's field: the text parsed
 * by the row's type, checked against its range or choices, and where it
 * came from noted. Lists grow or are replaced by the rules in config.h.
 * Strings and lists stored here are owned by the es_config.
 */
#include "config_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Contract in config_internal.h. */
void es_cfg_list_clear(es_strlist *l)
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
			es_cfg_list_clear(&l);
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
	es_cfg_list_clear(&more);
	return rc;
}

/* A key in the file appends to the list the file began, and so does a flag
 * repeated on the command line (s->line 1: es_config_load's flags, not
 * es_config_set); anything else replaces the list. */
static es_err set_list(es_config *c, size_t i, const char *text, const es_cfg_src *s)
{
	es_strlist *l = es_cfg_field(c, i);
	es_cfg_origin *o = &c->from[i];
	if (s->kind == ES_FROM_FILE && o->kind == ES_FROM_FILE)
		return text[0] ? list_push(l, &o->lines, text, strlen(text), s->line) : ES_OK;
	if (s->kind == ES_FROM_FLAG && s->line == 1 && o->kind == ES_FROM_FLAG)
		return list_append(l, text);
	es_strlist fresh = {0};
	int *lines = NULL;
	es_err rc = ES_OK;
	if (s->kind != ES_FROM_FILE)
		rc = split_list(text, &fresh);
	else if (text[0])
		rc = list_push(&fresh, &lines, text, strlen(text), s->line);
	if (rc != ES_OK)
		return rc;
	es_cfg_list_clear(l);
	free(o->lines);
	*l = fresh;
	o->lines = lines;
	return ES_OK;
}

/* An empty string unsets: "ES_MQTT_USERNAME=" removes a default. */
static es_err set_str(es_config *c, size_t i, const char *text)
{
	char **f = es_cfg_field(c, i);
	char *copy = NULL;
	if (text[0] && !(copy = strdup(text)))
		return ES_ENOMEM;
	free(*f);
	*f = copy;
	return ES_OK;
}

static es_err bad_number(es_cfg_num rc, const char *text, const char *what, char *why, size_t cap)
{
	if (rc == ES_NUM_BIG)
		es_cfg_say(why, cap, "'%.80s' is too large", text);
	else
		es_cfg_say(why, cap, "'%.80s' is not %s", text, what);
	return ES_EINVAL;
}

/* Checks v against the row's range (when it has one). */
static es_err check_range(const es_setting *row, int64_t v, char *why, size_t cap)
{
	char a[ES_CFG_NUM_MAX], b[ES_CFG_NUM_MAX];
	if (!es_cfg_bounded(row))
		return ES_OK;
	if (v < row->min) {
		es_cfg_say(why, cap, "%s is below the minimum %s",
			   es_cfg_num_text(row->type, v, a, sizeof a),
			   es_cfg_num_text(row->type, row->min, b, sizeof b));
		return ES_EINVAL;
	}
	if (v > row->max) {
		es_cfg_say(why, cap, "%s is above the maximum %s",
			   es_cfg_num_text(row->type, v, a, sizeof a),
			   es_cfg_num_text(row->type, row->max, b, sizeof b));
		return ES_EINVAL;
	}
	return ES_OK;
}

static es_err set_int(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	int64_t v;
	es_cfg_num rc = es_cfg_int(text, &v);
	if (rc != ES_NUM_OK)
		return bad_number(rc, text, "an integer", why, cap);
	if (check_range(&c->table[i], v, why, cap) != ES_OK)
		return ES_EINVAL;
	*(int64_t *)es_cfg_field(c, i) = v;
	return ES_OK;
}

static es_err set_size(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	uint64_t v;
	const es_setting *row = &c->table[i];
	es_cfg_num rc = es_cfg_size(text, &v);
	if (rc != ES_NUM_OK)
		return bad_number(rc, text, "a size (e.g. 65536, 64KiB, 16MiB, 1GB)", why, cap);
	/* Above INT64_MAX only the maximum can object; the row has no sign. */
	if (v > (uint64_t)INT64_MAX && es_cfg_bounded(row)) {
		char b[ES_CFG_NUM_MAX];
		es_cfg_say(why, cap, "'%.80s' is above the maximum %s", text,
			   es_cfg_num_text(row->type, row->max, b, sizeof b));
		return ES_EINVAL;
	}
	if (v <= (uint64_t)INT64_MAX && check_range(row, (int64_t)v, why, cap) != ES_OK)
		return ES_EINVAL;
	*(uint64_t *)es_cfg_field(c, i) = v;
	return ES_OK;
}

/* SECONDS and MS: a duration through units. */
static es_err set_duration(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	bool ms = c->table[i].type == ES_CFG_MS;
	int64_t v;
	es_cfg_num rc = es_cfg_duration(text, c->table[i].type, &v);
	if (rc != ES_NUM_OK)
		return bad_number(rc, text,
				  ms ? "a duration in ms (e.g. 250, 250ms, 2s, 1m)"
				     : "a duration in seconds (e.g. 30, 30s, 15m, 2h, 7d)",
				  why, cap);
	if (check_range(&c->table[i], v, why, cap) != ES_OK)
		return ES_EINVAL;
	*(int64_t *)es_cfg_field(c, i) = v;
	return ES_OK;
}

static es_err set_bool(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	bool v;
	if (!es_cfg_parse_bool(text, &v)) {
		es_cfg_say(why, cap, "'%.80s' is not a boolean (true/false, yes/no, on/off, 1/0)",
			   text);
		return ES_EINVAL;
	}
	*(bool *)es_cfg_field(c, i) = v;
	return ES_OK;
}

static es_err set_enum(es_config *c, size_t i, const char *text, char *why, size_t cap)
{
	const es_setting *row = &c->table[i];
	for (int k = 0; row->choices[k]; k++) {
		if (strcasecmp(text, row->choices[k]) == 0) {
			*(int *)es_cfg_field(c, i) = k;
			return ES_OK;
		}
	}
	char list[ES_CFG_CHOICES_MAX];
	es_cfg_say(why, cap, "'%.80s' is not one of: %s", text,
		   es_cfg_choices_text(row, list, sizeof list));
	return ES_EINVAL;
}

/* Contract in config_internal.h. */
es_err es_cfg_apply(es_config *c, size_t i, const char *text, const es_cfg_src *s, char *why,
		    size_t cap)
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
		es_cfg_say(why, cap, "out of memory");
	if (rc == ES_OK && !(s->kind == ES_FROM_FILE && c->from[i].kind == ES_FROM_FILE))
		c->from[i] = (es_cfg_origin){s->kind, s->line, c->from[i].lines};
	return rc;
}
