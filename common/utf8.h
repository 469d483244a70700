/* utf8.h - strict UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF). */
#ifndef ES_UTF8_H
#define ES_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is valid UTF-8. On false, *bad_at (if not NULL) gets
 * the offset of the first byte of the invalid sequence. NUL bytes are valid
 * UTF-8; callers that forbid them check separately. */
bool es_utf8_valid(const char *s, size_t len, size_t *bad_at);

#endif
