/* answer.c - re-send requests over the cloud broker (answer.h).
 *
 * A request waits in a fixed table and is served from `next` on, sequence
 * by sequence (each a lookup by origin sequence within the node's current
 * epoch, any state), at most the rate's tokens a tick. A run of sequences
 * the inbox no longer holds (at most SCAN_MAX looked up) is relayed to the
 * agent, and the request waits for its reply before it goes on after the
 * run. The answer to the asker sums what the inbox and the agent sent and
 * what the agent said is gone, so a sequence the inbox still holds is never
 * answered gone.
 */
#include "answer.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "clock.h"
#include "control.h"
#include "event.h"
#include "log.h"
#include "lograte.h"
#include "nodes.h"
#include "remap.h"
#include "topic.h"

#define TAG	    "answer"
#define MAX_LEVELS  16
#define NODE_MAX    (2 * ES_TOPIC_ID_MAX + 2)
#define EPOCH_KEY   "x.epoch."
#define RELAY_INFIX ".relay-"
#define SCAN_MAX    1024

enum lvl { L_LIT, L_ROOT, L_SITE, L_NODE };

struct tmpl {
	enum lvl kind[MAX_LEVELS];
	char *text[MAX_LEVELS]; /* L_LIT: the level */
	size_t n;
};

struct req {
	bool used, relayed;
	char id[ES_REQUEST_ID_MAX], asker[ES_REQUEST_ID_MAX];
	char node[NODE_MAX];
	uint64_t from, to, next;		  /* next: the first not yet dealt with */
	uint64_t after;				  /* the node's epoch began after this inbox row */
	uint64_t relay_no, relay_to, deadline_ms; /* relayed: next..relay_to */
	uint64_t sent_from, sent_to, gone_from, gone_to, latest;
	bool partial; /* the agent said part is not journaled yet */
};

struct bridge_answer {
	bridge_answer_opts o;
	bridge_answer_deps d;
	char *root, *client_id;
	struct tmpl req_t, reply_t;
	bridge_remap *events;
	es_batch_enc *enc; /* cloud.format batch: each event a batch of one */
	es_batch_coding coding;
	char filter[ES_TOPIC_MAX];
	es_journal_reader *reader;
	struct req *q;
	size_t relays; /* requests relayed, waiting for the agent */
	double tokens;
	uint64_t refill_ms, relay_no, tag;
	es_lograte lograte;
	pthread_mutex_t lock; /* guards stats */
	bridge_answer_stats stats;
};

/* ---- templates: levels, each a literal or one placeholder ------------------- */

static void tmpl_clear(struct tmpl *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->text[i]);
	t->n = 0;
}

static enum lvl level_kind(const char *p, size_t len)
{
	if (len == 6 && memcmp(p, "{root}", 6) == 0)
		return L_ROOT;
	if (len == 6 && memcmp(p, "{site}", 6) == 0)
		return L_SITE;
	if (len == 6 && memcmp(p, "{node}", 6) == 0)
		return L_NODE;
	return L_LIT;
}

static es_err tmpl_level(struct tmpl *t, const char *p, size_t len, char *why, size_t cap)
{
	enum lvl k = level_kind(p, len);
	if (t->n == MAX_LEVELS) {
		snprintf(why, cap, "more than %d levels", MAX_LEVELS);
		return ES_EINVAL;
	}
	if (k == L_LIT && (!len || memchr(p, '{', len) || memchr(p, '}', len) ||
			   memchr(p, '+', len) || memchr(p, '#', len))) {
		snprintf(why, cap,
			 "level %zu: a placeholder is a whole level ({root}, {site}, "
			 "{node}); no empty level, no wildcard",
			 t->n + 1);
		return ES_EINVAL;
	}
	t->kind[t->n] = k;
	t->text[t->n] = k == L_LIT ? strndup(p, len) : NULL;
	if (k == L_LIT && !t->text[t->n])
		return ES_ENOMEM;
	t->n++;
	return ES_OK;
}

