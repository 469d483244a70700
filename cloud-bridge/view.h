/* view.h - what the HTTP threads show of the bridge (/api/status,
 * /metrics), as plain data: the counters each part keeps (it copies them
 * under its own lock for bridge_<part>_stats_get), and the view bridge.c
 * composes of them when asked. The links' states are as of the last tick
 * (es_mqtt's stats are the loop's). Each part includes this header for its
 * own stats type; api.c and metrics.c read the view and nothing else.
 */
#ifndef BRIDGE_VIEW_H
#define BRIDGE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lanes.h"

#include "gap.h"

#define BRIDGE_VIEW_EDGES 16 /* edge links shown at most */

/* edge.c: one edge link */
typedef struct bridge_edge_stats {
	const char *url; /* the edge's copy, valid while it lives */
	bool up;
	bool subscribed; /* up, and the broker acknowledged every subscription */
	uint64_t connects, failures;
} bridge_edge_stats;

/* intake.c */
typedef struct bridge_intake_stats {
	uint64_t received;   /* messages from the edge brokers, of any kind */
	uint64_t batches;    /* batches among them that could be read */
	uint64_t invalid;    /* kept as dead letters (conflicts included) */
	uint64_t conflicts;  /* a second id for a node's sequence: kept aside */
	uint64_t duplicates; /* events the inbox held already */
	uint64_t overload;   /* let go: the inbox thread's queue was full */
	uint64_t errors;     /* batches the inbox refused */
} bridge_intake_stats;

/* forward.c */
/* One priority lane of the uplink (lanes.h). */
typedef struct bridge_lane_stats {
	uint64_t held;	      /* rows in memory waiting for their turn */
	uint64_t backlog;     /* pending rows in the inbox (counted every 2 s) */
	uint64_t oldest_ms;   /* when the oldest of them was journaled (wall); 0: none */
	uint64_t sent, acked; /* rows published; PUBACKed */
	uint64_t expired;     /* past the lane's TTL: not sent, kept until retention */
	uint64_t bytes;	      /* payload bytes published (a batch's, compressed) */
	double drain_per_s;   /* rows acked or expired a second, smoothed */
} bridge_lane_stats;

typedef struct bridge_forward_stats {
	uint64_t forwarded;    /* publishes, re-sends after a reconnect included */
	uint64_t acked;	       /* PUBACKs */
	uint64_t out_of_order; /* rows sent after a later one of their node */
	uint64_t refused;      /* kept as dead letters: refused, or no cloud topic */
	uint64_t held;	       /* rows in memory waiting for their turn */
	uint64_t batches;      /* batch publishes (cloud.format batch) */
	uint64_t batch_bytes;  /* their payloads' bytes, compressed */
	uint64_t inflight_bytes, inflight_cap; /* batches' bytes awaiting PUBACK; the bound */
	bridge_lane_stats lanes[BRIDGE_LANES];
} bridge_forward_stats;

/* repair.c */
typedef struct bridge_repair_stats {
	es_gap_stats gap;
	uint64_t gone_replies; /* re-send replies that said "gone" */
} bridge_repair_stats;

/* answer.c: re-send requests that came over the cloud */
typedef struct bridge_answer_stats {
	uint64_t requests;		  /* received */
	uint64_t from_inbox, relayed;	  /* events re-published; requests relayed */
	uint64_t passed, dropped;	  /* agent's answers passed; answers with no room */
	uint64_t ok, partial, gone, busy; /* replies by status */
	uint64_t invalid, waiting;	  /* replies "invalid"; requests waiting now */
} bridge_answer_stats;

/* the cloud link (bridge.c) */
typedef struct bridge_cloud_view {
	bool up;
	uint64_t connects, failures, failovers, inflight;
	size_t node;	 /* the index in cloud.url of the node in use */
	char url[256];	 /* that node, in use or being tried */
	char error[160]; /* the last connection error */
} bridge_cloud_view;

typedef struct bridge_view {
	bool running; /* started: the inbox thread and every link run */
	bool closing; /* the bridge is shutting down */
	size_t nedges;
	bridge_edge_stats edge[BRIDGE_VIEW_EDGES];
	bridge_cloud_view cloud;
	bridge_intake_stats intake;
	bridge_forward_stats forward;
	bridge_repair_stats repair;
	bridge_answer_stats answer;
} bridge_view;

/* Fills out with the bridge's state now. Any thread. */
typedef void (*bridge_view_fn)(void *ctx, bridge_view *out);

#endif
