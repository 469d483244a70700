/* resend.c - the re-send service (resend.h): requests wait for their
 * answer in a bounded queue; the sequences they ask for are merged into one
 * set of ranges still to re-publish (`todo`), served from the journal in
 * sequence order at a bounded rate; every request is answered.
 *
 * What a flood of requests can make the agent do is bounded:
 *  - at most o.queue requests wait for their answer, and one asker at most
 *    a quarter of them (at least one). The asker is the request_id up to
 *    its last '-' (consumers name their requests "<client id>-<n>"; HTTP
 *    asks are "http-<ms>"), the whole id without one, "" without an id;
 *  - the sequences waiting to be re-published are disjoint ranges: a
 *    request overlapping what already waits adds only what does not, and at
 *    most o.max_span sequences wait in all;
 *  - a request over a bound is answered busy at once (ask again later).
 * A request is answered once none of its held range waits any more.
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
#include "grow.h"
#include "log.h"
#include "lograte.h"
#include "topic.h"

#define TAG	   "resend"
#define ASK_WAIT_S 5
#define HTTP_ASKER "http"

struct req {
	uint64_t from, to;    /* as asked */
	uint64_t first, last; /* the part held when asked: re-sent (first > last: none) */
	uint64_t gone_from, gone_to;
	char request_id[ES_REQUEST_ID_MAX];
	char asker[ES_REQUEST_ID_MAX];
};

/* Sequences still to re-publish: [from, to], from <= to. */
struct span {
	uint64_t from, to;
};