static es_err tmpl_parse(const char *s, struct tmpl *t, char *why, size_t cap)
{
	size_t sites = 0, nodes = 0;
	t->n = 0;
	for (const char *p = s;;) {
		size_t len = strcspn(p, "/");
		es_err err = tmpl_level(t, p, len, why, cap);
		if (err) {
			tmpl_clear(t);
			return err;
		}
		sites += t->kind[t->n - 1] == L_SITE;
		nodes += t->kind[t->n - 1] == L_NODE;
		if (!p[len])
			break;
		p += len + 1;
	}
	if (sites != 1 || nodes != 1) {
		snprintf(why, cap, "needs {site} and {node}, each once");
		tmpl_clear(t);
		return ES_EINVAL;
	}
	return ES_OK;
}

es_err bridge_answer_check_topic(const char *tmpl, char *why, size_t cap)
{
	struct tmpl t;
	es_err err = tmpl_parse(tmpl, &t, why, cap);
	tmpl_clear(&t);
	return err;
}

/* The template with root, site and node filled in ("+" for a filter). */
static bool tmpl_build(const struct tmpl *t, const char *root, const char *site, size_t site_len,
		       const char *node, char *buf, size_t cap)
{
	size_t at = 0;
	for (size_t i = 0; i < t->n; i++) {
		const char *s = t->kind[i] == L_LIT    ? t->text[i]
				: t->kind[i] == L_ROOT ? root
				: t->kind[i] == L_SITE ? site
						       : node;
		int len = t->kind[i] == L_SITE ? (int)site_len : (int)strlen(s);
		int w = snprintf(buf + at, cap - at, "%s%.*s", i ? "/" : "", len, s);
		if (w < 0 || (size_t)w >= cap - at)
			return false;
		at += (size_t)w;
	}
	return true;
}

/* Whether topic is the template's; writes "site/node" into node[NODE_MAX]. */
static bool tmpl_match(const struct tmpl *t, const char *root, const char *topic,
		       char node[NODE_MAX])
{
	const char *site = NULL, *nd = NULL, *p = topic;
	size_t site_len = 0, nd_len = 0, rlen = strlen(root);
	for (size_t i = 0; i < t->n; i++) {
		if (i && *p++ != '/')
			return false;
		size_t len = t->kind[i] == L_ROOT ? rlen : strcspn(p, "/");
		const char *want = t->kind[i] == L_LIT ? t->text[i] : root;
		if (t->kind[i] == L_SITE)
			site = p, site_len = len;
		else if (t->kind[i] == L_NODE)
			nd = p, nd_len = len;
		else if (strlen(want) != len || strncmp(p, want, len) != 0)
			return false;
		p += len;
	}
	if (*p || !site_len || !nd_len || site_len > ES_TOPIC_ID_MAX || nd_len > ES_TOPIC_ID_MAX)
		return false;
	snprintf(node, NODE_MAX, "%.*s/%.*s", (int)site_len, site, (int)nd_len, nd);
	return !es_topic_check_id(node + site_len + 1) && strchr(node + site_len + 1, '/') == NULL;
}

/* ---- publishing within the rate ------------------------------------------------- */

static void refill(bridge_answer *a)
{
	uint64_t now = es_clock_mono_ms();
	a->tokens += (double)(now - a->refill_ms) * a->o.rate / 1000.0;
	if (a->tokens > a->o.rate)
		a->tokens = a->o.rate;
	a->refill_ms = now;
}

/* Publishes when the rate allows; false when it did not go. */
static bool publish(bridge_answer *a, const char *topic, const void *payload, size_t len)
{
	refill(a);
	if (a->tokens < 1)
		return false;
	es_err err = a->d.publish(a->d.ctx, topic, payload, len, BRIDGE_ANSWER_TAG | ++a->tag);
	if (err)
		return false;
	a->tokens -= 1;
	return true;
}

/* Publishes node's event (text body) as the forwarder would: on its event
 * topic, or with cloud.format batch as a batch of one on the node's batch
 * topic (a cloud role reads only those). What cannot be a batch goes as
 * an event: readers take both. */
static bool publish_event(bridge_answer *a, const char *node, const char *topic, const void *body,
			  size_t len)
{
	if (!a->enc)
		return publish(a, topic, body, len);
	char btopic[ES_TOPIC_MAX];
	const void *p;
	size_t n;
	es_batch_enc_reset(a->enc);
	if (es_batch_enc_add(a->enc, body, len) || es_batch_enc_finish(a->enc, &p, &n) ||
	    bridge_node_batch_topic(btopic, sizeof btopic, a->root, node, &a->coding))
		return publish(a, topic, body, len);
	return publish(a, btopic, p, n);
}

