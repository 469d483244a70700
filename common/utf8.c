/* utf8.c - strict UTF-8 validation (RFC 3629, table 3-7 of the Unicode
 * standard): each lead byte admits a narrower range for its second byte,
 * which is what rules out overlongs, surrogates and code points above
 * U+10FFFF. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

static bool in_range(unsigned char c, unsigned char lo, unsigned char hi)
{
	return c >= lo && c <= hi;
}

/* Length of the valid sequence starting at p (left bytes available), or 0
 * when it is invalid or truncated. */
static size_t seq_len(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n;
	if (c < 0x80)
		return 1;
	if (c < 0xC2)
		return 0; /* a stray continuation byte, or an overlong C0/C1 */
	if (c < 0xE0) {
		n = 2;
	} else if (c < 0xF0) {
		n = 3;
		lo = c == 0xE0 ? 0xA0 : 0x80; /* E0 80..9F would be overlong */
		hi = c == 0xED ? 0x9F : 0xBF; /* ED A0..BF would be a surrogate */
	} else if (c < 0xF5) {
		n = 4;
		lo = c == 0xF0 ? 0x90 : 0x80; /* F0 80..8F would be overlong */
		hi = c == 0xF4 ? 0x8F : 0xBF; /* F4 90.. would be > U+10FFFF */
	} else {
		return 0;
	}
	if (left < 2 || !in_range(p[1], lo, hi))
		return 0;
	for (size_t i = 2; i < n; i++)
		if (i >= left || !in_range(p[i], 0x80, 0xBF))
			return 0;
	return n;
}

/* Skips the run of ASCII at p[i..len), eight bytes at a time, since most of
 * what we check is ASCII JSON; returns the index after it. */
static size_t skip_ascii(const unsigned char *p, size_t i, size_t len)
{
	uint64_t w;
	while (len - i >= 8) {
		memcpy(&w, p + i, 8);
		if (w & 0x8080808080808080ull)
			break;
		i += 8;
	}
	while (i < len && p[i] < 0x80)
		i++;
	return i;
}

/* Validates s[0..len); see utf8.h. A NULL s is valid only when len is 0. */
bool es_utf8_valid(const char *s, size_t len, size_t *bad_at)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	if (!s && len) {
		if (bad_at)
			*bad_at = 0;
		return false;
	}
	while ((i = skip_ascii(p, i, len)) < len) {
		size_t n = seq_len(p + i, len - i);
		if (n == 0) {
			if (bad_at)
				*bad_at = i;
			return false;
		}
		i += n;
	}
	return true;
}
