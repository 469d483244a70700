/* msource.c - the MQTT source: es_mqtt (paho) on a loop thread of its own,
 * handing messages to the puller through a bounded queue.
 *
 * QoS 1 subscriptions under a stable client id with a persistent session,
 * so a consumer that was away gets what arrived meanwhile. paho sends the
 * PUBACK before our callback runs: a crash between that and the consumer's
 * COMMIT loses those messages at this hop. The consumer sees such losses as
 * holes in each node's `sequence` (gap.h), counted and exposed; the node's
 * journal still has the events for a re-send.
 *
 * Several URLs are one service's nodes: es_mqtt stays on one and moves to
 * the next when it loses it (rotation.h), under the same client id.
 *
 * With a resend_root, the source also asks nodes to re-send (source.h's
 * ask): a request is posted to the loop thread, which publishes it (at most
 * ASK_MAX wait to go); answers to our request ids are kept for the puller
 * in a bounded list (REPLY_MAX; older ones beyond it are let go: the gap
 * tracker asks again), never handed over as deliveries.
 *
 * Lock `lock` guards the queue (head, tail, n), the replies, `asks` and
 * `connected`, `subscribed`, `url`, `failovers`; the loop thread owns
 * `mqtt` and `asked`.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "clock.h"
#include "control.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "source.h"
#include "topic.h"

#define TAG	  "msource"
#define ASK_MAX	  64
#define REPLY_MAX 64

struct item {
	es_delivery d;
	struct item *next;
};

struct msrc {
	es_source base;
	size_t queue_max;
	es_loop *loop;
	es_mqtt *mqtt;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* an item arrived, or room was made */
	struct item *head, *tail;
	size_t n;
	bool connected, stopping;
	bool subscribed;      /* every subscription acknowledged on this connection */
	bool draining, quiet; /* quiesce asked; the client is gone */
	char url[sizeof(((es_mqtt_stats *)0)->url)]; /* the one connected to */
	uint64_t failovers;
	char *root, *client_id; /* resend_root (NULL: no asking), ours */
	char reply_filter[ES_TOPIC_MAX], cmd_filter[ES_TOPIC_MAX];
	size_t asks; /* posted, not yet published */
	uint64_t asked;
	es_source_reply replies[REPLY_MAX];
	size_t rhead, rn;
};

/* A request posted to the loop thread. */
struct ask_job {
	struct msrc *s;
	char topic[ES_TOPIC_MAX];
	uint64_t from, to;
};

static void deadline_in(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* A copy of s, or NULL for NULL; *ok false when out of memory. */
static char *dup_or_null(const char *s, bool *ok)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*ok = false;
	return d;
}

/* The message as a delivery, with what its properties say of its format
 * (batch.h). NULL when out of memory. */
static struct item *make_item(const es_mqtt_msg *m)
{
	es_batch_meta meta;
	bool ok = true;
	struct item *it = calloc(1, sizeof *it);
	if (!it)
		return NULL;
	es_batch_meta_from_props(&m->props, &meta);
	it->d = (es_delivery){.where = strdup(m->topic),
			      .body = malloc(m->len + 1),
			      .len = m->len,
			      .sep = '/',
			      .content_type = dup_or_null(meta.content_type, &ok),
			      .encoding = dup_or_null(meta.encoding, &ok),
			      .dict = dup_or_null(meta.dict, &ok)};
	if (!ok || !it->d.where || !it->d.body) {
		es_delivery_clear(&it->d);
		free(it);
		return NULL;
	}
	memcpy(it->d.body, m->payload, m->len);
	it->d.body[m->len] = '\0';
	return it;
}

