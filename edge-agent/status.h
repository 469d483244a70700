/* status.h - the node's status message and the control outbox.
 *
 * The status message (retained, <root>/<site>/<node>/status, common/
 * control.h) says what the journal holds, so consumers can tell a hole from
 * an event still queued. It and every other control message (re-send
 * replies) wait in a small outbox that is sent before any event takes a
 * window slot; a newer status replaces one still queued.
 *
 * Runs on the loop thread. Needs, at creation: the ops table to publish
 * with (pub_ops.h), the journal (its id and latest sequence) and the loop
 * thread's journal reader (the acked and oldest sequences). Calls nothing
 * else of the agent.
 */
#ifndef AGENT_STATUS_H
#define AGENT_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "journal.h"
#include "pub_ops.h"

typedef struct agent_status agent_status;

typedef struct agent_status_opts {
	const char *topic;   /* the retained status topic; copied */
	const char *boot_id; /* new at every start; copied */
	es_journal *journal;
	es_journal_reader *reader; /* the loop thread's */
	const agent_pub_ops *ops;
	void *ops_ctx;
} agent_status_opts;

/* The journal and reader must outlive the result. ES_EINVAL, ES_ENOMEM. */
es_err agent_status_new(const agent_status_opts *o, agent_status **out);
/* Drops what is still queued. NULL ok. */
void agent_status_free(agent_status *st);

/* The status message as JSON (malloc'd into *json; *len without the NUL):
 * online with what the journal holds, or offline (the will, and the last
 * word at shutdown). ES_ENOMEM. */
es_err agent_status_encode(agent_status *st, bool online, char **json, size_t *len);

/* Queues a control message (QoS 1) and sends what the window takes. A full
 * outbox (256) or no memory drops it, logged. Copies topic and payload. */
void agent_status_send(agent_status *st, const char *topic, const char *payload, size_t len,
		       bool retain);
/* Queues the online status, replacing one still queued, and sends. */
void agent_status_publish(agent_status *st);
/* Sends queued messages while connected and the window takes them. */
void agent_status_pump(agent_status *st);
/* Publishes the offline status now, ahead of the outbox (a clean disconnect
 * sends no will). ES_ENOTCONN, ES_EBUSY, ES_ENOMEM, or the client's error. */
es_err agent_status_publish_offline(agent_status *st);

/* Messages waiting in the outbox. */
size_t agent_status_queued(const agent_status *st);

#endif
