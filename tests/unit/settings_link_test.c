/* settings_link_test.c - an MQTT link's settings: the rows under a section
 * a program names, their checks, and es_link_mqtt_opts, the one way they
 * become es_mqtt options (every field, the client id's fallback, the
 * defaults of rows a program hides). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "settings_link.h"

typedef struct prog {
	es_link_settings edge, source;
} prog;

/* A consumer's link: user, password and backoff only. */
static const es_setting_edit consumer[] = {
	{"client_id", .hide = true},
	{"version", .hide = true},
	{"ca", .hide = true},
	{"cert", .hide = true},
	{"key", .hide = true},
	{"tls_verify", .hide = true},
	{"keepalive_s", .hide = true},
	{"inflight", .hide = true},
	{"session_expiry_s", .hide = true},
	{"connect_timeout_s", .hide = true},
};

static const es_settings_part parts[] = {
	ES_SHARED("edge", offsetof(prog, edge), es_link_rows),
	ES_SHARED_EDITED("source", offsetof(prog, source), es_link_rows, consumer),
};

static es_config *load(prog *p, const char *const *args)
{
	es_config *c;
	char err[256];
	char *argv[32] = {(char *)"prog"};
	int argc = 1;
	for (; args && *args; args++)
		argv[argc++] = (char *)*args;
	assert_int_equal(es_config_new_parts(parts, ES_NELEM(parts), p, &c), ES_OK);
	if (es_config_load(c, argc, argv, NULL, err, sizeof err) != ES_OK)
		fail_msg("load: %s", err);
	return c;
}

static void test_every_setting_reaches_the_options(void **state)
{
	(void)state;
	prog p = {0};
	const char *args[] = {"--edge.client_id",
			      "id-1",
			      "--edge.version",
			      "5",
			      "--edge.username",
			      "u",
			      "--edge.ca",
			      "/ca.pem",
			      "--edge.cert",
			      "/c.pem",
			      "--edge.key",
			      "/k.pem",
			      "--edge.tls_verify=false",
			      "--edge.keepalive_s",
			      "1m",
			      "--edge.inflight",
			      "7",
			      "--edge.session_expiry_s",
			      "4294967295",
			      "--edge.connect_timeout_s",
			      "5m",
			      "--edge.backoff_base_ms",
			      "2s",
			      "--edge.backoff_max_ms",
			      "60m",
			      NULL};
	es_config *c = load(&p, args);
	es_mqtt_opts o;
	memset(&o, 0xff, sizeof o); /* every field must be written */
	es_link_mqtt_opts(&p.edge, "fallback", "pw", &o);
	assert_string_equal(o.client_id, "id-1");
	assert_int_equal(o.version, 5);
	assert_string_equal(o.username, "u");
	assert_string_equal(o.password, "pw");
	assert_string_equal(o.ca_file, "/ca.pem");
	assert_string_equal(o.cert_file, "/c.pem");
	assert_string_equal(o.key_file, "/k.pem");
	assert_false(o.tls_verify);
	assert_int_equal(o.keepalive_s, 60);
	assert_int_equal(o.inflight, 7);
	assert_true(o.session_expiry_s == UINT32_MAX);
	assert_int_equal(o.connect_timeout_s, 300);
	assert_int_equal(o.backoff_base_ms, 2000);
	assert_int_equal(o.backoff_max_ms, 3600000);
	/* The caller's: URLs, will, clean, callbacks. */
	assert_null(o.url);
	assert_null(o.urls);
	assert_int_equal(o.nurls, 0);
	assert_null(o.will_topic);
	assert_false(o.clean);
	assert_null(o.cbs.message);
	assert_null(o.ctx);
	es_config_free(c);
}

static void test_defaults_and_fallback_id(void **state)
{
	(void)state;
	prog p = {0};
	es_config *c = load(&p, NULL);
	es_mqtt_opts o;
	es_link_mqtt_opts(&p.edge, "edgespool-x", NULL, &o);
	assert_string_equal(o.client_id, "edgespool-x");
	assert_int_equal(o.version, 4);
	assert_null(o.password);
	assert_null(o.ca_file);
	assert_true(o.tls_verify);
	assert_int_equal(o.keepalive_s, 30);
	assert_int_equal(o.inflight, 100);
	assert_int_equal(o.session_expiry_s, 86400);
	assert_int_equal(o.connect_timeout_s, 10);
	assert_int_equal(o.backoff_base_ms, 250);
	assert_int_equal(o.backoff_max_ms, 30000);
	es_config_free(c);
}

/* The hidden rows of a consumer's link hold the defaults es_mqtt gets:
 * above all, the broker's certificate is verified. */
static void test_hidden_rows_keep_their_defaults(void **state)
{
	(void)state;
	prog p = {0};
	const char *args[] = {"--source.username", "fleet", "--source.backoff_max_ms", "5s", NULL};
	es_config *c = load(&p, args);
	es_mqtt_opts o;
	es_link_mqtt_opts(&p.source, "node-1", NULL, &o);
	assert_string_equal(o.client_id, "node-1");
	assert_string_equal(o.username, "fleet");
	assert_true(o.tls_verify);
	assert_int_equal(o.version, 4);
	assert_int_equal(o.keepalive_s, 30);
	assert_int_equal(o.backoff_max_ms, 5000);
	es_config_free(c);
}

static void test_check(void **state)
{
	(void)state;
	char err[200];
	es_link_settings l = {.backoff_base_ms = 250, .backoff_max_ms = 30000};
	assert_true(es_link_check(&l, "edge", err, sizeof err));
	l.cert = (char *)"/c.pem";
	assert_false(es_link_check(&l, "edge", err, sizeof err));
	assert_string_equal(err, "edge.cert: '/c.pem' and edge.key must be set together");
	l.cert = NULL;
	l.key = (char *)"/k.pem";
	assert_false(es_link_check(&l, "mqtt", err, sizeof err));
	assert_string_equal(err, "mqtt.cert: '' and mqtt.key must be set together");
	l.cert = (char *)"/c.pem";
	assert_true(es_link_check(&l, "mqtt", err, sizeof err));
	l.backoff_base_ms = 30001;
	assert_false(es_link_check(&l, "cloud", err, sizeof err));
	assert_string_equal(err, "cloud.backoff_base_ms: '' must not exceed cloud.backoff_max_ms");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_setting_reaches_the_options),
		cmocka_unit_test(test_defaults_and_fallback_id),
		cmocka_unit_test(test_hidden_rows_keep_their_defaults),
		cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
