/* log.h - levelled logging with stable tags, to stderr and optionally syslog.
 *
 * Library code never prints; it calls es_log with a tag naming the module
 * ("journal", "mqtt", ...). Tags are stable so operators can grep for them.
 *
 * The logger's settings are the one process-wide state of the library: they
 * are set once by main() through es_log_setup() before any thread starts and
 * only read afterwards. Each line is written with a single write(2), so lines
 * from different threads never interleave.
 */
#ifndef ES_LOG_H
#define ES_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum es_log_level {
	ES_LOG_ERROR = 0,
	ES_LOG_WARN,
	ES_LOG_INFO,
	ES_LOG_DEBUG,
} es_log_level;

/* Sets the threshold and whether lines also go to syslog under ident.
 * Call before starting threads. ident is not copied. */
void es_log_setup(es_log_level level, bool use_syslog, const char *ident);

/* Parses "error", "warn", "info", "debug"; returns false for anything else. */
bool es_log_level_parse(const char *s, es_log_level *out);

/* True when a message at level would be written. */
bool es_log_enabled(es_log_level level);

void es_log(es_log_level level, const char *tag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The newest warnings and errors, kept in memory for status pages. */
#define ES_LOG_RECENT 32
typedef struct es_log_entry {
	char time[32];
	es_log_level level;
	char tag[16];
	char message[240];
} es_log_entry;
/* Copies up to max of them into out, newest first; returns how many. Any
 * thread. */
size_t es_log_recent(es_log_entry *out, size_t max);

#define es_error(tag, ...) es_log(ES_LOG_ERROR, tag, __VA_ARGS__)
#define es_warn(tag, ...)  es_log(ES_LOG_WARN, tag, __VA_ARGS__)
#define es_info(tag, ...)  es_log(ES_LOG_INFO, tag, __VA_ARGS__)
#define es_debug(tag, ...)                                                                         \
	do {                                                                                       \
		if (es_log_enabled(ES_LOG_DEBUG))                                                  \
			es_log(ES_LOG_DEBUG, tag, __VA_ARGS__);                                    \
	} while (0)

#endif
