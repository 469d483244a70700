/* config_test.c - the settings table: defaults, file, environment, flags,
 * their precedence, every type's parser, errors with their origin, printing
 * and help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

typedef struct settings {
	char *url;
	char *cafile;
	int64_t inflight;
	int64_t offset;
	bool tls;
	int level;
	uint64_t cap;
	int64_t retention;
	int64_t timeout;
	es_strlist peers;
} settings;

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

#define OFF(f) offsetof(settings, f)
static const es_setting table[] = {
	{"mqtt.url", ES_CFG_STR, OFF(url), "tcp://localhost:1883", 0, 0, NULL, 0, "Broker URL."},
	{"mqtt.cafile", ES_CFG_STR, OFF(cafile), NULL, 0, 0, NULL, ES_CFG_PATH, "CA bundle."},
	{"mqtt.inflight", ES_CFG_INT, OFF(inflight), "10", 1, 1000, NULL, 0, "Unacked publishes."},
	{"test.offset", ES_CFG_INT, OFF(offset), "0", 0, 0, NULL, 0, "Unbounded."},
	{"mqtt.tls", ES_CFG_BOOL, OFF(tls), "false", 0, 0, NULL, 0, "Use TLS."},
	{"log.level", ES_CFG_ENUM, OFF(level), "info", 0, 0, levels, 0, "Log threshold."},
	{"journal.cap", ES_CFG_SIZE, OFF(cap), "64MiB", 1024, INT64_C(1) << 40, NULL, 0,
	 "Journal cap."},
	{"journal.retention", ES_CFG_SECONDS, OFF(retention), "7d", 0, 0, NULL, 0, "Keep acked."},
	{"mqtt.timeout", ES_CFG_MS, OFF(timeout), "2s", 1, 60000, NULL, 0, "Publish timeout."},
	{"bridge.peers", ES_CFG_LIST, OFF(peers), "a, b", 0, 0, NULL, 0, "Edge brokers."},
};
#define NROWS (sizeof table / sizeof table[0])

typedef struct fixture {
	settings s;
	es_config *c;
	char path[64]; /* a temporary INI file, "" if none */
	char err[512];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f || es_config_new(table, NROWS, &f->s, &f->c) != ES_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	es_config_free(f->c);
	if (f->path[0])
		unlink(f->path);
	free(f);
	return 0;
}

