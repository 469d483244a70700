/* remap.h - the cloud topic of a forwarded event, from a template.
 *
 * A template is a topic name with placeholders {root}, {site}, {node} and
 * {type}: "fleet/{site}/{node}/{type}" maps edgespool/site-1/gw-7/ev/temp to
 * fleet/site-1/gw-7/temp. The default, "{root}/{site}/{node}/ev/{type}",
 * keeps the edge topic. Templates are checked when the bridge starts: an
 * unknown placeholder, a wildcard, an empty level or an unclosed brace is an
 * error that says where.
 */
#ifndef BRIDGE_REMAP_H
#define BRIDGE_REMAP_H

#include <stddef.h>

#include "err.h"
#include "topic.h"

#define BRIDGE_REMAP_DEFAULT "{root}/{site}/{node}/ev/{type}"

typedef struct bridge_remap bridge_remap;

/* Parses tmpl. On ES_EINVAL, why[0..cap) says what is wrong and where. */
es_err bridge_remap_new(const char *tmpl, bridge_remap **out, char *why, size_t cap);
void bridge_remap_free(bridge_remap *r);

/* Writes the cloud topic for an event whose edge topic split into p (with
 * the given root) into buf. ES_ETOOBIG if it does not fit or exceeds
 * ES_TOPIC_MAX, ES_EINVAL if the result is not a valid topic name. */
es_err bridge_remap_apply(const bridge_remap *r, const char *root, const es_topic_parts *p,
			  char *buf, size_t cap);

#endif
