/* resend.c - the re-send service: consumers that found a hole in a node's
 * sequence ask for the range on <prefix>/cmd/resend; the agent re-publishes
 * it from its journal on the events' usual topics, at most resend.rate
 * events per second, and always answers on <prefix>/reply/resend: "ok",
 * "partial" (part of the range is gone), "gone", "busy" or "invalid". Never
 * silence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "control.h"
#include "log.h"

#define TAG "resend"

es_err resend_init(agent *a)
{
	struct resend *rs = &a->rs;
	memset(rs, 0, sizeof *rs);
	rs->cap = (size_t)a->s->resend_queue;
	rs->q = calloc(rs->cap, sizeof *rs->q);
	rs->tokens = (double)a->s->resend_rate;
	rs->refill_ms = es_clock_mono_ms();
	return rs->q ? ES_OK : ES_ENOMEM;
}

void resend_free(agent *a)
{
	if (a->rs.timer)
		es_loop_timer_cancel(a->loop, a->rs.timer);
	free(a->rs.q);
	a->rs.q = NULL;
}

bool resend_active(const agent *a)
{
	return a->rs.n > 0;
}

static void reply(agent *a, const es_resend_reply *r)
{
	char *json;
	size_t len;
	es_err err = es_resend_reply_encode(r, &json, &len);
	if (err) {
		es_error(TAG, "cannot encode the reply to %s: %s", r->request_id, es_strerror(err));
		return;
	}
	agent_control_send(a, a->reply_topic, json, len, false);
	free(json);
}

static void reply_now(agent *a, const es_resend_req *req, es_resend_status status,
		      const char *reason)
{
	es_resend_reply r = {.from = req->from, .to = req->to, .status = status};
	snprintf(r.request_id, sizeof r.request_id, "%s", req->request_id);
	snprintf(r.reason, sizeof r.reason, "%s", reason);
	if (status == ES_RESEND_GONE) {
		r.gone_from = req->from;
		r.gone_to = req->to;
	}
	reply(a, &r);
}

/* The range this journal still holds: [oldest, latest]. */
static void held(agent *a, uint64_t *oldest, uint64_t *latest)
{
	es_journal_stats st;
	*latest = atomic_load(&a->committed_seq);
	*oldest = es_journal_stats_get(a->reader, &st) == ES_OK ? st.oldest_seq : 1;
	if (*oldest == 0) /* empty: retention removed everything up to latest */
		*oldest = *latest + 1;
}

/* Validates a request and queues what can be sent; answers the rest now. */
static void accept_request(agent *a, const es_resend_req *req)
{
	struct resend *rs = &a->rs;
	uint64_t oldest, latest;
	if (req->to - req->from + 1 > (uint64_t)a->s->resend_max_span) {
		reply_now(a, req, ES_RESEND_INVALID, "range longer than resend.max_span");
		rs->invalid++;
		return;
	}
	held(a, &oldest, &latest);
	if (req->from > latest) {
		reply_now(a, req, ES_RESEND_INVALID, "range starts after the latest sequence");
		rs->invalid++;
		return;
	}
	if (req->to < oldest) {
		reply_now(a, req, ES_RESEND_GONE, "no longer held (retention)");
		rs->gone += req->to - req->from + 1;
		return;
	}
	if (rs->n == rs->cap) {
		reply_now(a, req, ES_RESEND_BUSY, "too many re-send requests queued");
		rs->busy++;
		return;
	}
	struct resend_req *q = &rs->q[(rs->head + rs->n++) % rs->cap];
	*q = (struct resend_req){.from = req->from, .to = req->to};
	q->next = req->from < oldest ? oldest : req->from;
	q->last = req->to < latest ? req->to : latest;
	if (req->from < oldest) {
		q->gone_from = req->from;
		q->gone_to = oldest - 1;
	}
	snprintf(q->request_id, sizeof q->request_id, "%s", req->request_id);
}

