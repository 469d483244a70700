/* resend.h - the re-send service: consumers that found a hole in a node's
 * sequence ask for the range (on <root>/<site>/<node>/cmd/resend, or POST
 * /api/replay); the agent re-publishes it from its journal on the events'
 * usual topics, keeping their ids and sequences, at most `rate` events per
 * second, and always answers (on the reply topic): "ok", "partial" (part of
 * the range is gone), "gone", "busy" or "invalid". Never silence.
 * Overlapping requests are merged (a sequence waits once, however many ask
 * for it); what waits is bounded: `queue` requests, a quarter of them from
 * one asker, `max_span` sequences in all. Over a bound: "busy".
 *
 * Runs on the loop thread, but for agent_resend_ask (any other thread).
 * Needs, at creation: the loop (its rate timer; asks are handed over to
 * it), the ops table to publish with (pub_ops.h), the journal and the loop
 * thread's reader (the range held), and two callbacks: reply, to send an
 * answer (agent.c queues it in the control outbox, status.h), and wake,
 * when there is something to send (agent.c pumps: control messages, live
 * events, then agent_resend_pump).
 *
 * Lock: each ask's own lock guards that ask's answer; `stopped` is atomic.
 */
#ifndef AGENT_RESEND_H
#define AGENT_RESEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "err.h"
#include "journal.h"
#include "loop.h"
#include "pub_ops.h"

typedef struct agent_resend agent_resend;

typedef struct agent_resend_opts {
	es_loop *loop;
	agent_names names; /* borrowed */
	es_journal *journal;
	es_journal_reader *reader; /* the loop thread's */
	uint64_t rate;		   /* events per second, >= 1 */
	uint64_t max_span;	   /* longest range one request may ask for, >= 1 */
	size_t queue;		   /* requests queued at most, >= 1 */
	const agent_pub_ops *ops;
	void *ops_ctx;
	/* Sends an answer (JSON, valid during the call) on the reply topic. */
	void (*reply)(void *ctx, const char *json, size_t len);
	/* There is something to send: pump. Called on the loop thread. */
	void (*wake)(void *ctx);
	void *ctx;
} agent_resend_opts;

typedef struct agent_resend_stats {
	uint64_t served;  /* requests answered after their events were sent */
	uint64_t events;  /* events re-sent */
	uint64_t gone;	  /* events asked for that retention had removed */
	uint64_t busy;	  /* requests refused: a bound was reached */
	uint64_t invalid; /* requests that made no sense (or too large to read) */
	uint64_t merged;  /* sequences asked for that were waiting already */
	uint64_t pending; /* sequences waiting to be re-sent now */
} agent_resend_stats;

/* The loop, names, journal and reader must outlive the result. ES_EINVAL,
 * ES_ENOMEM. */
es_err agent_resend_new(const agent_resend_opts *o, agent_resend **out);
/* Loop thread (its timer is cancelled). NULL ok. */
void agent_resend_free(agent_resend *rs);

/* A request that arrived on the command topic (JSON, common/control.h):
 * queued, or answered at once (invalid, gone, busy). */
void agent_resend_request(agent_resend *rs, const char *payload, size_t len);

/* A request too large to be read (the MQTT link let it go unread):
 * answered invalid, without a request_id. */
void agent_resend_oversized(agent_resend *rs, size_t len);

/* What an ask was answered: ES_RESEND_OK (queued; events is how many will
 * be sent), or ES_RESEND_GONE, _BUSY or _INVALID and why (a static
 * string). */
typedef struct agent_resend_answer {
	es_resend_status status;
	const char *why;
	uint64_t events;
	char request_id[ES_REQUEST_ID_MAX];
} agent_resend_answer;

/* Asks for [from, to] from another thread (HTTP), as a request named
 * "http-<ms>": hands it to the loop and waits for its answer, 5 s at most.
 * ES_ECLOSED once stopped, ES_ETIMEDOUT when the loop did not answer in
 * time, ES_ENOMEM; *out is written only on ES_OK. Not on the loop thread. */
es_err agent_resend_ask(agent_resend *rs, uint64_t from, uint64_t to, agent_resend_answer *out);

/* Sends from the oldest request while connected, not stopped, and the
 * window and the rate allow; answers each request once it is served. */
void agent_resend_pump(agent_resend *rs);
/* True while a request is queued. */
bool agent_resend_active(const agent_resend *rs);
/* Shutdown: nothing more is sent and asks get ES_ECLOSED. */
void agent_resend_stop(agent_resend *rs);

void agent_resend_stats_get(const agent_resend *rs, agent_resend_stats *out);

#endif
