/* rotation.h - which of several broker URLs to try next (fail-over).
 *
 * A client given the URLs of a cluster's nodes stays on the node it is
 * connected to. When that connection is lost, or an attempt fails, it moves
 * to the next URL in the list (round robin). Only after a whole round of
 * attempts has failed since the last success should the caller wait with
 * growing backoff; inside a round the next node is tried after the short
 * first step of the backoff. With one URL every failure ends a round, which
 * is plain reconnection with backoff.
 *
 * A fail-over is a connection made to another node than the previous
 * connection's. Pure state, no I/O; one owner thread.
 */
#ifndef ES_ROTATION_H
#define ES_ROTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct es_rotation {
	size_t n;	    /* URLs, at least 1 */
	size_t cur;	    /* the one being tried or used */
	size_t failed;	    /* failures since the last success */
	size_t last_up;	    /* index of the last successful connection */
	bool ever_up;	    /* a connection has been made */
	uint64_t failovers; /* connections to another node than the previous one */
} es_rotation;

/* Starts at the first URL of n (0 is taken as 1). */
void es_rotation_init(es_rotation *r, size_t n);
/* The index of the URL to try or in use. */
size_t es_rotation_current(const es_rotation *r);
/* An attempt failed or the connection was lost: moves to the next URL.
 * Returns true when every URL has failed since the last success (the caller
 * then backs off with growing delays), false to try the next one soon. */
bool es_rotation_failed(es_rotation *r);
/* Connected to the current URL. Returns true if that is a fail-over. */
bool es_rotation_connected(es_rotation *r);

#endif
