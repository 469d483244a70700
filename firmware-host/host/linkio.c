/* linkio.c - the pty, TCP and UNIX link; see linkio.h. */
#include "linkio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 2000u
#define READ_MAX       (64u * 1024u) /* per linkio_handle, so devices get a turn */

enum kind { LINK_PTY, LINK_TCP, LINK_UNIX };

struct linkio {
	enum kind kind;
	char *path;	   /* pty symlink or UNIX socket path */
	char *host, *port; /* TCP */
	char slave[64];	   /* pty: the slave's name */
	int fd;		   /* master or socket; -1 while down */
	int slave_fd;	   /* pty: held open, never read (see linkio.h) */
	bool up, connecting, ever_up, failing;
	unsigned addr_index; /* TCP: which resolved address to try */
	uint64_t now, retry_at;
	uint32_t backoff_ms, reconnects;
	uint8_t *out;
	size_t head, len, cap; /* queued bytes are out[head..len) */
	linkio_rx_fn on_rx;
	void *ctx;
};

bool linkio_check(const char *spec, char *err, size_t errlen)
{
	const char *colon;

	if (strncmp(spec, "pty:", 4) == 0 && spec[4])
		return true;
	if (strncmp(spec, "unix:", 5) == 0 && spec[5]) {
		if (strlen(spec + 5) < sizeof(((struct sockaddr_un *)0)->sun_path))
			return true;
		snprintf(err, errlen, "'%s': the socket path is too long", spec);
		return false;
	}
	colon = strrchr(spec, ':');
	if (strncmp(spec, "tcp:", 4) == 0 && colon > spec + 4 && colon[1])
		return true;
	snprintf(err, errlen, "'%s': expected pty:PATH, tcp:HOST:PORT or unix:PATH", spec);
	return false;
}

/* ---- the output buffer -------------------------------------------------- */

bool linkio_send(linkio *l, const uint8_t *p, size_t n)
{
	if (!l->up || l->len - l->head + n > l->cap)
		return false;
	if (l->len + n > l->cap) {
		memmove(l->out, l->out + l->head, l->len - l->head);
		l->len -= l->head;
		l->head = 0;
	}
	memcpy(l->out + l->len, p, n);
	l->len += n;
	return true;
}

static void link_down(linkio *l, const char *why, int err);

void linkio_flush(linkio *l)
{
	while (l->up && l->head < l->len) {
		ssize_t n = l->kind == LINK_PTY
				    ? write(l->fd, l->out + l->head, l->len - l->head)
				    : send(l->fd, l->out + l->head, l->len - l->head, MSG_NOSIGNAL);

		if (n > 0) {
			l->head += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && l->kind != LINK_PTY)
				link_down(l, "write", errno);
			break;
		}
	}
	if (l->head == l->len)
		l->head = l->len = 0;
}

/* ---- connecting ------------------------------------------------------- */

static void link_up(linkio *l)
{
	int one = 1;

	if (l->kind == LINK_TCP)
		(void)setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (l->ever_up)
		l->reconnects++;
	fprintf(stderr, "firmware-host: link: connected to %s\n",
		l->kind == LINK_TCP ? l->host : l->path);
	l->up = l->ever_up = true;
	l->connecting = l->failing = false;
	l->backoff_ms = BACKOFF_MIN_MS;
	l->head = l->len = 0;
	(void)linkio_send(l, (const uint8_t *)"", 1);
}

/* Closes the socket and schedules the next attempt; says so once per outage. */
static void link_down(linkio *l, const char *why, int err)
{
	if (l->up || !l->failing)
		fprintf(stderr, "firmware-host: link: %s: %s%s\n", why,
			err ? strerror(err) : "closed by the gateway",
			l->up ? "; reconnecting" : "; retrying");
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	l->up = l->connecting = false;
	l->failing = true;
	l->retry_at = l->now + l->backoff_ms;
	l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
	l->addr_index++;
}

