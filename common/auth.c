/* auth.c - users and tokens for the HTTP server, over libcrypt.
 *
 * Threads: the users and the token are not written after es_auth_new; each
 * check hashes with its own heap-allocated struct crypt_data (crypt_rn is
 * reentrant). a->lock guards the cache of recently verified credentials.
 *
 * The cache: a password hash costs tens of milliseconds by design (more on
 * an ARM board), and a dashboard sends credentials with every request. So a
 * Basic header that verified is remembered for CACHE_TTL_MS as a SHA-256
 * digest keyed with a random per-process secret (never the password), and
 * the same header again costs one digest instead of one hash.
 */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grow.h"
#include "log.h"

#define TAG	      "auth"
#define LINE_MAX_LEN  1024 /* a longer auth-file line is an error */
#define CRED_MAX      1024 /* the longest decoded "user:password" */
#define TOKEN_MAX_LEN 1024
#define CACHE_SLOTS   32
#define CACHE_TTL_MS  (5 * 60 * 1000)
#define DIGEST_LEN    32

struct user {
	char name[ES_AUTH_USER_MAX + 1];
	char *hash;
};

struct cached {
	unsigned char digest[DIGEST_LEN]; /* SHA-256(key || header) */
	char user[ES_AUTH_USER_MAX + 1];
	uint64_t expires_ms; /* 0: empty */
};

struct es_auth {
	struct user *users;
	size_t n, cap;
	char *token; /* NULL: no bearer token */
	size_t token_len;
	unsigned char key[32];
	pthread_mutex_t lock;
	struct cached cache[CACHE_SLOTS];
	size_t next_slot;
};

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t cap, const char *fmt, ...)
{
	if (!why || !cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

/* Compares in time that depends only on the secret's length. */
static bool equal_ct(const char *given, size_t glen, const char *secret, size_t slen)
{
	volatile unsigned char d = (unsigned char)(glen != slen);
	for (size_t i = 0; i < slen; i++)
		d |= (unsigned char)((i < glen ? given[i] : 0) ^ secret[i]);
	return d == 0;
}

/* Zeroes memory the compiler may not optimise away. */
static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

static void free_secret(char *s)
{
	if (s) {
		wipe(s, strlen(s));
		free(s);
	}
}

bool es_auth_user_valid(const char *user)
{
	size_t n = user ? strlen(user) : 0;
	if (n == 0 || n > ES_AUTH_USER_MAX)
		return false;
	return strspn(user, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       n;
}

/* crypt_rn(password, setting) into a heap crypt_data; true when the result
 * equals hash (constant time). *out_len gets the result's length. */
static bool hash_matches(const char *password, const char *hash, size_t *out_len)
{
	struct crypt_data *cd = calloc(1, sizeof *cd);
	if (!cd)
		return false;
	const char *res = crypt_rn(password, hash, cd, (int)sizeof *cd);
	bool ok = false;
	if (res && res[0] != '*') {
		size_t rlen = strlen(res);
		ok = equal_ct(res, rlen, hash, strlen(hash));
		if (out_len)
			*out_len = rlen;
	} else if (out_len) {
		*out_len = 0;
	}
	wipe(cd, sizeof *cd);
	free(cd);
	return ok;
}

const char *es_auth_hash_check(const char *hash)
{
	static const char *const methods[] = {"$y$", "$6$", "$5$", "$2b$"};
	if (!hash || hash[0] != '$')
		return "the hash must be a crypt(3) hash starting with '$'";
	bool known = false;
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		known |= strncmp(hash, methods[i], strlen(methods[i])) == 0;
	if (!known)
		return "unsupported hash method (use $y$ yescrypt, $6$ SHA-512, $5$ SHA-256 or "
		       "$2b$ bcrypt: `edgespool passwd` or `openssl passwd -6`)";
	size_t rlen = 0;
	hash_matches("", hash, &rlen);
	if (rlen == 0)
		return "libcrypt does not accept this hash (bad salt or cost?)";
	if (rlen != strlen(hash))
		return "the hash is malformed (wrong length for its method)";
	return NULL;
}

/* ---- loading -------------------------------------------------------------- */

static struct user *find_user(const es_auth *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->users[i].name, name) == 0)
			return &a->users[i];
	return NULL;
}

static es_err add_user(es_auth *a, const char *name, const char *hash)
{
	struct user *grown = es_grow(a->users, &a->cap, a->n + 1, sizeof *grown, 8);
	if (!grown)
		return ES_ENOMEM;
	a->users = grown;
	struct user *u = &a->users[a->n];
	if (!(u->hash = strdup(hash)))
		return ES_ENOMEM;
	snprintf(u->name, sizeof u->name, "%s", name);
	a->n++;
	return ES_OK;
}

/* Why a "user:hash" line (without its line ending) is bad, or NULL. */
static const char *line_error(const es_auth *a, char *line, char **hash)
{
	char *colon = strchr(line, ':');
	if (!colon)
		return "expected user:hash";
	*colon = '\0';
	*hash = colon + 1;
	if (!es_auth_user_valid(line))
		return "the user name must be 1 to 64 of A-Z a-z 0-9 . _ -";
	if (find_user(a, line))
		return "the user is already defined above";
	return es_auth_hash_check(*hash);
}

static bool skippable(const char *line)
{
	line += strspn(line, " \t");
	return *line == '\0' || *line == '#';
}

/* One line of the auth file; ES_EINVAL with why naming path:lineno. */
static es_err load_line(es_auth *a, char *line, const char *path, unsigned lineno, char *why,
			size_t cap)
{
	line[strcspn(line, "\r\n")] = '\0';
	if (skippable(line))
		return ES_OK;
	char *hash = NULL;
	const char *bad = line_error(a, line, &hash);
	if (bad) {
		say(why, cap, "%s:%u: %s", path, lineno, bad);
		return ES_EINVAL;
	}
	return add_user(a, line, hash);
}

static es_err load_users(es_auth *a, const char *path, char *why, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		say(why, cap, "%s: %s", path, strerror(errno));
		return ES_ENOTFOUND;
	}
	char *line = NULL;
	size_t lcap = 0;
	unsigned lineno = 0;
	es_err err = ES_OK;
	ssize_t len;
	while (!err && (len = getline(&line, &lcap, f)) >= 0) {
		lineno++;
		if (len > LINE_MAX_LEN || memchr(line, '\0', (size_t)len)) {
			say(why, cap, "%s:%u: the line is too long or holds a NUL byte", path,
			    lineno);
			err = ES_EINVAL;
		} else {
			err = load_line(a, line, path, lineno, why, cap);
		}
	}
	if (line)
		wipe(line, lcap);
	free(line);
	fclose(f);
	if (!err && a->n == 0) {
		say(why, cap, "%s: no user defined (add one with `edgespool passwd %s USER`)", path,
		    path);
		err = ES_EINVAL;
	}
	return err;
}

