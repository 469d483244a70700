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
 * Threads: the loop's (bridge_intake_message and every callback), the inbox
 * thread (journaling), any thread for bridge_intake_stats_get.
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
} bridge_stored;

typedef struct bridge_intake_deps {
	es_loop *loop;
	es_journal *journal; /* the inbox: events and dead letters go in */
	void *ctx;
	/* The payload of <root>/<site>/<node>/status and .../reply/resend. */
	void (*status)(void *ctx, const char *node, const void *payload, size_t len);
	void (*reply)(void *ctx, const char *node, const void *payload, size_t len);
	/* A report on the share group's topic. */
	void (*peer)(void *ctx, const void *payload, size_t len);
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

void bridge_intake_stats_get(bridge_intake *in, bridge_intake_stats *out);

#endif