static void count(bridge_answer *a, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&a->lock);
	*field += n;
	pthread_mutex_unlock(&a->lock);
}

/* Sends a reply to node's asker; a reply with no room is dropped, counted. */
static bool reply(bridge_answer *a, const char *node, const es_resend_reply *r)
{
	char topic[ES_TOPIC_MAX], *json;
	size_t len;
	const char *slash = strchr(node, '/');
	if (!tmpl_build(&a->reply_t, a->root, node, (size_t)(slash - node), slash + 1, topic,
			sizeof topic) ||
	    es_resend_reply_encode(r, &json, &len))
		return false;
	bool sent = publish(a, topic, json, len);
	free(json);
	if (!sent) {
		count(a, &a->stats.dropped, 1);
		return false;
	}
	pthread_mutex_lock(&a->lock);
	a->stats.ok += r->status == ES_RESEND_OK;
	a->stats.partial += r->status == ES_RESEND_PARTIAL;
	a->stats.gone += r->status == ES_RESEND_GONE;
	a->stats.busy += r->status == ES_RESEND_BUSY;
	a->stats.invalid += r->status == ES_RESEND_INVALID;
	pthread_mutex_unlock(&a->lock);
	return true;
}

static void refuse(bridge_answer *a, const char *node, const char *id, uint64_t from, uint64_t to,
		   es_resend_status st, const char *why)
{
	es_resend_reply r = {.from = from, .to = to, .status = st};
	snprintf(r.request_id, sizeof r.request_id, "%s", id);
	snprintf(r.reason, sizeof r.reason, "%.127s", why);
	reply(a, node, &r);
}

/* ---- taking a request ---------------------------------------------------------- */

static void asker_of(const char *id, char out[ES_REQUEST_ID_MAX])
{
	const char *dash = strrchr(id, '-');
	size_t n = dash ? (size_t)(dash - id) : strlen(id);
	memcpy(out, id, n);
	out[n] = '\0';
}

/* A free slot, or NULL when the queue or the asker's quarter is full. */
static struct req *slot_for(bridge_answer *a, const char *asker)
{
	size_t per = a->o.queue / 4 ? a->o.queue / 4 : 1, mine = 0;
	struct req *free_slot = NULL;
	for (size_t i = 0; i < a->o.queue; i++) {
		if (!a->q[i].used)
			free_slot = free_slot ? free_slot : &a->q[i];
		else
			mine += strcmp(a->q[i].asker, asker) == 0;
	}
	return mine < per ? free_slot : NULL;
}

/* The inbox row after which node's current epoch began (0: from the start). */
static uint64_t epoch_start(bridge_answer *a, const char *node)
{
	char key[sizeof EPOCH_KEY + NODE_MAX];
	void *v;
	size_t len;
	unsigned long long epoch, boundary = 0;
	snprintf(key, sizeof key, EPOCH_KEY "%s", node);
	if (es_journal_get(a->reader, key, &v, &len))
		return 0;
	char text[64];
	snprintf(text, sizeof text, "%.*s", (int)(len < 63 ? len : 63), (const char *)v);
	free(v);
	if (sscanf(text, "%llu %llu", &epoch, &boundary) != 2)
		return 0;
	return boundary;
}

void bridge_answer_request(bridge_answer *a, const char *topic, const void *payload, size_t len)
{
	char node[NODE_MAX], why[160], asker[ES_REQUEST_ID_MAX];
	es_resend_req req;
	if (!tmpl_match(&a->req_t, a->root, topic, node) ||
	    (a->d.knows && !a->d.knows(a->d.ctx, node)))
		return; /* not a request topic, or another bridge's node */
	count(a, &a->stats.requests, 1);
	if (es_resend_req_decode(payload, len, &req, why, sizeof why)) {
		es_resend_req_id(payload, len, req.request_id);
		refuse(a, node, req.request_id, 0, 0, ES_RESEND_INVALID, why);
		return;
	}
	asker_of(req.request_id, asker);
	struct req *q = slot_for(a, asker);
	if (!q) {
		refuse(a, node, req.request_id, req.from, req.to, ES_RESEND_BUSY,
		       "too many requests wait; ask again later");
		return;
	}
	*q = (struct req){.used = true, .from = req.from, .to = req.to, .next = req.from};
	snprintf(q->id, sizeof q->id, "%s", req.request_id);
	snprintf(q->asker, sizeof q->asker, "%s", asker);
	snprintf(q->node, sizeof q->node, "%s", node);
	q->after = epoch_start(a, node);
}

