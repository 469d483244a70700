#include "remap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum part_kind { LIT, ROOT, SITE, NODE, TYPE };

struct part {
	enum part_kind kind;
	const char *text; /* LIT: into tmpl */
	size_t len;
};

struct bridge_remap {
	char *tmpl;
	struct part *parts;
	size_t n;
};

static const struct {
	const char *name;
	enum part_kind kind;
} names[] = {{"{root}", ROOT}, {"{site}", SITE}, {"{node}", NODE}, {"{type}", TYPE}};

/* The placeholder at p, or LIT if none is known there. *len gets its length. */
static enum part_kind placeholder(const char *p, size_t *len)
{
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		size_t n = strlen(names[i].name);
		if (strncmp(p, names[i].name, n) == 0) {
			*len = n;
			return names[i].kind;
		}
	}
	return LIT;
}

static es_err parse(bridge_remap *r, char *why, size_t cap)
{
	const char *p = r->tmpl;
	while (*p) {
		size_t len;
		enum part_kind k = *p == '{' ? placeholder(p, &len) : LIT;
		if (*p == '{' && k == LIT) {
			snprintf(why, cap,
				 "unknown placeholder at position %zu (use {root}, {site}, "
				 "{node}, {type})",
				 (size_t)(p - r->tmpl));
			return ES_EINVAL;
		}
		if (k == LIT)
			len = strcspn(p + 1, "{") + 1;
		const char *brace = k == LIT ? memchr(p, '}', len) : NULL;
		if (brace) {
			snprintf(why, cap, "'}' without its '{' at position %zu",
				 (size_t)(brace - r->tmpl));
			return ES_EINVAL;
		}
		r->parts[r->n++] = (struct part){.kind = k, .text = p, .len = len};
		p += len;
	}
	return ES_OK;
}

/* Every placeholder expands to a valid level; check the literal frame with
 * sample values. */
static es_err check(const bridge_remap *r, char *why, size_t cap)
{
	char buf[ES_TOPIC_MAX];
	es_topic_parts sample = {.site = "site",
				 .site_len = 4,
				 .node = "node",
				 .node_len = 4,
				 .kind = "ev",
				 .kind_len = 2,
				 .rest = "type",
				 .rest_len = 4};

	es_err err = bridge_remap_apply(r, "root", &sample, buf, sizeof buf);
	if (err)
		snprintf(why, cap,
			 "does not make a valid topic name (no '+', '#', empty levels "
			 "or a leading '$')");
	return err;
}

es_err bridge_remap_new(const char *tmpl, bridge_remap **out, char *why, size_t cap)
{
	if (!tmpl || !*tmpl) {
		snprintf(why, cap, "is empty");
		return ES_EINVAL;
	}
	bridge_remap *r = calloc(1, sizeof *r);
	if (!r || !(r->tmpl = strdup(tmpl)) ||
	    !(r->parts = calloc(strlen(tmpl), sizeof *r->parts))) {
		bridge_remap_free(r);
		return ES_ENOMEM;
	}
	es_err err = parse(r, why, cap);
	if (!err)
		err = check(r, why, cap);
	if (err) {
		bridge_remap_free(r);
		return err;
	}
	*out = r;
	return ES_OK;
}

void bridge_remap_free(bridge_remap *r)
{
	if (!r)
		return;
	free(r->parts);
	free(r->tmpl);
	free(r);
}

static bool put(char *buf, size_t cap, size_t *at, const char *s, size_t n)
{
	if (*at + n >= cap)
		return false;
	if (n)
		memcpy(buf + *at, s, n);
	*at += n;
	return true;
}

es_err bridge_remap_apply(const bridge_remap *r, const char *root, const es_topic_parts *p,
			  char *buf, size_t cap)
{
	size_t at = 0;
	bool ok = true;
	for (size_t i = 0; ok && i < r->n; i++) {
		const struct part *x = &r->parts[i];
		switch (x->kind) {
		case LIT:
			ok = put(buf, cap, &at, x->text, x->len);
			break;
		case ROOT:
			ok = put(buf, cap, &at, root, strlen(root));
			break;
		case SITE:
			ok = put(buf, cap, &at, p->site, p->site_len);
			break;
		case NODE:
			ok = put(buf, cap, &at, p->node, p->node_len);
			break;
		case TYPE:
			ok = put(buf, cap, &at, p->rest, p->rest_len);
			break;
		}
	}
	if (!ok || at >= ES_TOPIC_MAX)
		return ES_ETOOBIG;
	buf[at] = '\0';
	if (es_topic_check_name(buf, at) || strstr(buf, "//") || buf[0] == '/' || buf[0] == '$' ||
	    buf[at - 1] == '/')
		return ES_EINVAL;
	return ES_OK;
}
