/* auth.h - HTTP credentials: the users of an auth file (crypt(3) hashes) and
 * an optional bearer token. The only module that includes <crypt.h>.
 *
 * An auth file holds one `user:hash` a line; blank lines and lines starting
 * with '#' are skipped. A user name is [A-Za-z0-9._-]{1,64}; a hash is a
 * crypt(3) hash of a method libcrypt verifies: yescrypt ($y$), SHA-512
 * ($6$, as `openssl passwd -6` prints), SHA-256 ($5$) or bcrypt ($2b$).
 * A token file holds the token on its first line, at least 16 characters.
 *
 * Loaded once; any thread may check credentials.
 */
#ifndef ES_AUTH_H
#define ES_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct es_auth es_auth;

#define ES_AUTH_USER_MAX  64 /* longest user name */
#define ES_AUTH_TOKEN_MIN 16

/* Loads auth_file and token_file (either may be NULL, not both). On error
 * why says what and where ("users.txt:3: user name has a bad character")
 * and the result is ES_EINVAL (a bad line), ES_ENOTFOUND (a file cannot be
 * read) or ES_ENOMEM. */
es_err es_auth_new(const char *auth_file, const char *token_file, es_auth **out, char *why,
		   size_t whycap);

/* NULL ok. Wipes the secrets it held. */
void es_auth_free(es_auth *a);

/* Checks the value of an Authorization header: "Basic base64(user:pass)"
 * against the users, "Bearer TOKEN" against the token. True when it
 * matches; then user (cap > ES_AUTH_USER_MAX) holds the user name, or
 * "token". A Basic header costs one password hash, known user or not,
 * unless the same header verified in the last 5 minutes (a keyed digest
 * of it is cached; see auth.c). Compares in constant time. Any thread. */
bool es_auth_check(es_auth *a, const char *authorization, char *user, size_t cap);

/* Checks one user's password (as es_auth_check does for Basic). */
bool es_auth_check_password(const es_auth *a, const char *user, const char *password);

/* True when a user name is [A-Za-z0-9._-]{1,64}. */
bool es_auth_user_valid(const char *user);

/* Hashes password with libcrypt's preferred method (yescrypt on Debian 12)
 * and a fresh random salt, into a malloc'd *out. ES_EINVAL for an empty
 * password, ES_ESYS when libcrypt fails (logged), ES_ENOMEM. */
es_err es_auth_hash(const char *password, char **out);

/* Why hash is not a usable auth-file hash, or NULL when it is. */
const char *es_auth_hash_check(const char *hash);

#endif
