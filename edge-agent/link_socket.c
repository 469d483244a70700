/* link_socket.c - the socket transport of the device links: a link.listen
 * value "tcp:HOST:PORT" or "unix:PATH", its listening socket, and the
 * clients it accepts (each a connection of its own that counts into the
 * listener's stats). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "links_int.h"
#include "log.h"

/* "HOST:PORT" into host and port (brackets around an IPv6 host go). */
static bool split_tcp(const char *rest, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon = strrchr(rest, ':');
	if (!colon || colon == rest || !colon[1] || strlen(colon + 1) >= pcap ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return false;
	size_t hlen = (size_t)(colon - rest);
	if (hlen >= 2 && rest[0] == '[' && rest[hlen - 1] == ']')
		rest++, hlen -= 2;
	if (hlen == 0 || hlen >= hcap || atol(colon + 1) > 65535)
		return false;
	memcpy(host, rest, hlen);
	host[hlen] = '\0';
	snprintf(port, pcap, "%s", colon + 1);
	return true;
}

const char *links_check_listen(const char *spec)
{
	char host[256], port[8];
	if (spec && strncmp(spec, "tcp:", 4) == 0)
		return split_tcp(spec + 4, host, sizeof host, port, sizeof port)
			       ? NULL
			       : "must be tcp:HOST:PORT with a port 0..65535";
	if (spec && strncmp(spec, "unix:", 5) == 0)
		return spec[5] && strlen(spec + 5) < sizeof(((struct sockaddr_un *)0)->sun_path)
			       ? NULL
			       : "must be unix:PATH with a path of 1..107 bytes";
	return "must be tcp:HOST:PORT or unix:PATH";
}

static int bind_unix(const char *path, char *why, size_t cap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a socket left by an earlier run */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 16) == 0)
		return fd;
	snprintf(why, cap, "%s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int bind_tcp(const char *spec, char *why, size_t cap)
{
	char host[256], port[8];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
	split_tcp(spec, host, sizeof host, port, sizeof port);
	int rc = getaddrinfo(host, port, &hints, &ai), fd = -1, one = 1;
	if (rc) {
		snprintf(why, cap, "%s", gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
		snprintf(why, cap, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

es_err link_listen(const char *spec, struct conn **out)
{
	char why[160] = "";
	bool is_unix = strncmp(spec, "unix:", 5) == 0;
	struct conn *c = link_conn_new(C_LISTENER, spec);
	if (!c)
		return ES_ENOMEM;
	c->fd = is_unix ? bind_unix(spec + 5, why, sizeof why)
			: bind_tcp(spec + 4, why, sizeof why);
	if (c->fd < 0) {
		es_error(TAG, "link.listen %s: cannot listen: %s", spec, why);
		link_conn_free(c);
		return ES_EINVAL;
	}
	if (is_unix && !(c->unix_path = strdup(spec + 5))) {
		link_conn_free(c);
		return ES_ENOMEM;
	}
	es_info(TAG, "listening for devices on %s", spec);
	*out = c;
	return ES_OK;
}

struct conn *link_accept(struct conn *ls, bool room, uint64_t now)
{
	int fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct conn *c = room ? link_conn_new(C_CLIENT, ls->name) : NULL;
	if (!c) {
		ls->st->clients_refused++;
		es_warn(TAG, "%s: connection refused: %zu clients already (link.max_clients)",
			ls->name, ls->clients);
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->listener = ls;
	c->st = &ls->own;
	c->time_at = now;
	ls->clients++;
	ls->st->opens++;
	es_info(TAG, "%s: a device link connected", ls->name);
	return c;
}
