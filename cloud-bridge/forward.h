/* forward.h - the cloud side: rows from the inbox go to the cloud broker
 * per source node in sequence order, within the cloud link's inflight
 * window, on the topic cloud.topic maps them to (remap.h), and are marked
 * forwarded (acked in the inbox) on PUBACK.
 *
 * With a batch encoder (cloud.format batch), what of a node may go at once
 * goes as one batch (batch.h) on <root>/<site>/<node>/batch/ce=<coding>,
 * with the batch's MQTT 5 properties: its rows in sequence order, as many
 * as the encoder's caps take, no more than are ready (a batch never waits
 * for more: under light load an event goes alone, at once). One PUBACK
 * marks all its rows forwarded.
 *
 * A node's next row goes when nothing below it is missing, or after it
 * waited hole_wait_ms for the hole (then it counts as out of order). What
 * is held in memory is bounded; the rest of a backlog stays on disk.
 *
 * Thread: the loop's, except bridge_forward_stats_get (any thread).
 * Needs (at creation): the loop, the inbox journal, the cloud link (an ops
 * table), the gap tracker's contiguous mark for a node, and three
 * callbacks for the forward latency (a row sent, acked, the connection
 * lost).
 */
#ifndef BRIDGE_FORWARD_H
#define BRIDGE_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "err.h"
#include "journal.h"
#include "lanes.h"
#include "loop.h"
#include "view.h"

typedef struct bridge_forward bridge_forward;

/* The cloud link as the forwarder uses it (es_mqtt's contract). */
typedef struct bridge_cloud_ops {
	/* A QoS 1 publish, completed by bridge_forward_published(tag).
	 * ES_EBUSY (the window is full), ES_ENOTCONN, or another error. */
	es_err (*publish)(void *ctx, const char *topic, const void *payload, size_t len,
			  uint64_t tag, const es_mqtt_props *props);
	size_t (*inflight)(void *ctx); /* publishes awaiting their PUBACK */
	size_t (*window)(void *ctx);   /* how many may await at most */
	bool (*connected)(void *ctx);
} bridge_cloud_ops;

/* The lanes as settings say them (parsed again by the forwarder). */
typedef struct bridge_forward_lanes {
	const char *high, *low; /* lanes.high, lanes.low */
	uint64_t ttl_ms[BRIDGE_LANES];
} bridge_forward_lanes;

typedef struct bridge_forward_opts {
	const char *cloud_topic; /* the remap template (remap.h) */
	const char *root;	 /* the edge root, for its {root} */
	uint64_t hole_wait_ms;	 /* order.hole_wait_ms */
	/* cloud.format batch: how batches are made; NULL: an event a message. */
	const es_batch_enc_opts *batch;
	/* Lanes by type and their TTLs (lanes.h); NULL: every event normal. */
	const bridge_forward_lanes *lanes;
	unsigned backlog_share; /* lanes.backlog_share, percent (0: 10) */
	uint64_t inflight_ms;	/* cloud.inflight_ms (batches); 0: no bound */
} bridge_forward_opts;

typedef struct bridge_forward_deps {
	es_loop *loop;
	es_journal *journal; /* the inbox: read, acked, dead letters */
	const bridge_cloud_ops *cloud;
	void *cloud_ctx;
	void *ctx;
	/* The highest sequence of node below which nothing is missing. */
	uint64_t (*contiguous)(void *ctx, const char *node);
	/* A row published (its inbox seq, when it was journaled, wall ms), its
	 * PUBACK, the connection lost (what was in flight goes again). */
	void (*sent)(void *ctx, uint64_t seq, uint64_t journaled_ms);
	void (*acked)(void *ctx, uint64_t seq);
	void (*lost)(void *ctx);
	/* Optional: every event of node up to its sequence last_seq has been
	 * PUBACKed by the cloud broker (or let go: expired, refused), counting
	 * batches only; called as that mark goes up. */
	void (*batch_acked)(void *ctx, const char *node, uint64_t last_seq);
} bridge_forward_deps;

/* Checks the template (an error is logged as "cloud.topic ...") and opens a
 * reader on the inbox. ES_EINVAL, ES_ENOMEM, the journal's errors. */
es_err bridge_forward_new(const bridge_forward_opts *o, const bridge_forward_deps *d,
			  bridge_forward **out);
void bridge_forward_free(bridge_forward *f); /* NULL ok */

/* Publishing is allowed from start until stop (the bridge is stopping: what
 * is in flight is awaited, nothing more goes). */
void bridge_forward_start(bridge_forward *f);
void bridge_forward_stop(bridge_forward *f);

/* Reads what waits and publishes what may go while the window has room. */
void bridge_forward_pump(bridge_forward *f);
/* New rows were committed: read the inbox again, then pump. */
void bridge_forward_committed(bridge_forward *f);
/* The cloud connection was made or lost: what was in flight is lost; read
 * again from the oldest unforwarded row. */
void bridge_forward_reset(bridge_forward *f);
/* node began a new epoch (its journal was replaced): its sequence starts
 * again, so what went of the old one no longer says what is next. */
void bridge_forward_epoch(bridge_forward *f, const char *node);
/* A publish completed (es_mqtt's published contract). */
void bridge_forward_published(bridge_forward *f, uint64_t tag, es_err err);

void bridge_forward_stats_get(bridge_forward *f, bridge_forward_stats *out);

#endif
