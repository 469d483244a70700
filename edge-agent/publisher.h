/* publisher.h - publishes the journal's pending events in order, within the
 * inflight window, and marks each acked on its PUBACK.
 *
 * Rows are read from the journal in batches into a FIFO (bounded in rows and
 * bytes, so a backlog of a million events stays on disk) and published from
 * it while the window has room, each with its sequence as the tag. When the
 * connection drops, everything in flight is forgotten and the next
 * connection starts again from the oldest pending event: at-least-once, in
 * order.
 *
 * Runs on the loop thread. Needs, at creation: the ops table to publish with
 * (pub_ops.h), the journal (for acks) and the loop thread's reader, and
 * optionally the node's metrics (es_node_metrics: sent, acked, reset; the
 * publish latency). Calls nothing else of the agent: agent.c tells it when
 * the journal committed, hands it its PUBACKs and says when to pump.
 */
#ifndef AGENT_PUBLISHER_H
#define AGENT_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "err.h"
#include "journal.h"
#include "node_metrics.h"
#include "pub_ops.h"

typedef struct agent_publisher agent_publisher;

typedef struct agent_publisher_opts {
	agent_names names; /* events go to <root>/<site>/<node>/ev/<type>; borrowed */
	es_journal *journal;
	es_journal_reader *reader; /* the loop thread's */
	const agent_pub_ops *ops;
	void *ops_ctx;
	es_node_metrics *metrics; /* NULL: none */
	/* Batches: the encoder's options (copied); NULL: an event a message. */
	const es_batch_enc_opts *batch;
} agent_publisher_opts;

typedef struct agent_publisher_stats {
	uint64_t published; /* events sent (again after a reconnect included) */
	uint64_t acked;	    /* events acked by a PUBACK, refusals included */
	uint64_t refused;   /* events refused (MQTT 5; decisions.md, 14) */
	uint64_t batches;   /* batches sent (with opts.batch) */
} agent_publisher_stats;

/* names, journal, reader and metrics must outlive the result. ES_EINVAL,
 * ES_ENOMEM; for batches, the encoder's errors (es_batch_enc_new). */
es_err agent_publisher_new(const agent_publisher_opts *o, agent_publisher **out);
void agent_publisher_free(agent_publisher *p); /* NULL ok */

/* The journal committed up to latest: there is more to read. */
void agent_publisher_committed(agent_publisher *p, uint64_t latest);
/* Publishes while connected, not stopped, and the window has more than
 * reserve free slots (room kept for the re-send service). */
void agent_publisher_pump(agent_publisher *p, size_t reserve);
/* The PUBACK of the publish tagged tag: an event's sequence, or a batch's
 * first event's, which acks all of the batch's events. err ES_OK, or
 * ES_EPROTO (the broker refused it for good: logged, counted, and acked so
 * it does not block the watermark; it stays in the journal). */
void agent_publisher_acked(agent_publisher *p, uint64_t tag, es_err err);
/* The connection was lost (or a publish with it): forget what was in
 * flight (batches included); the next pump starts again from the oldest pending event. */
void agent_publisher_reset(agent_publisher *p);
/* Shutdown: no more events are published; PUBACKs are still taken. */
void agent_publisher_stop(agent_publisher *p);

void agent_publisher_stats_get(const agent_publisher *p, agent_publisher_stats *out);

#endif
