/* auth_test.c - auth files, password hashes and tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"

/* `openssl passwd -6 -salt edgespoolsalt 's3cret pass'` */
#define SHA512_HASH                                                                                \
	"$6$edgespoolsalt$znCD2zFu.mn01wOrkajwjdBvnJAOka4bFrxB3MsnHV4SM2/"                         \
	"5cwv5D.eOhHb1k9cr0iZDVhUOX"                                                               \
	"iGiCi6p5AuXe/"
#define SHA512_PASS "s3cret pass"

static char dir[] = "/tmp/es-auth-XXXXXX";

static int make_dir(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	char cmd[64];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to dir/name; returns the path (static buffer per call site). */
static const char *write_file(const char *name, const char *text, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static es_auth *load(const char *text)
{
	char path[256], why[256] = "";
	es_auth *a = NULL;
	write_file("users", text, path, sizeof path);
	es_err err = es_auth_new(path, NULL, &a, why, sizeof why);
	if (err)
		fail_msg("loading %s: %s", text, why);
	return a;
}

/* Loading text fails with ES_EINVAL and a message naming users:line. */
static void expect_bad(const char *text, unsigned line, const char *words)
{
	char path[256], why[256] = "", want[300];
	es_auth *a = NULL;
	write_file("users", text, path, sizeof path);
	assert_int_equal(es_auth_new(path, NULL, &a, why, sizeof why), ES_EINVAL);
	assert_null(a);
	snprintf(want, sizeof want, "%s:%u: ", path, line);
	if (strncmp(why, want, strlen(want)) != 0 || !strstr(why, words))
		fail_msg("for %s: got '%s', want '%s...%s'", text, why, want, words);
}

static void good_file_with_comments(void **state)
{
	es_auth *a = load("# the operators\n\n   \nops:" SHA512_HASH "\n  # indented comment\r\n"
			  "ops.2-x_Y:" SHA512_HASH "\r\n");
	assert_true(es_auth_check_password(a, "ops", SHA512_PASS));
	assert_true(es_auth_check_password(a, "ops.2-x_Y", SHA512_PASS));
	es_auth_free(a);
	es_auth_free(NULL);
}

static void bad_lines_name_their_line(void **state)
{
	expect_bad("ops\n", 1, "expected user:hash");
	expect_bad("# c\n\nbad user:" SHA512_HASH "\n", 3, "user name");
	expect_bad(":" SHA512_HASH "\n", 1, "user name");
	expect_bad("ops:plaintext\n", 1, "start");
	expect_bad("ops:$1$abc$Kb85XxsXB.VXinPhbS4431\n", 1, "unsupported");
	expect_bad("ops:" SHA512_HASH "\nops:" SHA512_HASH "\n", 2, "already");
	expect_bad("ops:$6$edgespoolsalt$znCD2zFu\n", 1, "malformed");
	expect_bad("ops:$y$\n", 1, "");
	char longname[100];
	memset(longname, 'u', 65);
	snprintf(longname + 65, sizeof longname - 65, ":%s\n", "$6$x$y");
	expect_bad(longname, 1, "user name");

	char path[256], why[256];
	es_auth *a = NULL;
	write_file("empty", "# nobody\n", path, sizeof path);
	assert_int_equal(es_auth_new(path, NULL, &a, why, sizeof why), ES_EINVAL);
	assert_non_null(strstr(why, "no user"));
	snprintf(path, sizeof path, "%s/missing", dir);
	assert_int_equal(es_auth_new(path, NULL, &a, why, sizeof why), ES_ENOTFOUND);
	assert_int_equal(es_auth_new(NULL, NULL, &a, why, sizeof why), ES_EINVAL);
}

static void sha512_vector_verifies(void **state)
{
	es_auth *a = load("ops:" SHA512_HASH "\n");
	assert_true(es_auth_check_password(a, "ops", SHA512_PASS));
	assert_false(es_auth_check_password(a, "ops", "s3cret pas"));
	assert_false(es_auth_check_password(a, "ops", "s3cret pass "));
	assert_false(es_auth_check_password(a, "ops", ""));
	assert_false(es_auth_check_password(a, "nobody", SHA512_PASS));
	assert_false(es_auth_check_password(a, "OPS", SHA512_PASS));
	es_auth_free(a);
}

static void yescrypt_round_trip(void **state)
{
	char *hash = NULL;
	assert_int_equal(es_auth_hash("correct horse", &hash), ES_OK);
	assert_memory_equal(hash, "$y$", 3);
	assert_null(es_auth_hash_check(hash));
	char *again = NULL;
	assert_int_equal(es_auth_hash("correct horse", &again), ES_OK);
	assert_string_not_equal(hash, again); /* a fresh salt each time */
	char text[512];
	snprintf(text, sizeof text, "web:%s\nother:%s\n", hash, again);
	es_auth *a = load(text);
	assert_true(es_auth_check_password(a, "web", "correct horse"));
	assert_true(es_auth_check_password(a, "other", "correct horse"));
	assert_false(es_auth_check_password(a, "web", "correct horse!"));
	es_auth_free(a);
	free(hash);
	free(again);
	assert_int_equal(es_auth_hash("", &hash), ES_EINVAL);
	assert_int_equal(es_auth_hash(NULL, &hash), ES_EINVAL);
}

static void basic_header(void **state)
{
	es_auth *a = load("ops:" SHA512_HASH "\n");
	char user[ES_AUTH_USER_MAX + 1] = "";
	/* base64("ops:s3cret pass") */
	assert_true(es_auth_check(a, "Basic b3BzOnMzY3JldCBwYXNz", user, sizeof user));
	assert_string_equal(user, "ops");
	assert_true(es_auth_check(a, "basic  b3BzOnMzY3JldCBwYXNz", user, sizeof user));
	/* base64("ops:wrong"), base64("bob:s3cret pass") */
	assert_false(es_auth_check(a, "Basic b3BzOndyb25n", user, sizeof user));
	assert_false(es_auth_check(a, "Basic Ym9iOnMzY3JldCBwYXNz", user, sizeof user));
	assert_false(es_auth_check(a, "Basic !!!!", user, sizeof user));
	assert_false(es_auth_check(a, "Basic b3Bz", user, sizeof user)); /* "ops", no colon */
	assert_false(es_auth_check(a, "Basic ", user, sizeof user));
	assert_false(es_auth_check(a, "Digest x", user, sizeof user));
	assert_false(es_auth_check(a, "Bearer 0123456789abcdef", user, sizeof user));
	assert_false(es_auth_check(a, NULL, user, sizeof user));
	assert_false(es_auth_check(a, "Basic b3BzOnMzY3JldCBwYXNz", user, 8)); /* too small */
	/* The cache of verified headers answers the same header, and only it. */
	for (int i = 0; i < 40; i++) {
		user[0] = '\0';
		assert_true(es_auth_check(a, "Basic b3BzOnMzY3JldCBwYXNz", user, sizeof user));
		assert_string_equal(user, "ops");
	}
	assert_false(es_auth_check(a, "Basic b3BzOnMzY3JldCBwYXNzIA==", user, sizeof user));
	assert_false(es_auth_check(a, "Basic b3BzOndyb25n", user, sizeof user));
	es_auth_free(a);
}

static void tokens(void **state)
{
	char path[256], why[256] = "";
	es_auth *a = NULL;
	write_file("token", "0123456789abcdef-token\nsecond line ignored\n", path, sizeof path);
	assert_int_equal(es_auth_new(NULL, path, &a, why, sizeof why), ES_OK);
	char user[ES_AUTH_USER_MAX + 1] = "";
	assert_true(es_auth_check(a, "Bearer 0123456789abcdef-token", user, sizeof user));
	assert_string_equal(user, "token");
	assert_false(es_auth_check(a, "Bearer 0123456789abcdef-toke", user, sizeof user));
	assert_false(es_auth_check(a, "Bearer 0123456789abcdef-tokenX", user, sizeof user));
	assert_false(es_auth_check(a, "Bearer ", user, sizeof user));
	/* no users: Basic never matches */
	assert_false(es_auth_check(a, "Basic b3BzOnMzY3JldCBwYXNz", user, sizeof user));
	assert_false(es_auth_check_password(a, "ops", SHA512_PASS));
	es_auth_free(a);

	write_file("short", "too-short\n", path, sizeof path);
	assert_int_equal(es_auth_new(NULL, path, &a, why, sizeof why), ES_EINVAL);
	assert_non_null(strstr(why, "at least") ? why : strstr(why, "16"));
	write_file("empty-token", "", path, sizeof path);
	assert_int_equal(es_auth_new(NULL, path, &a, why, sizeof why), ES_EINVAL);

	/* users and a token together */
	char upath[256];
	write_file("users2", "ops:" SHA512_HASH "\n", upath, sizeof upath);
	write_file("token2", "fedcba9876543210\n", path, sizeof path);
	assert_int_equal(es_auth_new(upath, path, &a, why, sizeof why), ES_OK);
	assert_true(es_auth_check(a, "Bearer fedcba9876543210", user, sizeof user));
	assert_true(es_auth_check(a, "Basic b3BzOnMzY3JldCBwYXNz", user, sizeof user));
	es_auth_free(a);
}

static void user_names(void **state)
{
	assert_true(es_auth_user_valid("a"));
	assert_true(es_auth_user_valid("Ops.Team_2-x"));
	assert_false(es_auth_user_valid(""));
	assert_false(es_auth_user_valid(NULL));
	assert_false(es_auth_user_valid("a b"));
	assert_false(es_auth_user_valid("a:b"));
	assert_false(es_auth_user_valid("é"));
	char name[70];
	memset(name, 'x', 64);
	name[64] = '\0';
	assert_true(es_auth_user_valid(name));
	name[64] = 'x';
	name[65] = '\0';
	assert_false(es_auth_user_valid(name));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_file_with_comments),
		cmocka_unit_test(bad_lines_name_their_line),
		cmocka_unit_test(sha512_vector_verifies),
		cmocka_unit_test(yescrypt_round_trip),
		cmocka_unit_test(basic_header),
		cmocka_unit_test(tokens),
		cmocka_unit_test(user_names),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