/* Loop thread: an answer on a reply topic; kept when it is ours. */
static void take_reply(struct msrc *s, const es_mqtt_msg *m)
{
	es_source_reply r;
	char why[160];
	es_topic_parts p;
	size_t own = strlen(s->client_id);
	if (es_resend_reply_decode(m->payload, m->len, &r.r, why, sizeof why) ||
	    strncmp(r.r.request_id, s->client_id, own) != 0 || r.r.request_id[own] != '-' ||
	    es_topic_split(m->topic, s->root, &p))
		return; /* another asker's, or unreadable */
	snprintf(r.node, sizeof r.node, "/%.*s/%.*s", (int)p.site_len, p.site, (int)p.node_len,
		 p.node);
	pthread_mutex_lock(&s->lock);
	if (s->rn == REPLY_MAX) { /* the oldest goes: its range is asked again */
		s->rhead = (s->rhead + 1) % REPLY_MAX;
		s->rn--;
	}
	s->replies[(s->rhead + s->rn++) % REPLY_MAX] = r;
	pthread_mutex_unlock(&s->lock);
}

/* Loop thread: queue a copy; waits while the queue is full (paho holds
 * further messages meanwhile: back-pressure, nothing dropped). Re-send
 * answers and requests are no deliveries. */
static void on_message(void *ctx, const es_mqtt_msg *m)
{
	struct msrc *s = ctx;
	if (s->root && es_topic_match(s->reply_filter, m->topic)) {
		take_reply(s, m);
		return;
	}
	if (s->root && es_topic_match(s->cmd_filter, m->topic))
		return;
	struct item *it = make_item(m);
	if (!it) {
		es_error(TAG, "out of memory: a message on %s dropped", m->topic);
		return;
	}
	pthread_mutex_lock(&s->lock);
	while (s->n >= s->queue_max && !s->stopping && !s->draining)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->tail)
		s->tail->next = it;
	else
		s->head = it;
	s->tail = it;
	s->n++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void on_connected(void *ctx, bool session_present)
{
	struct msrc *s = ctx;
	es_mqtt_stats st;
	es_mqtt_stats_get(s->mqtt, &st);
	pthread_mutex_lock(&s->lock);
	s->connected = true;
	snprintf(s->url, sizeof s->url, "%s", st.url);
	s->failovers = st.failovers;
	pthread_mutex_unlock(&s->lock);
	es_info(TAG, "%s: connected (session %s)", st.url, session_present ? "resumed" : "new");
}

static void on_subscribed(void *ctx)
{
	struct msrc *s = ctx;
	pthread_mutex_lock(&s->lock);
	s->subscribed = true;
	pthread_mutex_unlock(&s->lock);
}

static void set_quiet(struct msrc *s);

static void on_disconnected(void *ctx, const char *cause, uint64_t retry_ms)
{
	struct msrc *s = ctx;
	pthread_mutex_lock(&s->lock);
	s->connected = false;
	s->subscribed = false;
	bool draining = s->draining;
	pthread_mutex_unlock(&s->lock);
	if (draining && retry_ms == 0)
		set_quiet(s);
}

static void on_published(void *ctx, uint64_t tag, es_err err)
{
	(void)ctx;
	(void)tag;
	(void)err;
}

/* The client, subscribed to o's topics and started (it connects on the
 * loop thread once that runs). */
static es_err make_client(struct msrc *s, const es_msource_opts *o)
{
	static const char *const all[] = {"edgespool/#"};
	es_mqtt_opts mo = o->mqtt;
	mo.cbs = (es_mqtt_cbs){.connected = on_connected,
			       .disconnected = on_disconnected,
			       .published = on_published,
			       .subscribed = on_subscribed,
			       .message_props = on_message};
	mo.ctx = s;
	es_err err = es_mqtt_new(s->loop, &mo, &s->mqtt);
	const char *const *topics = o->ntopics ? o->topics : all;
	for (size_t i = 0; !err && i < (o->ntopics ? o->ntopics : 1); i++)
		err = es_mqtt_subscribe(s->mqtt, topics[i], 1);
	if (!err && s->root)
		err = es_mqtt_subscribe(s->mqtt, s->reply_filter, 1);
	if (!err)
		err = es_mqtt_start(s->mqtt);
	return err;
}

static void *run(void *arg)
{
	struct msrc *s = arg;
	es_loop_run(s->loop);
	return NULL;
}

