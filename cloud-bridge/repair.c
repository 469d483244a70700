/* repair.c - the gap tracker, its requests, its saved state and the share
 * group's reports (repair.h).
 *
 * Lock: `stats_lock` guards `shown`; everything else is the loop thread's.
 */
#include "repair.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "control.h"
#include "grow.h"
#include "intake.h"
#include "log.h"
#include "lograte.h"
#include "nodes.h"
#include "topic.h"

#define TAG		"repair"
#define GAP_KEY		"x.gap"
#define SAVE_EVERY_MS	1000
#define PEER_REPORT_MAX (256u * 1024u)

struct bridge_repair {
	bridge_repair_deps d;
	char *root, *client_id, *peer_topic;
	uint64_t max_ahead;
	es_gap *gap;
	uint64_t covers; /* the inbox sequence the tracker has taken in */
	bool dirty;
	uint64_t last_save_ms;
	char *report; /* share group: what we stored since the last report */
	size_t report_len, report_cap;
	uint64_t gone_replies;
	es_lograte lograte; /* bad control messages: a few lines a second */
	pthread_mutex_t stats_lock;
	bridge_repair_stats shown;
};

/* ---- feeding the tracker -------------------------------------------------- */

static void seen(bridge_repair *r, const char *node, uint64_t seq)
{
	es_gap_verdict v;
	if (es_gap_seen(r->gap, node, seq, es_clock_mono_ms(), &v))
		es_warn(TAG, "cannot track %s %" PRIu64, node, seq);
	r->dirty = true;
}

/* Adds "node seq\n" to the report for the share group. */
static void report(bridge_repair *r, const char *node, uint64_t seq)
{
	char line[BRIDGE_NODE_MAX + 24];
	int n = snprintf(line, sizeof line, "%s %" PRIu64 "\n", node, seq);
	if (n <= 0 || r->report_len + (size_t)n > PEER_REPORT_MAX)
		return; /* a partner will ask for it: a duplicate, not a loss */
	char *grown = es_grow(r->report, &r->report_cap, r->report_len + (size_t)n + 1, 1, 256);
	if (!grown)
		return;
	r->report = grown;
	memcpy(r->report + r->report_len, line, (size_t)n + 1);
	r->report_len += (size_t)n;
}

void bridge_repair_covered(bridge_repair *r, uint64_t seq)
{
	if (seq > r->covers)
		r->covers = seq;
}

void bridge_repair_stored(bridge_repair *r, const char *node, uint64_t node_seq, uint64_t seq)
{
	seen(r, node, node_seq);
	bridge_repair_covered(r, seq);
	if (r->peer_topic)
		report(r, node, node_seq);
}

/* The inbox holds the event: the node's sequence is stored (in a new epoch
 * of a journal restored from a backup, the copies it re-sends are the
 * events the inbox already has). Saying again that we hold it closes the
 * partner's hole now; otherwise it stays open until a later copy happens to
 * reach the partner. */
void bridge_repair_duplicate(bridge_repair *r, const char *node, uint64_t node_seq)
{
	if (!node[0])
		return;
	seen(r, node, node_seq);
	if (r->peer_topic)
		report(r, node, node_seq);
}

bridge_repair_verdict bridge_repair_admit(bridge_repair *r, const char *node, uint64_t seq,
					  char *why, size_t whycap)
{
	es_gap_node_info ni;
	if (!es_gap_node_get(r->gap, node, &ni) || !ni.announced) {
		snprintf(why, whycap, "no status message seen from %s: not a known node", node);
		return BRIDGE_REPAIR_REFUSED;
	}
	if (r->max_ahead && seq > ni.latest && seq - ni.latest > r->max_ahead) {
		snprintf(why, whycap,
			 "sequence %" PRIu64 " is more than gap.max_ahead (%" PRIu64
			 ") beyond %s's latest (%" PRIu64 ")",
			 seq, r->max_ahead, node, ni.latest);
		return BRIDGE_REPAIR_REFUSED;
	}
	return es_gap_has(r->gap, node, seq) ? BRIDGE_REPAIR_SEEN : BRIDGE_REPAIR_NEW;
}

static void tell_epoch(void *ctx, const char *node, const es_gap_node_info *info)
{
	bridge_repair *r = ctx;
	if (info->announced)
		r->d.epoch(r->d.ctx, node, info->epoch, false);
}

void bridge_repair_epochs(bridge_repair *r)
{
	es_gap_each(r->gap, tell_epoch, r);
}

/* One report line, "site/node seq" (len bytes, no newline): true and the
 * parts when it is well formed. The line comes from the network: anything
 * else is ignored. */
