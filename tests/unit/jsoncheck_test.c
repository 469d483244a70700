/* jsoncheck_test.c - the scan that runs before cJSON: nesting depth outside
 * strings, escaped NULs inside them, and the offsets it reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "jsoncheck.h"

/* es_json_check over a NUL-terminated text. */
static bool check(const char *text, int depth, size_t *at, const char **why)
{
	return es_json_check(text, strlen(text), depth, at, why);
}

/* n '[' then n ']' (malloc'd). */
static char *nested(size_t n)
{
	char *s = malloc(2 * n + 1);
	assert_non_null(s);
	memset(s, '[', n);
	memset(s + n, ']', n);
	s[2 * n] = '\0';
	return s;
}

static void depth_limit(void **state)
{
	size_t at = 99;
	const char *why = NULL;
	char *ok = nested(ES_JSON_MAX_DEPTH), *deep = nested(ES_JSON_MAX_DEPTH + 1);
	assert_true(check(ok, ES_JSON_MAX_DEPTH, &at, &why));
	assert_int_equal(at, 99); /* untouched on success */
	assert_null(why);
	assert_false(check(deep, ES_JSON_MAX_DEPTH, &at, &why));
	assert_int_equal(at, ES_JSON_MAX_DEPTH); /* the first bracket too many */
	assert_string_equal(why, "nested too deeply");
	free(ok);
	free(deep);
}

static void objects_and_arrays_count_alike(void **state)
{
	size_t at = 0;
	const char *why = NULL;
	assert_true(check("{\"a\":[{\"b\":[1]}]}", 4, &at, &why));
	assert_false(check("{\"a\":[{\"b\":[1]}]}", 3, &at, &why));
	assert_int_equal(at, 11);
	/* Closing brings the depth down: siblings do not add up. */
	assert_true(check("[[1],[2],[3],{\"x\":1},{}]", 2, &at, &why));
	/* 10,000 levels (the stack overflow this guards against) stop at 64. */
	char *huge = nested(10000);
	assert_false(check(huge, ES_JSON_MAX_DEPTH, &at, &why));
	assert_int_equal(at, ES_JSON_MAX_DEPTH);
	free(huge);
}

static void brackets_in_strings_do_not_count(void **state)
{
	size_t at = 0;
	const char *why = NULL;
	assert_true(check("[\"[[[[{{{{\"]", 1, &at, &why));
	/* An escaped quote does not end the string: the brackets after it are
	 * still inside it. */
	assert_true(check("[\"a\\\"[[[[\"]", 1, &at, &why));
	/* An escaped backslash does end before the quote, so these count. */
	assert_false(check("[\"a\\\\\",[[1]]]", 2, &at, &why));
	assert_int_equal(at, 8);
}

static void escaped_nul(void **state)
{
	size_t at = 0;
	const char *why = NULL;
	assert_false(check("{\"k\":\"ab\\u0000cd\"}", ES_JSON_MAX_DEPTH, &at, &why));
	assert_int_equal(at, 8);
	assert_string_equal(why, "\\u0000 (NUL) in a string");
	/* In a key too. */
	assert_false(check("{\"\\u0000\":1}", ES_JSON_MAX_DEPTH, &at, &why));
	assert_int_equal(at, 2);
	/* A NUL followed by a digit is still a NUL. */
	assert_false(check("[\"\\u0001\",\"\\u00000\"]", 1, &at, &why));
	assert_int_equal(at, 11);
	/* Not a NUL: another code point, an escaped backslash followed by
	 * "u0000", and "\u0000" outside a string (cJSON rejects that). */
	assert_true(check("[\"\\u0001\"]", 1, &at, &why));
	assert_true(check("[\"\\\\u0000\"]", 1, &at, &why));
	assert_true(check("[\\u0000]", 1, &at, &why));
}

static void length_bounds_the_scan(void **state)
{
	size_t at = 0;
	const char *why = NULL;
	const char *text = "[1]\"\\u0000\"";
	assert_true(es_json_check(text, 3, 1, &at, &why));
	assert_false(es_json_check(text, strlen(text), 1, &at, &why));
	/* A "\u0000" cut by the length is not one. */
	assert_true(es_json_check("\"\\u0000\"", 6, 1, &at, &why));
	/* A backslash as the last byte, inside a string: nothing past the end
	 * is read. */
	assert_true(es_json_check("\"ab\\", 4, 1, &at, &why));
	assert_true(es_json_check("", 0, 0, &at, &why));
	assert_true(es_json_check("1", 1, 0, &at, &why));
	assert_false(es_json_check("[", 1, 0, &at, &why));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(depth_limit),
		cmocka_unit_test(objects_and_arrays_count_alike),
		cmocka_unit_test(brackets_in_strings_do_not_count),
		cmocka_unit_test(escaped_nul),
		cmocka_unit_test(length_bounds_the_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
