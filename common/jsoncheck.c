#include "jsoncheck.h"

#include <string.h>

/* At a backslash inside a string: true when it starts "\u0000". */
static bool escaped_nul(const char *p, const char *end)
{
	return end - p >= 6 && memcmp(p, "\\u0000", 6) == 0;
}

bool es_json_check(const char *text, size_t len, int max_depth, size_t *at, const char **why)
{
	const char *p = text, *end = text + len;
	int depth = 0;
	bool in_string = false;
	for (; p < end; p++) {
		if (in_string) {
			if (*p == '"') {
				in_string = false;
			} else if (*p == '\\') {
				if (escaped_nul(p, end)) {
					*at = (size_t)(p - text);
					*why = "\\u0000 (NUL) in a string";
					return false;
				}
				p++; /* skip the escaped character, '"' or '\\' included */
			}
		} else if (*p == '"') {
			in_string = true;
		} else if (*p == '[' || *p == '{') {
			if (++depth > max_depth) {
				*at = (size_t)(p - text);
				*why = "nested too deeply";
				return false;
			}
		} else if (*p == ']' || *p == '}') {
			depth--;
		}
	}
	return true;
}
