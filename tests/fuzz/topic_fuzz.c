/* topic_fuzz.c - libFuzzer target for MQTT topic checks and edgespool's
 * topic layout.
 *
 * The input is split at '\n' into up to five strings: root, site, node,
 * kind and rest (kept with their lengths, NULs included, for the checks
 * that take a length). Every check runs on every part; the invariants:
 *  - a valid topic name is a valid filter, and matches itself;
 *  - a topic built from valid parts splits back into those parts;
 *  - a topic that splits builds back from its parts to the same text
 *    (or is too long to build, never invalid);
 *  - "#" matches every valid name not starting with '$'.
 * Any difference abort()s; the sanitizers catch the rest. Built by
 * tests/fuzz/run_fuzz.sh, and with replay_main.c by CMake. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"

#define PARTS	 5
#define PART_MAX 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct part {
	char s[PART_MAX + 1];
	size_t len; /* bytes taken from the input, NULs included */
} part;

/* Splits data at '\n' into p[0..PARTS); returns how many were found. */
static size_t split_input(const uint8_t *data, size_t size, part *p)
{
	size_t n = 0, at = 0;
	while (n < PARTS && at <= size) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		size_t len = nl ? (size_t)(nl - (data + at)) : size - at;
		p[n].len = len > PART_MAX ? PART_MAX : len;
		memcpy(p[n].s, data + at, p[n].len);
		p[n].s[p[n].len] = '\0';
		n++;
		at += len + 1;
	}
	return n;
}

static bool same_part(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && memcmp(a, b, alen) == 0;
}

/* The checks on one string, and what must follow from them. */
static void check_one(const part *p)
{
	(void)es_topic_check_id(p->s);
	(void)es_topic_check_root(p->s);
	bool name = es_topic_check_name(p->s, p->len) == NULL;
	bool filter = es_topic_check_filter(p->s, p->len) == NULL;
	if (name && !filter)
		abort();
	if (name && !es_topic_match(p->s, p->s))
		abort();
	if (name && p->s[0] != '$' && !es_topic_match("#", p->s))
		abort();
	if (strlen(p->s) == p->len && es_topic_check_root(p->s) == NULL && !name)
		abort();
}

/* Built from p[0..4] (rest when p[4] is given), the topic splits back. */
static void build_split(const part *p, bool with_rest)
{
	char topic[ES_TOPIC_MAX];
	es_topic_parts tp;
	const char *rest = with_rest ? p[4].s : NULL;
	if (es_topic_build(topic, sizeof topic, p[0].s, p[1].s, p[2].s, p[3].s, rest) != ES_OK)
		return;
	if (es_topic_check_name(topic, strlen(topic)) != NULL)
		abort();
	if (es_topic_split(topic, p[0].s, &tp) != ES_OK)
		abort();
	if (!same_part(tp.site, tp.site_len, p[1].s) || !same_part(tp.node, tp.node_len, p[2].s) ||
	    !same_part(tp.kind, tp.kind_len, p[3].s))
		abort();
	if (with_rest ? !same_part(tp.rest, tp.rest_len, rest) : tp.rest != NULL)
		abort();
}

static char *copy_n(const char *s, size_t len)
{
	char *c = malloc(len + 1);
	if (!c)
		abort();
	memcpy(c, s, len);
	c[len] = '\0';
	return c;
}

/* A topic that splits under root builds back to itself. */
static void split_build(const char *topic, const char *root)
{
	es_topic_parts tp;
	char again[ES_TOPIC_MAX];
	if (es_topic_split(topic, root, &tp) != ES_OK)
		return;
	char *site = copy_n(tp.site, tp.site_len), *node = copy_n(tp.node, tp.node_len);
	char *kind = copy_n(tp.kind, tp.kind_len);
	char *rest = tp.rest ? copy_n(tp.rest, tp.rest_len) : NULL;
	es_err err = es_topic_build(again, sizeof again, root, site, node, kind, rest);
	if (err == ES_EINVAL || (err == ES_OK && strcmp(again, topic) != 0))
		abort();
	free(site);
	free(node);
	free(kind);
	free(rest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static part p[PARTS];
	size_t n = split_input(data, size, p);
	for (size_t i = n; i < PARTS; i++) {
		p[i].s[0] = '\0';
		p[i].len = 0;
	}
	for (size_t i = 0; i < n; i++)
		check_one(&p[i]);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			if (!es_topic_check_filter(p[i].s, p[i].len) &&
			    !es_topic_check_name(p[j].s, p[j].len))
				(void)es_topic_match(p[i].s, p[j].s);
	build_split(p, false);
	build_split(p, true);
	for (size_t i = 1; i < n; i++)
		split_build(p[i].s, p[0].s);
	return 0;
}
