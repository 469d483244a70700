/* topic_test.c - topic names, filters, matching (MQTT 3.1.1 section 4.7),
 * and edgespool's topic layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topic.h"

static const char *check_name(const char *s)
{
	return es_topic_check_name(s, strlen(s));
}

static const char *check_filter(const char *s)
{
	return es_topic_check_filter(s, strlen(s));
}

static void test_name_valid(void **state)
{
	(void)state;
	assert_null(check_name("sport/tennis/player1"));
	assert_null(check_name("/"));		/* two empty levels */
	assert_null(check_name("/finance"));	/* leading empty level */
	assert_null(check_name("a//b"));	/* empty level inside */
	assert_null(check_name("$SYS/broker")); /* '$' is allowed in names */
	assert_null(check_name("caf\xc3\xa9/temp"));
	assert_null(check_name(" ")); /* spaces are allowed (4.7.3) */
}

static void test_name_invalid(void **state)
{
	(void)state;
	assert_non_null(es_topic_check_name(NULL, 0));
	assert_non_null(es_topic_check_name("", 0));
	assert_non_null(check_name("sport/+"));
	assert_non_null(check_name("sport/#"));
	assert_non_null(check_name("sport+"));
	assert_non_null(es_topic_check_name("a\0b", 3));
	assert_non_null(check_name("bad\xc3"));	     /* truncated sequence */
	assert_non_null(check_name("\xed\xa0\x80")); /* a surrogate */
}

static void test_name_length(void **state)
{
	(void)state;
	size_t max = 65535;
	char *s = malloc(max + 2);
	assert_non_null(s);
	memset(s, 'a', max + 1);
	s[max + 1] = '\0';
	assert_null(es_topic_check_name(s, max));
	assert_non_null(es_topic_check_name(s, max + 1));
	assert_null(es_topic_check_filter(s, max));
	assert_non_null(es_topic_check_filter(s, max + 1));
	free(s);
}

/* Section 4.7.1.2 and 4.7.1.3. */
static void test_filter_valid(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"sport/tennis/player1/#",
		"sport/#",
		"#",
		"+",
		"+/tennis/#",
		"sport/+/player1",
		"+/+",
		"/+",
		"sport/+",
		"$SYS/#",
		"a//b",
		"/",
		"+/",
		"/#",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		if (check_filter(ok[i]))
			fail_msg("'%s' rejected: %s", ok[i], check_filter(ok[i]));
	}
}

static void test_filter_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"sport/tennis#",
		"sport/tennis/#/ranking",
		"sport+",
		"+sport",
		"sp+ort/x",
		"#/a",
		"##",
		"++",
		"a/b#",
		"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (!check_filter(bad[i]))
			fail_msg("'%s' accepted", bad[i]);
	}
	assert_non_null(es_topic_check_filter(NULL, 0));
	assert_non_null(es_topic_check_filter("a/\0b", 4));
	assert_non_null(check_filter("a/\xff"));
}

typedef struct match_case {
	const char *filter, *topic;
	bool match;
} match_case;

/* The examples of sections 4.7.1.2, 4.7.1.3 and 4.7.2, and a few more. */
static const match_case cases[] = {
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/tennis/player1/#", "sport/tennis/player2", false},
	{"sport/tennis/player1/#", "sport/tennis", false},
	{"sport/#", "sport", true},
	{"sport/#", "sport/", true},
	{"sport/#", "sports", false},
	{"#", "sport/tennis/player1", true},
	{"#", "/", true},
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player2", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"+", "finance", true},
	{"+/tennis/#", "sport/tennis/player1", true},
	{"+/tennis/#", "sport/golf/player1", false},
	{"sport/+/player1", "sport/tennis/player1", true},
	{"sport/+/player1", "sport/tennis/player2", false},
	{"sport/tennis", "sport/tennis", true},
	{"sport/tennis", "sport/Tennis", false}, /* case-sensitive (4.7.3) */
	{"sport/tennis", "sport/tennis/", false},
	{"sport/tennis/", "sport/tennis", false},
	{"a//b", "a//b", true},
	{"a/+/b", "a//b", true},
	/* 4.7.2: wildcards at the start do not match '$' topics */
	{"#", "$SYS/broker/clients", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"$SYS/#", "$SYS/monitor/Clients", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$SYS/#", "$SYS", true},
	{"+", "$SYS", false},
	{"a/#", "a/$b", true}, /* only the first character matters */
};

static void test_match(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const match_case *m = &cases[i];
		assert_null(check_filter(m->filter));
		assert_null(check_name(m->topic));
		if (es_topic_match(m->filter, m->topic) != m->match)
			fail_msg("filter '%s' topic '%s': expected %s", m->filter, m->topic,
				 m->match ? "a match" : "no match");
	}
	assert_false(es_topic_match(NULL, "a"));
	assert_false(es_topic_match("a", NULL));
}