static bool parse_line(const char *p, size_t len, char node[BRIDGE_NODE_MAX], uint64_t *seq)
{
	const char *space = memchr(p, ' ', len);
	size_t name = space ? (size_t)(space - p) : 0;
	if (!space || name == 0 || name >= BRIDGE_NODE_MAX || name + 1 == len ||
	    len - name - 1 > 19)
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
void bridge_repair_peer(bridge_repair *r, const void *payload, size_t len)
{
	const char *p = payload, *end = p + len;
	size_t own = strlen(r->client_id);
	if (len > 5 + own && memcmp(p, "from ", 5) == 0 && memcmp(p + 5, r->client_id, own) == 0 &&
	    p[5 + own] == '\n')
		return; /* our own */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		char node[BRIDGE_NODE_MAX];
		uint64_t seq;
		if (parse_line(p, (size_t)(eol - p), node, &seq))
			seen(r, node, seq);
		p = eol + 1;
	}
}

void bridge_repair_status(bridge_repair *r, const char *node, const void *payload, size_t len)
{
	es_status_msg m;
	es_gap_node_info ni;
	char why[160];
	bool fresh = false;
	if (es_status_decode(payload, len, &m, why, sizeof why)) {
		if (es_lograte_line(&r->lograte, TAG, "lines on statuses and replies"))
			es_warn(TAG, "invalid status from %s: %s", node, why);
		return;
	}
	bool known = es_gap_node_get(r->gap, node, &ni) && ni.announced;
	if (es_gap_announce(r->gap, node, &m, es_clock_mono_ms(), &fresh))
		return;
	r->dirty = true;
	if (!known)
		es_info(TAG,
			"%s heard of: journal %s holds %" PRIu64 "..%" PRIu64
			", acknowledged up to %" PRIu64,
			node, m.journal_id, m.oldest_seq, m.latest_seq, m.acked_seq);
	if (fresh && es_gap_node_get(r->gap, node, &ni)) {
		es_warn(TAG,
			"%s: a new journal (%s, newest sequence %" PRIu64 "): epoch %" PRIu32
			" of the node, its sequence starts again",
			node, m.journal_id, m.latest_seq, ni.epoch);
		r->d.epoch(r->d.ctx, node, ni.epoch, true);
	}
}

/* Our own requests' ids begin with our client id and a '-'. */
static bool ours(const bridge_repair *r, const char *request_id)
{
	size_t n = strlen(r->client_id) < 40 ? strlen(r->client_id) : 40;
	return strncmp(request_id, r->client_id, n) == 0 && request_id[n] == '-';
}

/* What the node said of one of our requests is final: nothing above its
 * latest exists; a range it refused is given up. */
static void take_final(bridge_repair *r, const char *node, const es_resend_reply *rep)
{
	es_gap_stats before, after;
	es_gap_stats_get(r->gap, &before);
	if (rep->latest_seq)
		es_gap_void(r->gap, node, rep->latest_seq);
	es_gap_stats_get(r->gap, &after);
	if (after.voided > before.voided &&
	    es_lograte_line(&r->lograte, TAG, "lines on statuses and replies"))
		es_warn(TAG,
			"%s says its newest sequence is %" PRIu64 ": %" PRIu64
			" sequences above it were never sent; not asked for",
			node, rep->latest_seq, after.voided - before.voided);
	if (rep->status != ES_RESEND_INVALID || !rep->from)
		return;
	uint64_t to = rep->latest_seq && rep->latest_seq < rep->to ? rep->latest_seq : rep->to;
	if (rep->from > to)
		return;
	if (es_lograte_line(&r->lograte, TAG, "lines on statuses and replies"))
		es_error(TAG, "%s refused to re-send %" PRIu64 "..%" PRIu64 " (%s): given up, LOST",
			 node, rep->from, to, rep->reason);
	es_gap_gone(r->gap, node, rep->from, to);
}

void bridge_repair_reply(bridge_repair *r, const char *node, const void *payload, size_t len)
{
	es_resend_reply rep;
	char why[160];
	if (es_resend_reply_decode(payload, len, &rep, why, sizeof why)) {
		if (es_lograte_line(&r->lograte, TAG, "lines on statuses and replies"))
			es_warn(TAG, "invalid re-send reply from %s: %s", node, why);
		return;
	}
	if (ours(r, rep.request_id)) {
		take_final(r, node, &rep);
		r->dirty = true;
	}
	if (!rep.gone_from || !rep.gone_to)
		return;
	r->gone_replies++;
	if (es_lograte_line(&r->lograte, TAG, "lines on statuses and replies"))
		es_error(TAG, "%s no longer holds %" PRIu64 "..%" PRIu64 ": those events are LOST",
			 node, rep.gone_from, rep.gone_to);
	es_gap_gone(r->gap, node, rep.gone_from, rep.gone_to);
	r->dirty = true;
}

