/* lograte.h - at most a few lines a second for one kind of message.
 *
 * What comes from the network (a bad request, a forged event) is logged,
 * but a client that sends thousands a second must not grow the log at that
 * rate: a limiter lets `max` lines a second through and counts the rest, so
 * that the first line let through afterwards is preceded by one saying how
 * many were held back. A count is told when the next line of its kind comes.
 * Not thread-safe: one thread owns one limiter (a value, as es_backoff).
 */
#ifndef ES_LOGRATE_H
#define ES_LOGRATE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct es_lograte {
	uint32_t max;	 /* lines a second; 0: 10 */
	uint32_t lines;	 /* let through in the current second */
	uint64_t second; /* the current second (now_ms / 1000) */
	uint64_t held;	 /* lines held back since the last one let through */
} es_lograte;

/* True when a line may be written at now_ms (a monotonic clock); else
 * counts it held back. When a line may be written and lines were held back
 * before it, *held (if not NULL) gets how many (once), else 0. A NULL r
 * lets every line through. */
bool es_lograte_ok(es_lograte *r, uint64_t now_ms, uint64_t *held);

/* es_lograte_ok at the monotonic clock's now; when lines were held back,
 * first writes a warning under tag saying how many lines of `what` (a
 * plural noun: "re-send requests") were not logged. */
bool es_lograte_line(es_lograte *r, const char *tag, const char *what);

#endif