static void test_check_root(void **state)
{
	(void)state;
	assert_null(es_topic_check_root("edgespool"));
	assert_null(es_topic_check_root("acme/edgespool"));
	assert_non_null(es_topic_check_root(NULL));
	assert_non_null(es_topic_check_root(""));
	assert_non_null(es_topic_check_root("$SYS"));
	assert_non_null(es_topic_check_root("/acme"));
	assert_non_null(es_topic_check_root("acme/"));
	assert_non_null(es_topic_check_root("acme//x"));
	assert_non_null(es_topic_check_root("acme/+"));
	assert_non_null(es_topic_check_root("acme/#"));
	char root[130];
	memset(root, 'r', sizeof root);
	root[128] = '\0';
	assert_null(es_topic_check_root(root));
	root[128] = 'r';
	root[129] = '\0';
	assert_non_null(es_topic_check_root(root));
}

static void test_check_id(void **state)
{
	(void)state;
	assert_null(es_topic_check_id("gw-7"));
	assert_null(es_topic_check_id("Site_1.a"));
	assert_non_null(es_topic_check_id(NULL));
	assert_non_null(es_topic_check_id(""));
	assert_non_null(es_topic_check_id("a/b"));
	assert_non_null(es_topic_check_id("a+"));
	assert_non_null(es_topic_check_id("a b"));
	assert_non_null(es_topic_check_id("caf\xc3\xa9"));
	char id[ES_TOPIC_ID_MAX + 2];
	memset(id, 'x', sizeof id);
	id[ES_TOPIC_ID_MAX] = '\0';
	assert_null(es_topic_check_id(id));
	id[ES_TOPIC_ID_MAX] = 'x';
	id[ES_TOPIC_ID_MAX + 1] = '\0';
	assert_non_null(es_topic_check_id(id));
}

static void test_build(void **state)
{
	(void)state;
	char buf[ES_TOPIC_MAX];
	assert_int_equal(es_topic_build(buf, sizeof buf, "edgespool", "site-1", "gw-7", "ev",
					"sensor.reading"),
			 ES_OK);
	assert_string_equal(buf, "edgespool/site-1/gw-7/ev/sensor.reading");
	assert_int_equal(
		es_topic_build(buf, sizeof buf, "acme/edgespool", "s", "n", "status", NULL), ES_OK);
	assert_string_equal(buf, "acme/edgespool/s/n/status");
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "s", "n", "cmd", "resend/all"),
			 ES_OK);
	assert_string_equal(buf, "r/s/n/cmd/resend/all");
}

static void test_build_invalid(void **state)
{
	(void)state;
	char buf[64];
	strcpy(buf, "untouched");
	assert_int_equal(es_topic_build(buf, sizeof buf, NULL, "s", "n", "ev", NULL), ES_EINVAL);
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "", "n", "ev", NULL), ES_EINVAL);
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "s", NULL, "ev", NULL), ES_EINVAL);
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "s", "n", "", NULL), ES_EINVAL);
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "s/x", "n", "ev", NULL), ES_EINVAL);
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "s", "+", "ev", NULL), ES_EINVAL);
	assert_int_equal(es_topic_build(buf, sizeof buf, "$r", "s", "n", "ev", NULL), ES_EINVAL);
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "s", "n", "ev", ""), ES_EINVAL);
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "s", "n", "ev", "a/#"), ES_EINVAL);
	assert_int_equal(es_topic_build(NULL, 10, "r", "s", "n", "ev", NULL), ES_EINVAL);
	assert_string_equal(buf, "untouched");
}