/* Fills *ss with the address to try now (TCP: one of HOST's, in turn). */
static int resolve(linkio *l, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	unsigned n = 0;
	int rc;

	if (l->kind == LINK_UNIX) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;

		memset(sun, 0, sizeof *sun);
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, l->path, strlen(l->path));
		*sslen = (socklen_t)sizeof *sun;
		return 0;
	}
	if ((rc = getaddrinfo(l->host, l->port, &hints, &res)) != 0)
		return rc;
	for (ai = res; ai; ai = ai->ai_next)
		n++;
	ai = res;
	for (unsigned i = l->addr_index % n; i > 0; i--)
		ai = ai->ai_next;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sslen = ai->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void start_connect(linkio *l)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int rc = resolve(l, &ss, &sslen);

	if (rc != 0) {
		fprintf(stderr, "firmware-host: link: %s:%s: %s\n", l->host, l->port,
			gai_strerror(rc));
		link_down(l, "resolve", EHOSTUNREACH);
		return;
	}
	l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		link_down(l, "socket", errno);
		return;
	}
	if (connect(l->fd, (struct sockaddr *)&ss, sslen) == 0)
		link_up(l);
	else if (errno == EINPROGRESS)
		l->connecting = true;
	else
		link_down(l, "connect", errno);
}

void linkio_tick(linkio *l, uint64_t now_ms)
{
	l->now = now_ms;
	if (l->kind != LINK_PTY && l->fd < 0 && now_ms >= l->retry_at)
		start_connect(l);
}

int linkio_timeout_ms(const linkio *l, uint64_t now_ms)
{
	if (l->kind == LINK_PTY || l->fd >= 0)
		return -1;
	return l->retry_at <= now_ms ? 0 : (int)(l->retry_at - now_ms);
}

bool linkio_pollfd(const linkio *l, struct pollfd *pfd)
{
	if (l->fd < 0)
		return false;
	pfd->fd = l->fd;
	pfd->events = l->connecting ? POLLOUT : POLLIN;
	if (l->up && l->head < l->len)
		pfd->events |= POLLOUT;
	pfd->revents = 0;
	return true;
}

/* ---- reading ------------------------------------------------------------ */

static void read_some(linkio *l)
{
	uint8_t buf[4096];
	size_t total = 0;

	while (l->fd >= 0 && total < READ_MAX) {
		ssize_t n = read(l->fd, buf, sizeof buf);

		if (n > 0) {
			total += (size_t)n;
			l->on_rx(l->ctx, buf, (size_t)n);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			/* pty: EIO means no one has the slave open, which cannot
			 * happen while we hold it; treat it as "peer away". */
			if (l->kind != LINK_PTY && (n == 0 || (errno != EAGAIN && errno != EIO)))
				link_down(l, "read", n == 0 ? 0 : errno);
			break;
		}
	}
}

static void finish_connect(linkio *l)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		link_down(l, "connect", err);
	else
		link_up(l);
}

void linkio_handle(linkio *l, short revents)
{
	if (l->fd < 0 || !revents)
		return;
	if (l->connecting) {
		finish_connect(l);
		return;
	}
	if (revents & (POLLIN | POLLHUP | POLLERR))
		read_some(l);
	if (revents & POLLOUT)
		linkio_flush(l);
}

bool linkio_up(const linkio *l)
{
	return l->up;
}

bool linkio_ever_up(const linkio *l)
{
	return l->ever_up;
}

uint32_t linkio_reconnects(const linkio *l)
{
	return l->reconnects;
}

/* ---- the pty -------------------------------------------------------------- */

static bool make_raw(int fd)
{
	struct termios t;

	if (tcgetattr(fd, &t) < 0)
		return false;
	cfmakeraw(&t);
	return tcsetattr(fd, TCSANOW, &t) == 0;
}

/* Makes path's folder if it is missing (one level: /tmp/es for /tmp/es/x). */
static void make_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		(void)mkdir(dir, 0755);
	}
}

/* Points path at the slave: a new symlink renamed over the old one, so a
 * reader never sees no path. Refuses to replace anything but a symlink. */
