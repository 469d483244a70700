/* linkio.h - firmware-host's end of the link: a pseudo-terminal the gateway
 * opens like a serial port, or a TCP or UNIX client connection to the
 * gateway; non-blocking, driven by the caller's poll() loop.
 *
 * pty:PATH  creates a pseudo-terminal (raw on both sides) and makes PATH a
 *           symlink to its slave (an old symlink is replaced; the link is
 *           removed on linkio_free if it still points to our slave). We keep
 *           a slave fd open ourselves and never read it: the gateway may
 *           close and reopen the slave (an agent restart) without the master
 *           seeing EIO/POLLHUP, and while no one reads, the terminal's
 *           buffer fills and writes wait (back-pressure, not loss). Bytes
 *           the gateway did not read before it closed are read by its next
 *           open; the protocol copes (duplicates are re-acked).
 * tcp:HOST:PORT, unix:PATH
 *           connect as a client; when refused or closed, retry after a
 *           backoff of 100 ms doubling to 2 s (back to 100 ms once up). A
 *           new connection starts with a 0x00 so the gateway's decoder
 *           drops any half frame; frames queued for a lost connection are
 *           dropped (the devices resend what is not acknowledged).
 *
 * Output is a bounded buffer of whole frames: linkio_send queues all of a
 * frame or nothing. Incoming bytes go to the on_rx callback as they come.
 */
#ifndef LINKIO_H
#define LINKIO_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct linkio linkio;
typedef void (*linkio_rx_fn)(void *ctx, const uint8_t *p, size_t n);

typedef struct linkio_cfg {
	const char *spec;   /* pty:PATH, tcp:HOST:PORT or unix:PATH */
	size_t out_cap;	    /* output buffer, bytes */
	linkio_rx_fn on_rx; /* gets every byte read */
	void *ctx;
} linkio_cfg;

/* Checks a spec's form without touching anything; on error says why in err. */
bool linkio_check(const char *spec, char *err, size_t errlen);

/* Sets the link up (pty: now; sockets: the first connect starts at the first
 * linkio_tick). Returns NULL with a message in err if it cannot. */
linkio *linkio_new(const linkio_cfg *cfg, char *err, size_t errlen);
/* Closes everything and removes the pty symlink; NULL is a no-op. */
void linkio_free(linkio *l);

/* Queues a whole frame; false if the link is down or the buffer has no room. */
bool linkio_send(linkio *l, const uint8_t *p, size_t n);
/* Writes what the buffer holds, as far as the fd takes it. */
void linkio_flush(linkio *l);

/* Time passes: starts a connect when one is due. now_ms is monotonic. */
void linkio_tick(linkio *l, uint64_t now_ms);
/* Fills pfd for poll(); false if there is no fd to wait on now. */
bool linkio_pollfd(const linkio *l, struct pollfd *pfd);
/* Milliseconds until linkio_tick has work (a reconnect), or -1. */
int linkio_timeout_ms(const linkio *l, uint64_t now_ms);
/* Handles poll()'s revents for the fd linkio_pollfd gave. */
void linkio_handle(linkio *l, short revents);

bool linkio_up(const linkio *l);	     /* frames can be queued now */
bool linkio_ever_up(const linkio *l);	     /* the pty exists, or a connect succeeded once */
uint32_t linkio_reconnects(const linkio *l); /* connections made after the first */

#endif
