/* clock.h - wall and monotonic time in milliseconds, RFC 3339 text.
 *
 * Wall time (CLOCK_REALTIME) stamps events; it can jump. Monotonic time
 * (CLOCK_MONOTONIC) measures intervals and deadlines; it never jumps.
 */
#ifndef ES_CLOCK_H
#define ES_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of "2026-11-27T10:00:00.123Z" plus the NUL. */
#define ES_TIME_STR 25

uint64_t es_clock_wall_ms(void);
uint64_t es_clock_mono_ms(void);

/* True when the kernel reports the wall clock synchronised (adjtimex). */
bool es_clock_synced(void);

/* Writes ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out. */
void es_time_format(uint64_t ms, char out[ES_TIME_STR]);

/* Parses an RFC 3339 date-time ("2026-11-27T10:00:00Z", with optional
 * fraction of any length and a "Z" or "+hh:mm" offset; 'T'/'t' and 'Z'/'z'
 * both accepted). Fractions beyond milliseconds are truncated. Returns false
 * for anything else, including dates before 1970 and invalid days
 * ("2026-02-30"). Writes *ms only on success. */
bool es_time_parse(const char *s, uint64_t *ms);

#endif