void resend_request(agent *a, const char *payload, size_t len)
{
	es_resend_req req;
	char why[160];
	if (es_resend_req_decode(payload, len, &req, why, sizeof why)) {
		es_warn(TAG, "invalid re-send request: %s", why);
		es_resend_req blank = {0};
		reply_now(a, &blank, ES_RESEND_INVALID, why);
		a->rs.invalid++;
		return;
	}
	es_info(TAG, "re-send of %llu..%llu requested (%s)", (unsigned long long)req.from,
		(unsigned long long)req.to, req.request_id[0] ? req.request_id : "no id");
	accept_request(a, &req);
	pub_pump(a);
}

/* ---- serving the queue ---------------------------------------------------- */

static void refill_tokens(agent *a)
{
	struct resend *rs = &a->rs;
	uint64_t now = es_clock_mono_ms();
	double rate = (double)a->s->resend_rate;
	rs->tokens += (double)(now - rs->refill_ms) * rate / 1000.0;
	if (rs->tokens > rate)
		rs->tokens = rate;
	rs->refill_ms = now;
}

static void finish(agent *a, struct resend_req *q)
{
	es_resend_reply r = {.from = q->from, .to = q->to};
	snprintf(r.request_id, sizeof r.request_id, "%s", q->request_id);
	r.sent_from = q->gone_to ? q->gone_to + 1 : q->from;
	r.sent_to = q->last;
	r.gone_from = q->gone_from;
	r.gone_to = q->gone_to;
	bool whole = !q->gone_to && q->last == q->to;
	r.status = whole ? ES_RESEND_OK : ES_RESEND_PARTIAL;
	snprintf(r.reason, sizeof r.reason, "%s",
		 whole	      ? ""
		 : q->gone_to ? "part no longer held (retention)"
			      : "part after the latest sequence");
	a->rs.served++;
	a->rs.head = (a->rs.head + 1) % a->rs.cap;
	a->rs.n--;
	reply(a, &r); /* q is gone now; r holds the answer */
}

struct send_ctx {
	agent *a;
	struct resend_req *q;
	bool stopped;
};

static int send_row(void *arg, const es_journal_row *row)
{
	struct send_ctx *c = arg;
	agent *a = c->a;
	char topic[ES_TOPIC_MAX];
	if (a->rs.tokens < 1.0 || agent_topic(a, "ev", row->type, topic, sizeof topic)) {
		c->stopped = true;
		return 1;
	}
	if (es_mqtt_publish(a->mqtt, topic, row->body, row->body_len, 1, false,
			    TAG_RESEND | row->seq)) {
		c->stopped = true;
		return 1;
	}
	a->rs.tokens -= 1.0;
	a->rs.events++;
	c->q->next = row->seq + 1;
	return 0;
}

static void wake(void *arg)
{
	agent *a = arg;
	a->rs.timer = 0;
	pub_pump(a);
}

/* Sends from the head request while the window, the rate and the
 * connection allow. */
void resend_pump(agent *a)
{
	struct resend *rs = &a->rs;
	refill_tokens(a);
	while (rs->n && es_mqtt_is_connected(a->mqtt) && a->phase == P_RUNNING) {
		struct resend_req *q = &rs->q[rs->head];
		if (q->next > q->last) {
			finish(a, q);
			continue;
		}
		size_t room = es_mqtt_window(a->mqtt) - es_mqtt_inflight(a->mqtt);
		if (room == 0 || rs->tokens < 1.0)
			break;
		struct send_ctx c = {.a = a, .q = q};
		uint64_t before = q->next;
		if (es_journal_read(a->reader, q->next, q->last, room, false, send_row, &c))
			break;
		if (q->next == before && !c.stopped)
			q->next = q->last + 1; /* the rest was removed meanwhile */
		if (c.stopped)
			break;
	}
	if (rs->n && rs->tokens < 1.0 && !rs->timer)
		es_loop_timer(a->loop, 1000 / (uint64_t)a->s->resend_rate + 1, wake, a, &rs->timer);
}
