#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Set once by es_log_setup() before threads start; read-only afterwards. */
static es_log_level threshold = ES_LOG_INFO;
static bool to_syslog;

static const char *const names[] = {"error", "warn", "info", "debug"};

/* The newest warnings and errors, for the nodes' status pages: the one other
 * piece of process-wide state, guarded by recent_lock. */
static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;
static es_log_entry recent[ES_LOG_RECENT];
static size_t recent_next, recent_count;

static void remember(const char *ts, es_log_level level, const char *tag, const char *msg)
{
	pthread_mutex_lock(&recent_lock);
	es_log_entry *e = &recent[recent_next];
	snprintf(e->time, sizeof e->time, "%s", ts);
	snprintf(e->tag, sizeof e->tag, "%s", tag);
	snprintf(e->message, sizeof e->message, "%s", msg);
	e->level = level;
	recent_next = (recent_next + 1) % ES_LOG_RECENT;
	if (recent_count < ES_LOG_RECENT)
		recent_count++;
	pthread_mutex_unlock(&recent_lock);
}

size_t es_log_recent(es_log_entry *out, size_t max)
{
	pthread_mutex_lock(&recent_lock);
	size_t n = recent_count < max ? recent_count : max;
	for (size_t i = 0; i < n; i++)
		out[i] = recent[(recent_next + ES_LOG_RECENT - 1 - i) % ES_LOG_RECENT];
	pthread_mutex_unlock(&recent_lock);
	return n;
}

void es_log_setup(es_log_level level, bool use_syslog, const char *ident)
{
	threshold = level;
	to_syslog = use_syslog;
	if (use_syslog)
		openlog(ident ? ident : "edgespool", LOG_PID, LOG_DAEMON);
}

bool es_log_level_parse(const char *s, es_log_level *out)
{
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (es_log_level)i;
			return true;
		}
	}
	return false;
}

bool es_log_enabled(es_log_level level)
{
	return level <= threshold;
}

static int syslog_priority(es_log_level level)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	return prio[level];
}

/* "2026-11-27T10:00:00.123Z" into buf (at least 25 bytes). */
static void stamp(char *buf, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void es_log(es_log_level level, const char *tag, const char *fmt, ...)
{
	if (level > threshold)
		return;
	char line[1024], ts[32];
	stamp(ts, sizeof ts);
	int head = snprintf(line, sizeof line, "%s %-5s %s: ", ts, names[level], tag);
	va_list ap;
	va_start(ap, fmt);
	int body = vsnprintf(line + head, sizeof line - (size_t)head, fmt, ap);
	va_end(ap);
	size_t len = (size_t)head + (body < 0 ? 0 : (size_t)body);
	if (len > sizeof line - 2)
		len = sizeof line - 2; /* truncated: keep the newline */
	if (level <= ES_LOG_WARN) {
		line[len] = '\0';
		remember(ts, level, tag, line + head);
	}
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0) {
		/* stderr is gone; nothing better to do */
	}
	if (to_syslog)
		syslog(syslog_priority(level), "%s: %.*s", tag, (int)(len - 1 - (size_t)head),
		       line + head);
}