static es_err load_token(es_auth *a, const char *path, char *why, size_t cap)
{
	char line[TOKEN_MAX_LEN + 2] = "";
	FILE *f = fopen(path, "r");
	if (!f) {
		say(why, cap, "%s: %s", path, strerror(errno));
		return ES_ENOTFOUND;
	}
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	size_t n = strlen(line);
	es_err err = ES_OK;
	if (n < ES_AUTH_TOKEN_MIN || n > TOKEN_MAX_LEN) {
		say(why, cap, "%s:1: the token must be %d to %d characters", path,
		    ES_AUTH_TOKEN_MIN, TOKEN_MAX_LEN);
		err = ES_EINVAL;
	} else if (!(a->token = strdup(line))) {
		err = ES_ENOMEM;
	}
	a->token_len = a->token ? n : 0;
	wipe(line, sizeof line);
	return err;
}

es_err es_auth_new(const char *auth_file, const char *token_file, es_auth **out, char *why,
		   size_t whycap)
{
	if (!out || (!auth_file && !token_file)) {
		say(why, whycap, "neither an auth file nor a token file");
		return ES_EINVAL;
	}
	es_auth *a = calloc(1, sizeof *a);
	if (!a)
		return ES_ENOMEM;
	pthread_mutex_init(&a->lock, NULL);
	es_err err = ES_OK;
	if (RAND_bytes(a->key, sizeof a->key) != 1) {
		say(why, whycap, "no random bytes for the credential cache");
		err = ES_ESYS;
	}
	if (!err && auth_file)
		err = load_users(a, auth_file, why, whycap);
	if (!err && token_file)
		err = load_token(a, token_file, why, whycap);
	if (err) {
		es_auth_free(a);
		return err;
	}
	*out = a;
	return ES_OK;
}