uint64_t bridge_repair_contiguous(const bridge_repair *r, const char *node)
{
	return es_gap_contiguous(r->gap, node);
}

/* ---- every tick ------------------------------------------------------------ */

/* Publishes one request; true when it went. */
static bool send_request(bridge_repair *r, const es_gap_request *g)
{
	char topic[ES_TOPIC_MAX], site[ES_TOPIC_ID_MAX + 1];
	const char *slash = strchr(g->node, '/');
	if (!slash || (size_t)(slash - g->node) > ES_TOPIC_ID_MAX)
		return false;
	snprintf(site, sizeof site, "%.*s", (int)(slash - g->node), g->node);
	if (es_topic_build(topic, sizeof topic, r->root, site, slash + 1, "cmd", "resend"))
		return false;
	es_resend_req req = {.from = g->from, .to = g->to};
	snprintf(req.request_id, sizeof req.request_id, "%.40s-%" PRIu64, r->client_id,
		 es_clock_wall_ms());
	char *json;
	size_t len;
	if (es_resend_req_encode(&req, &json, &len))
		return false;
	bool sent = r->d.request(r->d.ctx, g->node, topic, json, len) == ES_OK;
	free(json);
	return sent;
}

/* One line per tick, however many went: the first and how many more. */
static void ask(bridge_repair *r)
{
	es_gap_request reqs[32];
	size_t n = es_gap_due(r->gap, es_clock_mono_ms(), reqs, 32), sent = 0, first = n;
	for (size_t i = 0; i < n; i++) {
		if (send_request(r, &reqs[i]) && sent++ == 0)
			first = i;
	}
	if (sent == 1)
		es_info(TAG, "asked %s to re-send %" PRIu64 "..%" PRIu64, reqs[first].node,
			reqs[first].from, reqs[first].to);
	else if (sent)
		es_info(TAG, "asked %s to re-send %" PRIu64 "..%" PRIu64 ", and %zu more ranges",
			reqs[first].node, reqs[first].from, reqs[first].to, sent - 1);
}

static void send_report(bridge_repair *r)
{
	if (!r->report_len)
		return;
	size_t head = strlen(r->client_id) + 6;
	char *msg = malloc(head + r->report_len + 1);
	if (!msg)
		return;
	snprintf(msg, head + 1, "from %s\n", r->client_id);
	memcpy(msg + head, r->report, r->report_len);
	r->d.report(r->d.ctx, r->peer_topic, msg, head + r->report_len);
	free(msg);
	r->report_len = 0;
}

/* Saves the tracker with the inbox sequence it covers: "<covers>\n<state>". */
void bridge_repair_save(bridge_repair *r)
{
	char *state, *blob;
	size_t len;
	if (!r->dirty || es_gap_save(r->gap, &state, &len))
		return;
	size_t cap = len + 32;
	if ((blob = malloc(cap))) {
		int head = snprintf(blob, cap, "%" PRIu64 "\n", r->covers);
		memcpy(blob + head, state, len);
		if (es_journal_put(r->d.journal, GAP_KEY, blob, (size_t)head + len) == ES_OK)
			r->dirty = false;
		free(blob);
	}
	free(state);
	r->last_save_ms = es_clock_mono_ms();
}

static void show(bridge_repair *r)
{
	es_gap_stats g;
	es_gap_stats_get(r->gap, &g);
	pthread_mutex_lock(&r->stats_lock);
	r->shown.gap = g;
	r->shown.gone_replies = r->gone_replies;
	pthread_mutex_unlock(&r->stats_lock);
}

void bridge_repair_tick(bridge_repair *r, bool ask_now)
{
	if (ask_now)
		ask(r);
	if (r->peer_topic)
		send_report(r);
	if (es_clock_mono_ms() - r->last_save_ms >= SAVE_EVERY_MS)
		bridge_repair_save(r);
	show(r);
}

void bridge_repair_stats_get(bridge_repair *r, bridge_repair_stats *out)
{
	pthread_mutex_lock(&r->stats_lock);
	*out = r->shown;
	pthread_mutex_unlock(&r->stats_lock);
}

/* ---- after a restart --------------------------------------------------------- */

/* Where a node's newest epoch began in the inbox (intake.h's record). */
struct bound {
	uint32_t epoch; /* 0: it never began another one */
	uint64_t boundary;
};

struct replay {
	bridge_repair *r;
	bridge_nodes *bounds; /* struct bound */
};

