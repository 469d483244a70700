/* event.c - the CloudEvents 1.0 envelope: JSON codec and validation.
 *
 * An event is held as the cJSON object it was decoded from (or built as), so
 * that extension attributes we do not know survive a decode/encode round trip
 * untouched. Validation happens once, when an event enters (decode, new);
 * encoding only prints.
 *
 * The rules are in event.h. Two more follow from them: an attribute may
 * appear only once in an event (a later parser that keeps the last of two
 * "type"s would otherwise see a type we never checked), and an extension's
 * value must be a string, a number or a boolean (the CloudEvents type
 * system has no objects, arrays or nulls).
 */
#include "event.h"

#include "clock.h"
#include "jsoncheck.h"
#include "utf8.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct es_event {
	cJSON *obj; /* the CloudEvent; owns every string the accessors return */
	bool full;  /* given in the full CloudEvents form */
};

/* Where a validation error is reported: verr (may be NULL), the prefix of
 * field names ("" for a lone event, "[3]" inside a batch), and the form of
 * the event being checked. */
typedef struct vctx {
	es_verr *verr;
	char prefix[24];
	bool short_form;
} vctx;

/* Extra room cJSON_PrintPreallocated wants beyond the printed length. */
#define PRINT_SLACK 64
/* No byte of input becomes more than 6 bytes when cJSON prints it again (a raw
 * control character becomes \u00XX), so input at most 1/6 of the size limit
 * needs no measuring. */
#define MAX_EXPANSION 6
/* Beyond this many attributes, duplicates are found by sorting. */
#define DUP_LINEAR_MAX 16

static const char short_unknown[] =
	"unknown attribute in the short form; send a full CloudEvent to carry extensions";
static const char type_allowed[] = "allowed: letters, digits, . _ : -";

/* Appends src to dst[*pos..cap), cutting at a UTF-8 character boundary when
 * it does not fit, so the field stays valid text for an HTTP error body. */
static void append_utf8(char *dst, size_t cap, size_t *pos, const char *src)
{
	size_t n = strlen(src);
	if (n > cap - 1 - *pos) {
		n = cap - 1 - *pos;
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst + *pos, src, n);
	*pos += n;
	dst[*pos] = '\0';
}

/* Fills c->verr (if any) with field "<prefix>.<field>" and the formatted
 * reason; returns err. */
static es_err fail(const vctx *c, es_err err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static es_err fail(const vctx *c, es_err err, const char *field, const char *fmt, ...)
{
	if (!c->verr)
		return err;
	size_t pos = 0;
	c->verr->field[0] = '\0';
	append_utf8(c->verr->field, sizeof c->verr->field, &pos, c->prefix);
	if (c->prefix[0] && field[0])
		append_utf8(c->verr->field, sizeof c->verr->field, &pos, ".");
	append_utf8(c->verr->field, sizeof c->verr->field, &pos, field);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->verr->reason, sizeof c->verr->reason, fmt, ap);
	va_end(ap);
	return err;
}

/* ---- attribute checks on strings ---- */

/* The string value of v, or NULL when v is not a string. */
static const char *str_of(const cJSON *v)
{
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static es_err not_string(const vctx *c, const char *name)
{
	return fail(c, ES_EINVAL, name, "must be a string");
}

/* id: 1..ES_EVENT_ID_MAX printable ASCII characters. */
static es_err check_id_str(const vctx *c, const char *name, const char *s)
{
	size_t i;
	for (i = 0; s[i]; i++) {
		unsigned char b = (unsigned char)s[i];
		if (b < 0x20 || b > 0x7E)
			return fail(
				c, ES_EINVAL, name,
				"contains byte 0x%02x at position %zu; allowed: printable ASCII", b,
				i);
	}
	if (i == 0)
		return fail(c, ES_EINVAL, name, "must not be empty");
	if (i > ES_EVENT_ID_MAX)
		return fail(c, ES_EINVAL, name, "is longer than %d characters", ES_EVENT_ID_MAX);
	return ES_OK;
}

/* U+0000..U+001F, U+007F and U+0080..U+009F (C2 80..C2 9F in UTF-8). */
static bool is_control(const unsigned char *p)
{
	return p[0] < 0x20 || p[0] == 0x7F || (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F);
}

/* source, subject: 1..max characters (code points) of valid UTF-8 with no
 * control characters. */
static es_err check_text(const vctx *c, const char *name, const char *s, size_t max)
{
	size_t len = strlen(s), bad, chars = 0;
	if (!es_utf8_valid(s, len, &bad))
		return fail(c, ES_EINVAL, name, "invalid UTF-8 at byte %zu", bad);
	for (size_t i = 0; i < len; i++) {
		const unsigned char *p = (const unsigned char *)s + i;
		if (is_control(p))
			return fail(c, ES_EINVAL, name, "contains a control character at byte %zu",
				    i);
		chars += (*p & 0xC0) != 0x80;
	}
	if (chars == 0)
		return fail(c, ES_EINVAL, name, "must not be empty");
	if (chars > max)
		return fail(c, ES_EINVAL, name, "is longer than %zu characters", max);
	return ES_OK;
}

static bool type_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == ':' || ch == '-';
}