/* ---- serving from the inbox ----------------------------------------------------- */

struct found {
	bridge_answer *a;
	const char *node;
	bool held, sent;
};

static int one_row(void *ctx, const es_journal_row *row)
{
	struct found *f = ctx;
	char topic[ES_TOPIC_MAX];
	const char *slash = strchr(f->node, '/');
	es_topic_parts p = {.site = f->node,
			    .site_len = (size_t)(slash - f->node),
			    .node = slash + 1,
			    .node_len = strlen(slash + 1),
			    .kind = "ev",
			    .kind_len = 2,
			    .rest = row->type,
			    .rest_len = strlen(row->type)};
	if (bridge_remap_apply(f->a->events, f->a->root, &p, topic, sizeof topic))
		return 1; /* cannot be named on the cloud: as if not held */
	f->held = true;
	f->sent = publish_event(f->a, f->node, topic, row->body, row->body_len);
	return 1;
}

static void note_sent(struct req *q, uint64_t from, uint64_t to)
{
	if (!q->sent_from || from < q->sent_from)
		q->sent_from = from;
	if (to > q->sent_to)
		q->sent_to = to;
}

/* Whether the inbox holds node's seq (in the request's epoch). */
static int held_row(void *ctx, const es_journal_row *row)
{
	(void)row;
	*(bool *)ctx = true;
	return 1;
}

static bool inbox_holds(bridge_answer *a, const struct req *q, uint64_t seq)
{
	bool held = false;
	return !es_journal_find_origin(a->reader, q->node, seq, q->after, 1, held_row, &held) &&
	       held;
}

/* Sends the agent the run the inbox does not hold from next on (at most
 * SCAN_MAX, never past to). */
static void relay(bridge_answer *a, struct req *q)
{
	char topic[ES_TOPIC_MAX], *json;
	size_t len;
	uint64_t end = q->next;
	while (end < q->to && end - q->next + 1 < SCAN_MAX && !inbox_holds(a, q, end + 1))
		end++;
	q->relay_to = end;
	es_resend_req r = {.from = q->next, .to = end};
	q->relay_no = ++a->relay_no;
	snprintf(r.request_id, sizeof r.request_id, "%.40s" RELAY_INFIX "%" PRIu64, a->client_id,
		 q->relay_no);
	q->relayed = true;
	q->deadline_ms = es_clock_mono_ms() + a->o.relay_ms;
	a->relays++;
	count(a, &a->stats.relayed, 1);
	if (bridge_node_topic(topic, sizeof topic, a->root, q->node, "cmd", "resend") ||
	    es_resend_req_encode(&r, &json, &len))
		return; /* times out: busy */
	a->d.relay(a->d.ctx, q->node, topic, json, len);
	free(json);
}

static void finish(bridge_answer *a, struct req *q)
{
	if (q->relayed)
		a->relays--;
	q->used = false;
}

/* The answer to the asker, from what was sent and what is gone. */
static void answer_of(const struct req *q, es_resend_reply *r)
{
	*r = (es_resend_reply){.from = q->from,
			       .to = q->to,
			       .sent_from = q->sent_from,
			       .sent_to = q->sent_to,
			       .gone_from = q->gone_from,
			       .gone_to = q->gone_to,
			       .latest_seq = q->latest};
	snprintf(r->request_id, sizeof r->request_id, "%s", q->id);
	if (!q->gone_from && !q->partial)
		r->status = ES_RESEND_OK;
	else if (!q->sent_from && !q->partial)
		r->status = ES_RESEND_GONE;
	else
		r->status = ES_RESEND_PARTIAL;
}

