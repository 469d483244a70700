/* status.c - the node's retained status message and the outbox of control
 * messages that go before any event (decisions.md, 8). Loop thread only. */
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "control.h"
#include "log.h"
#include "lograte.h"

#define TAG	   "agent"
#define OUTBOX_MAX 256

/* A control message waiting for window room. */
struct control_msg {
	char *topic, *payload;
	size_t len;
	bool retain;
	struct control_msg *next;
};

struct agent_status {
	es_journal *journal;
	es_journal_reader *reader;
	const agent_pub_ops *ops;
	void *ops_ctx;
	char *topic, *boot_id;
	uint64_t boot_seq; /* the journal's newest sequence when this boot began */
	struct control_msg *head, *tail;
	size_t n;
	es_lograte lograte; /* drops in a flood of requests: a few lines a second */
};

es_err agent_status_new(const agent_status_opts *o, agent_status **out)
{
	if (!o || !o->topic || !o->boot_id || !o->journal || !o->reader || !o->ops || !out)
		return ES_EINVAL;
	agent_status *st = calloc(1, sizeof *st);
	if (!st)
		return ES_ENOMEM;
	es_journal_counters c;
	es_journal_counters_get(o->journal, &c);
	*st = (agent_status){.journal = o->journal,
			     .reader = o->reader,
			     .ops = o->ops,
			     .ops_ctx = o->ops_ctx,
			     .boot_seq = c.latest_seq};
	if (!(st->topic = strdup(o->topic)) || !(st->boot_id = strdup(o->boot_id))) {
		agent_status_free(st);
		return ES_ENOMEM;
	}
	*out = st;
	return ES_OK;
}

static void free_msg(struct control_msg *m)
{
	free(m->topic);
	free(m->payload);
	free(m);
}

void agent_status_free(agent_status *st)
{
	if (!st)
		return;
	while (st->head) {
		struct control_msg *m = st->head;
		st->head = m->next;
		free_msg(m);
	}
	free(st->topic);
	free(st->boot_id);
	free(st);
}

es_err agent_status_encode(agent_status *st, bool online, char **json, size_t *len)
{
	es_status_msg m = {
		.online = online, .clock_synced = es_clock_synced(), .time_ms = es_clock_wall_ms()};
	es_journal_counters c;
	es_journal_stats s;
	es_journal_counters_get(st->journal, &c);
	snprintf(m.boot_id, sizeof m.boot_id, "%s", st->boot_id);
	snprintf(m.journal_id, sizeof m.journal_id, "%s", es_journal_id(st->journal));
	m.latest_seq = c.latest_seq;
	m.boot_seq = st->boot_seq < c.latest_seq ? st->boot_seq : c.latest_seq;
	if (online && es_journal_stats_get(st->reader, &s) == ES_OK) {
		m.acked_seq = s.acked_seq;
		m.oldest_seq = s.oldest_seq;
		m.pending = s.pending;
	}
	return es_status_encode(&m, json, len);
}

/* ---- the outbox ------------------------------------------------------------ */

void agent_status_pump(agent_status *st)
{
	while (st->head && st->ops->connected(st->ops_ctx)) {
		struct control_msg *m = st->head;
		es_err err = st->ops->publish(st->ops_ctx, m->topic, m->payload, m->len, m->retain,
					      AGENT_TAG_CONTROL, NULL);
		if (err == ES_EBUSY || err == ES_ENOTCONN)
			return;
		st->head = m->next;
		if (!st->head)
			st->tail = NULL;
		st->n--;
		free_msg(m);
	}
}

void agent_status_send(agent_status *st, const char *topic, const char *payload, size_t len,
		       bool retain)
{
	if (st->n == OUTBOX_MAX) {
		if (es_lograte_line(&st->lograte, TAG, "control messages dropped"))
			es_warn(TAG, "control outbox full; dropping a message for %s", topic);
		return;
	}
	struct control_msg *m = calloc(1, sizeof *m);
	if (!m || !(m->topic = strdup(topic)) || !(m->payload = malloc(len + 1))) {
		if (m)
			free_msg(m);
		es_error(TAG, "out of memory queuing a message for %s", topic);
		return;
	}
	memcpy(m->payload, payload, len);
	m->len = len;
	m->retain = retain;
	if (st->tail)
		st->tail->next = m;
	else
		st->head = m;
	st->tail = m;
	st->n++;
	agent_status_pump(st);
}

/* A newer status makes a queued one pointless: it takes its place. */
static bool replace_queued(agent_status *st, char *json, size_t len)
{
	for (struct control_msg *m = st->head; m; m = m->next) {
		if (m->retain && strcmp(m->topic, st->topic) == 0) {
			free(m->payload);
			m->payload = json;
			m->len = len;
			return true;
		}
	}
	return false;
}

void agent_status_publish(agent_status *st)
{
	char *json;
	size_t len;
	if (agent_status_encode(st, true, &json, &len)) {
		es_error(TAG, "cannot encode the status message");
		return;
	}
	if (replace_queued(st, json, len))
		return;
	agent_status_send(st, st->topic, json, len, true);
	free(json);
}

es_err agent_status_publish_offline(agent_status *st)
{
	char *json;
	size_t len;
	if (!st->ops->connected(st->ops_ctx))
		return ES_ENOTCONN;
	es_err err = agent_status_encode(st, false, &json, &len);
	if (err)
		return err;
	err = st->ops->publish(st->ops_ctx, st->topic, json, len, true, AGENT_TAG_CONTROL, NULL);
	free(json);
	return err;
}

size_t agent_status_queued(const agent_status *st)
{
	return st->n;
}
