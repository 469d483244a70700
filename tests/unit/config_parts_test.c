/* config_parts_test.c - a table made of parts (es_config_new_parts): shared
 * rows under a section at the offset of their struct, the program's edits
 * (default, help, hidden), hidden rows that no source reaches and nothing
 * shows, and the tables that are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

/* A concern declared once, as common/ would: keys without a section. */
typedef struct conn {
	char *host;
	int64_t port;
	bool tls;
} conn;

static const es_setting conn_rows[] = {
	{"host", ES_CFG_STR, offsetof(conn, host), "localhost", 0, 0, NULL, 0, "the host"},
	{"port", ES_CFG_INT, offsetof(conn, port), "1883", 1, 65535, NULL, 0, "the port"},
	{"tls", ES_CFG_BOOL, offsetof(conn, tls), "true", 0, 0, NULL, 0, "use TLS"},
};

/* A program with two of them and rows of its own between. */
typedef struct prog {
	char *name;
	conn up, down;
	int64_t depth;
} prog;

static const es_setting name_rows[] = {
	{"node.name", ES_CFG_STR, offsetof(prog, name), "n1", 0, 0, NULL, 0, "the name"},
};
static const es_setting depth_rows[] = {
	{"down.depth", ES_CFG_INT, offsetof(prog, depth), "3", 0, 9, NULL, 0, "how deep"},
};
static const es_setting_edit down_edits[] = {
	{"host", .def = "down.example", .help = "the host below"},
	{"tls", .hide = true},
};

static const es_settings_part parts[] = {
	ES_OWN_ROWS(name_rows),
	ES_SHARED("up", offsetof(prog, up), conn_rows),
	ES_SHARED_EDITED("down", offsetof(prog, down), conn_rows, down_edits),
	ES_OWN_ROWS(depth_rows),
};

typedef struct fixture {
	prog p;
	es_config *c;
	char err[256];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f || es_config_new_parts(parts, ES_NELEM(parts), &f->p, &f->c) != ES_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	es_config_free(f->c);
	free(f);
	return 0;
}

static es_err load(fixture *f, const char *const *args, const char *const *env)
{
	char *argv[16] = {(char *)"prog"};
	int argc = 1;
	for (; args && *args; args++)
		argv[argc++] = (char *)*args;
	return es_config_load(f->c, argc, argv, (char *const *)env, f->err, sizeof f->err);
}

/* What fn writes for the config, as a string (the caller frees it). */
static char *output(const es_config *c, void (*fn)(const es_config *, FILE *))
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_non_null(out);
	fn(c, out);
	fclose(out);
	return text;
}

static void help(const es_config *c, FILE *out)
{
	es_config_help(c, out, NULL);
}

static void test_defaults_land_in_each_struct(void **state)
{
	fixture *f = *state;
	assert_string_equal(f->p.name, "n1");
	assert_string_equal(f->p.up.host, "localhost");
	assert_int_equal(f->p.up.port, 1883);
	assert_true(f->p.up.tls);
	assert_string_equal(f->p.down.host, "down.example"); /* the program's default */
	assert_int_equal(f->p.down.port, 1883);
	assert_true(f->p.down.tls); /* hidden: its default all the same */
	assert_int_equal(f->p.depth, 3);
}

static void test_sources_reach_the_sections(void **state)
{
	fixture *f = *state;
	const char *args[] = {"--up.port", "8883", "--down.host=db", NULL};
	const char *env[] = {"ES_DOWN_PORT=1", "ES_UP_TLS=off", NULL};
	assert_int_equal(load(f, args, env), ES_OK);
	assert_int_equal(f->p.up.port, 8883);
	assert_false(f->p.up.tls);
	assert_string_equal(f->p.down.host, "db");
	assert_int_equal(f->p.down.port, 1);
	assert_string_equal(f->p.up.host, "localhost");
}

static void test_range_error_names_the_section(void **state)
{
	fixture *f = *state;
	const char *args[] = {"--down.port", "0", NULL};
	assert_int_equal(load(f, args, NULL), ES_EINVAL);
	assert_string_equal(f->err, "--down.port: 0 is below the minimum 1");
}

static void test_hidden_is_no_setting(void **state)
{
	fixture *f = *state;
	const char *flag[] = {"--down.tls", "false", NULL};
	assert_int_equal(load(f, flag, NULL), ES_EINVAL);
	assert_string_equal(f->err, "unknown option '--down.tls'");
	assert_int_equal(es_config_set(f->c, "down.tls", "false", f->err, sizeof f->err),
			 ES_EINVAL);
	assert_true(f->p.down.tls);
}

static void test_hidden_ignored_in_environment(void **state)
{
	fixture *f = *state;
	const char *env[] = {"ES_DOWN_TLS=false", NULL};
	assert_int_equal(load(f, NULL, env), ES_OK); /* unknown variables are warnings */
	assert_true(f->p.down.tls);
}

