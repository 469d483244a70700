/* repair.c - what makes the bridge complete end to end.
 *
 * The gap tracker is fed with every event the inbox committed (never with
 * one merely received: paho acknowledged that before we stored it) and with
 * the agents' status messages; holes are asked for on the edge link the node
 * was seen on; "gone" answers are counted as lost, loudly.
 *
 * The tracker's state is saved in the inbox (es_journal_put) every second
 * with the inbox sequence it covers; after a restart it is loaded and every
 * row after that sequence is fed again, so a crash loses no knowledge.
 *
 * Bridges sharing a subscription each see only part of every node's
 * sequence. They tell each other, on <root>/_bridge/<group>/seen, what they
 * stored, so each tracks the group's holes and not its partners' events.
 */
#include <cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_internal.h"
#include "control.h"
#include "log.h"

#define TAG		"repair"
#define GAP_KEY		"x.gap"
#define SAVE_EVERY_MS	1000
#define PEER_REPORT_MAX (256u * 1024u)

/* ---- feeding the tracker -------------------------------------------------- */

static void seen(bridge *b, const char *node, uint64_t seq)
{
	es_gap_verdict v;
	if (es_gap_seen(b->gap, node, seq, es_clock_mono_ms(), &v))
		es_warn(TAG, "cannot track %s %" PRIu64, node, seq);
	b->gap_dirty = true;
}

/* Adds "node seq\n" to the report for the share group. */
static void report(bridge *b, const char *node, uint64_t seq)
{
	char line[NODE_KEY_MAX + 24];
	int n = snprintf(line, sizeof line, "%s %" PRIu64 "\n", node, seq);
	if (n <= 0 || b->peer_len + (size_t)n > PEER_REPORT_MAX)
		return; /* a partner will ask for it: a duplicate, not a loss */
	if (b->peer_len + (size_t)n + 1 > b->peer_cap) {
		size_t cap = (b->peer_len + (size_t)n + 1) * 2;
		char *grown = realloc(b->peer_report, cap);
		if (!grown)
			return;
		b->peer_report = grown;
		b->peer_cap = cap;
	}
	memcpy(b->peer_report + b->peer_len, line, (size_t)n + 1);
	b->peer_len += (size_t)n;
}

void repair_committed(bridge *b, const struct item *it)
{
	seen(b, it->origin, it->origin_seq);
	if (it->res.seq > b->gap_covers)
		b->gap_covers = it->res.seq;
	if (b->s->edge_share_group)
		report(b, it->origin, it->origin_seq);
}

/* An event the inbox holds already came again: in a share group, most
 * likely a re-send a partner asked for that the broker gave to us. Saying
 * again that we hold it closes the partner's hole now; otherwise it stays
 * open until a later copy happens to reach the partner. */
void repair_duplicate(bridge *b, const struct item *it)
{
	if (b->s->edge_share_group && it->origin[0])
		report(b, it->origin, it->origin_seq);
}

/* One report line, "site/node seq" (len bytes, no newline): true and the
 * parts when it is well formed. The line comes from the network: anything
 * else is ignored. */
static bool parse_line(const char *p, size_t len, char node[NODE_KEY_MAX], uint64_t *seq)
{
	const char *space = memchr(p, ' ', len);
	size_t name = space ? (size_t)(space - p) : 0;
	if (!space || name == 0 || name >= NODE_KEY_MAX || name + 1 == len || len - name - 1 > 19)
		return false;
	memcpy(node, p, name);
	node[name] = '\0';
	char *slash = strchr(node, '/');
	if (!slash)
		return false;
	*slash = '\0';
	bool ok = !es_topic_check_id(node) && !es_topic_check_id(slash + 1);
	*slash = '/';
	uint64_t v = 0;
	for (const char *d = space + 1; ok && d < p + len; d++) {
		ok = *d >= '0' && *d <= '9';
		v = v * 10 + (uint64_t)(*d - '0');
	}
	*seq = v;
	return ok && v > 0;
}

/* A partner's report: "from <client id>", then lines "site/node seq". */
void repair_peer(bridge *b, const char *payload, size_t len)
{
	const char *p = payload, *end = payload + len;
	size_t own = strlen(b->client_edge);
	if (len > 5 + own && memcmp(p, "from ", 5) == 0 &&
	    memcmp(p + 5, b->client_edge, own) == 0 && p[5 + own] == '\n')
		return; /* our own */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		char node[NODE_KEY_MAX];
		uint64_t seq;
		if (parse_line(p, (size_t)(eol - p), node, &seq))
			seen(b, node, seq);
		p = eol + 1;
	}
}

void repair_status(bridge *b, const char *node, const char *payload, size_t len)
{
	es_status_msg m;
	char why[160];
	if (es_status_decode(payload, len, &m, why, sizeof why)) {
		es_warn(TAG, "invalid status from %s: %s", node, why);
		return;
	}
	if (m.online && es_gap_status(b->gap, node, m.journal_id, m.acked_seq, m.oldest_seq,
				      es_clock_mono_ms()) == ES_OK)
		b->gap_dirty = true;
}