/* The index of the first character of t outside the type alphabet, or its
 * length when there is none. */
static size_t type_bad_at(const char *t)
{
	size_t i = 0;
	while (t[i] && type_char_ok(t[i]))
		i++;
	return i;
}

/* Checks a type string; NULL when valid, else a static reason. */
const char *es_event_check_type(const char *type)
{
	if (!type)
		return "is missing";
	size_t bad = type_bad_at(type);
	if (type[bad])
		return "contains a character outside letters, digits, . _ : -";
	if (bad == 0)
		return "must not be empty";
	if (bad > ES_EVENT_TYPE_MAX)
		return "is longer than 128 characters";
	return NULL;
}

static es_err check_type_str(const vctx *c, const char *name, const char *t)
{
	size_t i = type_bad_at(t);
	unsigned char b = (unsigned char)t[i];
	if (b == ' ')
		return fail(c, ES_EINVAL, name, "contains a space at position %zu; %s", i,
			    type_allowed);
	if (b > ' ' && b < 0x7F)
		return fail(c, ES_EINVAL, name, "contains '%c' at position %zu; %s", b, i,
			    type_allowed);
	if (b)
		return fail(c, ES_EINVAL, name, "contains byte 0x%02x at position %zu; %s", b, i,
			    type_allowed);
	const char *why = es_event_check_type(t);
	return why ? fail(c, ES_EINVAL, name, "%s", why) : ES_OK;
}

/* ---- attribute checks on JSON values, one per known attribute ---- */

typedef es_err (*attr_check)(const vctx *c, const char *name, const cJSON *v);

static es_err check_specversion(const vctx *c, const char *name, const cJSON *v)
{
	if (!cJSON_IsString(v) || !v->valuestring || strcmp(v->valuestring, "1.0") != 0)
		return fail(c, ES_EINVAL, name, "must be \"1.0\"");
	return ES_OK;
}

static es_err check_id(const vctx *c, const char *name, const cJSON *v)
{
	const char *s = str_of(v);
	return s ? check_id_str(c, name, s) : not_string(c, name);
}

static es_err check_source(const vctx *c, const char *name, const cJSON *v)
{
	const char *s = str_of(v);
	return s ? check_text(c, name, s, ES_EVENT_SOURCE_MAX) : not_string(c, name);
}

static es_err check_subject(const vctx *c, const char *name, const cJSON *v)
{
	const char *s = str_of(v);
	return s ? check_text(c, name, s, ES_EVENT_SUBJECT_MAX) : not_string(c, name);
}

static es_err check_type(const vctx *c, const char *name, const cJSON *v)
{
	const char *s = str_of(v);
	return s ? check_type_str(c, name, s) : not_string(c, name);
}

static es_err check_time(const vctx *c, const char *name, const cJSON *v)
{
	const char *s = str_of(v);
	uint64_t ms;
	if (!s)
		return not_string(c, name);
	if (!es_time_parse(s, &ms))
		return fail(c, ES_EINVAL, name,
			    "not an RFC 3339 date-time (like 2026-11-27T10:00:00.123Z)");
	return ES_OK;
}

