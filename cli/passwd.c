/* edgespool passwd: add a user to an HTTP auth file (http.auth_file), or
 * change a user's password. The file is rewritten atomically (a temporary
 * file beside it, fsync, rename), mode 0600; other lines and comments stay. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"

#define PW_MAX 1024

static const char usage[] =
	"usage: edgespool passwd FILE USER [--stdin]\n"
	"\n"
	"Adds USER to the HTTP auth file FILE (http.auth_file), or changes USER's\n"
	"password. The password is read twice from the terminal without echo, or\n"
	"once (one line) from standard input with --stdin. It is stored as a\n"
	"crypt(3) hash (yescrypt); FILE is rewritten atomically with mode 0600.\n"
	"USER is 1 to 64 of A-Z a-z 0-9 . _ -\n";

static void wipe(char *s, size_t n)
{
	volatile char *v = s;
	while (n--)
		*v++ = 0;
}

/* One line from f without its line ending into buf; false at end or when
 * it does not fit. */
static bool read_line(FILE *f, char *buf, size_t cap)
{
	if (!fgets(buf, (int)cap, f))
		return false;
	size_t n = strcspn(buf, "\r\n");
	if (buf[n] == '\0' && n == cap - 1)
		return false; /* too long */
	buf[n] = '\0';
	return true;
}

/* Prompts on the terminal and reads a line without echo. */
static bool read_hidden(FILE *tty, const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	int fd = fileno(tty);
	fputs(prompt, tty);
	fflush(tty);
	bool echo_off = tcgetattr(fd, &old) == 0;
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(fd, TCSAFLUSH, &quiet);
	}
	bool ok = read_line(tty, buf, cap);
	if (echo_off)
		tcsetattr(fd, TCSAFLUSH, &old);
	return ok;
}

/* The new password into pw (PW_MAX bytes): from stdin, or twice from the
 * terminal. Prints why on failure. */
static bool get_password(bool from_stdin, const char *user, char *pw)
{
	if (from_stdin) {
		if (!read_line(stdin, pw, PW_MAX)) {
			fprintf(stderr, "edgespool passwd: no password on standard input\n");
			return false;
		}
		return true;
	}
	FILE *tty = fopen("/dev/tty", "r+");
	if (!tty) {
		fprintf(stderr, "edgespool passwd: no terminal (%s); use --stdin\n",
			strerror(errno));
		return false;
	}
	char prompt[128], again[PW_MAX];
	snprintf(prompt, sizeof prompt, "New password for %s: ", user);
	bool ok = read_hidden(tty, prompt, pw, PW_MAX) &&
		  read_hidden(tty, "Again: ", again, sizeof again);
	fclose(tty);
	if (ok && strcmp(pw, again) != 0) {
		fprintf(stderr, "edgespool passwd: the passwords differ\n");
		ok = false;
	}
	wipe(again, sizeof again);
	return ok;
}

/* True when line is "user:..." for this user. */
static bool line_is_user(const char *line, const char *user)
{
	size_t n = strlen(user);
	return strncmp(line, user, n) == 0 && line[n] == ':';
}

/* Copies FILE (if it exists) to out, replacing user's line with the new
 * one, or appending it. *replaced tells which. */
static bool copy_with(const char *path, FILE *out, const char *user, const char *hash,
		      bool *replaced)
{
	FILE *in = fopen(path, "r");
	*replaced = false;
	if (!in && errno != ENOENT) {
		fprintf(stderr, "edgespool passwd: %s: %s\n", path, strerror(errno));
		return false;
	}
	char *line = NULL;
	size_t cap = 0;
	while (in && getline(&line, &cap, in) >= 0) {
		if (!line_is_user(line, user)) {
			fputs(line, out);
			if (line[strlen(line) - 1] != '\n')
				fputc('\n', out);
		} else if (!*replaced) {
			fprintf(out, "%s:%s\n", user, hash);
			*replaced = true;
		}
	}
	free(line);
	if (in)
		fclose(in);
	if (!*replaced)
		fprintf(out, "%s:%s\n", user, hash);
	return true;
}

/* Flushes, fsyncs and closes f; false (and prints why) on any error. */
static bool finish(FILE *f, const char *tmp)
{
	bool ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
	if (!ok)
		fprintf(stderr, "edgespool passwd: writing %s: %s\n", tmp, strerror(errno));
	return fclose(f) == 0 && ok;
}

static void sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

/* Writes the new FILE through a temporary file beside it. */
static bool rewrite(const char *path, const char *user, const char *hash, bool *replaced)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path) >= (int)sizeof tmp)
		return false;
	int fd = mkstemp(tmp); /* mode 0600 */
	FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!out) {
		fprintf(stderr, "edgespool passwd: cannot create %s: %s\n", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	bool ok = fchmod(fd, 0600) == 0 && copy_with(path, out, user, hash, replaced);
	ok = finish(out, tmp) && ok;
	if (ok && rename(tmp, path) != 0) {
		fprintf(stderr, "edgespool passwd: %s: %s\n", path, strerror(errno));
		ok = false;
	}
	if (!ok)
		unlink(tmp);
	else
		sync_dir(path);
	return ok;
}

static int set_password(const char *path, const char *user, const char *pw)
{
	char *hash = NULL;
	es_err err = es_auth_hash(pw, &hash);
	if (err) {
		fprintf(stderr, "edgespool passwd: cannot hash the password: %s\n",
			es_strerror(err));
		return 1;
	}
	bool replaced = false;
	bool ok = rewrite(path, user, hash, &replaced);
	free(hash);
	if (!ok)
		return 1;
	if (replaced)
		printf("changed the password of %s in %s\n", user, path);
	else
		printf("added user %s to %s\n", user, path);
	return 0;
}

static int bad_usage(const char *arg)
{
	if (arg)
		fprintf(stderr, "edgespool passwd: bad argument '%s'\n\n", arg);
	fputs(usage, stderr);
	return 2;
}

int cmd_passwd(int argc, char **argv)
{
	const char *pos[2] = {NULL, NULL};
	int npos = 0;
	bool from_stdin = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--stdin") == 0)
			from_stdin = true;
		else if (argv[i][0] != '-' && npos < 2)
			pos[npos++] = argv[i];
		else
			return bad_usage(argv[i]);
	}
	if (npos != 2)
		return bad_usage(NULL);
	if (!es_auth_user_valid(pos[1])) {
		fprintf(stderr,
			"edgespool passwd: bad user name '%s' (1 to 64 of A-Z a-z 0-9 . _ -)\n",
			pos[1]);
		return 2;
	}
	char pw[PW_MAX];
	int rc = 1;
	if (get_password(from_stdin, pos[1], pw)) {
		if (pw[0] == '\0')
			fprintf(stderr, "edgespool passwd: the password is empty\n");
		else
			rc = set_password(pos[0], pos[1], pw);
	}
	wipe(pw, sizeof pw);
	return rc;
}
