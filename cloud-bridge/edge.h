/* edge.h - the bridge's links to its edge brokers: one MQTT connection per
 * edge.url, each with the same subscriptions, and which link each source
 * node was last heard on (so a re-send request goes back the way the node's
 * messages came).
 *
 * Thread: the loop's, except bridge_edge_stats_get (any thread).
 * Needs (at creation): the loop, and two callbacks: every message that
 * arrives on any link, and the end of bridge_edge_stop.
 */
#ifndef BRIDGE_EDGE_H
#define BRIDGE_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "loop.h"
#include "mqtt.h"
#include "view.h"

typedef struct bridge_edge bridge_edge;

typedef struct bridge_edge_sub {
	const char *filter;
	int qos;
} bridge_edge_sub;

typedef struct bridge_edge_opts {
	es_mqtt_opts mqtt; /* every link's; url, urls, cbs and ctx are set per link */
	const char *const *urls;
	size_t nurls;
	const char *root;	     /* topics are <root>/<site>/<node>/...: whose node */
	const bridge_edge_sub *subs; /* made on every link */
	size_t nsubs;
} bridge_edge_opts;

typedef struct bridge_edge_deps {
	es_loop *loop;
	void *ctx;
	/* A message arrived on a link (pointers valid during the call). */
	void (*message)(void *ctx, const char *topic, const void *payload, size_t len);
	/* One larger than mqtt.max_message arrived, unread. NULL: ignored. */
	void (*oversized)(void *ctx, const char *topic, size_t len);
	/* After bridge_edge_stop: every link has disconnected. Once. */
	void (*stopped)(void *ctx);
} bridge_edge_deps;

/* Makes a link per URL (not connected yet) and its subscriptions; copies
 * what it keeps of o. ES_EINVAL (a bad URL, logged), ES_ENOMEM. */
es_err bridge_edge_new(const bridge_edge_opts *o, const bridge_edge_deps *d, bridge_edge **out);
/* Disconnects at once (no will, nothing waited for). NULL ok. */
void bridge_edge_free(bridge_edge *e);

/* Starts connecting every link, and reconnecting whenever one is lost. */
es_err bridge_edge_start(bridge_edge *e);

/* Disconnects every link cleanly; deps.stopped follows once all have. */
void bridge_edge_stop(bridge_edge *e);

/* Publishes (QoS 1) on the link node was last heard on; the first link
 * for a node not heard yet. es_mqtt_publish's errors. */
es_err bridge_edge_send(bridge_edge *e, const char *node, const char *topic, const void *payload,
			size_t len);

/* Publishes (QoS 0) on every link; a message not sent is not retried. */
void bridge_edge_send_all(bridge_edge *e, const char *topic, const void *payload, size_t len);

size_t bridge_edge_count(const bridge_edge *e);

/* Copies every link's state for bridge_edge_stats_get (every tick). */
void bridge_edge_show(bridge_edge *e);

/* Link i's state as of the last bridge_edge_show. Any thread. */
void bridge_edge_stats_get(bridge_edge *e, size_t i, bridge_edge_stats *out);

#endif
