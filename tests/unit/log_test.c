/* log_test.c - the logger: the line format, the threshold, truncation, one
 * write per line under threads, and the ring of recent warnings and errors.
 * stderr is pointed at a temporary file for the whole test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char path[] = "/tmp/es-log-test-XXXXXX";
static int saved_stderr = -1;

static int setup(void **state)
{
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	es_log_setup(ES_LOG_INFO, false, NULL);
	return 0;
}

/* Sets the threshold and points stderr (the descriptor es_log writes to)
 * at the emptied file, opened O_APPEND as a shell's 2>> would; cmocka's
 * own messages must not go there, so assertions come after end(). */
static void begin(es_log_level level)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_TRUNC);
	assert_true(fd >= 0);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
	es_log_setup(level, false, NULL);
}

/* stderr back, and what was written since begin (malloc'd). */
static char *end(void)
{
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = calloc(1, 1 << 20);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void format(void **state)
{
	regex_t re;
	begin(ES_LOG_INFO);
	es_info("journal", "opened %s with %d events", "a.db", 3);
	es_error("mqtt", "gone");
	char *out = end();
	assert_int_equal(
		regcomp(&re,
			"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
			"info  journal: opened a\\.db with 3 events\n"
			"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z error mqtt: gone\n$",
			REG_EXTENDED),
		0);
	assert_int_equal(regexec(&re, out, 0, NULL, 0), 0);
	regfree(&re);
	free(out);
}

static int calls;

static int count_call(void)
{
	return ++calls;
}

static void threshold(void **state)
{
	begin(ES_LOG_WARN);
	bool error = es_log_enabled(ES_LOG_ERROR), warn = es_log_enabled(ES_LOG_WARN);
	bool info = es_log_enabled(ES_LOG_INFO);
	es_info("t", "not written");
	es_warn("t", "written");
	calls = 0;
	es_debug("t", "%d", count_call());
	char *out = end();
	assert_true(error && warn && !info);
	/* es_debug does not even evaluate its arguments when disabled. */
	assert_int_equal(calls, 0);
	assert_null(strstr(out, "not written"));
	assert_non_null(strstr(out, "warn  t: written\n"));
	free(out);
	begin(ES_LOG_DEBUG);
	es_debug("t", "call %d", count_call());
	out = end();
	assert_int_equal(calls, 1);
	assert_non_null(strstr(out, "debug t: call 1\n"));
	free(out);
}

static void long_lines_are_cut_with_their_newline(void **state)
{
	char big[3000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	begin(ES_LOG_INFO);
	es_info("t", "%s", big);
	es_info("t", "next");
	char *out = end(), *nl = strchr(out, '\n');
	assert_non_null(nl);
	assert_int_equal(nl - out + 1, 1023); /* the 1 KiB line buffer, less its NUL */
	assert_int_equal(nl[-1], 'x');
	assert_non_null(strstr(nl + 1, "info  t: next\n"));
	free(out);
}

static void level_names(void **state)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	es_log_level l = ES_LOG_ERROR;
	for (int i = 0; i < 4; i++) {
		assert_true(es_log_level_parse(names[i], &l));
		assert_int_equal(l, i);
	}
	l = ES_LOG_INFO;
	assert_false(es_log_level_parse("warning", &l));
	assert_false(es_log_level_parse("INFO", &l));
	assert_false(es_log_level_parse("", &l));
	assert_int_equal(l, ES_LOG_INFO); /* untouched */
}

/* Only warnings and errors are kept, newest first, the newest 32; fields are
 * cut to fit; max bounds the copy; what is below the threshold is not kept
 * either. */
static void recent(void **state)
{
	es_log_entry e[ES_LOG_RECENT + 4], two[2], one;
	char longmsg[400];
	memset(longmsg, 'm', sizeof longmsg - 1);
	longmsg[sizeof longmsg - 1] = '\0';
	begin(ES_LOG_INFO);
	for (int i = 0; i < ES_LOG_RECENT + 5; i++)
		es_warn("ring", "warning %d", i);
	es_info("ring", "info is not kept");
	es_error("a-tag-longer-than-fifteen", "the end");
	size_t n = es_log_recent(e, ES_LOG_RECENT + 4), n2 = es_log_recent(two, 2);
	es_error("t", "%s", longmsg);
	es_log_setup(ES_LOG_ERROR, false, NULL);
	es_warn("ring", "below the threshold");
	size_t n1 = es_log_recent(&one, 1);
	free(end());
	assert_int_equal(n, ES_LOG_RECENT);
	assert_int_equal(e[0].level, ES_LOG_ERROR);
	assert_string_equal(e[0].tag, "a-tag-longer-th"); /* 15 bytes and the NUL */
	assert_string_equal(e[0].message, "the end");
	assert_int_equal(e[0].time[4], '-');
	assert_int_equal(e[1].level, ES_LOG_WARN);
	assert_string_equal(e[1].message, "warning 36");
	assert_string_equal(e[ES_LOG_RECENT - 1].message, "warning 6");
	assert_int_equal(n2, 2);
	assert_string_equal(two[1].message, "warning 36");
	assert_int_equal(n1, 1);
	assert_string_equal(one.tag, "t");
	assert_int_equal(strlen(one.message), sizeof one.message - 1);
}

#define THREADS 4
#define LINES	500
#define PADDING "padding padding padding padding padding padding padding padding"

static void *writer(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < LINES; i++)
		es_info("thread", "writer %ld line %d " PADDING, id, i);
	return NULL;
}

/* Lines from threads never interleave: each is whole, and all are there. */
static void one_write_per_line(void **state)
{
	pthread_t t[THREADS];
	size_t lines = 0, whole = 0;
	begin(ES_LOG_INFO);
	for (long i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, writer, (void *)i) != 0)
			t[i] = 0;
	for (int i = 0; i < THREADS; i++)
		if (t[i])
			pthread_join(t[i], NULL);
	char *out = end(), *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *body = strstr(line, "Z info  thread: writer ");
		long id;
		int i, at = 0;
		lines++;
		if (body &&
		    sscanf(body, "Z info  thread: writer %ld line %d %n", &id, &i, &at) == 2 &&
		    at && strcmp(body + at, PADDING) == 0 && body - line == 23)
			whole++;
	}
	assert_int_equal(lines, THREADS * LINES);
	assert_int_equal(whole, THREADS * LINES);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(format),
		cmocka_unit_test(threshold),
		cmocka_unit_test(long_lines_are_cut_with_their_newline),
		cmocka_unit_test(level_names),
		cmocka_unit_test(recent),
		cmocka_unit_test(one_write_per_line),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