static es_err src_next(es_source *base, uint64_t wait_ms, es_delivery *out)
{
	struct msrc *s = (struct msrc *)base;
	struct timespec dl;
	deadline_in(&dl, wait_ms);
	pthread_mutex_lock(&s->lock);
	while (!s->head) {
		if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) != 0 && !s->head) {
			pthread_mutex_unlock(&s->lock);
			return ES_ETIMEDOUT;
		}
	}
	struct item *it = s->head;
	s->head = it->next;
	if (!s->head)
		s->tail = NULL;
	s->n--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	*out = it->d;
	free(it);
	return ES_OK;
}

static es_err src_ack(es_source *base, uint64_t tag)
{
	(void)base;
	(void)tag;
	return ES_OK;
}

static void set_quiet(struct msrc *s)
{
	pthread_mutex_lock(&s->lock);
	s->quiet = true;
	s->connected = false;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Loop thread, posted: a clean DISCONNECT. The messages es_mqtt queued
 * before it still reach on_message; disconnected("stopped") comes after
 * them and sets `quiet`. */
static void go_quiet(void *arg)
{
	struct msrc *s = arg;
	if (!s->mqtt || es_mqtt_disconnect(s->mqtt, 1000))
		set_quiet(s);
}

static void src_quiesce(es_source *base)
{
	struct msrc *s = (struct msrc *)base;
	struct timespec dl;
	pthread_mutex_lock(&s->lock);
	s->draining = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (es_loop_post(s->loop, go_quiet, s))
		return;
	deadline_in(&dl, 5000);
	pthread_mutex_lock(&s->lock);
	while (!s->quiet && pthread_cond_timedwait(&s->cond, &s->lock, &dl) == 0)
		;
	pthread_mutex_unlock(&s->lock);
}

static void src_where(es_source *base, char *url, size_t cap, uint64_t *failovers)
{
	struct msrc *s = (struct msrc *)base;
	pthread_mutex_lock(&s->lock);
	snprintf(url, cap, "%s", s->connected ? s->url : "");
	*failovers = s->failovers;
	pthread_mutex_unlock(&s->lock);
}

static bool src_ready(es_source *base)
{
	struct msrc *s = (struct msrc *)base;
	pthread_mutex_lock(&s->lock);
	bool ready = s->subscribed && !s->draining;
	pthread_mutex_unlock(&s->lock);
	return ready;
}

/* Loop thread, posted: the client goes, then the loop stops. */
static void shutdown_loop(void *arg)
{
	struct msrc *s = arg;
	es_mqtt_free(s->mqtt);
	s->mqtt = NULL;
	es_loop_stop(s->loop);
}

static void src_free(es_source *base)
{
	struct msrc *s = (struct msrc *)base;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->thread_started && es_loop_post(s->loop, shutdown_loop, s) == ES_OK)
		pthread_join(s->thread, NULL);
	else
		es_mqtt_free(s->mqtt);
	es_loop_free(s->loop);
	while (s->head) {
		struct item *it = s->head;
		s->head = it->next;
		es_delivery_clear(&it->d);
		free(it);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->root);
	free(s->client_id);
	free(s);
}

/* Loop thread, posted: publishes one request. One that cannot go now
 * (not connected, the window full) is let go: the gap tracker asks again. */
static void send_ask(void *arg)
{
	struct ask_job *j = arg;
	struct msrc *s = j->s;
	es_resend_req req = {.from = j->from, .to = j->to};
	char *json;
	size_t len;
	snprintf(req.request_id, sizeof req.request_id, "%.40s-%" PRIu64, s->client_id, ++s->asked);
	if (s->mqtt && !es_resend_req_encode(&req, &json, &len)) {
		(void)es_mqtt_publish(s->mqtt, j->topic, json, len, 1, false, 0);
		free(json);
	}
	pthread_mutex_lock(&s->lock);
	s->asks--;
	pthread_mutex_unlock(&s->lock);
	free(j);
}