static bool make_symlink(linkio *l, char *err, size_t errlen)
{
	struct stat st;
	char tmp[PATH_MAX];

	if (lstat(l->path, &st) == 0 && !S_ISLNK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a symlink; not replacing it", l->path);
		return false;
	}
	make_parent(l->path);
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", l->path, (long)getpid());
	(void)unlink(tmp);
	if (symlink(l->slave, tmp) < 0 || rename(tmp, l->path) < 0) {
		snprintf(err, errlen, "cannot make the symlink %s: %s", l->path, strerror(errno));
		(void)unlink(tmp);
		return false;
	}
	return true;
}

static bool open_pty(linkio *l, char *err, size_t errlen)
{
	const char *step = "posix_openpt";

	l->fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (l->fd < 0)
		goto fail;
	step = "grantpt/unlockpt";
	if (grantpt(l->fd) < 0 || unlockpt(l->fd) < 0 ||
	    ptsname_r(l->fd, l->slave, sizeof l->slave) != 0)
		goto fail;
	step = "open the slave";
	l->slave_fd = open(l->slave, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (l->slave_fd < 0)
		goto fail;
	step = "raw mode";
	if (!make_raw(l->fd) || !make_raw(l->slave_fd))
		goto fail;
	step = "non-blocking";
	if (fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK) < 0)
		goto fail;
	if (!make_symlink(l, err, errlen))
		return false;
	l->up = l->ever_up = true;
	return true;
fail:
	snprintf(err, errlen, "pty: %s: %s", step, strerror(errno));
	return false;
}

/* ---- making and freeing ----------------------------------------------- */

static bool parse_spec(linkio *l, const char *spec)
{
	const char *colon;

	if (strncmp(spec, "pty:", 4) == 0) {
		l->kind = LINK_PTY;
		return (l->path = strdup(spec + 4)) != NULL;
	}
	if (strncmp(spec, "unix:", 5) == 0) {
		l->kind = LINK_UNIX;
		return (l->path = strdup(spec + 5)) != NULL;
	}
	l->kind = LINK_TCP;
	colon = strrchr(spec, ':');
	/* [::1]:7000 as well as host:7000 */
	if (spec[4] == '[' && colon[-1] == ']')
		l->host = strndup(spec + 5, (size_t)(colon - spec - 6));
	else
		l->host = strndup(spec + 4, (size_t)(colon - spec - 4));
	l->port = strdup(colon + 1);
	return l->host && l->port;
}

linkio *linkio_new(const linkio_cfg *cfg, char *err, size_t errlen)
{
	linkio *l;

	if (!linkio_check(cfg->spec, err, errlen))
		return NULL;
	l = calloc(1, sizeof *l);
	if (!l)
		goto fail_oom;
	l->fd = l->slave_fd = -1;
	l->cap = cfg->out_cap;
	l->on_rx = cfg->on_rx;
	l->ctx = cfg->ctx;
	l->backoff_ms = BACKOFF_MIN_MS;
	if (!(l->out = malloc(l->cap)) || !parse_spec(l, cfg->spec))
		goto fail_oom;
	if (l->kind == LINK_PTY && !open_pty(l, err, errlen))
		goto fail_link;
	return l;
fail_oom:
	snprintf(err, errlen, "out of memory");
fail_link:
	linkio_free(l);
	return NULL;
}

/* Removes the symlink only if it is still ours (a newer instance may have
 * replaced it). */
static void remove_symlink(const linkio *l)
{
	char target[sizeof l->slave];
	ssize_t n = readlink(l->path, target, sizeof target - 1);

	if (n > 0 && (size_t)n == strlen(l->slave) && memcmp(target, l->slave, (size_t)n) == 0)
		(void)unlink(l->path);
}

void linkio_free(linkio *l)
{
	if (!l)
		return;
	if (l->kind == LINK_PTY && l->ever_up)
		remove_symlink(l);
	if (l->fd >= 0)
		close(l->fd);
	if (l->slave_fd >= 0)
		close(l->slave_fd);
	free(l->out);
	free(l->path);
	free(l->host);
	free(l->port);
	free(l);
}
