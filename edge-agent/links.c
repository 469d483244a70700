/* links.c - the device links' thread (see links.h): one poll loop over every
 * connection (serial lines, listeners, their clients), the timers (serial
 * reopens, time syncs), and the composition of the parts (links_int.h says
 * which file does what, and what l->lock guards).
 *
 * A round: poll; read what every ready connection has and take its frames
 * (under l->lock); journal the round in one append (without it); write the
 * acks out.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "grow.h"
#include "links_int.h"
#include "log.h"

#define READ_CHUNK 4096

/* ---- connections ---------------------------------------------------------- */

struct conn *link_conn_new(enum conn_kind kind, const char *name)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->kind = kind;
	c->fd = -1;
	c->st = &c->own;
	snprintf(c->name, sizeof c->name, "%s", name);
	fw_decoder_init(&c->dec);
	return c;
}

void link_conn_free(struct conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	if (c->unix_path)
		unlink(c->unix_path);
	free(c->unix_path);
	free(c->path);
	free(c);
}

void link_conn_close(struct links *l, struct conn *c, const char *why)
{
	if (c->fd < 0)
		return;
	es_info(TAG, "%s: closed (%s)", c->name, why);
	close(c->fd);
	c->fd = -1;
	c->nout = 0;
	fw_decoder_init(&c->dec);
	devices_forget_conn(l->devs, c);
	if (c->kind == C_SERIAL)
		c->retry_at = es_clock_mono_ms() + l->o.reopen_ms;
	if (c->kind == C_CLIENT)
		c->listener->clients--;
}

/* Room for one more connection in l->conns; false when out of memory. */
static bool conns_room(struct links *l)
{
	struct conn **grown = es_grow(l->conns, &l->capconns, l->nconns + 1, sizeof *grown, 8);
	if (!grown)
		return false;
	l->conns = grown;
	return true;
}

/* Adds c (owned from now on); ES_ENOMEM frees it. */
static es_err add_conn(struct links *l, struct conn *c)
{
	if (!conns_room(l)) {
		link_conn_free(c);
		return ES_ENOMEM;
	}
	l->conns[l->nconns++] = c;
	return ES_OK;
}

static void conn_flush(struct links *l, struct conn *c)
{
	size_t done = 0;
	while (c->fd >= 0 && done < c->nout) {
		ssize_t w = write(c->fd, c->out + done, c->nout - done);
		if (w > 0)
			done += (size_t)w;
		else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else {
			link_conn_close(l, c, w < 0 ? strerror(errno) : "write returned 0");
			return;
		}
	}
	memmove(c->out, c->out + done, c->nout - done);
	c->nout -= done;
}

static void conn_read(struct links *l, struct conn *c)
{
	uint8_t buf[READ_CHUNK];
	ssize_t n = read(c->fd, buf, sizeof buf);
	if (n > 0)
		link_ingest(l, c, buf, (size_t)n);
	else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		link_conn_close(l, c, n == 0 ? "end of input" : strerror(errno));
}

static void accept_client(struct links *l, struct conn *ls, uint64_t now)
{
	bool room = ls->clients < l->o.max_clients && conns_room(l);
	struct conn *c = link_accept(ls, room, now);
	if (c)
		l->conns[l->nconns++] = c; /* conns_room made room */
}

/* Frees closed clients; listeners and serial lines stay. */
static void reap(struct links *l)
{
	size_t kept = 0;
	for (size_t i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];
		if (c->kind == C_CLIENT && c->fd < 0)
			link_conn_free(c);
		else
			l->conns[kept++] = c;
	}
	l->nconns = kept;
}

/* ---- the thread ----------------------------------------------------------- */

static uint64_t timers(struct links *l, uint64_t now)
{
	uint64_t next = now + 1000;
	for (size_t i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];
		if (c->kind == C_SERIAL && c->fd < 0 && now >= c->retry_at)
			link_serial_open(c, now, l->o.reopen_ms);
		if (c->kind == C_SERIAL && c->fd < 0 && c->retry_at < next)
			next = c->retry_at;
		if (c->kind != C_LISTENER && c->fd >= 0 && now >= c->time_at) {
			link_send_time(c, 0); /* to every device on the line */
			c->time_at = l->o.time_sync_ms ? now + l->o.time_sync_ms : UINT64_MAX;
		}
		if (c->kind != C_LISTENER && c->fd >= 0 && c->time_at < next)
			next = c->time_at;
	}
	return next;
}

