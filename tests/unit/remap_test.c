/* remap_test.c - cloud topic templates (cloud-bridge/remap.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "remap.h"

static es_topic_parts parts(const char *site, const char *node, const char *type)
{
	return (es_topic_parts){.site = site,
				.site_len = strlen(site),
				.node = node,
				.node_len = strlen(node),
				.kind = "ev",
				.kind_len = 2,
				.rest = type,
				.rest_len = strlen(type)};
}

static void expect_map(const char *tmpl, const char *root, es_topic_parts p, const char *want)
{
	bridge_remap *r;
	char why[160], buf[ES_TOPIC_MAX];
	assert_int_equal(bridge_remap_new(tmpl, &r, why, sizeof why), ES_OK);
	assert_int_equal(bridge_remap_apply(r, root, &p, buf, sizeof buf), ES_OK);
	assert_string_equal(buf, want);
	bridge_remap_free(r);
}

static void default_keeps_the_edge_topic(void **state)
{
	expect_map(BRIDGE_REMAP_DEFAULT, "edgespool", parts("site-1", "gw-7", "sensor.reading"),
		   "edgespool/site-1/gw-7/ev/sensor.reading");
	expect_map(BRIDGE_REMAP_DEFAULT, "acme/es", parts("s", "n", "t"), "acme/es/s/n/ev/t");
}

static void templates_map(void **state)
{
	es_topic_parts p = parts("site-1", "gw-7", "alarm.raised");
	expect_map("fleet/{site}/{node}/{type}", "edgespool", p, "fleet/site-1/gw-7/alarm.raised");
	expect_map("{type}/by-node/{node}", "edgespool", p, "alarm.raised/by-node/gw-7");
	expect_map("all-events", "edgespool", p, "all-events");
	expect_map("x{site}y/{node}{type}", "r", p, "xsite-1y/gw-7alarm.raised");
}

static void expect_refused(const char *tmpl, const char *mentions)
{
	bridge_remap *r = NULL;
	char why[160] = "";
	assert_int_equal(bridge_remap_new(tmpl, &r, why, sizeof why), ES_EINVAL);
	assert_null(r);
	assert_non_null(strstr(why, mentions));
}

static void bad_templates_are_refused(void **state)
{
	expect_refused("", "empty");
	expect_refused("fleet/{sight}/{node}", "unknown placeholder at position 6");
	expect_refused("fleet/{site", "unknown placeholder");
	expect_refused("fleet/+/{node}", "valid topic name");
	expect_refused("fleet/#", "valid topic name");
	expect_refused("fleet//{node}", "valid topic name");
	expect_refused("/fleet/{node}", "valid topic name");
	expect_refused("fleet/{node}/", "valid topic name");
	expect_refused("$SYS/{node}", "valid topic name");
	expect_refused("fleet}/{node}", "'}' without its '{' at position 5");
}

static void too_long_results_are_refused(void **state)
{
	bridge_remap *r;
	char why[160], buf[ES_TOPIC_MAX];
	char type[300];
	memset(type, 't', sizeof type - 1);
	type[sizeof type - 1] = '\0';
	assert_int_equal(bridge_remap_new("{type}/{type}", &r, why, sizeof why), ES_OK);
	es_topic_parts p = parts("s", "n", type);
	assert_int_equal(bridge_remap_apply(r, "root", &p, buf, sizeof buf), ES_ETOOBIG);
	char small[8];
	p = parts("s", "n", "t");
	assert_int_equal(bridge_remap_apply(r, "root", &p, small, sizeof small), ES_OK);
	assert_int_equal(bridge_remap_apply(r, "root", &(es_topic_parts){0}, small, 1), ES_ETOOBIG);
	bridge_remap_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(default_keeps_the_edge_topic),
		cmocka_unit_test(templates_map),
		cmocka_unit_test(bad_templates_are_refused),
		cmocka_unit_test(too_long_results_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