static es_err check_datacontenttype(const vctx *c, const char *name, const cJSON *v)
{
	if (!cJSON_IsString(v) || !v->valuestring ||
	    strcmp(v->valuestring, "application/json") != 0)
		return fail(c, ES_EINVAL, name, "must be \"application/json\"");
	return ES_OK;
}

static es_err check_data(const vctx *c, const char *name, const cJSON *v)
{
	if (c->short_form && !cJSON_IsObject(v))
		return fail(c, ES_EINVAL, name, "must be a JSON object in the short form");
	return ES_OK;
}

static es_err check_data_base64(const vctx *c, const char *name, const cJSON *v)
{
	return fail(c, ES_EINVAL, name, "binary data is not accepted; send JSON in \"data\"");
}

/* The attributes with a meaning of their own; anything else is an extension.
 * in_short: allowed in the short form; required: in the full form. */
static const struct attr {
	const char *name;
	attr_check check;
	bool in_short;
	bool required;
} attrs[] = {
	{"specversion", check_specversion, false, true},
	{"id", check_id, true, true},
	{"source", check_source, false, true},
	{"type", check_type, true, true},
	{"subject", check_subject, true, false},
	{"time", check_time, true, false},
	{"datacontenttype", check_datacontenttype, false, false},
	{"data", check_data, true, false},
	{"data_base64", check_data_base64, false, false},
};

#define N_ATTRS (sizeof attrs / sizeof attrs[0])

static const struct attr *find_attr(const char *name)
{
	for (size_t i = 0; i < N_ATTRS; i++)
		if (strcmp(attrs[i].name, name) == 0)
			return &attrs[i];
	return NULL;
}