static size_t fill_pollfds(struct links *l, struct pollfd *pfd, struct conn **who)
{
	size_t n = 1;
	pfd[0] = (struct pollfd){.fd = l->wake_fd, .events = POLLIN};
	for (size_t i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];
		if (c->fd < 0)
			continue;
		who[n] = c;
		pfd[n++] = (struct pollfd){.fd = c->fd,
					   .events = (short)(POLLIN | (c->nout ? POLLOUT : 0))};
	}
	return n;
}

static void serve(struct links *l, struct pollfd *pfd, struct conn **who, size_t n, uint64_t now)
{
	for (size_t i = 1; i < n; i++) {
		struct conn *c = who[i];
		if (!pfd[i].revents)
			continue;
		if (c->kind == C_LISTENER)
			accept_client(l, c, now);
		else if (pfd[i].revents & POLLIN)
			conn_read(l, c);
		else if (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL))
			link_conn_close(l, c, "hung up");
	}
}

/* Poll arrays for at least want entries; false when out of memory. */
static bool poll_room(struct pollfd **pfd, struct conn ***who, size_t *cap, size_t want)
{
	if (*cap >= want)
		return true;
	*cap = want + 15;
	free(*pfd);
	free(*who);
	*pfd = calloc(*cap, sizeof **pfd);
	*who = calloc(*cap, sizeof **who);
	return *pfd && *who;
}

/* The rest of a round after the poll: frames in, the journal, acks out. */
static void round_end(struct links *l, struct pollfd *pfd, struct conn **who, size_t n)
{
	pthread_mutex_lock(&l->lock);
	serve(l, pfd, who, n, es_clock_mono_ms());
	pthread_mutex_unlock(&l->lock);
	link_batch_flush(l); /* waits for the commit: without the lock */
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->nconns; i++)
		conn_flush(l, l->conns[i]);
	reap(l);
	pthread_mutex_unlock(&l->lock);
}

static void *run(void *arg)
{
	struct links *l = arg;
	struct pollfd *pfd = NULL;
	struct conn **who = NULL;
	size_t cap = 0;
	while (!atomic_load(&l->stop)) {
		uint64_t now = es_clock_mono_ms();
		pthread_mutex_lock(&l->lock);
		uint64_t next = timers(l, now);
		pthread_mutex_unlock(&l->lock);
		if (!poll_room(&pfd, &who, &cap, l->nconns + 1)) {
			es_error(TAG, "out of memory: the device links stop");
			break;
		}
		size_t n = fill_pollfds(l, pfd, who);
		int wait = next > now ? (int)(next - now) : 0;
		if (poll(pfd, n, wait) < 0 && errno != EINTR)
			break;
		round_end(l, pfd, who, n);
	}
	free(pfd);
	free(who);
	return NULL;
}

/* ---- the API -------------------------------------------------------------- */

static es_err add_serial(struct links *l, const char *spec)
{
	struct conn *c = link_serial_new(spec);
	return c ? add_conn(l, c) : ES_ENOMEM;
}

static es_err add_listener(struct links *l, const char *spec)
{
	struct conn *c;
	es_err err = link_listen(spec, &c);
	return err ? err : add_conn(l, c);
}

es_err links_new(const links_opts *o, links **out)
{
	struct links *l = calloc(1, sizeof *l);
	if (!l)
		return ES_ENOMEM;
	l->o = *o;
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&l->lock, NULL);
	es_err err = l->wake_fd < 0 ? ES_EIO : devices_new(o->max_devices, &l->devs);
	if (!err)
		err = devices_load(l->devs, o->journal);
	for (size_t i = 0; !err && o->serial && i < o->serial->n; i++)
		err = add_serial(l, o->serial->v[i]);
	for (size_t i = 0; !err && o->listen && i < o->listen->n; i++)
		err = add_listener(l, o->listen->v[i]);
	if (err) {
		links_free(l);
		return err;
	}
	*out = l;
	return ES_OK;
}

es_err links_start(links *l)
{
	if (pthread_create(&l->thread, NULL, run, l) != 0)
		return ES_EIO;
	l->started = true;
	return ES_OK;
}

void links_stop(links *l)
{
	if (!l || !l->started)
		return;
	atomic_store(&l->stop, true);
	uint64_t one = 1;
	if (write(l->wake_fd, &one, sizeof one) < 0)
		es_warn(TAG, "cannot wake the links thread: %s", strerror(errno));
	pthread_join(l->thread, NULL);
	l->started = false;
}

void links_free(links *l)
{
	if (!l)
		return;
	links_stop(l);
	for (size_t i = 0; i < l->nconns; i++)
		link_conn_free(l->conns[i]);
	if (l->devs)
		link_batch_drop(l);
	devices_free(l->devs);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	pthread_mutex_destroy(&l->lock);
	free(l->conns);
	free(l);
}
