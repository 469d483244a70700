/* view.h - the loop's state as the other threads may see it: a copy, taken
 * on the loop thread when it changes (connected, lost, a refusal, every
 * status interval, shutdown), read by the HTTP threads (api.h, metrics.h).
 *
 * Lock: one mutex guards the copy. Needs nothing of the agent.
 */
#ifndef AGENT_VIEW_H
#define AGENT_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

typedef struct agent_view agent_view;

typedef struct agent_view_data {
	bool connected; /* to the broker */
	bool running;	/* started: the links' thread and the MQTT client run */
	bool stopping;	/* shutdown has begun */
	uint64_t connects, failures, inflight, connected_since_ms;
	uint64_t published, acked, refused; /* the publisher's */
	uint64_t batches;		    /* its batches (mqtt.format batch) */
	uint64_t resent;		    /* the re-send service's events */
	char last_error[160];		    /* the MQTT client's */
} agent_view_data;

/* ES_ENOMEM. The view starts zeroed. */
es_err agent_view_new(agent_view **out);
void agent_view_free(agent_view *v); /* NULL ok */

/* Any thread. */
void agent_view_set(agent_view *v, const agent_view_data *d);
void agent_view_get(agent_view *v, agent_view_data *out);

#endif
