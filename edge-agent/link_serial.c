/* link_serial.c - the serial transport of the device links: a link.serial
 * value "PATH[:BAUD]", and its line opened in raw mode through termios. A
 * line that is absent or fails is retried by the links thread. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "links_int.h"
#include "log.h"

#define DEFAULT_BAUD 115200

static speed_t baud_speed(long baud)
{
	static const struct {
		long baud;
		speed_t speed;
	} map[] = {{1200, B1200},	{2400, B2400},	     {4800, B4800},
		   {9600, B9600},	{19200, B19200},     {38400, B38400},
		   {57600, B57600},	{115200, B115200},   {230400, B230400},
		   {460800, B460800},	{921600, B921600},   {1000000, B1000000},
		   {2000000, B2000000}, {3000000, B3000000}, {4000000, B4000000}};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (map[i].baud == baud)
			return map[i].speed;
	return B0;
}

/* "PATH[:BAUD]" into a malloc'd path and a speed; false if not valid. */
static bool parse_serial(const char *spec, char **path, speed_t *speed)
{
	const char *colon = strrchr(spec, ':');
	long baud = DEFAULT_BAUD;
	size_t plen = strlen(spec);
	if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		baud = strlen(colon + 1) <= 8 ? strtol(colon + 1, NULL, 10) : 0;
		plen = (size_t)(colon - spec);
	}
	if (plen == 0 || spec[0] != '/' || baud_speed(baud) == B0)
		return false;
	if (path && !(*path = strndup(spec, plen)))
		return false;
	if (speed)
		*speed = baud_speed(baud);
	return true;
}

const char *links_check_serial(const char *spec)
{
	if (!spec || spec[0] != '/')
		return "must be an absolute device path, optionally with :BAUD";
	return parse_serial(spec, NULL, NULL)
		       ? NULL
		       : "has a baud rate this system does not support (1200 .. 4000000)";
}

struct conn *link_serial_new(const char *spec)
{
	char name[200];
	snprintf(name, sizeof name, "serial:%s", spec);
	struct conn *c = link_conn_new(C_SERIAL, name);
	if (c && !parse_serial(spec, &c->path, &c->speed)) {
		link_conn_free(c);
		return NULL;
	}
	return c;
}

static bool set_raw(int fd, speed_t speed, char *why, size_t cap)
{
	struct termios t;
	if (tcgetattr(fd, &t) != 0) {
		snprintf(why, cap, "not a terminal: %s", strerror(errno));
		return false;
	}
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (cfsetispeed(&t, speed) != 0 || cfsetospeed(&t, speed) != 0 ||
	    tcsetattr(fd, TCSANOW, &t) != 0) {
		snprintf(why, cap, "cannot set raw mode: %s", strerror(errno));
		return false;
	}
	return true;
}

void link_serial_open(struct conn *c, uint64_t now, uint64_t reopen_ms)
{
	char why[160];
	int fd = open(c->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		snprintf(why, sizeof why, "%s", strerror(errno));
	if (fd >= 0 && set_raw(fd, c->speed, why, sizeof why)) {
		c->fd = fd;
		c->st->opens++;
		c->time_at = now;
		c->warned = false;
		es_info(TAG, "%s: open", c->name);
		return;
	}
	if (fd >= 0)
		close(fd);
	if (!c->warned)
		es_warn(TAG, "%s: cannot open (%s); retrying every %" PRIu64 " ms", c->name, why,
			reopen_ms);
	c->warned = true;
	c->retry_at = now + reopen_ms;
}
