/* upstatus.h - what the site bridge tells the cloud of each node
 * (cloud.format batch): the node's status as its agent last said it, with
 * acked_seq made what reached the cloud, retained on
 * <root>/<site>/<node>/status at the cloud broker.
 *
 * A reader in the cloud (the cloud role, a consumer) takes a missing
 * sequence as a hole only below a node's acked_seq (gap.h). The agent's
 * own acked_seq says what reached the edge broker; a backlog on its way
 * up a slow link is above what reached the cloud, and would look lost.
 * So acked_seq here is the highest sequence of the node up to which the
 * cloud broker PUBACKed every batch (batches carry a node's events in
 * order; a sequence the site never had stays a hole at the cloud too, and
 * is asked for from the site bridge like any other). `pending` is what is
 * above it. Everything else (journal and boot ids, latest_seq, boot_seq,
 * oldest_seq, online) is the agent's: epochs read the same at the cloud.
 *
 * A node's status goes up when it changed, at most once per `every_ms`
 * (its first one, an offline status, a reboot or a new journal at once),
 * and again after the cloud link comes back. The caller sends a node's
 * first status before any of its batches (a cloud reader refuses the
 * events of a node it has not heard of).
 * Thread: the loop's. Pure state: publishing is the caller's callback.
 */
#ifndef BRIDGE_UPSTATUS_H
#define BRIDGE_UPSTATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct bridge_upstatus bridge_upstatus;

typedef struct bridge_upstatus_deps {
	void *ctx;
	/* A retained QoS 1 publish on the cloud link; an error: try later. */
	es_err (*publish)(void *ctx, const char *topic, const void *payload, size_t len);
} bridge_upstatus_deps;

/* root: the topic root the batches go under. ES_ENOMEM. */
es_err bridge_upstatus_new(const char *root, uint64_t every_ms, const bridge_upstatus_deps *d,
			   bridge_upstatus **out);
void bridge_upstatus_free(bridge_upstatus *u); /* NULL ok */

/* node's ("site/node") agent sent status payload (a status the tracker
 * refuses is ignored here too). */
void bridge_upstatus_agent(bridge_upstatus *u, const char *node, const void *payload, size_t len);
/* The cloud broker PUBACKed a batch of node's events up to last_seq. */
void bridge_upstatus_acked(bridge_upstatus *u, const char *node, uint64_t last_seq);
/* node began a new epoch: its sequence starts again. */
void bridge_upstatus_epoch(bridge_upstatus *u, const char *node);
/* The cloud link came (back) up: every status goes again. */
void bridge_upstatus_resend(bridge_upstatus *u);
/* Publishes what is due at now_ms. */
void bridge_upstatus_tick(bridge_upstatus *u, uint64_t now_ms);

#endif