/* Serves q from the inbox while the rate allows; relays what it lacks. */
static void serve(bridge_answer *a, struct req *q)
{
	while (q->next <= q->to) {
		struct found f = {.a = a, .node = q->node};
		if (es_journal_find_origin(a->reader, q->node, q->next, q->after, 1, one_row, &f) ||
		    !f.held) {
			relay(a, q);
			return;
		}
		if (!f.sent)
			return; /* no room now: the next tick */
		count(a, &a->stats.from_inbox, 1);
		note_sent(q, q->next, q->next);
		q->next++;
	}
	es_resend_reply r;
	answer_of(q, &r);
	if (reply(a, q->node, &r))
		finish(a, q);
}

void bridge_answer_tick(bridge_answer *a)
{
	uint64_t now = es_clock_mono_ms();
	for (size_t i = 0; i < a->o.queue; i++) {
		struct req *q = &a->q[i];
		if (q->used && !q->relayed)
			serve(a, q);
		else if (q->used && now >= q->deadline_ms) {
			if (es_lograte_line(&a->lograte, TAG, "lines on relays"))
				es_warn(TAG,
					"%s did not answer the re-send of %" PRIu64 "..%" PRIu64
					" relayed for %s; answered busy",
					q->node, q->next, q->to, q->id);
			refuse(a, q->node, q->id, q->from, q->to, ES_RESEND_BUSY,
			       "the node did not answer in time; ask again later");
			finish(a, q);
		}
	}
	size_t waiting = 0;
	for (size_t i = 0; i < a->o.queue; i++)
		waiting += a->q[i].used;
	pthread_mutex_lock(&a->lock);
	a->stats.waiting = waiting;
	pthread_mutex_unlock(&a->lock);
}

/* ---- the agent's answers -------------------------------------------------------- */

/* Whether a waiting relay covers node's seq. */
static bool awaited(const bridge_answer *a, const char *node, uint64_t seq)
{
	for (size_t i = 0; i < a->o.queue; i++) {
		const struct req *q = &a->q[i];
		if (q->used && q->relayed && seq >= q->next && seq <= q->relay_to &&
		    strcmp(q->node, node) == 0)
			return true;
	}
	return false;
}

/* Whether payload is node's event and awaited by a relay. */
static bool answers(const bridge_answer *a, const char *node, const void *payload, size_t len)
{
	es_event *ev;
	es_verr v;
	if (es_event_decode(payload, len, a->o.event_max_bytes, &ev, &v))
		return false; /* the intake keeps it as a dead letter */
	const char *src = es_event_source(ev);
	bool yes = src && src[0] == '/' && strcmp(src + 1, node) == 0 &&
		   awaited(a, node, es_event_seq(ev));
	es_event_free(ev);
	return yes;
}

void bridge_answer_event(bridge_answer *a, const char *topic, const void *payload, size_t len)
{
	es_topic_parts p;
	char node[NODE_MAX], topic_out[ES_TOPIC_MAX];
	if (!a->relays || es_topic_split(topic, a->root, &p) || p.kind_len != 2 ||
	    memcmp(p.kind, "ev", 2) != 0 || !p.rest_len)
		return;
	snprintf(node, sizeof node, "%.*s/%.*s", (int)p.site_len, p.site, (int)p.node_len, p.node);
	if (!answers(a, node, payload, len) ||
	    bridge_remap_apply(a->events, a->root, &p, topic_out, sizeof topic_out))
		return;
	if (publish_event(a, node, topic_out, payload, len))
		count(a, &a->stats.passed, 1);
	else
		count(a, &a->stats.dropped, 1);
}

/* The request q whose relay this reply answers, or NULL. */
static struct req *relay_of(bridge_answer *a, const char *node, const char *id)
{
	size_t n = strlen(a->client_id) < 40 ? strlen(a->client_id) : 40;
	if (strncmp(id, a->client_id, n) != 0 ||
	    strncmp(id + n, RELAY_INFIX, strlen(RELAY_INFIX)) != 0)
		return NULL;
	uint64_t no = strtoull(id + n + strlen(RELAY_INFIX), NULL, 10);
	for (size_t i = 0; i < a->o.queue; i++) {
		struct req *q = &a->q[i];
		if (q->used && q->relayed && q->relay_no == no && strcmp(q->node, node) == 0)
			return q;
	}
	return NULL;
}

/* Takes what the agent said of the run; the request goes on after it,
 * unless the agent could not serve it ("busy", "invalid": said as is). */