/* An extension: name of 1..20 of [a-z0-9], value a string, number or bool. */
static es_err check_extension(const vctx *c, const char *name, const cJSON *v)
{
	size_t i = 0;
	while ((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9'))
		i++;
	if (name[i] || i == 0 || i > 20)
		return fail(c, ES_EINVAL, name,
			    "invalid extension attribute name; allowed: 1 to 20 characters "
			    "of a-z and 0-9");
	if (!cJSON_IsString(v) && !cJSON_IsNumber(v) && !cJSON_IsBool(v))
		return fail(c, ES_EINVAL, name,
			    "extension values must be a string, a number or a boolean");
	/* cJSON reads 1e999 as infinity and prints it as null, which no
	 * decoder after us would accept. */
	if (cJSON_IsNumber(v) && !isfinite(v->valuedouble))
		return fail(c, ES_EINVAL, name, "number out of range");
	return ES_OK;
}

static es_err check_member(const vctx *c, const cJSON *it)
{
	const char *name = it->string ? it->string : "";
	const struct attr *a = find_attr(name);
	if (!a)
		return c->short_form ? fail(c, ES_EINVAL, name, "%s", short_unknown)
				     : check_extension(c, name, it);
	if (c->short_form && !a->in_short)
		return fail(c, ES_EINVAL, name, "%s", short_unknown);
	return a->check(c, name, it);
}

static es_err check_required(const vctx *c, const cJSON *obj)
{
	for (size_t i = 0; i < N_ATTRS; i++) {
		bool need = c->short_form ? strcmp(attrs[i].name, "type") == 0 : attrs[i].required;
		if (need && !cJSON_GetObjectItemCaseSensitive(obj, attrs[i].name))
			return fail(c, ES_EINVAL, attrs[i].name, "required attribute is missing");
	}
	return ES_OK;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sets *dup to a name that occurs twice among obj's n members, or NULL.
 * Quadratic for a few members, sorting beyond. Errors: ES_ENOMEM. */
static es_err find_duplicate(const cJSON *obj, size_t n, const char **dup)
{
	*dup = NULL;
	if (n <= DUP_LINEAR_MAX) {
		for (const cJSON *a = obj->child; a && !*dup; a = a->next)
			for (const cJSON *b = a->next; b && !*dup; b = b->next)
				if (strcmp(a->string, b->string) == 0)
					*dup = a->string;
		return ES_OK;
	}
	const char **names = malloc(n * sizeof *names);
	if (!names)
		return ES_ENOMEM;
	size_t k = 0;
	for (const cJSON *a = obj->child; a; a = a->next)
		names[k++] = a->string;
	qsort(names, n, sizeof *names, cmp_names);
	for (k = 1; k < n && !*dup; k++)
		if (strcmp(names[k - 1], names[k]) == 0)
			*dup = names[k];
	free(names);
	return ES_OK;
}

/* Checks every member of obj (an object), then the required attributes, then
 * that no attribute appears twice. */
static es_err check_members(const vctx *c, const cJSON *obj)
{
	size_t n = 0;
	for (const cJSON *it = obj->child; it; it = it->next, n++) {
		es_err err = check_member(c, it);
		if (err)
			return err;
	}
	es_err err = check_required(c, obj);
	if (err)
		return err;
	const char *dup;
	err = find_duplicate(obj, n, &dup);
	if (!err && dup)
		err = fail(c, ES_EINVAL, dup, "duplicate attribute");
	return err;
}

/* ---- size ---- */

/* What measuring an event's encoded size needs: the limit (0, or more than
 * fits an int, means none), the length of the text it came from (for the
 * shortcut) and a scratch buffer made on first use. */
typedef struct sizer {
	size_t max;
	size_t input_len;
	char *buf;
} sizer;

/* ES_ETOOBIG when obj prints to more than s->max bytes. Errors: ES_ENOMEM. */
static es_err check_size(const vctx *c, cJSON *obj, sizer *s)
{
	if (s->max == 0 || s->max > (size_t)INT_MAX - PRINT_SLACK ||
	    s->input_len <= s->max / MAX_EXPANSION)
		return ES_OK;
	if (!s->buf) {
		s->buf = malloc(s->max + PRINT_SLACK);
		if (!s->buf)
			return ES_ENOMEM;
	}
	if (cJSON_PrintPreallocated(obj, s->buf, (int)(s->max + PRINT_SLACK), false) &&
	    strlen(s->buf) <= s->max)
		return ES_OK;
	return fail(c, ES_ETOOBIG, "", "encoded event exceeds the limit of %zu bytes", s->max);
}

/* Validates v as one event. It is in the full form when it has
 * "specversion" or when require_full is set. */
static es_err check_event(vctx *c, cJSON *v, bool require_full, sizer *s)
{
	if (!cJSON_IsObject(v))
		return fail(c, ES_EINVAL, "", "an event must be a JSON object");
	c->short_form = !require_full && !cJSON_GetObjectItemCaseSensitive(v, "specversion");
	es_err err = check_members(c, v);
	return err ? err : check_size(c, v, s);
}

/* ---- parsing ---- */

static bool only_space(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return false;
	return true;
}

/* Parses text[0..len) as one JSON value after checking it is UTF-8 with no
 * NUL byte (cJSON checks neither, and a NUL would cut a string short).
 * Errors (reported under field): ES_EINVAL. cJSON does not tell a failed
 * allocation from a syntax error; both come out as the latter. */
static es_err parse_json(const vctx *c, const char *field, const char *text, size_t len,
			 cJSON **out)
{
	size_t bad;
	if (!es_utf8_valid(text, len, &bad))
		return fail(c, ES_EINVAL, field, "invalid UTF-8 at byte %zu", bad);
	const char *nul = memchr(text, '\0', len);
	if (nul)
		return fail(c, ES_EINVAL, field, "NUL byte at byte %zu", (size_t)(nul - text));
	const char *why;
	if (!es_json_check(text, len, ES_JSON_MAX_DEPTH, &bad, &why))
		return fail(c, ES_EINVAL, field, "%s at byte %zu (at most %d levels)", why, bad,
			    ES_JSON_MAX_DEPTH);
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	size_t at = end ? (size_t)(end - text) : 0;
	if (!root)
		return fail(c, ES_EINVAL, field, "invalid JSON at byte %zu", at);
	if (!only_space(end, text + len)) {
		cJSON_Delete(root);
		return fail(c, ES_EINVAL, field, "invalid JSON at byte %zu: data after the value",
			    at);
	}
	*out = root;
	return ES_OK;
}

/* ---- making events ---- */

static es_event *wrap(cJSON *obj, bool full)
{
	es_event *ev = malloc(sizeof *ev);
	if (ev) {
		ev->obj = obj;
		ev->full = full;
	}
	return ev;
}

static bool is_full(const cJSON *obj)
{
	return cJSON_GetObjectItemCaseSensitive(obj, "specversion") != NULL;
}

/* Turns every element of the (validated) array root into an event in a new
 * array *out. Consumes root either way. Errors: ES_ENOMEM. */
static es_err take_elements(cJSON *root, size_t count, es_event ***out)
{
	es_event **evs = calloc(count, sizeof *evs);
	size_t i = 0;
	for (; evs && i < count; i++)
		if (!(evs[i] = wrap(NULL, false)))
			break;
	if (!evs || i < count) {
		es_event_free_array(evs, i);
		cJSON_Delete(root);
		return ES_ENOMEM;
	}
	i = 0;
	for (cJSON *el = root->child, *next; el; el = next, i++) {
		next = el->next;
		evs[i]->obj = cJSON_DetachItemViaPointer(root, el);
		evs[i]->full = is_full(evs[i]->obj);
	}
	cJSON_Delete(root);
	*out = evs;
	return ES_OK;
}

/* Validates every element of root (an array) under its index. */
static es_err check_elements(vctx *c, cJSON *root, size_t max_count, sizer *s)
{
	size_t count = (size_t)cJSON_GetArraySize(root);
	if (count == 0)
		return fail(c, ES_EINVAL, "", "empty array; send at least one event");
	if (count > max_count)
		return fail(c, ES_ETOOBIG, "", "batch of %zu events exceeds the limit of %zu",
			    count, max_count);
	size_t i = 0;
	for (cJSON *el = root->child; el; el = el->next, i++) {
		snprintf(c->prefix, sizeof c->prefix, "[%zu]", i);
		es_err err = check_event(c, el, false, s);
		if (err)
			return err;
	}
	return ES_OK;
}

/* root (an array) into *evs, *n; consumes root. */
static es_err decode_array(vctx *c, cJSON *root, size_t max_count, sizer *s, es_event ***evs,
			   size_t *n)
{
	es_err err = check_elements(c, root, max_count, s);
	if (err) {
		cJSON_Delete(root);
		return err;
	}
	size_t count = (size_t)cJSON_GetArraySize(root);
	err = take_elements(root, count, evs);
	if (!err)
		*n = count;
	return err;
}

/* root (one event) into a one-element *evs; consumes root. */
static es_err decode_single(vctx *c, cJSON *root, sizer *s, es_event ***evs, size_t *n)
{
	es_event **arr = NULL;
	es_err err = check_event(c, root, false, s);
	if (!err && !(arr = malloc(sizeof *arr)))
		err = ES_ENOMEM;
	if (!err && !(arr[0] = wrap(root, is_full(root))))
		err = ES_ENOMEM;
	if (err) {
		free(arr);
		cJSON_Delete(root);
		return err;
	}
	*evs = arr;
	*n = 1;
	return ES_OK;
}

/* Parses an ingest body: one event or an array of 1..max_count; see event.h.
 * All or nothing: on error no event is returned and verr says why. */
es_err es_event_decode_input(const char *body, size_t len, size_t max_bytes, size_t max_count,
			     es_event ***evs, size_t *n, es_verr *verr)
{
	vctx c = {.verr = verr};
	if ((!body && len) || !evs || !n)
		return fail(&c, ES_EINVAL, "", "no input");
	cJSON *root;
	es_err err = parse_json(&c, "", body ? body : "", len, &root);
	if (err)
		return err;
	sizer s = {.max = max_bytes, .input_len = len};
	if (cJSON_IsArray(root))
		err = decode_array(&c, root, max_count, &s, evs, n);
	else
		err = decode_single(&c, root, &s, evs, n);
	free(s.buf);
	return err;
}

/* Decodes one full CloudEvent strictly; see event.h. Writes *out only on
 * success. */
es_err es_event_decode(const char *json, size_t len, size_t max_bytes, es_event **out,
		       es_verr *verr)
{
	vctx c = {.verr = verr};
	if ((!json && len) || !out)
		return fail(&c, ES_EINVAL, "", "no input");
	cJSON *root;
	es_err err = parse_json(&c, "", json ? json : "", len, &root);
	if (err)
		return err;
	sizer s = {.max = max_bytes, .input_len = len};
	err = check_event(&c, root, true, &s);
	free(s.buf);
	es_event *ev = err ? NULL : wrap(root, true);
	if (!ev) {
		cJSON_Delete(root);
		return err ? err : ES_ENOMEM;
	}
	*out = ev;
	return ES_OK;
}

/* The short-form object {type, subject, data} of es_event_new, unchecked. */
static es_err build_short(const vctx *c, const char *type, const char *subject,
			  const char *data_json, cJSON **out)
{
	cJSON *obj = cJSON_CreateObject(), *data = NULL;
	es_err err = obj ? ES_OK : ES_ENOMEM;
	if (!err && type && !cJSON_AddStringToObject(obj, "type", type))
		err = ES_ENOMEM;
	if (!err && subject && !cJSON_AddStringToObject(obj, "subject", subject))
		err = ES_ENOMEM;
	if (!err && data_json)
		err = parse_json(c, "data", data_json, strlen(data_json), &data);
	if (!err && data && !cJSON_AddItemToObject(obj, "data", data)) {
		cJSON_Delete(data);
		err = ES_ENOMEM;
	}
	if (err) {
		cJSON_Delete(obj);
		return err;
	}
	*out = obj;
	return ES_OK;
}

/* Builds a short-form event; see event.h. Errors: ES_EINVAL (verr says
 * why), ES_ENOMEM. */
es_err es_event_new(const char *type, const char *subject, const char *data_json, es_event **out,
		    es_verr *verr)
{
	vctx c = {.verr = verr};
	if (!out)
		return fail(&c, ES_EINVAL, "", "no output");
	cJSON *obj;
	es_err err = build_short(&c, type, subject, data_json, &obj);
	if (err)
		return err;
	sizer s = {0};
	err = check_event(&c, obj, false, &s);
	es_event *ev = err ? NULL : wrap(obj, false);
	if (!ev) {
		cJSON_Delete(obj);
		return err ? err : ES_ENOMEM;
	}
	*out = ev;
	return ES_OK;
}

/* ---- stamping ---- */

/* The attributes stamp adds, made before any is attached so that a failed
 * allocation leaves the event as it was. */
typedef struct stamp_plan {
	const char *key[6];
	cJSON *item[6];
	size_t n;
} stamp_plan;

/* Plans key = val unless obj already has key (or replace is set). */
static bool plan(stamp_plan *p, const cJSON *obj, const char *key, const char *val, bool replace)
{
	if (!replace && cJSON_GetObjectItemCaseSensitive(obj, key))
		return true;
	cJSON *it = cJSON_CreateString(val);
	if (!it)
		return false;
	p->key[p->n] = key;
	p->item[p->n++] = it;
	return true;
}

static void u64_to_dec(uint64_t v, char out[21])
{
	char tmp[21];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
}

/* Plans every attribute stamp may add, in the order they will be printed. */
static bool make_plan(stamp_plan *p, const es_event *ev, const char *id, const char *source,
		      uint64_t time_ms, uint64_t seq)
{
	char seq_s[21], time_s[ES_TIME_STR];
	u64_to_dec(seq, seq_s);
	es_time_format(time_ms, time_s);
	const cJSON *o = ev->obj;
	bool sh = !ev->full;
	return (!sh || plan(p, o, "specversion", "1.0", false)) && plan(p, o, "id", id, false) &&
	       plan(p, o, "source", source, false) && plan(p, o, "time", time_s, false) &&
	       (!sh || plan(p, o, "datacontenttype", "application/json", false)) &&
	       (seq == 0 || plan(p, o, "sequence", seq_s, true));
}

/* Sets sequence, and id, source, time (and, for the short form,
 * specversion and datacontenttype) when absent; see event.h. Errors:
 * ES_EINVAL (an argument is NULL, or an id or source that would be used is
 * invalid), ES_ENOMEM; the event is unchanged on error. */
es_err es_event_stamp(es_event *ev, const char *id_if_missing, const char *source, uint64_t time_ms,
		      uint64_t seq)
{
	vctx c = {0};
	if (!ev || !id_if_missing || !source)
		return ES_EINVAL;
	if ((!cJSON_GetObjectItemCaseSensitive(ev->obj, "id") &&
	     check_id_str(&c, "id", id_if_missing)) ||
	    (!cJSON_GetObjectItemCaseSensitive(ev->obj, "source") &&
	     check_text(&c, "source", source, ES_EVENT_SOURCE_MAX)))
		return ES_EINVAL;
	stamp_plan p = {.n = 0};
	bool ok = make_plan(&p, ev, id_if_missing, source, time_ms, seq);
	if (ok && seq == 0)
		cJSON_DeleteItemFromObjectCaseSensitive(ev->obj, "sequence");
	for (size_t i = 0; i < p.n; i++) {
		if (!ok) {
			cJSON_Delete(p.item[i]);
			continue;
		}
		/* a constant key: attaching allocates nothing, so cannot fail */
		cJSON_DeleteItemFromObjectCaseSensitive(ev->obj, p.key[i]);
		cJSON_AddItemToObjectCS(ev->obj, p.key[i], p.item[i]);
	}
	return ok ? ES_OK : ES_ENOMEM;
}

/* ---- encoding and access ---- */

/* Contract in event.h. */
es_err es_event_encode_open(const es_event *ev, size_t max_bytes, char **json, size_t *len)
{
	char *s;
	size_t n;
	es_err err = es_event_encode(ev, max_bytes, &s, &n);
	if (err)
		return err;
	/* A printed object always ends with its closing brace. */
	s[--n] = '\0';
	*json = s;
	*len = n;
	return ES_OK;
}

/* Prints ev as compact JSON into a malloc'd *json of *len bytes (plus NUL).
 * Errors: ES_EINVAL, ES_ETOOBIG (over max_bytes, unless 0), ES_ENOMEM. */
es_err es_event_encode(const es_event *ev, size_t max_bytes, char **json, size_t *len)
{
	if (!ev || !json || !len)
		return ES_EINVAL;
	char *s = cJSON_PrintUnformatted(ev->obj);
	if (!s)
		return ES_ENOMEM;
	size_t n = strlen(s);
	if (max_bytes && n > max_bytes) {
		cJSON_free(s);
		return ES_ETOOBIG;
	}
	*json = s;
	*len = n;
	return ES_OK;
}

static const char *get_str(const es_event *ev, const char *key)
{
	if (!ev)
		return NULL;
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(ev->obj, key);
	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* The id attribute, or NULL. */
const char *es_event_id(const es_event *ev)
{
	return get_str(ev, "id");
}

/* The type attribute, or NULL. */
const char *es_event_type(const es_event *ev)
{
	return get_str(ev, "type");
}

/* The source attribute, or NULL. */
const char *es_event_source(const es_event *ev)
{
	return get_str(ev, "source");
}

/* The subject attribute, or NULL. */
const char *es_event_subject(const es_event *ev)
{
	return get_str(ev, "subject");
}

/* The time attribute as given, or NULL. */
const char *es_event_time(const es_event *ev)
{
	return get_str(ev, "time");
}

/* The sequence extension: 1..20 decimal digits within uint64_t, else 0. */
uint64_t es_event_seq(const es_event *ev)
{
	const char *s = get_str(ev, "sequence");
	uint64_t v = 0;
	if (!s || !*s)
		return 0;
	for (; *s; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	return v;
}

/* True when ev was given in the full CloudEvents form. */
bool es_event_is_full(const es_event *ev)
{
	return ev && ev->full;
}

/* Frees ev; NULL is a no-op. */
void es_event_free(es_event *ev)
{
	if (!ev)
		return;
	cJSON_Delete(ev->obj);
	free(ev);
}

/* Frees evs[0..n) and evs; NULL is a no-op. */
void es_event_free_array(es_event **evs, size_t n)
{
	if (!evs)
		return;
	for (size_t i = 0; i < n; i++)
		es_event_free(evs[i]);
	free(evs);
}
