/* resend.c - the re-send service: consumers that found a hole in a node's
 * sequence ask for the range on <prefix>/cmd/resend; the agent re-publishes
 * it from its journal on the events' usual topics, at most resend.rate
 * events per second, and always answers on <prefix>/reply/resend: "ok",
 * "partial" (part of the range is gone), "gone", "busy" or "invalid". Never
 * silence.
 */
#include <pthread.h>
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

/* Validates a request and queues what can be sent: ES_RESEND_OK when
 * queued, else the answer (invalid, gone, busy) and why, counted. */
static es_resend_status admit(agent *a, const es_resend_req *req, const char **why)
{
	struct resend *rs = &a->rs;
	uint64_t oldest, latest;
	if (req->to - req->from + 1 > (uint64_t)a->s->resend_max_span) {
		*why = "range longer than resend.max_span";
		rs->invalid++;
		return ES_RESEND_INVALID;
	}
	held(a, &oldest, &latest);
	if (req->from > latest) {
		*why = "range starts after the latest sequence";
		rs->invalid++;
		return ES_RESEND_INVALID;
	}
	if (req->to < oldest) {
		*why = "no longer held (retention)";
		rs->gone += req->to - req->from + 1;
		return ES_RESEND_GONE;
	}
	if (rs->n == rs->cap) {
		*why = "too many re-send requests queued";
		rs->busy++;
		return ES_RESEND_BUSY;
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
	return ES_RESEND_OK;
}

static void accept_request(agent *a, const es_resend_req *req)
{
	const char *why = "";
	es_resend_status status = admit(a, req, &why);
	if (status != ES_RESEND_OK)
		reply_now(a, req, status, why);
}

/* ---- POST /api/replay: the same queue, asked over HTTP -------------------- */

/* Shared by the HTTP thread and the loop; the last of the two to let go
 * frees it (the HTTP side may give up waiting). */
struct http_result {
	es_resend_req req;
	es_resend_status status;
	const char *why;
	uint64_t events;
};

struct http_job {
	agent *a;
	struct http_result r;
	bool done;
	int refs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void job_release(struct http_job *j)
{
	pthread_mutex_lock(&j->lock);
	bool last = --j->refs == 0;
	pthread_mutex_unlock(&j->lock);
	if (last) {
		pthread_mutex_destroy(&j->lock);
		pthread_cond_destroy(&j->cond);
		free(j);
	}
}

/* On the loop thread. */
static void http_admit(void *arg)
{
	struct http_job *j = arg;
	struct resend *rs = &j->a->rs;
	size_t before = rs->n;
	const char *why = "";
	es_resend_status status = admit(j->a, &j->r.req, &why);
	uint64_t events = 0;
	if (status == ES_RESEND_OK && rs->n > before) {
		const struct resend_req *q = &rs->q[(rs->head + rs->n - 1) % rs->cap];
		events = q->last >= q->next ? q->last - q->next + 1 : 0;
		pub_pump(j->a);
	}
	pthread_mutex_lock(&j->lock);
	j->r.status = status;
	j->r.why = why;
	j->r.events = events;
	j->done = true;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	job_release(j);
}

static int http_answer(es_http_req *req, const struct http_result *j)
{
	char body[200];
	if (j->status != ES_RESEND_OK)
		return es_http_reply_error(req,
					   j->status == ES_RESEND_GONE	 ? 404
					   : j->status == ES_RESEND_BUSY ? 503
									 : 400,
					   j->why, NULL);
	int n = snprintf(body, sizeof body,
			 "{\"replaying\":{\"from\":%llu,\"to\":%llu,\"events\":%llu,"
			 "\"request_id\":\"%s\"}}",
			 (unsigned long long)j->req.from, (unsigned long long)j->req.to,
			 (unsigned long long)j->events, j->req.request_id);
	return es_http_reply(req, 202, "application/json", body, (size_t)n);
}

/* Waits for the loop's answer, 5 s at most. */
static bool job_wait(struct http_job *j, struct http_result *copy)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&j->lock);
	while (!j->done && pthread_cond_timedwait(&j->cond, &j->lock, &ts) == 0)
		;
	bool done = j->done;
	if (done)
		*copy = j->r;
	pthread_mutex_unlock(&j->lock);
	return done;
}

int resend_http(agent *a, es_http_req *req, uint64_t from, uint64_t to)
{
	struct http_job *j = calloc(1, sizeof *j);
	struct http_result copy;
	if (!j)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	*j = (struct http_job){.a = a, .r = {.req = {.from = from, .to = to}}, .refs = 2};
	snprintf(j->r.req.request_id, sizeof j->r.req.request_id, "http-%llu",
		 (unsigned long long)es_clock_wall_ms());
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	bool posted = !atomic_load(&a->closing) && es_loop_post(a->loop, http_admit, j) == ES_OK;
	if (!posted)
		j->refs = 1; /* ours alone */
	bool done = posted && job_wait(j, &copy);
	job_release(j);
	if (!done)
		return es_http_reply_error(req, 503, "the agent is busy or shutting down", NULL);
	es_info(TAG, "replay of %llu..%llu asked over HTTP: %s", (unsigned long long)from,
		(unsigned long long)to, copy.status == ES_RESEND_OK ? "queued" : copy.why);
	return http_answer(req, &copy);
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