struct agent_resend {
	agent_resend_opts o;
	struct req *q; /* n waiting requests, oldest first; room for o.queue */
	size_t n;
	struct span *todo; /* sorted, disjoint, not adjacent */
	size_t ntodo, captodo;
	double tokens;
	uint64_t refill_ms;
	es_timer_id timer;
	_Atomic bool stopped;
	agent_resend_stats stats;
	es_lograte lograte; /* requests from the network: a few lines a second */
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
	free(rs->todo);
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

/* ---- the set of sequences to re-publish ------------------------------------- */

/* Index of the first span ending at or after seq (ntodo if none). */
static size_t span_from(const agent_resend *rs, uint64_t seq)
{
	size_t lo = 0, hi = rs->ntodo;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (rs->todo[mid].to < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* How many of [a, b] do not wait yet. */
static uint64_t todo_missing(const agent_resend *rs, uint64_t a, uint64_t b)
{
	uint64_t missing = b - a + 1;
	for (size_t i = span_from(rs, a); i < rs->ntodo && rs->todo[i].from <= b; i++) {
		uint64_t lo = rs->todo[i].from > a ? rs->todo[i].from : a;
		uint64_t hi = rs->todo[i].to < b ? rs->todo[i].to : b;
		missing -= hi - lo + 1;
	}
	return missing;
}

static bool todo_overlaps(const agent_resend *rs, uint64_t a, uint64_t b)
{
	size_t i = span_from(rs, a);
	return i < rs->ntodo && rs->todo[i].from <= b;
}

/* Adds [a, b], merging every span it touches. ES_ENOMEM (unchanged). */
static es_err todo_add(agent_resend *rs, uint64_t a, uint64_t b)
{
	size_t i = span_from(rs, a > 0 ? a - 1 : 0), j = i; /* an adjacent span merges too */
	while (j < rs->ntodo && rs->todo[j].from <= b + 1)
		j++;
	if (i == j) {
		struct span *grown =
			es_grow(rs->todo, &rs->captodo, rs->ntodo + 1, sizeof *grown, 8);
		if (!grown)
			return ES_ENOMEM;
		rs->todo = grown;
	}
	struct span merged = {a, b};
	if (i < j) {
		merged.from = rs->todo[i].from < a ? rs->todo[i].from : a;
		merged.to = rs->todo[j - 1].to > b ? rs->todo[j - 1].to : b;
	}
	/* spans i..j-1 become one at i */
	size_t tail = rs->ntodo - j;
	memmove(&rs->todo[i + 1], &rs->todo[j], tail * sizeof *rs->todo);
	rs->todo[i] = merged;
	rs->ntodo = i + 1 + tail;
	return ES_OK;
}

static void todo_drop_first(agent_resend *rs)
{
	memmove(&rs->todo[0], &rs->todo[1], (rs->ntodo - 1) * sizeof *rs->todo);
	rs->ntodo--;
}

/* ---- answers ---------------------------------------------------------------- */

static uint64_t latest_seq(const agent_resend *rs)
{
	es_journal_counters c;
	es_journal_counters_get(rs->o.journal, &c);
	return c.latest_seq;
}

static void reply(agent_resend *rs, es_resend_reply *r)
{
	char *json;
	size_t len;
	r->latest_seq = latest_seq(rs);
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
	es_journal_stats st;
	*latest = latest_seq(rs);
	*oldest = es_journal_stats_get(rs->o.reader, &st) == ES_OK ? st.oldest_seq : 1;
	if (*oldest == 0) /* empty: retention removed everything up to latest */
		*oldest = *latest + 1;
}

/* The request_id up to its last '-' (the whole id without one). */
static void asker_of(const char *request_id, char out[ES_REQUEST_ID_MAX])
{
	const char *dash = strrchr(request_id, '-');
	size_t n = dash ? (size_t)(dash - request_id) : strlen(request_id);
	memcpy(out, request_id, n);
	out[n] = '\0';
}

static size_t waiting_from(const agent_resend *rs, const char *asker)
{
	size_t k = 0;
	for (size_t i = 0; i < rs->n; i++)
		k += strcmp(rs->q[i].asker, asker) == 0;
	return k;
}

static void enqueue(agent_resend *rs, const es_resend_req *req, const char *asker, uint64_t oldest,
		    uint64_t latest)
{
	struct req *q = &rs->q[rs->n++];
	*q = (struct req){.from = req->from, .to = req->to};
	q->first = req->from < oldest ? oldest : req->from;
	q->last = req->to < latest ? req->to : latest;
	if (req->from < oldest) {
		q->gone_from = req->from;
		q->gone_to = oldest - 1;
	}
	snprintf(q->request_id, sizeof q->request_id, "%s", req->request_id);
	snprintf(q->asker, sizeof q->asker, "%s", asker);
}

static es_resend_status refuse(agent_resend *rs, es_resend_status s, const char *what,
			       const char **why)
{
	*why = what;
	if (s == ES_RESEND_BUSY)
		rs->stats.busy++;
	else
		rs->stats.invalid++;
	return s;
}

/* Within the queue's bounds: adds what the request adds to the set of
 * sequences to send, and queues it. */
static es_resend_status queue_up(agent_resend *rs, const es_resend_req *req, const char *asker,
				 uint64_t oldest, uint64_t latest, const char **why)
{
	size_t per_asker = rs->o.queue / 4 ? rs->o.queue / 4 : 1;
	if (rs->n == rs->o.queue)
		return refuse(rs, ES_RESEND_BUSY, "too many re-send requests queued", why);
	if (waiting_from(rs, asker) >= per_asker)
		return refuse(rs, ES_RESEND_BUSY, "too many re-send requests queued by this asker",
			      why);
	uint64_t first = req->from < oldest ? oldest : req->from;
	uint64_t last = req->to < latest ? req->to : latest;
	uint64_t adds = todo_missing(rs, first, last);
	if (rs->stats.pending + adds > rs->o.max_span)
		return refuse(rs, ES_RESEND_BUSY, "too many events waiting to be re-sent", why);
	if (adds && todo_add(rs, first, last))
		return refuse(rs, ES_RESEND_BUSY, "out of memory", why);
	rs->stats.pending += adds;
	rs->stats.merged += last - first + 1 - adds;
	enqueue(rs, req, asker, oldest, latest);
	return ES_RESEND_OK;
}

/* Validates a request and queues what can be sent: ES_RESEND_OK when
 * queued, else the answer (invalid, gone, busy) and why, counted. */
static es_resend_status admit(agent_resend *rs, const es_resend_req *req, const char *asker,
			      const char **why)
{
	uint64_t oldest, latest;
	if (req->to - req->from + 1 > rs->o.max_span)
		return refuse(rs, ES_RESEND_INVALID, "range longer than resend.max_span", why);
	held(rs, &oldest, &latest);
	if (req->from > latest)
		return refuse(rs, ES_RESEND_INVALID, "range starts after the latest sequence", why);
	if (req->to < oldest) {
		*why = "no longer held (retention)";
		rs->stats.gone += req->to - req->from + 1;
		return ES_RESEND_GONE;
	}
	return queue_up(rs, req, asker, oldest, latest, why);
}

/* Whether a request may be logged now: a flood of them is counted, not
 * written line by line. */
static bool log_ok(agent_resend *rs)
{
	return es_lograte_line(&rs->lograte, TAG, "re-send requests");
}

void agent_resend_request(agent_resend *rs, const char *payload, size_t len)
{
	es_resend_req req;
	char why[160], asker[ES_REQUEST_ID_MAX];
	if (es_resend_req_decode(payload, len, &req, why, sizeof why)) {
		es_resend_req blank = {0};
		es_resend_req_id(payload, len, blank.request_id);
		if (log_ok(rs))
			es_warn(TAG, "invalid re-send request (%s): %s",
				blank.request_id[0] ? blank.request_id : "no id", why);
		reply_now(rs, &blank, ES_RESEND_INVALID, why);
		rs->stats.invalid++;
		return;
	}
	if (log_ok(rs))
		es_info(TAG, "re-send of %llu..%llu requested (%s)", (unsigned long long)req.from,
			(unsigned long long)req.to, req.request_id[0] ? req.request_id : "no id");
	const char *reason = "";
	asker_of(req.request_id, asker);
	es_resend_status status = admit(rs, &req, asker, &reason);
	if (status != ES_RESEND_OK)
		reply_now(rs, &req, status, reason);
	rs->o.wake(rs->o.ctx);
}

void agent_resend_oversized(agent_resend *rs, size_t len)
{
	es_resend_req blank = {0};
	char why[96];
	snprintf(why, sizeof why, "json: message of %zu bytes; the limit is %d", len,
		 ES_CONTROL_MAX_BYTES);
	if (log_ok(rs))
		es_warn(TAG, "re-send request not read: %s", why);
	reply_now(rs, &blank, ES_RESEND_INVALID, why);
	rs->stats.invalid++;
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
	a.status = admit(rs, &k->req, HTTP_ASKER, &a.why);
	if (a.status == ES_RESEND_OK && rs->n > before) {
		const struct req *q = &rs->q[rs->n - 1];
		a.events = q->last >= q->first ? q->last - q->first + 1 : 0;
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
	snprintf(k->req.request_id, sizeof k->req.request_id, HTTP_ASKER "-%llu",
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

/* ---- serving the set ---------------------------------------------------- */

static void refill_tokens(agent_resend *rs)
{
	uint64_t now = es_clock_mono_ms();
	double rate = (double)rs->o.rate;
	rs->tokens += (double)(now - rs->refill_ms) * rate / 1000.0;
	if (rs->tokens > rate)
		rs->tokens = rate;
	rs->refill_ms = now;
}

/* Answers q (index i of the queue) and takes it out. */
static void finish(agent_resend *rs, size_t i)
{
	const struct req *q = &rs->q[i];
	es_resend_reply r = {.from = q->from, .to = q->to};
	snprintf(r.request_id, sizeof r.request_id, "%s", q->request_id);
	r.sent_from = q->first;
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
	memmove(&rs->q[i], &rs->q[i + 1], (rs->n - i - 1) * sizeof *rs->q);
	rs->n--;
	reply(rs, &r);
}

/* Answers every request none of whose range waits any more. */
static void answer_done(agent_resend *rs)
{
	for (size_t i = 0; i < rs->n;) {
		const struct req *q = &rs->q[i];
		if (q->first <= q->last && todo_overlaps(rs, q->first, q->last))
			i++;
		else
			finish(rs, i);
	}
}

struct send_ctx {
	agent_resend *rs;
	uint64_t next; /* the sequence after the last one sent */
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
			       AGENT_TAG_RESEND | row->seq, NULL)) {
		c->stopped = true;
		return 1;
	}
	rs->tokens -= 1.0;
	rs->stats.events++;
	c->next = row->seq + 1;
	return 0;
}

/* Moves the first span's start to next (what was skipped was removed
 * meanwhile: it counts as sent, as the answer will say). */
static void advance(agent_resend *rs, uint64_t next)
{
	struct span *s = &rs->todo[0];
	rs->stats.pending -= next - s->from;
	s->from = next;
	if (s->from > s->to)
		todo_drop_first(rs);
}

static void wake(void *arg)
{
	agent_resend *rs = arg;
	rs->timer = 0;
	rs->o.wake(rs->o.ctx);
}

/* Sends from the lowest waiting sequence while the window, the rate and the
 * connection allow; answers the requests that are done. */
void agent_resend_pump(agent_resend *rs)
{
	const agent_pub_ops *ops = rs->o.ops;
	void *ctx = rs->o.ops_ctx;
	refill_tokens(rs);
	while (rs->ntodo && ops->connected(ctx) && !atomic_load(&rs->stopped)) {
		size_t room = ops->window(ctx) - ops->inflight(ctx);
		if (room == 0 || rs->tokens < 1.0)
			break;
		struct send_ctx c = {.rs = rs, .next = rs->todo[0].from};
		if (es_journal_read(rs->o.reader, rs->todo[0].from, rs->todo[0].to, room, false,
				    send_row, &c))
			break;
		if (c.next == rs->todo[0].from && !c.stopped)
			c.next = rs->todo[0].to + 1; /* the rest was removed meanwhile */
		advance(rs, c.next);
		if (c.stopped)
			break;
	}
	if (!atomic_load(&rs->stopped))
		answer_done(rs);
	if (rs->ntodo && rs->tokens < 1.0 && !rs->timer)
		es_loop_timer(rs->o.loop, 1000 / rs->o.rate + 1, wake, rs, &rs->timer);
}