void repair_reply(bridge *b, const char *node, const char *payload, size_t len)
{
	es_resend_reply r;
	char why[160];
	if (es_resend_reply_decode(payload, len, &r, why, sizeof why)) {
		es_warn(TAG, "invalid re-send reply from %s: %s", node, why);
		return;
	}
	if (!r.gone_from || !r.gone_to)
		return;
	b->lost_replies++;
	es_error(TAG, "%s no longer holds %" PRIu64 "..%" PRIu64 ": those events are LOST", node,
		 r.gone_from, r.gone_to);
	es_gap_gone(b->gap, node, r.gone_from, r.gone_to);
	b->gap_dirty = true;
}

/* ---- every tick ------------------------------------------------------------ */

static void send_request(bridge *b, const es_gap_request *r)
{
	char topic[ES_TOPIC_MAX], site[ES_TOPIC_ID_MAX + 1];
	const char *slash = strchr(r->node, '/');
	struct node *x = forward_node(b, r->node);
	if (!slash || !x || (size_t)(slash - r->node) > ES_TOPIC_ID_MAX)
		return;
	snprintf(site, sizeof site, "%.*s", (int)(slash - r->node), r->node);
	if (es_topic_build(topic, sizeof topic, b->s->edge_root, site, slash + 1, "cmd", "resend"))
		return;
	es_resend_req req = {.from = r->from, .to = r->to};
	snprintf(req.request_id, sizeof req.request_id, "%.40s-%" PRIu64, b->client_edge,
		 es_clock_wall_ms());
	char *json;
	size_t len;
	if (es_resend_req_encode(&req, &json, &len))
		return;
	if (es_mqtt_publish(b->links[x->link].mqtt, topic, json, len, 1, false, 0) == ES_OK)
		es_info(TAG, "asked %s to re-send %" PRIu64 "..%" PRIu64, r->node, r->from, r->to);
	free(json);
}

static void ask(bridge *b)
{
	es_gap_request reqs[32];
	size_t n = es_gap_due(b->gap, es_clock_mono_ms(), reqs, 32);
	for (size_t i = 0; i < n; i++)
		send_request(b, &reqs[i]);
}

static void send_report(bridge *b)
{
	if (!b->peer_len)
		return;
	size_t head = strlen(b->client_edge) + 6;
	char *msg = malloc(head + b->peer_len + 1);
	if (!msg)
		return;
	snprintf(msg, head + 1, "from %s\n", b->client_edge);
	memcpy(msg + head, b->peer_report, b->peer_len);
	for (size_t i = 0; i < b->nlinks; i++)
		es_mqtt_publish(b->links[i].mqtt, b->peer_topic, msg, head + b->peer_len, 0, false,
				0);
	free(msg);
	b->peer_len = 0;
}

/* Saves the tracker with the inbox sequence it covers: "<covers>\n<state>". */
void repair_save(bridge *b)
{
	char *state, *blob;
	size_t len;
	if (!b->gap_dirty || es_gap_save(b->gap, &state, &len))
		return;
	size_t cap = len + 32;
	if ((blob = malloc(cap))) {
		int head = snprintf(blob, cap, "%" PRIu64 "\n", b->gap_covers);
		memcpy(blob + head, state, len);
		if (es_journal_put(b->journal, GAP_KEY, blob, (size_t)head + len) == ES_OK)
			b->gap_dirty = false;
		free(blob);
	}
	free(state);
	b->last_save_ms = es_clock_mono_ms();
}

void repair_tick(bridge *b)
{
	if (b->phase == B_RUNNING)
		ask(b);
	if (b->s->edge_share_group)
		send_report(b);
	if (es_clock_mono_ms() - b->last_save_ms >= SAVE_EVERY_MS)
		repair_save(b);
}

/* ---- after a restart --------------------------------------------------------- */

static int replay_row(void *ctx, const es_journal_row *row)
{
	bridge *b = ctx;
	if (row->origin)
		seen(b, row->origin, row->origin_seq);
	b->gap_covers = row->seq;
	return 0;
}

/* Loads the saved tracker and feeds it every inbox row committed after the
 * save. A state that cannot be read is reported and rebuilt from the rows. */
es_err repair_restore(bridge *b)
{
	void *blob;
	size_t len;
	uint64_t from = 0;
	es_err err = es_journal_get(b->reader, GAP_KEY, &blob, &len);
	if (err == ES_OK) {
		char *nl = memchr(blob, '\n', len);
		from = strtoull(blob, NULL, 10);
		if (!nl || es_gap_load(b->gap, nl + 1, len - (size_t)(nl + 1 - (char *)blob),
				       es_clock_mono_ms())) {
			es_error(TAG,
				 "the saved gap state is unreadable; rebuilding it from the inbox");
			from = 0;
		}
		free(blob);
	} else if (err != ES_ENOTFOUND) {
		return err;
	}
	b->gap_covers = from;
	err = es_journal_read(b->reader, from + 1, UINT64_MAX, SIZE_MAX, false, replay_row, b);
	if (!err)
		es_info(TAG, "gap state restored (inbox up to %" PRIu64 ")", b->gap_covers);
	return err;
}
