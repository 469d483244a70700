/* resend.c - the re-send service (resend.h): a bounded queue of requests,
 * served from the journal at a bounded rate, every request answered.
 *
 * Threads: the loop thread owns everything; agent_resend_ask hands its
 * request over with es_loop_post and waits on the ask's own lock and
 * condition (struct ask); `stopped` is atomic for it.
 */
#include "resend.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "topic.h"

#define TAG	   "resend"
#define ASK_WAIT_S 5

struct req {
	uint64_t from, to;   /* as asked */
	uint64_t next, last; /* what is left to send */
	char request_id[ES_REQUEST_ID_MAX];
	uint64_t gone_from, gone_to;
};

struct agent_resend {
	agent_resend_opts o;
	struct req *q; /* a ring of o.queue requests */
	size_t head, n;
	double tokens;
	uint64_t refill_ms;
	es_timer_id timer;
	_Atomic bool stopped;
	agent_resend_stats stats;
};

es_err agent_resend_new(const agent_resend_opts *o, agent_resend **out)
{
	if (!o || !o->loop || !o->journal || !o->reader || !o->ops || !o->reply || !o->wake ||
	    !o->rate || !o->max_span || !o->queue || !out)
		return ES_EINVAL;
	agent_resend *rs = calloc(1, sizeof *rs);
	if (!rs)
		return ES_ENOMEM;
	rs->o = *o;
	rs->q = calloc(o->queue, sizeof *rs->q);
	if (!rs->q) {
		free(rs);
		return ES_ENOMEM;
	}
	rs->tokens = (double)o->rate;
	rs->refill_ms = es_clock_mono_ms();
	*out = rs;
	return ES_OK;
}

void agent_resend_free(agent_resend *rs)
{
	if (!rs)
		return;
	if (rs->timer)
		es_loop_timer_cancel(rs->o.loop, rs->timer);
	free(rs->q);
	free(rs);
}

bool agent_resend_active(const agent_resend *rs)
{
	return rs->n > 0;
}

void agent_resend_stop(agent_resend *rs)
{
	atomic_store(&rs->stopped, true);
}

void agent_resend_stats_get(const agent_resend *rs, agent_resend_stats *out)
{
	*out = rs->stats;
}

/* ---- answers ---------------------------------------------------------------- */

static void reply(agent_resend *rs, const es_resend_reply *r)
{
	char *json;
	size_t len;
	es_err err = es_resend_reply_encode(r, &json, &len);
	if (err) {
		es_error(TAG, "cannot encode the reply to %s: %s", r->request_id, es_strerror(err));
		return;
	}
	rs->o.reply(rs->o.ctx, json, len);
	free(json);
}

static void reply_now(agent_resend *rs, const es_resend_req *req, es_resend_status status,
		      const char *reason)
{
	es_resend_reply r = {.from = req->from, .to = req->to, .status = status};
	snprintf(r.request_id, sizeof r.request_id, "%s", req->request_id);
	snprintf(r.reason, sizeof r.reason, "%s", reason);
	if (status == ES_RESEND_GONE) {
		r.gone_from = req->from;
		r.gone_to = req->to;
	}
	reply(rs, &r);
}

/* ---- admission ---------------------------------------------------------------- */

/* The range this journal still holds: [oldest, latest]. */
static void held(agent_resend *rs, uint64_t *oldest, uint64_t *latest)
{
	es_journal_counters c;
	es_journal_stats st;
	es_journal_counters_get(rs->o.journal, &c);
	*latest = c.latest_seq;
	*oldest = es_journal_stats_get(rs->o.reader, &st) == ES_OK ? st.oldest_seq : 1;
	if (*oldest == 0) /* empty: retention removed everything up to latest */
		*oldest = *latest + 1;
}

static void enqueue(agent_resend *rs, const es_resend_req *req, uint64_t oldest, uint64_t latest)
{
	struct req *q = &rs->q[(rs->head + rs->n++) % rs->o.queue];
	*q = (struct req){.from = req->from, .to = req->to};
	q->next = req->from < oldest ? oldest : req->from;
	q->last = req->to < latest ? req->to : latest;
	if (req->from < oldest) {
		q->gone_from = req->from;
		q->gone_to = oldest - 1;
	}
	snprintf(q->request_id, sizeof q->request_id, "%s", req->request_id);
}

