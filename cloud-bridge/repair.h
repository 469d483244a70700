/* repair.h - what makes the bridge complete end to end: a gap tracker
 * (gap.h) fed with every event the inbox committed (never with one merely
 * received: paho acknowledged that before we stored it) and with the
 * agents' status messages; holes are asked for again, "gone" answers are
 * counted as lost, loudly.
 *
 * The tracker is saved in the inbox every second with the inbox sequence it
 * covers; when made, a repair loads it and feeds it every inbox row after
 * that sequence, so a restart loses no knowledge. Bridges sharing a
 * subscription tell each other what they stored, on the share group's
 * topic, so each tracks the group's holes and not its partners' events.
 *
 * The tracker is also what the bridge knows of each node: a node is known
 * once its status was seen; an event from a node that is not known, or
 * more than max_ahead above the newest sequence the node said it has, is
 * refused (bridge_repair_admit). When first heard of, a node is caught up
 * (gap.catchup: what it holds that never arrived is asked for). A node
 * whose journal was replaced begins a new epoch (deps.epoch). A reply to
 * one of our requests is final: what the node says it never had (above its
 * latest_seq) is void, and a range it refused ("invalid") is given up,
 * counted lost.
 *
 * Thread: the loop's, except bridge_repair_stats_get (any thread).
 * Needs (at creation): the inbox journal, and two ways to the agents: a
 * re-send request to one node, and a report to every partner.
 */
#ifndef BRIDGE_REPAIR_H
#define BRIDGE_REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "gap.h"
#include "journal.h"
#include "view.h"

typedef struct bridge_repair bridge_repair;

typedef struct bridge_repair_opts {
	es_gap_opts gap;	/* gap.catchup: see gap.h */
	uint64_t max_ahead;	/* refuse events this far above a node's latest; 0: no limit */
	const char *root;	/* requests go to <root>/<site>/<node>/cmd/resend */
	const char *client_id;	/* ours: in request ids and reports (ours are skipped) */
	const char *peer_topic; /* the share group's topic; NULL: no group */
} bridge_repair_opts;

typedef struct bridge_repair_deps {
	es_journal *journal; /* the inbox: the tracker is saved in it, restored from it */
	void *ctx;
	/* Publishes a re-send request to node (QoS 1). ES_OK when sent. */
	es_err (*request)(void *ctx, const char *node, const char *topic, const void *payload,
			  size_t len);
	/* Publishes a report to the share group (QoS 0). */
	void (*report)(void *ctx, const char *topic, const void *payload, size_t len);
	/* node is in its epoch-th journal: fresh, it began just now (its status
	 * said so); else at bridge_repair_epochs. */
	void (*epoch)(void *ctx, const char *node, uint32_t epoch, bool fresh);
} bridge_repair_deps;

/* Makes the tracker and restores it from the inbox (a saved state that
 * cannot be read is logged and rebuilt from the rows). Copies o's strings.
 * ES_EINVAL, ES_ENOMEM, or the journal's error. */
es_err bridge_repair_new(const bridge_repair_opts *o, const bridge_repair_deps *d,
			 bridge_repair **out);
void bridge_repair_free(bridge_repair *r); /* NULL ok */

/* The inbox committed node's event node_seq under seq. */
void bridge_repair_stored(bridge_repair *r, const char *node, uint64_t node_seq, uint64_t seq);
/* The inbox already held node's event node_seq: in a share group, most
 * likely a re-send a partner asked for that the broker gave to us. */
void bridge_repair_duplicate(bridge_repair *r, const char *node, uint64_t node_seq);
/* The inbox committed row seq (0: none, a copy): the save mark may pass
 * it, and nothing else changes. For an event of a node's earlier epoch,
 * admitted before the new one was announced: the tracker, which began the
 * node's sequence again, does not take it in. */
void bridge_repair_covered(bridge_repair *r, uint64_t seq);

/* What the tracker says of a node's sequence. */
typedef enum bridge_repair_verdict {
	BRIDGE_REPAIR_NEW,     /* not seen in the node's current epoch */
	BRIDGE_REPAIR_SEEN,    /* seen in it */
	BRIDGE_REPAIR_REFUSED, /* not a known node, or beyond what it could have sent */
} bridge_repair_verdict;

/* Whether node's event seq may be taken (see the top of this file); when
 * refused writes why into why[whycap]. */
bridge_repair_verdict bridge_repair_admit(bridge_repair *r, const char *node, uint64_t seq,
					  char *why, size_t whycap);

/* Tells deps.epoch (not fresh) every known node's epoch: at start, so that
 * the intake knows the epochs the saved tracker knows. */
void bridge_repair_epochs(bridge_repair *r);

/* What the edge brokers brought: a node's status message or re-send reply,
 * a partner's report. Bad payloads are logged and ignored. */
void bridge_repair_status(bridge_repair *r, const char *node, const void *payload, size_t len);
void bridge_repair_reply(bridge_repair *r, const char *node, const void *payload, size_t len);
void bridge_repair_peer(bridge_repair *r, const void *payload, size_t len);

/* Every tick: asks for the holes that are due (when ask; not while the
 * bridge stops), sends the report, saves the tracker every second. */
void bridge_repair_tick(bridge_repair *r, bool ask);
/* Saves the tracker now if it changed. */
void bridge_repair_save(bridge_repair *r);

/* node's highest sequence below which nothing is missing. */
uint64_t bridge_repair_contiguous(const bridge_repair *r, const char *node);

/* As of the last tick. Any thread. */
void bridge_repair_stats_get(bridge_repair *r, bridge_repair_stats *out);

#endif