static void test_shown_as_one_table(void **state)
{
	fixture *f = *state;
	char *ref = output(f->c, es_config_reference);
	assert_string_equal(
		ref, "| setting | environment | type | default | meaning |\n"
		     "|---|---|---|---|---|\n"
		     "| `node.name` | `ES_NODE_NAME` | text | `n1` | the name |\n"
		     "| `up.host` | `ES_UP_HOST` | text | `localhost` | the host |\n"
		     "| `up.port` | `ES_UP_PORT` | integer, 1..65535 | `1883` | the port |\n"
		     "| `up.tls` | `ES_UP_TLS` | boolean (true/false, yes/no, on/off, "
		     "1/0) | `true` | use TLS |\n"
		     "| `down.host` | `ES_DOWN_HOST` | text | `down.example` | the host "
		     "below |\n"
		     "| `down.port` | `ES_DOWN_PORT` | integer, 1..65535 | `1883` | the "
		     "port |\n"
		     "| `down.depth` | `ES_DOWN_DEPTH` | integer, 0..9 | `3` | how deep |\n");
	free(ref);
}

static void test_printed_by_section(void **state)
{
	fixture *f = *state;
	char *text = output(f->c, es_config_print);
	assert_string_equal(text, "[node]\n"
				  "name = n1  ; default\n"
				  "\n"
				  "[up]\n"
				  "host = localhost  ; default\n"
				  "port = 1883  ; default\n"
				  "tls = true  ; default\n"
				  "\n"
				  "[down]\n"
				  "host = down.example  ; default\n"
				  "port = 1883  ; default\n"
				  "depth = 3  ; default\n");
	free(text);
}

static void test_help_leaves_hidden_out(void **state)
{
	fixture *f = *state;
	char *text = output(f->c, help);
	assert_non_null(
		strstr(text, "--down.host TEXT  (env ES_DOWN_HOST)\n      the host below\n"));
	assert_non_null(strstr(text, "--up.tls [BOOL]"));
	assert_null(strstr(text, "--down.tls"));
	free(text);
}

/* A section whose every row is hidden is not printed at all. */
static void test_all_hidden_section_not_printed(void **state)
{
	(void)state;
	static const es_setting_edit all[] = {
		{"host", .hide = true}, {"port", .hide = true}, {"tls", .hide = true}};
	static const es_settings_part p[] = {
		ES_SHARED_EDITED("up", offsetof(prog, up), conn_rows, all), ES_OWN_ROWS(name_rows)};
	prog s = {0};
	es_config *c;
	assert_int_equal(es_config_new_parts(p, ES_NELEM(p), &s, &c), ES_OK);
	char *text = output(c, es_config_print);
	assert_string_equal(text, "[node]\nname = n1  ; default\n");
	assert_int_equal(s.up.port, 1883);
	free(text);
	es_config_free(c);
}

static void test_bad_parts(void **state)
{
	(void)state;
	prog s = {0};
	es_config *c = NULL;
	static const es_setting_edit typo[] = {{"hots", .def = "x"}};
	static const es_settings_part edit_of_nothing[] = {
		ES_SHARED_EDITED("up", offsetof(prog, up), conn_rows, typo)};
	assert_int_equal(es_config_new_parts(edit_of_nothing, 1, &s, &c), ES_EINVAL);
	/* The same struct placed twice: every field would be freed twice. */
	static const es_settings_part twice[] = {ES_SHARED("up", offsetof(prog, up), conn_rows),
						 ES_SHARED("on", offsetof(prog, up), conn_rows)};
	assert_int_equal(es_config_new_parts(twice, 2, &s, &c), ES_EINVAL);
	/* Two sections of the same name make each name twice. */
	static const es_settings_part same[] = {ES_SHARED("up", offsetof(prog, up), conn_rows),
						ES_SHARED("up", offsetof(prog, down), conn_rows)};
	assert_int_equal(es_config_new_parts(same, 2, &s, &c), ES_EINVAL);
	/* A section that makes an invalid name. */
	static const es_settings_part upper[] = {ES_SHARED("Up", offsetof(prog, up), conn_rows)};
	assert_int_equal(es_config_new_parts(upper, 1, &s, &c), ES_EINVAL);
	assert_null(c);
	assert_int_equal(es_config_new_parts(NULL, 0, &s, &c), ES_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults_land_in_each_struct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sources_reach_the_sections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range_error_names_the_section, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hidden_is_no_setting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hidden_ignored_in_environment, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_shown_as_one_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_printed_by_section, setup, teardown),
		cmocka_unit_test_setup_teardown(test_help_leaves_hidden_out, setup, teardown),
		cmocka_unit_test(test_all_hidden_section_not_printed),
		cmocka_unit_test(test_bad_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