/* Validates a request and queues what can be sent: ES_RESEND_OK when
 * queued, else the answer (invalid, gone, busy) and why, counted. */
static es_resend_status admit(agent_resend *rs, const es_resend_req *req, const char **why)
{
	uint64_t oldest, latest;
	if (req->to - req->from + 1 > rs->o.max_span) {
		*why = "range longer than resend.max_span";
		rs->stats.invalid++;
		return ES_RESEND_INVALID;
	}
	held(rs, &oldest, &latest);
	if (req->from > latest) {
		*why = "range starts after the latest sequence";
		rs->stats.invalid++;
		return ES_RESEND_INVALID;
	}
	if (req->to < oldest) {
		*why = "no longer held (retention)";
		rs->stats.gone += req->to - req->from + 1;
		return ES_RESEND_GONE;
	}
	if (rs->n == rs->o.queue) {
		*why = "too many re-send requests queued";
		rs->stats.busy++;
		return ES_RESEND_BUSY;
	}
	enqueue(rs, req, oldest, latest);
	return ES_RESEND_OK;
}

void agent_resend_request(agent_resend *rs, const char *payload, size_t len)
{
	es_resend_req req;
	char why[160];
	if (es_resend_req_decode(payload, len, &req, why, sizeof why)) {
		es_warn(TAG, "invalid re-send request: %s", why);
		es_resend_req blank = {0};
		reply_now(rs, &blank, ES_RESEND_INVALID, why);
		rs->stats.invalid++;
		return;
	}
	es_info(TAG, "re-send of %llu..%llu requested (%s)", (unsigned long long)req.from,
		(unsigned long long)req.to, req.request_id[0] ? req.request_id : "no id");
	const char *reason = "";
	es_resend_status status = admit(rs, &req, &reason);
	if (status != ES_RESEND_OK)
		reply_now(rs, &req, status, reason);
	rs->o.wake(rs->o.ctx);
}

/* ---- asks from other threads (POST /api/replay) ---------------------------------- */

/* Shared by the asking thread and the loop; the last of the two to let go
 * frees it (the asking side may give up waiting). */
struct ask {
	agent_resend *rs;
	es_resend_req req;
	agent_resend_answer answer;
	bool done;
	int refs;
	pthread_mutex_t lock; /* guards answer, done, refs */
	pthread_cond_t cond;
};

static void ask_release(struct ask *k)
{
	pthread_mutex_lock(&k->lock);
	bool last = --k->refs == 0;
	pthread_mutex_unlock(&k->lock);
	if (last) {
		pthread_mutex_destroy(&k->lock);
		pthread_cond_destroy(&k->cond);
		free(k);
	}
}

/* On the loop thread. */
static void ask_admit(void *arg)
{
	struct ask *k = arg;
	agent_resend *rs = k->rs;
	agent_resend_answer a = {.why = ""};
	size_t before = rs->n;
	a.status = admit(rs, &k->req, &a.why);
	if (a.status == ES_RESEND_OK && rs->n > before) {
		const struct req *q = &rs->q[(rs->head + rs->n - 1) % rs->o.queue];
		a.events = q->last >= q->next ? q->last - q->next + 1 : 0;
		rs->o.wake(rs->o.ctx);
	}
	snprintf(a.request_id, sizeof a.request_id, "%s", k->req.request_id);
	pthread_mutex_lock(&k->lock);
	k->answer = a;
	k->done = true;
	pthread_cond_signal(&k->cond);
	pthread_mutex_unlock(&k->lock);
	ask_release(k);
}

/* Waits for the loop's answer, ASK_WAIT_S at most. */
static bool ask_wait(struct ask *k, agent_resend_answer *copy)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ASK_WAIT_S;
	pthread_mutex_lock(&k->lock);
	while (!k->done && pthread_cond_timedwait(&k->cond, &k->lock, &ts) == 0)
		;
	bool done = k->done;
	if (done)
		*copy = k->answer;
	pthread_mutex_unlock(&k->lock);
	return done;
}