static void test_build_too_big(void **state)
{
	(void)state;
	char buf[ES_TOPIC_MAX + 64];
	strcpy(buf, "untouched");
	/* "r/s/n/ev" is 8 bytes and needs 9 with its NUL. */
	assert_int_equal(es_topic_build(buf, 8, "r", "s", "n", "ev", NULL), ES_ETOOBIG);
	assert_string_equal(buf, "untouched");
	assert_int_equal(es_topic_build(buf, 9, "r", "s", "n", "ev", NULL), ES_OK);
	assert_string_equal(buf, "r/s/n/ev");
	/* Within cap but beyond ES_TOPIC_MAX: "r/s/n/ev/" + rest + NUL. */
	char rest[ES_TOPIC_MAX];
	size_t fits = ES_TOPIC_MAX - strlen("r/s/n/ev/") - 1;
	memset(rest, 'x', fits + 1);
	rest[fits] = '\0';
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "s", "n", "ev", rest), ES_OK);
	assert_int_equal(strlen(buf), ES_TOPIC_MAX - 1);
	rest[fits] = 'x';
	rest[fits + 1] = '\0';
	assert_int_equal(es_topic_build(buf, sizeof buf, "r", "s", "n", "ev", rest), ES_ETOOBIG);
}

static void assert_part(const char *p, size_t len, const char *want)
{
	assert_int_equal(len, strlen(want));
	assert_memory_equal(p, want, len);
}

static void test_split(void **state)
{
	(void)state;
	es_topic_parts p;
	assert_int_equal(es_topic_split("acme/edgespool/site-1/gw-7/ev/sensor.reading",
					"acme/edgespool", &p),
			 ES_OK);
	assert_part(p.site, p.site_len, "site-1");
	assert_part(p.node, p.node_len, "gw-7");
	assert_part(p.kind, p.kind_len, "ev");
	assert_part(p.rest, p.rest_len, "sensor.reading");

	assert_int_equal(es_topic_split("r/s/n/status", "r", &p), ES_OK);
	assert_part(p.kind, p.kind_len, "status");
	assert_int_equal(p.rest_len, 0);
	assert_null(p.rest);

	assert_int_equal(es_topic_split("r/s/n/cmd/resend/x", "r", &p), ES_OK);
	assert_part(p.rest, p.rest_len, "resend/x");
}

static void test_split_round_trip(void **state)
{
	(void)state;
	char buf[ES_TOPIC_MAX];
	es_topic_parts p;
	assert_int_equal(es_topic_build(buf, sizeof buf, "a/b", "s", "n", "reply", "r1"), ES_OK);
	assert_int_equal(es_topic_split(buf, "a/b", &p), ES_OK);
	assert_part(p.site, p.site_len, "s");
	assert_part(p.rest, p.rest_len, "r1");
}

static void test_split_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"other/s/n/ev/x", /* another root */
		"rr/s/n/ev",	  /* root is only a prefix of the first level */
		"r",		  /* nothing after the root */
		"r/",		  /* empty site */
		"r/s",		  /* no node */
		"r/s/n",	  /* no kind */
		"r/s/n/",	  /* empty kind */
		"r//n/ev",	  /* empty site */
		"r/s//ev",	  /* empty node */
		"r/s/n/ev/",	  /* empty rest */
		"r/s/n/ev/+",	  /* a filter, not a name */
		"r/s p/n/ev",	  /* a site that is not an id */
	};
	es_topic_parts p = {.site_len = 99};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (es_topic_split(bad[i], "r", &p) != ES_EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	}
	assert_int_equal(p.site_len, 99); /* untouched on failure */
	assert_int_equal(es_topic_split("r/s/n/ev", "$r", &p), ES_EINVAL);
	assert_int_equal(es_topic_split(NULL, "r", &p), ES_EINVAL);
	assert_int_equal(es_topic_split("r/s/n/ev", NULL, &p), ES_EINVAL);
	assert_int_equal(es_topic_split("r/s/n/ev", "r", NULL), ES_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_name_invalid),
		cmocka_unit_test(test_name_length),
		cmocka_unit_test(test_filter_valid),
		cmocka_unit_test(test_filter_invalid),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_check_root),
		cmocka_unit_test(test_check_id),
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_build_invalid),
		cmocka_unit_test(test_build_too_big),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_split_round_trip),
		cmocka_unit_test(test_split_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