static int load_bound(void *ctx, const char *key, const void *value, size_t len)
{
	struct bound *b = bridge_nodes_get(ctx, key + strlen(BRIDGE_EPOCH_KEY));
	if (b && !bridge_epoch_parse(value, len, &b->epoch, &b->boundary))
		b->epoch = 0;
	return 0;
}

/* Whether row belongs to the epoch the saved tracker has of its node: the
 * tracker may have been saved after a new epoch began while rows of the old
 * one were still committed (or before, and rows of the new one follow). */
static bool of_tracked_epoch(const struct replay *rp, const es_journal_row *row)
{
	const struct bound *b = bridge_nodes_find(rp->bounds, row->origin);
	es_gap_node_info ni;
	uint32_t tracked = es_gap_node_get(rp->r->gap, row->origin, &ni) ? ni.epoch : 0;
	if (!b || !b->epoch || !tracked)
		return true;
	if (tracked == b->epoch)
		return row->seq > b->boundary;
	return tracked < b->epoch && row->seq <= b->boundary;
}

static int replay_row(void *ctx, const es_journal_row *row)
{
	struct replay *rp = ctx;
	if (row->origin && of_tracked_epoch(rp, row))
		seen(rp->r, row->origin, row->origin_seq);
	rp->r->covers = row->seq;
	return 0;
}

/* The saved "<covers>\n<state>": loads the state, and writes the inbox
 * sequence to replay from (0 when the state is unreadable: all rows). */
static void load(bridge_repair *r, const char *blob, size_t len, uint64_t *from)
{
	const char *nl = memchr(blob, '\n', len);
	*from = strtoull(blob, NULL, 10);
	if (!nl || es_gap_load(r->gap, nl + 1, len - (size_t)(nl + 1 - blob), es_clock_mono_ms())) {
		es_error(TAG, "the saved gap state is unreadable; rebuilding it from the inbox");
		*from = 0;
	}
}

/* Loads the saved tracker and feeds it every inbox row committed after the
 * save. */
static es_err restore(bridge_repair *r, es_journal_reader *reader)
{
	void *blob;
	size_t len;
	uint64_t from = 0;
	es_err err = es_journal_get(reader, GAP_KEY, &blob, &len);
	if (err == ES_OK) {
		load(r, blob, len, &from);
		free(blob);
	} else if (err != ES_ENOTFOUND) {
		return err;
	}
	r->covers = from;
	struct replay rp = {.r = r};
	if ((err = bridge_nodes_new(sizeof(struct bound), &rp.bounds)))
		return err;
	err = es_journal_scan(reader, BRIDGE_EPOCH_KEY, load_bound, rp.bounds);
	if (!err)
		err = es_journal_read(reader, from + 1, UINT64_MAX, SIZE_MAX, false, replay_row,
				      &rp);
	bridge_nodes_free(rp.bounds, NULL, NULL);
	if (!err)
		es_info(TAG, "gap state restored (inbox up to %" PRIu64 ")", r->covers);
	return err;
}

/* ---- life --------------------------------------------------------------------- */

static bool copy(char **dst, const char *src)
{
	return !src || (*dst = strdup(src)) != NULL;
}

static es_err make(bridge_repair *r, const bridge_repair_opts *o)
{
	es_journal_reader *reader;
	es_err err = ES_ENOMEM;
	r->max_ahead = o->max_ahead;
	if (!copy(&r->root, o->root) || !copy(&r->client_id, o->client_id) ||
	    !copy(&r->peer_topic, o->peer_topic) || (err = es_gap_new(&o->gap, &r->gap)) ||
	    (err = es_journal_reader_new(r->d.journal, &reader)))
		return err;
	err = restore(r, reader);
	es_journal_reader_free(reader);
	return err;
}

es_err bridge_repair_new(const bridge_repair_opts *o, const bridge_repair_deps *d,
			 bridge_repair **out)
{
	if (!o || !o->root || !o->client_id || !d || !d->journal || !d->request || !d->report ||
	    !d->epoch || !out)
		return ES_EINVAL;
	bridge_repair *r = calloc(1, sizeof *r);
	if (!r)
		return ES_ENOMEM;
	r->d = *d;
	pthread_mutex_init(&r->stats_lock, NULL);
	es_err err = make(r, o);
	if (err) {
		bridge_repair_free(r);
		return err;
	}
	show(r);
	*out = r;
	return ES_OK;
}

void bridge_repair_free(bridge_repair *r)
{
	if (!r)
		return;
	es_gap_free(r->gap);
	free(r->root);
	free(r->client_id);
	free(r->peer_topic);
	free(r->report);
	pthread_mutex_destroy(&r->stats_lock);
	free(r);
}