es_err agent_resend_ask(agent_resend *rs, uint64_t from, uint64_t to, agent_resend_answer *out)
{
	if (!rs || !out)
		return ES_EINVAL;
	if (atomic_load(&rs->stopped))
		return ES_ECLOSED;
	struct ask *k = calloc(1, sizeof *k);
	agent_resend_answer copy;
	if (!k)
		return ES_ENOMEM;
	*k = (struct ask){.rs = rs, .req = {.from = from, .to = to}, .refs = 2};
	snprintf(k->req.request_id, sizeof k->req.request_id, "http-%llu",
		 (unsigned long long)es_clock_wall_ms());
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->cond, NULL);
	es_err err = es_loop_post(rs->o.loop, ask_admit, k);
	if (err)
		k->refs = 1; /* ours alone */
	else if (!ask_wait(k, &copy))
		err = ES_ETIMEDOUT;
	ask_release(k);
	if (err)
		return err;
	es_info(TAG, "replay of %llu..%llu asked over HTTP: %s", (unsigned long long)from,
		(unsigned long long)to, copy.status == ES_RESEND_OK ? "queued" : copy.why);
	*out = copy;
	return ES_OK;
}

/* ---- serving the queue ---------------------------------------------------- */

static void refill_tokens(agent_resend *rs)
{
	uint64_t now = es_clock_mono_ms();
	double rate = (double)rs->o.rate;
	rs->tokens += (double)(now - rs->refill_ms) * rate / 1000.0;
	if (rs->tokens > rate)
		rs->tokens = rate;
	rs->refill_ms = now;
}

static void finish(agent_resend *rs, struct req *q)
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
	rs->stats.served++;
	rs->head = (rs->head + 1) % rs->o.queue;
	rs->n--;
	reply(rs, &r); /* q is gone now; r holds the answer */
}

struct send_ctx {
	agent_resend *rs;
	struct req *q;
	bool stopped;
};

static int send_row(void *arg, const es_journal_row *row)
{
	struct send_ctx *c = arg;
	agent_resend *rs = c->rs;
	const agent_names *nm = &rs->o.names;
	char topic[ES_TOPIC_MAX];
	if (rs->tokens < 1.0 ||
	    es_topic_build(topic, sizeof topic, nm->root, nm->site, nm->node, "ev", row->type) ||
	    rs->o.ops->publish(rs->o.ops_ctx, topic, row->body, row->body_len, false,
			       AGENT_TAG_RESEND | row->seq)) {
		c->stopped = true;
		return 1;
	}
	rs->tokens -= 1.0;
	rs->stats.events++;
	c->q->next = row->seq + 1;
	return 0;
}

static void wake(void *arg)
{
	agent_resend *rs = arg;
	rs->timer = 0;
	rs->o.wake(rs->o.ctx);
}

/* Sends from the head request while the window, the rate and the
 * connection allow. */
void agent_resend_pump(agent_resend *rs)
{
	const agent_pub_ops *ops = rs->o.ops;
	void *ctx = rs->o.ops_ctx;
	refill_tokens(rs);
	while (rs->n && ops->connected(ctx) && !atomic_load(&rs->stopped)) {
		struct req *q = &rs->q[rs->head];
		if (q->next > q->last) {
			finish(rs, q);
			continue;
		}
		size_t room = ops->window(ctx) - ops->inflight(ctx);
		if (room == 0 || rs->tokens < 1.0)
			break;
		struct send_ctx c = {.rs = rs, .q = q};
		uint64_t before = q->next;
		if (es_journal_read(rs->o.reader, q->next, q->last, room, false, send_row, &c))
			break;
		if (q->next == before && !c.stopped)
			q->next = q->last + 1; /* the rest was removed meanwhile */
		if (c.stopped)
			break;
	}
	if (rs->n && rs->tokens < 1.0 && !rs->timer)
		es_loop_timer(rs->o.loop, 1000 / rs->o.rate + 1, wake, rs, &rs->timer);
}
