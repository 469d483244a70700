/* pub_ops.h - what the agent's publishing parts (status.h, publisher.h,
 * resend.h) need of the MQTT client, as an ops table.
 *
 * agent.c gives them agent_mqtt_ops (pub_ops.c) over its es_mqtt; the unit
 * tests give them a fake.
 * Every op runs on the loop thread. A publish is QoS 1 and its completion
 * comes back, on the loop, to agent.c with the tag it was given; the tag
 * says whose it was (AGENT_TAG_*), so agent.c can route it.
 */
#ifndef AGENT_PUB_OPS_H
#define AGENT_PUB_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "mqtt.h"

/* A publish's tag: a control message (status, replies: no bookkeeping), a
 * re-sent event (AGENT_TAG_RESEND | its sequence), or else a live event
 * (its sequence, never 0). */
#define AGENT_TAG_CONTROL UINT64_C(0)
#define AGENT_TAG_RESEND  (UINT64_C(1) << 63)

typedef struct agent_pub_ops {
	/* Publishes with QoS 1, with MQTT 5 properties (props NULL: none;
	 * ignored under MQTT 3.1.1; copied before it returns). ES_EBUSY: the
	 * window is full; ES_ENOTCONN: not connected (both: try again later);
	 * another error: this message cannot be published (logged by the
	 * client). */
	es_err (*publish)(void *ctx, const char *topic, const void *payload, size_t len,
			  bool retain, uint64_t tag, const es_mqtt_props *props);
	bool (*connected)(void *ctx);
	size_t (*inflight)(void *ctx); /* publishes awaiting their PUBACK */
	size_t (*window)(void *ctx);   /* how many may await at most */
} agent_pub_ops;

/* The ops over an es_mqtt (common/mqtt.h). Their ctx is the address of the
 * es_mqtt pointer (es_mqtt **), so the parts can be made before the client,
 * which needs the status part's will; no op runs before it is set. */
extern const agent_pub_ops agent_mqtt_ops;

/* The names in a node's topics: <root>/<site>/<node>/<kind>/... */
typedef struct agent_names {
	const char *root, *site, *node;
} agent_names;

#endif
