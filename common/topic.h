/* topic.h - MQTT topic names and filters, and edgespool's topic layout.
 *
 * Layout: <root>/<site>/<node>/<kind>[/<rest>], where kind is "ev" (events,
 * rest = event type), "status" (retained node status), "cmd" (commands to the
 * node, e.g. cmd/resend) or "reply" (the node's answers). root may have
 * several levels ("acme/edgespool"); site and node are one level each.
 *
 * Checks return NULL when the input is valid, otherwise a static string
 * saying why, for error messages.
 */
#ifndef ES_TOPIC_H
#define ES_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* The longest topic edgespool builds (MQTT allows 65535). */
#define ES_TOPIC_MAX 512
/* The longest site or node name. */
#define ES_TOPIC_ID_MAX	      64
#define ES_TOPIC_ROOT_DEFAULT "edgespool"

/* A topic name one may publish to: 1..65535 bytes, no '+', '#' or NUL. */
const char *es_topic_check_name(const char *topic, size_t len);
/* A topic filter one may subscribe to: '+' only as a whole level, '#' only
 * as the whole last level; 1..65535 bytes, no NUL. */
const char *es_topic_check_filter(const char *filter, size_t len);
/* A root: a valid topic name of at most 128 bytes without empty levels,
 * not starting with '$'. */
const char *es_topic_check_root(const char *root);
/* A site or node name: 1..ES_TOPIC_ID_MAX characters of [A-Za-z0-9._-]. */
const char *es_topic_check_id(const char *id);

/* True when topic matches filter (MQTT 3.1.1 section 4.7, including the rule
 * that a topic starting with '$' is not matched by a filter starting with a
 * wildcard). Both must already be valid. */
bool es_topic_match(const char *filter, const char *topic);

/* Writes "<root>/<site>/<node>/<kind>" and, when rest is not NULL,
 * "/<rest>" into buf. ES_EINVAL if a part is invalid (a NULL or empty part,
 * a rest that is not a valid name) and ES_ETOOBIG if the result, with its
 * NUL, does not fit in cap or exceeds ES_TOPIC_MAX. */
es_err es_topic_build(char *buf, size_t cap, const char *root, const char *site, const char *node,
		      const char *kind, const char *rest);

/* The parts of a topic in edgespool's layout; pointers into the caller's
 * buffer with lengths (not NUL-terminated). */
typedef struct es_topic_parts {
	const char *site, *node, *kind, *rest;
	size_t site_len, node_len, kind_len, rest_len; /* rest_len 0: none */
} es_topic_parts;

/* Splits topic, which must start with root + "/". ES_EINVAL if it does not
 * follow the layout. */
es_err es_topic_split(const char *topic, const char *root, es_topic_parts *out);

#endif
