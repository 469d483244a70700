/* utf8_test.c - strict UTF-8 validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

#define UNSET ((size_t)0xABCDEF)

static void check_valid(const char *s, size_t len)
{
	size_t bad = UNSET;
	assert_true(es_utf8_valid(s, len, &bad));
	assert_int_equal(bad, UNSET); /* untouched on success */
}

static void check_bad(const char *s, size_t len, size_t want_at)
{
	size_t bad = UNSET;
	assert_false(es_utf8_valid(s, len, &bad));
	assert_int_equal(bad, want_at);
	assert_false(es_utf8_valid(s, len, NULL));
}

#define VALID(lit)   check_valid(lit, sizeof lit - 1)
#define BAD(lit, at) check_bad(lit, sizeof lit - 1, at)

static void test_valid(void **state)
{
	(void)state;
	check_valid("", 0);
	check_valid(NULL, 0);
	VALID("plain ascii, longer than eight bytes");
	VALID("\xC3\xA9");		   /* U+00E9 */
	VALID("\xC2\x80");		   /* U+0080, smallest two-byte */
	VALID("\xDF\xBF");		   /* U+07FF */
	VALID("\xE0\xA0\x80");		   /* U+0800, smallest three-byte */
	VALID("\xE2\x82\xAC");		   /* U+20AC euro */
	VALID("\xED\x9F\xBF");		   /* U+D7FF, just below surrogates */
	VALID("\xEE\x80\x80");		   /* U+E000, just above them */
	VALID("\xEF\xBF\xBF");		   /* U+FFFF */
	VALID("\xF0\x90\x80\x80");	   /* U+10000, smallest four-byte */
	VALID("\xF0\x9F\x98\x80");	   /* U+1F600 */
	VALID("\xF4\x8F\xBF\xBF");	   /* U+10FFFF, the last */
	VALID("a\0b");			   /* NUL is valid UTF-8 */
	VALID("abcdefgh\xC3\xA9zyxwvuts"); /* multibyte after a full word */
}

static void test_overlong(void **state)
{
	(void)state;
	BAD("\xC0\x80", 0);
	BAD("\xC1\xBF", 0);
	BAD("ab\xE0\x80\x80", 2);
	BAD("\xE0\x9F\xBF", 0);
	BAD("\xF0\x80\x80\x80", 0);
	BAD("\xF0\x8F\xBF\xBF", 0);
}

static void test_surrogates_and_range(void **state)
{
	(void)state;
	BAD("\xED\xA0\x80", 0);	    /* U+D800 */
	BAD("x\xED\xBF\xBF", 1);    /* U+DFFF */
	BAD("\xF4\x90\x80\x80", 0); /* U+110000 */
	BAD("\xF5\x80\x80\x80", 0);
	BAD("\xFF", 0);
	BAD("\xFE", 0);
}

static void test_truncated_and_stray(void **state)
{
	(void)state;
	BAD("\x80", 0); /* a lone continuation byte */
	BAD("abc\xBF", 3);
	BAD("\xC3", 0);		/* two-byte cut at the end */
	BAD("ab\xE2\x82", 2);	/* three-byte cut at the end */
	BAD("\xF0\x9F\x98", 0); /* four-byte cut at the end */
	BAD("\xE2\x82"
	    "A",
	    0);			 /* cut by an ASCII byte */
	BAD("\xC3\xA9\xC3(", 2); /* second character broken */
	BAD("\xF0\x9F\x98\x80\xF0\x9F"
	    "x",
	    4);
	/* the word-at-a-time ASCII path must report the exact offset */
	BAD("aaaaaaaaaaaaaaaaa\xC3(", 17);
	BAD("aaaaaaaa\x80", 8);
	BAD("aaaaaaa\x80"
	    "aaaaaaaa",
	    7);
}

static void test_length_bounds(void **state)
{
	(void)state;
	/* only len bytes are looked at: a sequence cut by len is invalid even
	 * when the bytes after it would complete it */
	assert_false(es_utf8_valid("\xE2\x82\xAC", 2, NULL));
	assert_true(es_utf8_valid("ab\xC3", 2, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_overlong),
		cmocka_unit_test(test_surrogates_and_range),
		cmocka_unit_test(test_truncated_and_stray),
		cmocka_unit_test(test_length_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