/* The topic of node's requests ("/<site>/<node>"); false when it is not one. */
static bool ask_topic(const struct msrc *s, const char *node, char *buf, size_t cap)
{
	char site[ES_TOPIC_ID_MAX + 1];
	const char *slash = node[0] == '/' ? strchr(node + 1, '/') : NULL;
	if (!slash || (size_t)(slash - node - 1) > ES_TOPIC_ID_MAX || slash == node + 1)
		return false;
	snprintf(site, sizeof site, "%.*s", (int)(slash - node - 1), node + 1);
	return es_topic_build(buf, cap, s->root, site, slash + 1, "cmd", "resend") == ES_OK;
}

static es_err src_ask(es_source *base, const char *node, uint64_t from, uint64_t to)
{
	struct msrc *s = (struct msrc *)base;
	if (!s->root || !node || !from || from > to)
		return ES_EINVAL;
	struct ask_job *j = calloc(1, sizeof *j);
	if (!j)
		return ES_ENOMEM;
	*j = (struct ask_job){.s = s, .from = from, .to = to};
	if (!ask_topic(s, node, j->topic, sizeof j->topic)) {
		free(j);
		return ES_EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	bool room = s->asks < ASK_MAX && !s->stopping;
	s->asks += room;
	pthread_mutex_unlock(&s->lock);
	es_err err = room ? es_loop_post(s->loop, send_ask, j) : ES_EBUSY;
	if (err) {
		if (room) {
			pthread_mutex_lock(&s->lock);
			s->asks--;
			pthread_mutex_unlock(&s->lock);
		}
		free(j);
	}
	return err;
}

static bool src_reply(es_source *base, es_source_reply *out)
{
	struct msrc *s = (struct msrc *)base;
	pthread_mutex_lock(&s->lock);
	bool any = s->rn > 0;
	if (any) {
		*out = s->replies[s->rhead];
		s->rhead = (s->rhead + 1) % REPLY_MAX;
		s->rn--;
	}
	pthread_mutex_unlock(&s->lock);
	return any;
}

static const es_source_ops mqtt_ops = {.name = "mqtt",
				       .next = src_next,
				       .ack = src_ack,
				       .quiesce = src_quiesce,
				       .where = src_where,
				       .ready = src_ready,
				       .ask = src_ask,
				       .reply = src_reply,
				       .free = src_free};

static es_err init_sync(struct msrc *s)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		return ES_ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	return ES_OK;
}

/* The re-send topics and our client id (request ids begin with it). */
static es_err init_asking(struct msrc *s, const es_msource_opts *o)
{
	if (!o->resend_root)
		return ES_OK;
	if (es_topic_check_root(o->resend_root))
		return ES_EINVAL;
	s->root = strdup(o->resend_root);
	s->client_id = strdup(o->mqtt.client_id);
	if (!s->root || !s->client_id)
		return ES_ENOMEM;
	snprintf(s->reply_filter, sizeof s->reply_filter, "%s/+/+/reply/resend", s->root);
	snprintf(s->cmd_filter, sizeof s->cmd_filter, "%s/+/+/cmd/resend", s->root);
	return ES_OK;
}

/* Contract in source.h. */
es_err es_msource_new(const es_msource_opts *o, es_source **out)
{
	if (!o || !out || (o->mqtt.nurls == 0 && !o->mqtt.url) || !o->mqtt.client_id)
		return ES_EINVAL;
	struct msrc *s = calloc(1, sizeof *s);
	if (!s || init_sync(s)) {
		free(s);
		return ES_ENOMEM;
	}
	s->base.ops = &mqtt_ops;
	s->queue_max = o->queue_max ? o->queue_max : 1024;
	es_err err = init_asking(s, o);
	if (!err)
		err = es_loop_new(&s->loop);
	if (!err)
		err = make_client(s, o);
	if (!err && pthread_create(&s->thread, NULL, run, s) != 0)
		err = ES_ESYS;
	s->thread_started = !err;
	if (err) {
		src_free(&s->base);
		return err;
	}
	*out = &s->base;
	return ES_OK;
}
