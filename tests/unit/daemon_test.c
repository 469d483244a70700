/* daemon_test.c - the daemons' start-up (es_daemon_main_env) with a fake
 * service: the standard flags and their exit codes, the program's check and
 * one-shot command, and a run that a real SIGTERM, read through the loop,
 * drains and stops: make, start, shutdown, outcome and free in that order.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "settings_shared.h"

typedef struct tset {
	int64_t n;
	es_log_settings log;
} tset;

static const es_setting rows[] = {
	{"t.n", ES_CFG_INT, offsetof(tset, n), "1", 0, 100, NULL, 0, "a number"},
};
static const es_setting_edit quiet[] = {{"level", .def = "error"}};
static const es_settings_part parts[] = {
	ES_OWN_ROWS(rows),
	ES_SHARED_EDITED("log", offsetof(tset, log), es_log_rows, quiet),
};

/* What the fake service did, in order: one letter a call. */
static char calls[32];
static es_err make_err, start_err, outcome_err;
static int command_rc;

static void called(char c)
{
	size_t n = strlen(calls);
	if (n + 1 < sizeof calls)
		calls[n] = c;
}

struct svc {
	es_loop *loop;
};

static es_err svc_make(const void *s, es_loop *loop, void **out)
{
	called('m');
	assert_int_equal(((const tset *)s)->n, 1);
	if (make_err)
		return make_err;
	struct svc *v = calloc(1, sizeof *v);
	assert_non_null(v);
	v->loop = loop;
	*out = v;
	return ES_OK;
}

/* The signal is sent here, after the daemon blocked it: it waits, pending,
 * for the signalfd on the loop. */
static es_err svc_start(void *v)
{
	called('s');
	if (start_err)
		return start_err;
	assert_int_equal(kill(getpid(), SIGTERM), 0);
	return ES_OK;
}

static void svc_shutdown(void *v)
{
	struct svc *s = v;
	called('d');
	es_loop_stop(s->loop);
}

static void svc_free(void *v)
{
	called(v ? 'f' : '0');
	free(v);
}

static es_err svc_outcome(void *v)
{
	called('o');
	return outcome_err;
}

static bool check(const void *s, const void *arg, char *err, size_t cap)
{
	called('c');
	if (((const tset *)s)->n == 13) {
		snprintf(err, cap, "t.n: 13 is unlucky");
		return false;
	}
	return true;
}

static int command(const void *s, const void *arg)
{
	called('x');
	return command_rc;
}

static const es_daemon spec = {
	.name = "t-daemon",
	.version = "1.2.3",
	.usage = "usage: t-daemon [OPTIONS]",
	.parts = parts,
	.nparts = ES_NELEM(parts),
	.log = offsetof(tset, log),
	.check = check,
	.command = command,
	.ops = {svc_make, svc_start, svc_shutdown, svc_free, svc_outcome},
};

static int reset(void **state)
{
	memset(calls, 0, sizeof calls);
	make_err = start_err = outcome_err = ES_OK;
	command_rc = -1;
	return 0;
}

/* Runs the daemon with "t-daemon" + args; its stdout into out[0..cap). */
static int run(const char *const *args, char *out, size_t cap)
{
	char *argv[16] = {(char *)"t-daemon"};
	int argc = 1;
	for (; args && *args; args++)
		argv[argc++] = (char *)*args;
	tset s = {0};
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0 && dup2(fileno(tmp), STDOUT_FILENO) >= 0);
	int rc = es_daemon_main_env(&spec, &s, argc, argv, NULL);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	rewind(tmp);
	size_t n = fread(out, 1, cap - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return rc;
}

static void test_version(void **state)
{
	char out[256];
	const char *args[] = {"--version", "--t.n", "13", NULL};
	assert_int_equal(run(args, out, sizeof out), 0);
	assert_string_equal(out, "t-daemon 1.2.3\n");
	assert_string_equal(calls, ""); /* no check, no service */
}

static void test_help_and_reference(void **state)
{
	char out[4096];
	const char *help[] = {"--help", NULL};
	assert_int_equal(run(help, out, sizeof out), 0);
	assert_memory_equal(out, "usage: t-daemon [OPTIONS]\nOptions:\n", 35);
	assert_non_null(strstr(out, "--t.n N  (env ES_T_N)"));
	const char *ref[] = {"--print-reference", NULL};
	assert_int_equal(run(ref, out, sizeof out), 0);
	assert_non_null(strstr(out, "| `log.level` | `ES_LOG_LEVEL` |"));
	assert_string_equal(calls, "");
}

static void test_settings_errors_exit_2(void **state)
{
	char out[256];
	const char *bad[] = {"--t.n", "101", NULL};
	assert_int_equal(run(bad, out, sizeof out), 2);
	const char *unknown[] = {"--t.m", "1", NULL};
	assert_int_equal(run(unknown, out, sizeof out), 2);
	assert_string_equal(calls, "");
	const char *unlucky[] = {"--t.n", "13", "--print-config", NULL};
	assert_int_equal(run(unlucky, out, sizeof out), 2);
	assert_string_equal(calls, "c");
	assert_string_equal(out, "");
}

static void test_print_config(void **state)
{
	char out[512];
	const char *args[] = {"--print-config", "--t.n=7", NULL};
	assert_int_equal(run(args, out, sizeof out), 0);
	assert_string_equal(out, "[t]\n"
				 "n = 7  ; from --t.n\n"
				 "\n"
				 "[log]\n"
				 "level = error  ; default\n"
				 "syslog = false  ; default\n");
	assert_string_equal(calls, "c");
}

static void test_command_instead_of_service(void **state)
{
	char out[64];
	command_rc = 5;
	assert_int_equal(run(NULL, out, sizeof out), 5);
	assert_string_equal(calls, "cx");
}

static void test_signal_drains_and_stops(void **state)
{
	char out[64];
	assert_int_equal(run(NULL, out, sizeof out), 0);
	assert_string_equal(calls, "cxmsdof");
}

static void test_outcome_failure_exits_1(void **state)
{
	char out[64];
	outcome_err = ES_EIO;
	assert_int_equal(run(NULL, out, sizeof out), 1);
	assert_string_equal(calls, "cxmsdof");
}

static void test_make_failure_exits_1(void **state)
{
	char out[64];
	make_err = ES_EINVAL;
	assert_int_equal(run(NULL, out, sizeof out), 1);
	assert_string_equal(calls, "cxm0");
}

static void test_start_failure_exits_1(void **state)
{
	char out[64];
	start_err = ES_ESYS;
	assert_int_equal(run(NULL, out, sizeof out), 1);
	assert_string_equal(calls, "cxmsf");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_version, reset),
		cmocka_unit_test_setup(test_help_and_reference, reset),
		cmocka_unit_test_setup(test_settings_errors_exit_2, reset),
		cmocka_unit_test_setup(test_print_config, reset),
		cmocka_unit_test_setup(test_command_instead_of_service, reset),
		cmocka_unit_test_setup(test_signal_drains_and_stops, reset),
		cmocka_unit_test_setup(test_outcome_failure_exits_1, reset),
		cmocka_unit_test_setup(test_make_failure_exits_1, reset),
		cmocka_unit_test_setup(test_start_failure_exits_1, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
