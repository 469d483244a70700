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
 * When several URLs are given, each lost connection or failed attempt moves
 * to the next one (a new client with the same id).
 *
 * Lock `lock` guards the queue (head, tail, n) and `connected`, `url_i`,
 * `failovers`; the loop thread owns `mqtt`.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "source.h"

#define TAG "msource"

struct item {
	es_delivery d;
	struct item *next;
};

struct msrc {
	es_source base;
	es_msource_opts o;
	char **urls, **topics, *client_id, *username, *password;
	es_loop *loop;
	es_mqtt *mqtt;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* an item arrived, or room was made */
	struct item *head, *tail;
	size_t n;
	bool connected, stopping, was_connected;
	bool draining, quiet; /* quiesce asked; the client is gone */
	size_t url_i;
	uint64_t failovers;
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

/* Loop thread: queue a copy; waits while the queue is full (paho holds
 * further messages meanwhile: back-pressure, nothing dropped). */
static void on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
	struct msrc *s = ctx;
	struct item *it = calloc(1, sizeof *it);
	if (it) {
		it->d.where = strdup(topic);
		it->d.body = malloc(len + 1);
		it->d.len = len;
	}
	if (!it || !it->d.where || !it->d.body) {
		es_error(TAG, "out of memory: a message on %s dropped", topic);
		if (it)
			es_delivery_clear(&it->d);
		free(it);
		return;
	}
	memcpy(it->d.body, payload, len);
	it->d.body[len] = '\0';
	pthread_mutex_lock(&s->lock);
	while (s->n >= s->o.queue_max && !s->stopping && !s->draining)
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
	pthread_mutex_lock(&s->lock);
	s->connected = true;
	if (s->was_connected && s->o.nurls > 1)
		s->failovers++;
	s->was_connected = true;
	pthread_mutex_unlock(&s->lock);
	es_info(TAG, "%s: connected (session %s)", s->urls[s->url_i],
		session_present ? "resumed" : "new");
}

static es_err make_client(struct msrc *s);

/* Loop thread, posted: replaces the client with one for the next URL. */
static void next_url(void *arg)
{
	struct msrc *s = arg;
	pthread_mutex_lock(&s->lock);
	bool done = s->stopping || s->draining;
	pthread_mutex_unlock(&s->lock);
	if (done)
		return;
	es_mqtt_free(s->mqtt);
	s->mqtt = NULL;
	pthread_mutex_lock(&s->lock);
	s->url_i = (s->url_i + 1) % s->o.nurls;
	pthread_mutex_unlock(&s->lock);
	if (make_client(s))
		es_error(TAG, "cannot make a client for %s", s->urls[s->url_i]);
}

static void set_quiet(struct msrc *s);

static void on_disconnected(void *ctx, const char *cause, uint64_t retry_ms)
{
	struct msrc *s = ctx;
	pthread_mutex_lock(&s->lock);
	s->connected = false;
	bool draining = s->draining;
	pthread_mutex_unlock(&s->lock);
	if (draining && retry_ms == 0) {
		set_quiet(s);
	} else if (retry_ms && s->o.nurls > 1) {
		es_warn(TAG, "%s: %s; trying the next broker", s->urls[s->url_i], cause);
		es_loop_post(s->loop, next_url, s);
	}
}

static void on_published(void *ctx, uint64_t tag, es_err err)
{
	(void)ctx;
	(void)tag;
	(void)err;
}

static es_err make_client(struct msrc *s)
{
	es_mqtt_opts mo = {
		.url = s->urls[s->url_i],
		.client_id = s->client_id,
		.version = 4,
		.username = s->username,
		.password = s->password,
		.tls_verify = true,
		.clean = s->o.clean,
		.backoff_base_ms = s->o.backoff_base_ms,
		.backoff_max_ms = s->o.backoff_max_ms,
		.cbs = {on_connected, on_disconnected, on_published, on_message},
		.ctx = s,
	};
	es_err err = es_mqtt_new(s->loop, &mo, &s->mqtt);
	for (size_t i = 0; !err && i < s->o.ntopics; i++)
		err = es_mqtt_subscribe(s->mqtt, s->topics[i], 1);
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
	snprintf(url, cap, "%s", s->connected ? s->urls[s->url_i] : "");
	*failovers = s->failovers;
	pthread_mutex_unlock(&s->lock);
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
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
	free_list(s->urls, s->o.nurls);
	free_list(s->topics, s->o.ntopics);
	free(s->client_id);
	free(s->username);
	free(s->password);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const es_source_ops mqtt_ops = {.name = "mqtt",
				       .next = src_next,
				       .ack = src_ack,
				       .quiesce = src_quiesce,
				       .where = src_where,
				       .free = src_free};

static char **dup_list(const char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof *out);
	for (size_t i = 0; out && i < n; i++)
		if (!(out[i] = strdup(v[i]))) {
			free_list(out, i);
			return NULL;
		}
	return out;
}

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

static char *maybe_dup(const char *v, bool *fail)
{
	char *d = v ? strdup(v) : NULL;
	if (v && !d)
		*fail = true;
	return d;
}

es_err es_msource_new(const es_msource_opts *o, es_source **out)
{
	static const char *const all[] = {"edgespool/#"};
	if (!o || !out || o->nurls == 0 || !o->client_id)
		return ES_EINVAL;
	struct msrc *s = calloc(1, sizeof *s);
	if (!s || init_sync(s)) {
		free(s);
		return ES_ENOMEM;
	}
	bool fail = false;
	s->base.ops = &mqtt_ops;
	s->o = *o;
	s->o.ntopics = o->ntopics ? o->ntopics : 1;
	s->o.queue_max = o->queue_max ? o->queue_max : 1024;
	s->urls = dup_list(o->urls, o->nurls);
	s->topics = dup_list(o->ntopics ? o->topics : all, s->o.ntopics);
	s->client_id = maybe_dup(o->client_id, &fail);
	s->username = maybe_dup(o->username, &fail);
	s->password = maybe_dup(o->password, &fail);
	es_err err = fail || !s->urls || !s->topics ? ES_ENOMEM : es_loop_new(&s->loop);
	if (!err)
		err = make_client(s);
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