static void take_agent(bridge_answer *a, struct req *q, const es_resend_reply *ag)
{
	if (ag->status == ES_RESEND_BUSY || ag->status == ES_RESEND_INVALID) {
		refuse(a, q->node, q->id, q->from, q->to, ag->status, ag->reason);
		finish(a, q);
		return;
	}
	if (ag->sent_from && ag->sent_to >= ag->sent_from)
		note_sent(q, ag->sent_from, ag->sent_to);
	if (ag->gone_from && ag->gone_to >= ag->gone_from) {
		q->gone_from =
			q->gone_from && q->gone_from < ag->gone_from ? q->gone_from : ag->gone_from;
		q->gone_to = ag->gone_to > q->gone_to ? ag->gone_to : q->gone_to;
	}
	q->partial |= ag->status == ES_RESEND_PARTIAL && !ag->gone_from;
	q->latest = ag->latest_seq > q->latest ? ag->latest_seq : q->latest;
	q->next = q->relay_to + 1;
	q->relayed = false;
	a->relays--;
	serve(a, q); /* the rest, or the answer */
}

bool bridge_answer_reply(bridge_answer *a, const char *node, const void *payload, size_t len)
{
	es_resend_reply ag;
	char why[160];
	if (!a->relays || es_resend_reply_decode(payload, len, &ag, why, sizeof why))
		return false;
	struct req *q = relay_of(a, node, ag.request_id);
	if (!q)
		return false;
	take_agent(a, q, &ag);
	return true;
}

/* ---- making ----------------------------------------------------------------------- */

const char *bridge_answer_filter(const bridge_answer *a)
{
	return a->filter;
}

void bridge_answer_stats_get(bridge_answer *a, bridge_answer_stats *out)
{
	pthread_mutex_lock(&a->lock);
	*out = a->stats;
	pthread_mutex_unlock(&a->lock);
}

static es_err make_parts(bridge_answer *a, const bridge_answer_opts *o, char *why, size_t cap)
{
	es_err err;
	if ((err = tmpl_parse(o->topic, &a->req_t, why, cap)))
		return err;
	if ((err = tmpl_parse(o->reply_topic, &a->reply_t, why, cap)))
		return err;
	if ((err = bridge_remap_new(o->event_topic, &a->events, why, cap)))
		return err;
	if (!tmpl_build(&a->req_t, a->root, "+", 1, "+", a->filter, sizeof a->filter)) {
		snprintf(why, cap, "the request topic is too long");
		return ES_EINVAL;
	}
	a->q = calloc(o->queue, sizeof *a->q);
	if (!a->q)
		return ES_ENOMEM;
	return es_journal_reader_new(a->d.journal, &a->reader);
}

es_err bridge_answer_new(const bridge_answer_opts *o, const bridge_answer_deps *d,
			 bridge_answer **out, char *why, size_t cap)
{
	if (!o || !o->root || !o->event_topic || !o->topic || !o->reply_topic || !o->client_id ||
	    !o->rate || !o->queue || !d || !d->journal || !d->publish || !d->relay || !out)
		return ES_EINVAL;
	bridge_answer *a = calloc(1, sizeof *a);
	if (!a)
		return ES_ENOMEM;
	a->o = *o;
	a->d = *d;
	a->root = strdup(o->root);
	a->client_id = strdup(o->client_id);
	a->tokens = o->rate;
	a->refill_ms = es_clock_mono_ms();
	pthread_mutex_init(&a->lock, NULL);
	es_err err = a->root && a->client_id ? make_parts(a, o, why, cap) : ES_ENOMEM;
	if (!err && o->batch) {
		a->coding = o->batch->coding;
		err = es_batch_enc_new(o->batch, &a->enc);
	}
	if (err) {
		bridge_answer_free(a);
		return err;
	}
	*out = a;
	return ES_OK;
}

void bridge_answer_free(bridge_answer *a)
{
	if (!a)
		return;
	es_journal_reader_free(a->reader);
	es_batch_enc_free(a->enc);
	bridge_remap_free(a->events);
	tmpl_clear(&a->req_t);
	tmpl_clear(&a->reply_t);
	free(a->q);
	free(a->root);
	free(a->client_id);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
