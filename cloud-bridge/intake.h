/* intake.h - the bridge's way in: every message from the edge brokers is
 * sorted by its topic; an event is checked and handed to the inbox thread,
 * which journals it verbatim (group commit; blocking there is fine, never on
 * the loop) and hands the result back to the loop. What cannot be forwarded
 * is kept as a dead letter, counted.
 *
 * paho acknowledges an incoming QoS 1 message before we have stored it;
 * what is lost between that PUBACK and our commit (a crash, an overload) is
 * never reported as stored, so it stays a hole for whoever tracks them.
 *
 * Any client of the edge broker can publish (as far as its ACL lets it), so
 * an event is taken only when it speaks for the node of its topic (its
 * `source` is "/<site>/<node>"), its sequence is one a node can send
 * (1..2^53-1), and the node's tracker admits it (a known node, not beyond
 * what it could have sent). A second, different id for a node's sequence
 * the inbox already holds in the node's current epoch is a conflict: kept
 * aside as a dead letter naming both ids, counted, never forwarded. Epochs
 * (a node whose journal was replaced starts its sequence again) are told by
 * bridge_intake_epoch; the inbox remembers where each began (key
 * "x.epoch.<site>/<node>": "<epoch> <inbox seq>", rows after it are the
 * epoch's).
 *
 * Threads: the loop's (bridge_intake_message and every callback), the inbox
 * thread (journaling, and looking for conflicts on its own reader), any
 * thread for bridge_intake_stats_get.
 * Needs (at creation): the loop, the inbox journal, and callbacks for what
 * is not an event (status messages, re-send replies, a share group's
 * reports) and for what the inbox stored.
 */
#ifndef BRIDGE_INTAKE_H
#define BRIDGE_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "journal.h"
#include "loop.h"
#include "view.h"

typedef struct bridge_intake bridge_intake;

/* The inbox's record of where each node's epoch began, kept by the intake
 * under BRIDGE_EPOCH_KEY "<site/node>" as "<epoch> <boundary>": rows with
 * an inbox sequence above boundary are that epoch's. */
#define BRIDGE_EPOCH_KEY "x.epoch."
/* Parses a record's value; false when it is not one. */
bool bridge_epoch_parse(const void *value, size_t len, uint32_t *epoch, uint64_t *boundary);

typedef struct bridge_intake_opts {
	const char *root;	/* events come on <root>/<site>/<node>/ev/<type> */
	const char *peer_topic; /* the share group's reports; NULL: no group */
	size_t event_max_bytes; /* a larger event is a dead letter */
} bridge_intake_opts;

/* An event the inbox took: stored under seq, or a copy of one it holds. */
typedef struct bridge_stored {
	const char *node; /* "site/node" */
	uint64_t node_seq;
	uint64_t seq; /* its inbox sequence (a duplicate: the earlier copy's) */
	bool duplicate;
	/* Admitted before the node's current epoch began (it was still on its
	 * way into the inbox when a new journal was announced): the old
	 * journal's sequence, not the new one's. */
	bool earlier_epoch;
} bridge_stored;

/* What the node's tracker says of an event's sequence. */
typedef enum bridge_admit {
	BRIDGE_ADMIT_NEW,    /* not seen in the node's current epoch */
	BRIDGE_ADMIT_SEEN,   /* seen: a copy, or a second id (a conflict) */
	BRIDGE_ADMIT_REFUSE, /* not a known node's, or more than it could have sent */
} bridge_admit;

typedef struct bridge_intake_deps {
	es_loop *loop;
	es_journal *journal; /* the inbox: events and dead letters go in */
	void *ctx;
	/* The payload of <root>/<site>/<node>/status and .../reply/resend. */
	void (*status)(void *ctx, const char *node, const void *payload, size_t len);
	void (*reply)(void *ctx, const char *node, const void *payload, size_t len);
	/* A report on the share group's topic. */
	void (*peer)(void *ctx, const void *payload, size_t len);
	/* Rules on node's event seq; for REFUSE writes why (a dead letter's
	 * reason) into why[whycap]. */
	bridge_admit (*admit)(void *ctx, const char *node, uint64_t seq, char *why, size_t whycap);
	/* Each event of a batch the inbox committed (or found a copy of). */
	void (*stored)(void *ctx, const bridge_stored *s);
	/* After the batch's stored() calls: new rows are in the inbox. */
	void (*batch_done)(void *ctx);
} bridge_intake_deps;

/* Copies o's strings. ES_EINVAL (a dependency missing), ES_ENOMEM. */
es_err bridge_intake_new(const bridge_intake_opts *o, const bridge_intake_deps *d,
			 bridge_intake **out);
/* Stops the inbox thread first if it runs (as bridge_intake_stop). NULL ok. */
void bridge_intake_free(bridge_intake *in);

/* Starts the inbox thread. ES_ESYS. */
es_err bridge_intake_start(bridge_intake *in);
/* Journals what is queued, stops the inbox thread, and hands back the last
 * results (the callbacks run before it returns). Idempotent. Loop thread. */
void bridge_intake_stop(bridge_intake *in);

/* A message that arrived from an edge broker. Loop thread. */
void bridge_intake_message(bridge_intake *in, const char *topic, const void *payload, size_t len);

/* A message too large to be an event, let go unread by the edge link: a
 * dead letter without its payload. Loop thread. */
void bridge_intake_oversized(bridge_intake *in, const char *topic, size_t len);

/* node is in epoch `epoch` of its journals. fresh: it began just now (its
 * status said so): what the inbox holds of the node from before is another
 * epoch's. Not fresh (at start, from the saved tracker): only when the
 * inbox knows an older epoch does it take the new one as starting now.
 * Loop thread; takes effect in arrival order with the events. */
void bridge_intake_epoch(bridge_intake *in, const char *node, uint32_t epoch, bool fresh);

void bridge_intake_stats_get(bridge_intake *in, bridge_intake_stats *out);

#endif