void es_auth_free(es_auth *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free_secret(a->users[i].hash);
	free(a->users);
	free_secret(a->token);
	wipe(a->key, sizeof a->key);
	wipe(a->cache, sizeof a->cache);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* ---- checking --------------------------------------------------------------- */

bool es_auth_check_password(const es_auth *a, const char *user, const char *password)
{
	if (!a || !user || !password || a->n == 0)
		return false;
	const struct user *u = find_user(a, user);
	/* An unknown user costs the same hash, against the first user's. */
	bool ok = hash_matches(password, u ? u->hash : a->users[0].hash, NULL);
	return u && ok;
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes standard base64 (padding optional) into out (NUL-terminated);
 * false for bad input or when it does not fit. */
static bool b64_decode(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (; *in && *in != '='; in++) {
		int v = b64_value((unsigned char)*in);
		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n + 1 >= cap)
				return false;
			out[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	while (*in == '=')
		in++;
	if (*in)
		return false;
	out[n] = '\0';
	return memchr(out, '\0', n) == NULL;
}

static bool check_basic(const es_auth *a, const char *b64, char *user, size_t cap)
{
	char cred[CRED_MAX + 1];
	bool ok = false;
	if (b64_decode(b64, cred, sizeof cred)) {
		char *colon = strchr(cred, ':');
		if (colon) {
			*colon = '\0';
			ok = es_auth_user_valid(cred) && es_auth_check_password(a, cred, colon + 1);
		}
		if (ok)
			snprintf(user, cap, "%s", cred);
	}
	wipe(cred, sizeof cred);
	return ok;
}

static bool check_bearer(const es_auth *a, const char *token, char *user, size_t cap)
{
	if (!a->token)
		return false;
	if (!equal_ct(token, strlen(token), a->token, a->token_len))
		return false;
	snprintf(user, cap, "token");
	return true;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool digest_of(const es_auth *a, const char *header, unsigned char *out)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		  EVP_DigestUpdate(md, a->key, sizeof a->key) == 1 &&
		  EVP_DigestUpdate(md, header, strlen(header)) == 1 &&
		  EVP_DigestFinal_ex(md, out, &len) == 1 && len == DIGEST_LEN;
	EVP_MD_CTX_free(md);
	return ok;
}

/* A verified header seen less than CACHE_TTL_MS ago: its user into user. */
static bool cache_find(es_auth *a, const unsigned char *digest, char *user, size_t cap)
{
	bool found = false;
	uint64_t now = now_ms();
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < CACHE_SLOTS && !found; i++) {
		struct cached *c = &a->cache[i];
		unsigned char diff = 0;
		for (size_t k = 0; k < DIGEST_LEN; k++)
			diff |= (unsigned char)(c->digest[k] ^ digest[k]);
		found = c->expires_ms > now && diff == 0;
		if (found)
			snprintf(user, cap, "%s", c->user);
	}
	pthread_mutex_unlock(&a->lock);
	return found;
}

static void cache_add(es_auth *a, const unsigned char *digest, const char *user)
{
	pthread_mutex_lock(&a->lock);
	struct cached *c = &a->cache[a->next_slot];
	a->next_slot = (a->next_slot + 1) % CACHE_SLOTS;
	memcpy(c->digest, digest, DIGEST_LEN);
	snprintf(c->user, sizeof c->user, "%s", user);
	c->expires_ms = now_ms() + CACHE_TTL_MS;
	pthread_mutex_unlock(&a->lock);
}

static bool check_basic_cached(es_auth *a, const char *b64, char *user, size_t cap)
{
	unsigned char digest[DIGEST_LEN];
	bool keyed = digest_of(a, b64, digest);
	if (keyed && cache_find(a, digest, user, cap))
		return true;
	bool ok = check_basic(a, b64, user, cap);
	if (ok && keyed)
		cache_add(a, digest, user);
	return ok;
}

bool es_auth_check(es_auth *a, const char *authorization, char *user, size_t cap)
{
	if (!a || !authorization || !user || cap <= ES_AUTH_USER_MAX)
		return false;
	const char *v = authorization + strspn(authorization, " ");
	if (strncasecmp(v, "Basic ", 6) == 0)
		return check_basic_cached(a, v + 6 + strspn(v + 6, " "), user, cap);
	if (strncasecmp(v, "Bearer ", 7) == 0)
		return check_bearer(a, v + 7 + strspn(v + 7, " "), user, cap);
	return false;
}

es_err es_auth_hash(const char *password, char **out)
{
	if (!password || !*password || !out)
		return ES_EINVAL;
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	if (!crypt_gensalt_rn(NULL, 0, NULL, 0, setting, (int)sizeof setting)) {
		es_error(TAG, "crypt_gensalt_rn: %s", strerror(errno));
		return ES_ESYS;
	}
	struct crypt_data *cd = calloc(1, sizeof *cd);
	if (!cd)
		return ES_ENOMEM;
	es_err err = ES_OK;
	const char *res = crypt_rn(password, setting, cd, (int)sizeof *cd);
	if (!res || res[0] == '*') {
		es_error(TAG, "crypt_rn: %s", strerror(errno));
		err = ES_ESYS;
	} else if (!(*out = strdup(res))) {
		err = ES_ENOMEM;
	}
	wipe(cd, sizeof *cd);
	free(cd);
	return err;
}
