/* upstatus.c - node statuses as the cloud sees them (upstatus.h). */
#include "upstatus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "nodes.h"
#include "topic.h"

#define TAG "upstatus"

struct rec {
	es_status_msg agent; /* as the agent last said it */
	bool known;	     /* agent holds a status */
	uint64_t cloud_acked;
	bool dirty, urgent; /* to send; at once */
	uint64_t sent_ms;
	struct rec *next_dirty; /* on the dirty list while dirty */
};

struct bridge_upstatus {
	char *root;
	uint64_t every_ms;
	bridge_upstatus_deps d;
	bridge_nodes *nodes;
	struct rec *dirty; /* the records to send, so a tick looks at no others */
	uint64_t now_ms;
};

static void make_dirty(bridge_upstatus *u, struct rec *r, bool urgent)
{
	r->urgent |= urgent;
	if (r->dirty)
		return; /* listed */
	r->dirty = true;
	r->next_dirty = u->dirty;
	u->dirty = r;
}

es_err bridge_upstatus_new(const char *root, uint64_t every_ms, const bridge_upstatus_deps *d,
			   bridge_upstatus **out)
{
	bridge_upstatus *u = calloc(1, sizeof *u);
	if (!u || !(u->root = strdup(root)) || bridge_nodes_new(sizeof(struct rec), &u->nodes)) {
		bridge_upstatus_free(u);
		return ES_ENOMEM;
	}
	u->every_ms = every_ms;
	u->d = *d;
	*out = u;
	return ES_OK;
}

void bridge_upstatus_free(bridge_upstatus *u)
{
	if (!u)
		return;
	bridge_nodes_free(u->nodes, NULL, NULL);
	free(u->root);
	free(u);
}

void bridge_upstatus_agent(bridge_upstatus *u, const char *node, const void *payload, size_t len)
{
	es_status_msg m;
	char why[160];
	if (es_status_decode(payload, len, &m, why, sizeof why))
		return; /* the tracker logs and counts it */
	struct rec *r = bridge_nodes_get(u->nodes, node);
	if (!r)
		return;
	if (r->known && strcmp(r->agent.journal_id, m.journal_id) == 0 && r->agent.clock_synced &&
	    m.clock_synced && m.time_ms < r->agent.time_ms)
		return; /* stale (a will, a retained copy): the tracker ignores it too */
	/* A node's first status goes at once: the cloud refuses a node's
	 * events until it has heard of the node. */
	bool urgent = !m.online || !r->sent_ms ||
		      (r->known &&
		       (r->agent.online != m.online || strcmp(r->agent.boot_id, m.boot_id) != 0 ||
			strcmp(r->agent.journal_id, m.journal_id) != 0));
	r->agent = m;
	r->known = true;
	make_dirty(u, r, urgent);
}

void bridge_upstatus_acked(bridge_upstatus *u, const char *node, uint64_t last_seq)
{
	struct rec *r = bridge_nodes_get(u->nodes, node);
	if (r && last_seq > r->cloud_acked) {
		r->cloud_acked = last_seq;
		make_dirty(u, r, false);
	}
}

void bridge_upstatus_epoch(bridge_upstatus *u, const char *node)
{
	struct rec *r = bridge_nodes_get(u->nodes, node);
	if (r) {
		r->cloud_acked = 0;
		make_dirty(u, r, true);
	}
}

static void mark(void *ctx, void *record)
{
	make_dirty(ctx, record, true);
}

void bridge_upstatus_resend(bridge_upstatus *u)
{
	bridge_nodes_each(u->nodes, mark, u);
}

/* Sends r's status when it is due; r->dirty stays set when it is not sent. */
static void send_one(bridge_upstatus *u, struct rec *r)
{
	if (!r->known || (!r->urgent && u->now_ms - r->sent_ms < u->every_ms))
		return;
	char topic[ES_TOPIC_MAX], *json;
	size_t len;
	es_status_msg m = r->agent;
	if (m.acked_seq > r->cloud_acked)
		m.acked_seq = r->cloud_acked;
	m.pending = m.latest_seq > m.acked_seq ? m.latest_seq - m.acked_seq : 0;
	if (bridge_node_topic(topic, sizeof topic, u->root, bridge_nodes_name(r), "status", NULL) ||
	    es_status_encode(&m, &json, &len))
		return;
	if (!u->d.publish(u->d.ctx, topic, json, len)) {
		r->dirty = r->urgent = false;
		r->sent_ms = u->now_ms ? u->now_ms : 1;
	}
	free(json);
}

void bridge_upstatus_tick(bridge_upstatus *u, uint64_t now_ms)
{
	u->now_ms = now_ms;
	for (struct rec **pp = &u->dirty; *pp;) {
		struct rec *r = *pp;
		send_one(u, r);
		if (r->dirty)
			pp = &r->next_dirty;
		else
			*pp = r->next_dirty; /* sent: off the list */
	}
}
