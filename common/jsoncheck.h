/* jsoncheck.h - what cJSON does not check, checked before it parses.
 *
 * cJSON parses recursively up to 1000 levels deep: on a civetweb worker's
 * small stack, a body of 1,000 '[' overflows it. And it decodes "\u0000"
 * inside a string, then cuts the string there, so the stored value would
 * differ from the one sent. This scan runs in one pass over the text,
 * outside strings counts nesting, inside strings looks for escaped NULs.
 */
#ifndef ES_JSONCHECK_H
#define ES_JSONCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* The deepest nesting of arrays and objects edgespool accepts. */
#define ES_JSON_MAX_DEPTH 64

/* True when text[0..len) nests at most max_depth levels and has no escaped
 * NUL in a string. On false, *at gets the byte offset and *why a static
 * reason. Syntax is not checked here (cJSON does that). */
bool es_json_check(const char *text, size_t len, int max_depth, size_t *at, const char **why);

#endif