/* Writes text to a new temporary file named in f->path. */
static void write_ini(fixture *f, const char *text)
{
	strcpy(f->path, "/tmp/es_config_test_XXXXXX");
	int fd = mkstemp(f->path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

/* Loads a fresh config (es_config_load is called once per config) with
 * argv = "prog" + args (NULL-terminated) and env (NULL-terminated or NULL). */
static es_err load(fixture *f, const char *const *args, const char *const *env)
{
	es_config_free(f->c);
	f->c = NULL;
	assert_int_equal(es_config_new(table, NROWS, &f->s, &f->c), ES_OK);
	char *argv[32] = {(char *)"prog"};
	int argc = 1;
	for (; args && *args; args++)
		argv[argc++] = (char *)*args;
	return es_config_load(f->c, argc, argv, (char *const *)env, f->err, sizeof f->err);
}

/* The expected error text, with the temporary path put in for %s. */
static const char *with_path(const fixture *f, const char *fmt, int line)
{
	static char buf[512];
	snprintf(buf, sizeof buf, "%s:%d: %s", f->path, line, fmt);
	return buf;
}

static char *print_to_string(const es_config *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_non_null(out);
	es_config_print(c, out);
	fclose(out);
	return text;
}

static void assert_contains(const char *text, const char *want)
{
	if (!strstr(text, want))
		fail_msg("'%s' not found in:\n%s", want, text);
}

static void test_defaults(void **state)
{
	fixture *f = *state;
	assert_string_equal(f->s.url, "tcp://localhost:1883");
	assert_null(f->s.cafile);
	assert_int_equal(f->s.inflight, 10);
	assert_false(f->s.tls);
	assert_int_equal(f->s.level, 2);
	assert_int_equal(f->s.cap, 64 * 1024 * 1024);
	assert_int_equal(f->s.retention, 7 * 86400);
	assert_int_equal(f->s.timeout, 2000);
	assert_int_equal(f->s.peers.n, 2);
	assert_string_equal(f->s.peers.v[0], "a");
	assert_string_equal(f->s.peers.v[1], "b");
	assert_int_equal(load(f, NULL, NULL), ES_OK);
	assert_int_equal(es_config_mode(f->c), ES_CFG_RUN);
	assert_int_equal(f->s.inflight, 10);
}

static void test_file_every_type(void **state)
{
	fixture *f = *state;
	write_ini(f, "; a comment\n"
		     "[mqtt]\n"
		     "url = ssl://broker:8883\n"
		     "cafile = /etc/ssl/ca.pem\n"
		     "inflight = 32\n"
		     "tls = yes\n"
		     "timeout = 1m ; inline comment\n"
		     "\n"
		     "[log]\n"
		     "level = debug\n"
		     "[journal]\n"
		     "cap = 1GB\n"
		     "retention = 2h\n"
		     "[test]\n"
		     "offset = -9223372036854775808\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_OK);
	assert_string_equal(f->s.url, "ssl://broker:8883");
	assert_string_equal(f->s.cafile, "/etc/ssl/ca.pem");
	assert_int_equal(f->s.inflight, 32);
	assert_true(f->s.tls);
	assert_int_equal(f->s.timeout, 60000);
	assert_int_equal(f->s.level, 3);
	assert_int_equal(f->s.cap, 1000000000);
	assert_int_equal(f->s.retention, 7200);
	assert_true(f->s.offset == INT64_MIN);
}

static void test_precedence(void **state)
{
	fixture *f = *state;
	write_ini(f, "[mqtt]\ninflight = 20\nurl = tcp://file\ntimeout = 3s\n");
	char cfg[96];
	snprintf(cfg, sizeof cfg, "ES_CONFIG=%s", f->path);
	const char *env[] = {cfg, "HOME=/root", "ES_MQTT_INFLIGHT=30", "ES_MQTT_TIMEOUT=4s", NULL};
	const char *args[] = {"--mqtt.timeout", "5s", NULL};
	assert_int_equal(load(f, args, env), ES_OK);
	assert_string_equal(f->s.url, "tcp://file"); /* file only */
	assert_int_equal(f->s.inflight, 30);	     /* env beats file */
	assert_int_equal(f->s.timeout, 5000);	     /* flag beats env and file */
	assert_int_equal(f->s.level, 2);	     /* default */
}

static void test_config_flag_beats_es_config(void **state)
{
	fixture *f = *state;
	write_ini(f, "[mqtt]\ninflight = 21\n");
	const char *env[] = {"ES_CONFIG=/nonexistent/es.ini", NULL};
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, env), ES_OK);
	assert_int_equal(f->s.inflight, 21);
}

static void test_config_missing(void **state)
{
	fixture *f = *state;
	const char *args[] = {"--config=/nonexistent/es.ini", NULL};
	assert_int_equal(load(f, args, NULL), ES_ENOTFOUND);
	assert_contains(f->err, "/nonexistent/es.ini");
}

static void test_es_config_missing(void **state)
{
	fixture *f = *state;
	const char *env[] = {"ES_CONFIG=/nonexistent/es.ini", NULL};
	assert_int_equal(load(f, NULL, env), ES_ENOTFOUND);
}

static void test_config_flag_needs_value(void **state)
{
	fixture *f = *state;
	const char *args[] = {"--config", NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_string_equal(f->err, "--config: needs a file name");
}

static void test_file_range_error_line(void **state)
{
	fixture *f = *state;
	write_ini(f, "[mqtt]\nurl = x\n\ninflight = 0\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_string_equal(f->err, with_path(f, "mqtt.inflight: 0 is below the minimum 1", 4));
}

static void test_file_unknown_key(void **state)
{
	fixture *f = *state;
	write_ini(f, "[mqtt]\n# comment\nbogus = 1\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_string_equal(f->err, with_path(f, "mqtt.bogus: unknown setting", 3));
}

static void test_file_unknown_section(void **state)
{
	fixture *f = *state;
	write_ini(f, "[mqtt]\nurl = x\n[nope]\nurl = y\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_string_equal(f->err, with_path(f, "nope.url: unknown setting", 4));
}

static void test_file_key_outside_section(void **state)
{
	fixture *f = *state;
	write_ini(f, "\nurl = x\n[mqtt]\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_string_equal(f->err, with_path(f, "url: key outside a section", 2));
}

static void test_file_syntax_error(void **state)
{
	fixture *f = *state;
	/* The syntax error (line 2) comes before a bad value (line 4). */
	write_ini(f, "[mqtt]\njust words\n[log]\nlevel = loud\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_string_equal(f->err, with_path(f, "expected '[section]' or 'key = value'", 2));
}

static void test_file_first_error_wins(void **state)
{
	fixture *f = *state;
	/* The bad value (line 2) comes before the syntax error (line 3). */
	write_ini(f, "[log]\nlevel = loud\n[mqtt\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_string_equal(
		f->err,
		with_path(f, "log.level: 'loud' is not one of: error, warn, info, debug", 2));
}

static void test_file_first_of_two_bad_values(void **state)
{
	fixture *f = *state;
	write_ini(f, "[mqtt]\ninflight = 0\ntls = maybe\nbogus = 1\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_string_equal(f->err, with_path(f, "mqtt.inflight: 0 is below the minimum 1", 2));
}

static void test_file_scalar_twice(void **state)
{
	fixture *f = *state;
	write_ini(f, "[mqtt]\ninflight = 5\ninflight = 6\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_contains(f->err, with_path(f, "mqtt.inflight: set again (first on line 2", 3));
}

static void test_file_long_line(void **state)
{
	fixture *f = *state;
	char text[1200];
	snprintf(text, sizeof text, "[mqtt]\nurl = %01000d\n[log]\nlevel = debug\n", 7);
	write_ini(f, text);
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_contains(f->err, with_path(f, "line longer than", 2));
}

static void test_env_error(void **state)
{
	fixture *f = *state;
	const char *env[] = {"ES_MQTT_INFLIGHT=0", NULL};
	assert_int_equal(load(f, NULL, env), ES_EINVAL);
	assert_string_equal(f->err, "environment ES_MQTT_INFLIGHT: 0 is below the minimum 1");
	assert_int_equal(f->s.inflight, 10); /* untouched */
}

static void test_env_unknown_is_not_an_error(void **state)
{
	fixture *f = *state;
	const char *env[] = {"ES_NOT_OURS=1", "ES_MQTT_TLS=on", "PATH=/bin", NULL};
	assert_int_equal(load(f, NULL, env), ES_OK);
	assert_true(f->s.tls);
}

static void test_env_empty_unsets_string(void **state)
{
	fixture *f = *state;
	const char *env[] = {"ES_MQTT_URL=", NULL};
	assert_int_equal(load(f, NULL, env), ES_OK);
	assert_null(f->s.url);
}

static void test_flag_errors(void **state)
{
	fixture *f = *state;
	const char *unknown[] = {"--mqtt.bogus=1", NULL};
	assert_int_equal(load(f, unknown, NULL), ES_EINVAL);
	assert_string_equal(f->err, "unknown option '--mqtt.bogus'");
	const char *single[] = {"-x", NULL};
	assert_int_equal(load(f, single, NULL), ES_EINVAL);
	assert_string_equal(f->err, "unknown option '-x'");
	const char *positional[] = {"stray", NULL};
	assert_int_equal(load(f, positional, NULL), ES_EINVAL);
	assert_string_equal(f->err, "unexpected argument 'stray'");
	const char *novalue[] = {"--mqtt.url", NULL};
	assert_int_equal(load(f, novalue, NULL), ES_EINVAL);
	assert_string_equal(f->err, "--mqtt.url: needs a value");
	const char *range[] = {"--mqtt.inflight=1001", NULL};
	assert_int_equal(load(f, range, NULL), ES_EINVAL);
	assert_string_equal(f->err, "--mqtt.inflight: 1001 is above the maximum 1000");
}

static void test_range_in_units(void **state)
{
	fixture *f = *state;
	const char *ms[] = {"--mqtt.timeout", "61s", NULL};
	assert_int_equal(load(f, ms, NULL), ES_EINVAL);
	assert_string_equal(f->err, "--mqtt.timeout: 61s is above the maximum 1m");
	assert_int_equal(es_config_set(f->c, "journal.cap", "1000", f->err, sizeof f->err),
			 ES_EINVAL);
	assert_string_equal(f->err, "--journal.cap: 1000 is below the minimum 1KiB");
	assert_int_equal(es_config_set(f->c, "journal.cap", "2000GiB", f->err, sizeof f->err),
			 ES_EINVAL);
	assert_string_equal(f->err, "--journal.cap: 2000GiB is above the maximum 1024GiB");
	assert_int_equal(
		es_config_set(f->c, "journal.cap", "18446744073709551615", f->err, sizeof f->err),
		ES_EINVAL);
	assert_contains(f->err, "above the maximum");
	assert_int_equal(f->s.cap, 64 * 1024 * 1024);
	assert_int_equal(es_config_set(f->c, "journal.cap", "1024GiB", f->err, sizeof f->err),
			 ES_OK);
	assert_int_equal(f->s.cap, UINT64_C(1) << 40);
}

typedef struct bad_value {
	const char *name, *value, *err;
} bad_value;

static void test_bad_text(void **state)
{
	fixture *f = *state;
	static const bad_value bad[] = {
		{"journal.cap", "12XB", "'12XB' is not a size (e.g. 65536, 64KiB, 16MiB, 1GB)"},
		{"journal.cap", "1.5GiB", "'1.5GiB' is not a size"},
		{"journal.cap", "-1", "'-1' is not a size"},
		{"journal.cap", "", "'' is not a size"},
		{"journal.cap", "18446744073709551616", "'18446744073709551616' is too large"},
		{"journal.cap", "17179869184GiB", "'17179869184GiB' is too large"},
		{"journal.retention", "5x", "'5x' is not a duration in seconds"},
		{"journal.retention", "1w", "'1w' is not a duration in seconds"},
		{"journal.retention", "106751991167301d", "'106751991167301d' is too large"},
		{"mqtt.timeout", "1h", "'1h' is not a duration in ms"},
		{"mqtt.timeout", "ms", "'ms' is not a duration in ms"},
		{"mqtt.tls", "maybe", "'maybe' is not a boolean"},
		{"log.level", "loud", "'loud' is not one of: error, warn, info, debug"},
		{"mqtt.inflight", "12a", "'12a' is not an integer"},
		{"mqtt.inflight", " 12", "' 12' is not an integer"},
		{"test.offset", "9223372036854775808", "'9223372036854775808' is too large"},
		{"test.offset", "-9223372036854775809", "'-9223372036854775809' is too large"},
		{"test.offset", "99999999999999999999999", "is too large"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		settings before = f->s;
		if (es_config_set(f->c, bad[i].name, bad[i].value, f->err, sizeof f->err) !=
		    ES_EINVAL)
			fail_msg("%s = '%s' accepted", bad[i].name, bad[i].value);
		assert_contains(f->err, bad[i].err);
		assert_memory_equal(&before, &f->s, sizeof before);
	}
}

static void test_set(void **state)
{
	fixture *f = *state;
	assert_int_equal(es_config_set(f->c, "mqtt.url", "tcp://set", f->err, sizeof f->err),
			 ES_OK);
	assert_string_equal(f->s.url, "tcp://set");
	assert_int_equal(es_config_set(f->c, "log.level", "WARN", f->err, sizeof f->err), ES_OK);
	assert_int_equal(f->s.level, 1);
	assert_int_equal(es_config_set(f->c, "test.offset", "+42", f->err, sizeof f->err), ES_OK);
	assert_int_equal(f->s.offset, 42);
	assert_int_equal(es_config_set(f->c, "no.such", "1", f->err, sizeof f->err), ES_EINVAL);
	assert_string_equal(f->err, "unknown setting 'no.such'");
	assert_int_equal(es_config_set(f->c, "mqtt.url", NULL, f->err, sizeof f->err), ES_EINVAL);
	assert_int_equal(es_config_set(NULL, "mqtt.url", "x", f->err, sizeof f->err), ES_EINVAL);
}

static void test_bool_flags(void **state)
{
	fixture *f = *state;
	const char *bare[] = {"--mqtt.tls", "--mqtt.inflight", "5", NULL};
	assert_int_equal(load(f, bare, NULL), ES_OK);
	assert_true(f->s.tls);
	assert_int_equal(f->s.inflight, 5);
}

static void test_bool_flag_takes_bool_value(void **state)
{
	fixture *f = *state;
	const char *args[] = {"--mqtt.tls", "on", "--mqtt.tls", "off", NULL};
	assert_int_equal(load(f, args, NULL), ES_OK);
	assert_false(f->s.tls);
}

static void test_bool_flag_last(void **state)
{
	fixture *f = *state;
	const char *args[] = {"--mqtt.tls=yes", "--mqtt.tls", NULL};
	assert_int_equal(load(f, args, NULL), ES_OK);
	assert_true(f->s.tls);
	/* A bare BOOL does not eat an argument that is not a bool. */
	const char *stray[] = {"--mqtt.tls", "stray", NULL};
	assert_int_equal(load(f, stray, NULL), ES_EINVAL);
	assert_string_equal(f->err, "unexpected argument 'stray'");
}

static void test_list_append_and_replace(void **state)
{
	fixture *f = *state;
	write_ini(f, "[bridge]\npeers = tcp://e1:1883\npeers = tcp://e2:1883, x\n");
	const char *args[] = {"--config", f->path, NULL};
	assert_int_equal(load(f, args, NULL), ES_OK);
	assert_int_equal(f->s.peers.n, 2); /* the file replaced the default */
	assert_string_equal(f->s.peers.v[0], "tcp://e1:1883");
	assert_string_equal(f->s.peers.v[1], "tcp://e2:1883, x"); /* one element a line */
	char *text = print_to_string(f->c);
	char first[128];
	snprintf(first, sizeof first, "peers = tcp://e1:1883  ; from %s:2\n", f->path);
	assert_contains(text, first);
	char want[128];
	snprintf(want, sizeof want, "peers = tcp://e2:1883, x  ; from %s:3\n", f->path);
	assert_contains(text, want);
	free(text);
}

static void test_list_env_replaces_file(void **state)
{
	fixture *f = *state;
	write_ini(f, "[bridge]\npeers = one\npeers = two\n");
	const char *args[] = {"--config", f->path, NULL};
	const char *env[] = {"ES_BRIDGE_PEERS= p , q,, ", NULL};
	assert_int_equal(load(f, args, env), ES_OK);
	assert_int_equal(f->s.peers.n, 2);
	assert_string_equal(f->s.peers.v[0], "p");
	assert_string_equal(f->s.peers.v[1], "q");
	assert_int_equal(es_config_set(f->c, "bridge.peers", "z", f->err, sizeof f->err), ES_OK);
	assert_int_equal(f->s.peers.n, 1);
	assert_string_equal(f->s.peers.v[0], "z");
	assert_int_equal(es_config_set(f->c, "bridge.peers", "", f->err, sizeof f->err), ES_OK);
	assert_int_equal(f->s.peers.n, 0);
}

/* A list flag repeated on the command line appends (the first replaces
 * what the file said); es_config_set still replaces. */
static void test_list_flags_repeat_append(void **state)
{
	fixture *f = *state;
	write_ini(f, "[bridge]\npeers = one\n");
	const char *args[] = {"--config",	  f->path, "--bridge.peers", "a, b",
			      "--bridge.peers=c", NULL};
	assert_int_equal(load(f, args, NULL), ES_OK);
	assert_int_equal(f->s.peers.n, 3);
	assert_string_equal(f->s.peers.v[0], "a");
	assert_string_equal(f->s.peers.v[1], "b");
	assert_string_equal(f->s.peers.v[2], "c");
	assert_int_equal(es_config_set(f->c, "bridge.peers", "z", f->err, sizeof f->err), ES_OK);
	assert_int_equal(f->s.peers.n, 1);
}

static void test_print_sources(void **state)
{
	fixture *f = *state;
	write_ini(f, "[mqtt]\n\ninflight = 20\n");
	const char *args[] = {"--config", f->path, "--print-config", "--mqtt.tls", NULL};
	const char *env[] = {"ES_MQTT_TIMEOUT=5s", NULL};
	assert_int_equal(load(f, args, env), ES_OK);
	assert_int_equal(es_config_mode(f->c), ES_CFG_PRINT);
	char *text = print_to_string(f->c);
	assert_contains(text, "[mqtt]\nurl = tcp://localhost:1883  ; default\n");
	assert_contains(text, "cafile =  ; default\n");
	char want[128];
	snprintf(want, sizeof want, "inflight = 20  ; from %s:3\n", f->path);
	assert_contains(text, want);
	assert_contains(text, "timeout = 5s  ; from ES_MQTT_TIMEOUT\n");
	assert_contains(text, "tls = true  ; from --mqtt.tls\n");
	assert_contains(text, "[log]\nlevel = info  ; default\n");
	assert_contains(text, "[journal]\ncap = 64MiB  ; default\nretention = 7d  ; default\n");
	assert_contains(text, "[bridge]\npeers = a  ; default\npeers = b  ; default\n");
	/* mqtt.timeout comes after journal.* in the table but prints under [mqtt]. */
	assert_true(strstr(text, "timeout =") < strstr(text, "[log]"));
	free(text);
}

/* What --print-config writes reads back as the same settings. */
static void test_print_round_trip(void **state)
{
	fixture *f = *state;
	const char *args[] = {"--mqtt.url",	"tcp://x:1",	  "--journal.cap",
			      "3000",		"--bridge.peers", "p1,p2",
			      "--mqtt.timeout", "1500",		  NULL};
	assert_int_equal(load(f, args, NULL), ES_OK);
	char *text = print_to_string(f->c);
	write_ini(f, text);
	free(text);
	settings s2;
	es_config *c2;
	assert_int_equal(es_config_new(table, NROWS, &s2, &c2), ES_OK);
	char *argv[] = {(char *)"prog", (char *)"--config", f->path, NULL};
	assert_int_equal(es_config_load(c2, 3, argv, NULL, f->err, sizeof f->err), ES_OK);
	assert_string_equal(s2.url, "tcp://x:1");
	assert_int_equal(s2.cap, 3000);
	assert_int_equal(s2.timeout, 1500);
	assert_int_equal(s2.peers.n, 2);
	assert_string_equal(s2.peers.v[1], "p2");
	assert_null(s2.cafile);
	es_config_free(c2);
}

static void test_modes(void **state)
{
	fixture *f = *state;
	const char *help[] = {"--print-config", "-h", "--version", NULL};
	assert_int_equal(load(f, help, NULL), ES_OK);
	assert_int_equal(es_config_mode(f->c), ES_CFG_HELP);
}

static void test_version_mode(void **state)
{
	fixture *f = *state;
	/* --version needs neither the file nor the environment. */
	const char *args[] = {"--version", "--config", "/nonexistent/es.ini", NULL};
	const char *env[] = {"ES_MQTT_INFLIGHT=0", NULL};
	assert_int_equal(load(f, args, env), ES_OK);
	assert_int_equal(es_config_mode(f->c), ES_CFG_VERSION);
}

static void test_help(void **state)
{
	fixture *f = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_non_null(out);
	es_config_help(f->c, out, "usage: prog [OPTIONS]\n");
	fclose(out);
	static const char head[] = "usage: prog [OPTIONS]\n\nOptions:\n";
	assert_true(strncmp(text, head, sizeof head - 1) == 0);
	assert_contains(text, "--print-reference");
	assert_contains(text, "--print-config");
	assert_contains(text, "--mqtt.inflight N  (env ES_MQTT_INFLIGHT)\n");
	assert_contains(text, "Unacked publishes.\n");
	assert_contains(text, "integer, 1..1000; default: 10\n");
	assert_contains(text, "--mqtt.cafile FILE  (env ES_MQTT_CAFILE)\n");
	assert_contains(text, "file path; no default\n");
	assert_contains(text, "one of error, warn, info, debug; default: info\n");
	assert_contains(text, "1KiB..1024GiB; default: 64MiB\n");
	assert_contains(text, "--mqtt.tls [BOOL]");
	assert_contains(text, "--bridge.peers A,B,...");
	free(text);
}

static void test_reference(void **state)
{
	fixture *f = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_non_null(out);
	es_config_reference(f->c, out);
	fclose(out);
	static const char head[] = "| setting | environment | type | default | meaning |\n";
	assert_true(strncmp(text, head, sizeof head - 1) == 0);
	assert_contains(text, "| `mqtt.inflight` | `ES_MQTT_INFLIGHT` | integer, 1..1000 | `10` |");
	free(text);
}

static void test_free_resets_target(void **state)
{
	fixture *f = *state;
	assert_non_null(f->s.url);
	es_config_free(f->c);
	f->c = NULL;
	assert_null(f->s.url);
	assert_null(f->s.peers.v);
	assert_int_equal(f->s.peers.n, 0);
	es_config_free(NULL);
}

/* ---- required settings ---------------------------------------------- */

typedef struct req_settings {
	char *site;
	es_strlist topics;
	int64_t port;
} req_settings;

static const es_setting req_table[] = {
	{"node.site", ES_CFG_STR, offsetof(req_settings, site), NULL, 0, 0, NULL, ES_CFG_REQUIRED,
	 "Site id."},
	{"node.topics", ES_CFG_LIST, offsetof(req_settings, topics), "t", 0, 0, NULL,
	 ES_CFG_REQUIRED, "Topics."},
	{"node.port", ES_CFG_INT, offsetof(req_settings, port), NULL, 1, 65535, NULL,
	 ES_CFG_REQUIRED, "Port."},
};

static es_err req_load(req_settings *s, int argc, const char *const *args, const char *const *env,
		       char *err, size_t cap)
{
	es_config *c;
	if (es_config_new(req_table, 3, s, &c) != ES_OK)
		return ES_ENOMEM;
	char *argv[16] = {(char *)"prog"};
	for (int k = 1; k < argc; k++)
		argv[k] = (char *)args[k - 1];
	es_err rc = es_config_load(c, argc, argv, (char *const *)env, err, cap);
	es_config_free(c);
	return rc;
}

static void test_required(void **state)
{
	(void)state;
	req_settings s;
	char err[256];
	const char *port[] = {"--node.port", "8080"};
	assert_int_equal(req_load(&s, 3, port, NULL, err, sizeof err), ES_EINVAL);
	assert_string_equal(
		err, "node.site is required (set it in the file, ES_NODE_SITE or --node.site)");
	const char *env[] = {"ES_NODE_SITE=s1", NULL};
	assert_int_equal(req_load(&s, 1, NULL, env, err, sizeof err), ES_EINVAL);
	assert_string_equal(
		err, "node.port is required (set it in the file, ES_NODE_PORT or --node.port)");
	assert_int_equal(req_load(&s, 3, port, env, err, sizeof err), ES_OK);
	const char *empty[] = {"--node.port", "1", "--node.topics="};
	assert_int_equal(req_load(&s, 4, empty, env, err, sizeof err), ES_EINVAL);
	assert_string_equal(
		err,
		"node.topics is required (set it in the file, ES_NODE_TOPICS or --node.topics)");
	const char *help[] = {"--help"};
	assert_int_equal(req_load(&s, 2, help, NULL, err, sizeof err), ES_OK);
}

/* ---- the table itself and arguments ------------------------------- */

static void test_bad_tables(void **state)
{
	(void)state;
	settings s;
	es_config *c = (es_config *)&s; /* must stay untouched */
	static const es_setting no_dot[] = {{"url", ES_CFG_STR, 0, NULL, 0, 0, NULL, 0, ""}};
	static const es_setting upper[] = {{"mqtt.URL", ES_CFG_STR, 0, NULL, 0, 0, NULL, 0, ""}};
	static const es_setting no_choices[] = {
		{"log.level", ES_CFG_ENUM, 0, NULL, 0, 0, NULL, 0, ""}};
	static const es_setting min_max[] = {
		{"a.b", ES_CFG_INT, OFF(inflight), NULL, 5, 1, NULL, 0, ""}};
	static const es_setting bad_default[] = {
		{"a.b", ES_CFG_INT, OFF(inflight), "ten", 0, 0, NULL, 0, ""}};
	static const es_setting twice[] = {
		{"a.b", ES_CFG_INT, OFF(inflight), NULL, 0, 0, NULL, 0, ""},
		{"a.b", ES_CFG_INT, OFF(offset), NULL, 0, 0, NULL, 0, ""}};
	es_config *before = c;
	assert_int_equal(es_config_new(no_dot, 1, &s, &c), ES_EINVAL);
	assert_int_equal(es_config_new(upper, 1, &s, &c), ES_EINVAL);
	assert_int_equal(es_config_new(no_choices, 1, &s, &c), ES_EINVAL);
	assert_int_equal(es_config_new(min_max, 1, &s, &c), ES_EINVAL);
	assert_int_equal(es_config_new(bad_default, 1, &s, &c), ES_EINVAL);
	assert_int_equal(es_config_new(twice, 2, &s, &c), ES_EINVAL);
	assert_int_equal(es_config_new(NULL, 0, &s, &c), ES_EINVAL);
	assert_ptr_equal(c, before);
}

static void test_load_bad_args(void **state)
{
	fixture *f = *state;
	assert_int_equal(es_config_load(NULL, 0, NULL, NULL, f->err, sizeof f->err), ES_EINVAL);
	assert_int_equal(es_config_load(f->c, 2, NULL, NULL, f->err, sizeof f->err), ES_EINVAL);
	assert_int_equal(es_config_load(f->c, -1, NULL, NULL, NULL, 0), ES_EINVAL);
}

/* ---- the shared parsers ------------------------------------------- */

typedef struct size_case {
	const char *text;
	uint64_t bytes;
} size_case;

static void test_parse_size(void **state)
{
	(void)state;
	static const size_case ok[] = {
		{"0", 0},
		{"65536", 65536},
		{"10B", 10},
		{"64k", 65536},
		{"64K", 65536},
		{"64KiB", 65536},
		{"64 KiB", 65536},
		{"1KB", 1000},
		{"1kB", 1000},
		{"16M", 16 << 20},
		{"16MiB", 16 << 20},
		{"1MB", 1000000},
		{"1G", UINT64_C(1) << 30},
		{"1GiB", UINT64_C(1) << 30},
		{"1GB", 1000000000},
		{"18446744073709551615", UINT64_MAX},
		{"17179869183GiB", (UINT64_C(17179869183)) << 30},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		uint64_t v = 1;
		if (!es_cfg_parse_size(ok[i].text, &v) || v != ok[i].bytes)
			fail_msg("'%s' gave %llu", ok[i].text, (unsigned long long)v);
	}
	static const char *const bad[] = {
		"",
		"K",
		"1.5K",
		"-1",
		"+1",
		"1KiBB",
		"1 k b",
		"0x10",
		"1kib",
		"1T",
		" 1",
		"18446744073709551616",
		"17179869184GiB",
		"1 ",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint64_t v = 7;
		if (es_cfg_parse_size(bad[i], &v))
			fail_msg("'%s' accepted", bad[i]);
		assert_int_equal(v, 7);
	}
	assert_false(es_cfg_parse_size(NULL, NULL));
}

static void test_parse_seconds(void **state)
{
	(void)state;
	int64_t v = 0;
	assert_true(es_cfg_parse_seconds("30", &v) && v == 30);
	assert_true(es_cfg_parse_seconds("30s", &v) && v == 30);
	assert_true(es_cfg_parse_seconds("15m", &v) && v == 900);
	assert_true(es_cfg_parse_seconds("2h", &v) && v == 7200);
	assert_true(es_cfg_parse_seconds("7d", &v) && v == 604800);
	assert_true(es_cfg_parse_seconds("9223372036854775807", &v) && v == INT64_MAX);
	v = 5;
	assert_false(es_cfg_parse_seconds("9223372036854775808", &v));
	assert_false(es_cfg_parse_seconds("106751991167301d", &v));
	assert_false(es_cfg_parse_seconds("1w", &v));
	assert_false(es_cfg_parse_seconds("1ms", &v));
	assert_false(es_cfg_parse_seconds("-1s", &v));
	assert_false(es_cfg_parse_seconds("s", &v));
	assert_false(es_cfg_parse_seconds("", &v));
	assert_int_equal(v, 5);
}

static void test_parse_ms(void **state)
{
	(void)state;
	int64_t v = 0;
	assert_true(es_cfg_parse_ms("250", &v) && v == 250);
	assert_true(es_cfg_parse_ms("250ms", &v) && v == 250);
	assert_true(es_cfg_parse_ms("2s", &v) && v == 2000);
	assert_true(es_cfg_parse_ms("1m", &v) && v == 60000);
	v = 5;
	assert_false(es_cfg_parse_ms("1h", &v));
	assert_false(es_cfg_parse_ms("1.5s", &v));
	assert_false(es_cfg_parse_ms("153722867280913m", &v));
	assert_false(es_cfg_parse_ms("250 msec", &v));
	assert_int_equal(v, 5);
}

static void test_parse_bool(void **state)
{
	(void)state;
	static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes"};
	static const char *const no[] = {"false", "no", "off", "0", "OFF"};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		bool b = false;
		assert_true(es_cfg_parse_bool(yes[i], &b));
		assert_true(b);
	}
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		bool b = true;
		assert_true(es_cfg_parse_bool(no[i], &b));
		assert_false(b);
	}
	bool b = true;
	assert_false(es_cfg_parse_bool("2", &b));
	assert_false(es_cfg_parse_bool("", &b));
	assert_false(es_cfg_parse_bool("yess", &b));
	assert_false(es_cfg_parse_bool(NULL, &b));
	assert_true(b);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_defaults),
		T(test_file_every_type),
		T(test_precedence),
		T(test_config_flag_beats_es_config),
		T(test_config_missing),
		T(test_es_config_missing),
		T(test_config_flag_needs_value),
		T(test_file_range_error_line),
		T(test_file_unknown_key),
		T(test_file_unknown_section),
		T(test_file_key_outside_section),
		T(test_file_syntax_error),
		T(test_file_first_error_wins),
		T(test_file_first_of_two_bad_values),
		T(test_file_scalar_twice),
		T(test_file_long_line),
		T(test_env_error),
		T(test_env_unknown_is_not_an_error),
		T(test_env_empty_unsets_string),
		T(test_flag_errors),
		T(test_range_in_units),
		T(test_bad_text),
		T(test_set),
		T(test_bool_flags),
		T(test_bool_flag_takes_bool_value),
		T(test_bool_flag_last),
		T(test_list_append_and_replace),
		T(test_list_env_replaces_file),
		T(test_list_flags_repeat_append),
		T(test_print_sources),
		T(test_print_round_trip),
		T(test_modes),
		T(test_version_mode),
		T(test_help),
		T(test_reference),
		T(test_free_resets_target),
		T(test_load_bad_args),
		cmocka_unit_test(test_required),
		cmocka_unit_test(test_bad_tables),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_seconds),
		cmocka_unit_test(test_parse_ms),
		cmocka_unit_test(test_parse_bool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
