/* topic.c - MQTT 3.1.1 topic names and filters (section 4.7) and
 * edgespool's topic layout <root>/<site>/<node>/<kind>[/<rest>].
 *
 * Pure functions on caller-owned strings: no allocation, no state.
 */
#include "topic.h"

#include <string.h>

#include "utf8.h"

/* MQTT's UTF-8 strings carry a two-byte length. */
#define MQTT_STR_MAX 65535
#define ROOT_MAX     128

/* The checks every topic string shares: length, NUL, UTF-8 (section 1.5.3:
 * a receiver closes the connection on ill-formed UTF-8, so we refuse it
 * before it reaches a broker). */
static const char *check_string(const char *s, size_t len)
{
	if (!s)
		return "missing";
	if (len == 0)
		return "empty";
	if (len > MQTT_STR_MAX)
		return "longer than 65535 bytes";
	if (memchr(s, '\0', len))
		return "contains a NUL character";
	if (!es_utf8_valid(s, len, NULL))
		return "not valid UTF-8";
	return NULL;
}

/* Contract in topic.h. */
const char *es_topic_check_name(const char *topic, size_t len)
{
	const char *why = check_string(topic, len);
	if (why)
		return why;
	if (memchr(topic, '+', len) || memchr(topic, '#', len))
		return "a topic name may not contain the wildcards '+' or '#'";
	return NULL;
}

/* True when s[i] is alone in its level of s[0..len). */
static bool whole_level(const char *s, size_t len, size_t i)
{
	bool starts = i == 0 || s[i - 1] == '/';
	bool ends = i + 1 == len || s[i + 1] == '/';
	return starts && ends;
}

/* Contract in topic.h. */
const char *es_topic_check_filter(const char *filter, size_t len)
{
	const char *why = check_string(filter, len);
	if (why)
		return why;
	for (size_t i = 0; i < len; i++) {
		if (filter[i] == '+' && !whole_level(filter, len, i))
			return "'+' must occupy a whole level";
		if (filter[i] == '#' && !whole_level(filter, len, i))
			return "'#' must occupy a whole level";
		if (filter[i] == '#' && i + 1 != len)
			return "'#' must be the last level";
	}
	return NULL;
}

/* Contract in topic.h. */
const char *es_topic_check_root(const char *root)
{
	if (!root)
		return "missing";
	size_t len = strlen(root);
	if (len > ROOT_MAX)
		return "longer than 128 bytes";
	const char *why = es_topic_check_name(root, len);
	if (why)
		return why;
	if (root[0] == '$')
		return "may not start with '$' (reserved for the broker)";
	if (root[0] == '/' || root[len - 1] == '/' || strstr(root, "//"))
		return "may not have empty levels";
	return NULL;
}

static bool id_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/* The id check on s[0..len), which need not be NUL-terminated. */
static const char *check_id_n(const char *s, size_t len)
{
	if (len == 0)
		return "empty";
	if (len > ES_TOPIC_ID_MAX)
		return "longer than 64 characters";
	for (size_t i = 0; i < len; i++) {
		if (!id_char(s[i]))
			return "may contain only A-Z, a-z, 0-9, '.', '_' and '-'";
	}
	return NULL;
}

/* Contract in topic.h. */
const char *es_topic_check_id(const char *id)
{
	if (!id)
		return "missing";
	return check_id_n(id, strnlen(id, ES_TOPIC_ID_MAX + 1));
}

/* The length of the level starting at s. */
static size_t level_len(const char *s)
{
	return strcspn(s, "/");
}

/* Matches level by level. On a filter level "#" the rest matches, including
 * the parent level ("sport/#" matches "sport"), which is why running out of
 * topic levels still matches when exactly "#" is left of the filter. */
static bool match_levels(const char *f, const char *t)
{
	for (;;) {
		size_t fl = level_len(f), tl = level_len(t);
		if (fl == 1 && f[0] == '#')
			return true;
		if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
			return false;
		if (f[fl] == '\0')
			return t[tl] == '\0';
		if (t[tl] == '\0')
			return strcmp(f + fl + 1, "#") == 0;
		f += fl + 1;
		t += tl + 1;
	}
}

/* Contract in topic.h. */
bool es_topic_match(const char *filter, const char *topic)
{
	if (!filter || !topic)
		return false;
	/* Section 4.7.2: wildcards at the start never match '$' topics. */
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return false;
	return match_levels(filter, topic);
}

/* Validates every part of a topic to build; rest may be NULL. */
static bool parts_valid(const char *root, const char *site, const char *node, const char *kind,
			const char *rest)
{
	if (es_topic_check_root(root) || es_topic_check_id(site) || es_topic_check_id(node) ||
	    es_topic_check_id(kind))
		return false;
	return !rest || !es_topic_check_name(rest, strlen(rest));
}

/* Contract in topic.h. */
es_err es_topic_build(char *buf, size_t cap, const char *root, const char *site, const char *node,
		      const char *kind, const char *rest)
{
	if (!buf || !parts_valid(root, site, node, kind, rest))
		return ES_EINVAL;
	const char *part[] = {root, site, node, kind, rest};
	size_t n = rest ? 5 : 4, len[5], total = 0;
	for (size_t i = 0; i < n; i++) {
		len[i] = strlen(part[i]);
		total += len[i] + 1; /* the '/' after it, or the final NUL */
	}
	if (total > cap || total > ES_TOPIC_MAX)
		return ES_ETOOBIG;
	char *p = buf;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, part[i], len[i]);
		p += len[i];
		*p++ = i + 1 < n ? '/' : '\0';
	}
	return ES_OK;
}

/* Takes the next one-level id from *s into (*id, *len) and steps past its
 * '/'; false if it is not a valid id or nothing follows it. */
static bool take_id(const char **s, const char **id, size_t *len)
{
	size_t n = level_len(*s);
	if (check_id_n(*s, n) || (*s)[n] != '/')
		return false;
	*id = *s;
	*len = n;
	*s += n + 1;
	return true;
}

/* Contract in topic.h. */
es_err es_topic_split(const char *topic, const char *root, es_topic_parts *out)
{
	if (!topic || !out || es_topic_check_root(root) ||
	    es_topic_check_name(topic, strlen(topic)))
		return ES_EINVAL;
	size_t rl = strlen(root);
	if (strncmp(topic, root, rl) != 0 || topic[rl] != '/')
		return ES_EINVAL;
	es_topic_parts p = {0};
	const char *s = topic + rl + 1;
	if (!take_id(&s, &p.site, &p.site_len) || !take_id(&s, &p.node, &p.node_len))
		return ES_EINVAL;
	p.kind = s;
	p.kind_len = level_len(s);
	if (check_id_n(s, p.kind_len))
		return ES_EINVAL;
	if (s[p.kind_len] == '/') {
		p.rest = s + p.kind_len + 1;
		p.rest_len = strlen(p.rest);
		if (p.rest_len == 0)
			return ES_EINVAL;
	}
	*out = p;
	return ES_OK;
}
