/* amqp.c - the AMQP 0-9-1 source: the only file that includes rabbitmq-c.
 *
 * One connection, channel 1, to one of the configured URLs (a cluster's
 * nodes): prefetch through basic.qos, the queue declared durable as a
 * quorum queue (or exclusive, auto-delete and server-named when none is
 * given), bound to amq.topic with each routing-key pattern, consumed with
 * manual acks. When the connection is lost (or the broker cancels the
 * consumer, or closes the channel), the next URL is tried, with
 * exponential backoff and full jitter while none answers. Heartbeats are
 * negotiated at login and sent by rabbitmq-c whenever it waits for frames.
 *
 * Threads: the puller's thread owns everything; cur, failovers and up are
 * atomics because src_where is called from any thread (the HTTP status).
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "source.h"

#define TAG	       "amqp"
#define CHANNEL	       1
#define RPC_TIMEOUT_MS 10000
#define EXCHANGE       "amq.topic"
#define FRAME_MAX      131072

struct amqp_src {
	es_source base;
	es_amqp_opts o;
	char **urls, **binds, *queue, *tag;
	char **shown; /* the URLs with their password hidden, for logs and status */
	amqp_connection_state_t conn;
	_Atomic size_t cur; /* index of the URL in use or to try next */
	uint64_t retry_at;  /* mono ms of the next attempt */
	es_backoff backoff;
	bool was_connected; /* a connection was up before: the next is a failover */
	_Atomic uint64_t failovers;
	atomic_bool up; /* connected and consuming */
	bool blocked;
};

static struct timeval tv_ms(uint64_t ms)
{
	return (struct timeval){.tv_sec = (time_t)(ms / 1000),
				.tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* Parses url into a malloc'd copy that info points into. */
static char *parse(const char *url, struct amqp_connection_info *info)
{
	char *copy = strdup(url);
	if (!copy)
		return NULL;
	amqp_default_connection_info(info);
	if (amqp_parse_url(copy, info) != AMQP_STATUS_OK || info->ssl) {
		free(copy);
		return NULL;
	}
	if (!info->vhost || !*info->vhost)
		info->vhost = "/";
	return copy;
}

const char *es_amqp_check_url(const char *url)
{
	struct amqp_connection_info info;
	if (!url || strncmp(url, "amqp://", 7) != 0)
		return "is not an amqp:// URL (amqp://user:pass@host:port/vhost)";
	char *copy = parse(url, &info);
	free(copy);
	return copy ? NULL : "is not a valid amqp:// URL (amqp://user:pass@host:port/vhost)";
}

/* A reply that is not normal, said in words, for the log. */
static void reply_text(amqp_rpc_reply_t r, char *buf, size_t cap)
{
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		snprintf(buf, cap, "%s", amqp_error_string2(r.library_error));
	} else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
		   r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		amqp_connection_close_t *m = r.reply.decoded;
		snprintf(buf, cap, "connection closed by the server: %d %.*s", m->reply_code,
			 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
	} else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
		   r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_t *m = r.reply.decoded;
		snprintf(buf, cap, "channel closed by the server: %d %.*s", m->reply_code,
			 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
	} else {
		snprintf(buf, cap, "unexpected reply (type %d)", (int)r.reply_type);
	}
}

static bool rpc_ok(struct amqp_src *s, const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(s->conn);
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return true;
	char why[256];
	reply_text(r, why, sizeof why);
	es_warn(TAG, "%s: %s: %s", s->shown[s->cur], what, why);
	return false;
}

static void disconnect(struct amqp_src *s)
{
	atomic_store(&s->up, false);
	if (!s->conn)
		return;
	amqp_destroy_connection(s->conn);
	s->conn = NULL;
}

/* Login with client properties saying we understand connection.blocked
 * and consumer cancel notifications. */
static bool login(struct amqp_src *s, const struct amqp_connection_info *info)
{
	amqp_table_entry_t caps[2] = {
		{.key = amqp_cstring_bytes("connection.blocked"),
		 .value = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
		{.key = amqp_cstring_bytes("consumer_cancel_notify"),
		 .value = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}},
	};
	amqp_table_entry_t props[2] = {
		{.key = amqp_cstring_bytes("capabilities"),
		 .value = {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {2, caps}}},
		{.key = amqp_cstring_bytes("connection_name"),
		 .value = {.kind = AMQP_FIELD_KIND_UTF8,
			   .value.bytes = amqp_cstring_bytes(s->tag ? s->tag : "edgespool")}},
	};
	amqp_table_t t = {2, props};
	amqp_rpc_reply_t r =
		amqp_login_with_properties(s->conn, info->vhost, 0, FRAME_MAX, s->o.heartbeat_s, &t,
					   AMQP_SASL_METHOD_PLAIN, info->user, info->password);
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return true;
	char why[256];
	reply_text(r, why, sizeof why);
	es_warn(TAG, "%s: login: %s", s->shown[s->cur], why);
	return false;
}

static bool open_socket(struct amqp_src *s, const struct amqp_connection_info *info)
{
	struct timeval tv = tv_ms(RPC_TIMEOUT_MS);
	s->conn = amqp_new_connection();
	amqp_socket_t *sock = s->conn ? amqp_tcp_socket_new(s->conn) : NULL;
	if (!sock)
		return false;
	amqp_set_handshake_timeout(s->conn, &tv);
	amqp_set_rpc_timeout(s->conn, &tv);
	int rc = amqp_socket_open_noblock(sock, info->host, info->port, &tv);
	if (rc != AMQP_STATUS_OK) {
		es_warn(TAG, "%s: connect: %s", s->shown[s->cur], amqp_error_string2(rc));
		return false;
	}
	return login(s, info);
}

/* x-queue-type: quorum for a named queue (durable, replicated on a
 * cluster); an exclusive auto-delete server-named queue otherwise. */
static bool declare(struct amqp_src *s, amqp_bytes_t *name)
{
	amqp_table_entry_t arg = {.key = amqp_cstring_bytes("x-queue-type"),
				  .value = {.kind = AMQP_FIELD_KIND_UTF8,
					    .value.bytes = amqp_cstring_bytes("quorum")}};
	amqp_table_t quorum = {1, &arg};
	bool named = s->queue && *s->queue;
	amqp_queue_declare_ok_t *ok = amqp_queue_declare(
		s->conn, CHANNEL, named ? amqp_cstring_bytes(s->queue) : amqp_empty_bytes, 0, named,
		!named, !named, named ? quorum : amqp_empty_table);
	if (!ok || !rpc_ok(s, "queue.declare"))
		return false;
	*name = amqp_bytes_malloc_dup(ok->queue);
	return name->bytes != NULL;
}

static bool bind_and_consume(struct amqp_src *s, amqp_bytes_t q)
{
	for (size_t i = 0; i < s->o.nbinds; i++) {
		amqp_queue_bind(s->conn, CHANNEL, q, amqp_cstring_bytes(EXCHANGE),
				amqp_cstring_bytes(s->binds[i]), amqp_empty_table);
		if (!rpc_ok(s, "queue.bind"))
			return false;
	}
	amqp_basic_consume(s->conn, CHANNEL, q,
			   s->tag ? amqp_cstring_bytes(s->tag) : amqp_empty_bytes, 0, 0, 0,
			   amqp_empty_table);
	return rpc_ok(s, "basic.consume");
}

static bool setup(struct amqp_src *s)
{
	amqp_bytes_t q = amqp_empty_bytes;
	amqp_channel_open(s->conn, CHANNEL);
	if (!rpc_ok(s, "channel.open"))
		return false;
	amqp_basic_qos(s->conn, CHANNEL, 0, s->o.prefetch, 0);
	if (!rpc_ok(s, "basic.qos") || !declare(s, &q))
		return false;
	bool ok = bind_and_consume(s, q);
	if (ok)
		es_info(TAG, "%s: consuming from queue '%.*s' (prefetch %u)", s->shown[s->cur],
			(int)q.len, (const char *)q.bytes, s->o.prefetch);
	amqp_bytes_free(q);
	return ok;
}

static bool try_connect(struct amqp_src *s)
{
	struct amqp_connection_info info;
	char *copy = parse(s->urls[s->cur], &info);
	bool ok = copy && open_socket(s, &info) && setup(s);
	free(copy);
	if (!ok) {
		disconnect(s);
		return false;
	}
	if (s->was_connected)
		s->failovers++;
	s->was_connected = true;
	s->blocked = false;
	atomic_store(&s->up, true);
	es_backoff_reset(&s->backoff);
	return true;
}

static void pause_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* Not connected: waits for the next attempt (at most wait_ms), then tries
 * the current URL; a failure moves on to the next URL with backoff. */
static es_err reconnect(struct amqp_src *s, uint64_t wait_ms)
{
	uint64_t now = es_clock_mono_ms();
	if (now < s->retry_at) {
		pause_ms(s->retry_at - now < wait_ms ? s->retry_at - now : wait_ms);
		return ES_ETIMEDOUT;
	}
	if (try_connect(s))
		return ES_ETIMEDOUT;
	s->cur = (s->cur + 1) % s->o.nurls;
	s->retry_at = es_clock_mono_ms() + es_backoff_next(&s->backoff);
	return ES_ETIMEDOUT;
}

/* The connection is gone: forget it, and try the next URL soon. */
static es_err lost(struct amqp_src *s, const char *why)
{
	es_warn(TAG, "%s: connection lost: %s; trying the next node", s->shown[s->cur], why);
	disconnect(s);
	s->cur = (s->cur + 1) % s->o.nurls;
	s->retry_at = es_clock_mono_ms() + es_backoff_next(&s->backoff);
	return ES_ENOTCONN;
}

/* A frame other than a delivery: flow control, a cancel, a close. */
static es_err other_frame(struct amqp_src *s)
{
	amqp_frame_t f;
	struct timeval zero = {0, 0};
	int rc = amqp_simple_wait_frame_noblock(s->conn, &f, &zero);
	if (rc == AMQP_STATUS_TIMEOUT)
		return ES_ETIMEDOUT;
	if (rc != AMQP_STATUS_OK)
		return lost(s, amqp_error_string2(rc));
	if (f.frame_type != AMQP_FRAME_METHOD)
		return ES_ETIMEDOUT;
	switch (f.payload.method.id) {
	case AMQP_CONNECTION_BLOCKED_METHOD:
		es_warn(TAG, "%s: the broker blocked this connection (a resource alarm)",
			s->shown[s->cur]);
		s->blocked = true;
		return ES_ETIMEDOUT;
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		es_info(TAG, "%s: the broker unblocked this connection", s->shown[s->cur]);
		s->blocked = false;
		return ES_ETIMEDOUT;
	case AMQP_BASIC_CANCEL_METHOD:
		return lost(s, "the broker cancelled the consumer (queue deleted or moved)");
	case AMQP_CHANNEL_CLOSE_METHOD:
		return lost(s, "the broker closed the channel");
	case AMQP_CONNECTION_CLOSE_METHOD:
		return lost(s, "the broker closed the connection");
	default:
		return ES_ETIMEDOUT;
	}
}

static es_err take(amqp_envelope_t *env, es_delivery *out)
{
	es_delivery d = {.tag = env->delivery_tag, .len = env->message.body.len};
	d.where =
		strndup(env->routing_key.bytes ? env->routing_key.bytes : "", env->routing_key.len);
	d.body = malloc(d.len + 1);
	if (!d.where || !d.body) {
		es_delivery_clear(&d);
		return ES_ENOMEM;
	}
	if (d.len)
		memcpy(d.body, env->message.body.bytes, d.len);
	d.body[d.len] = '\0';
	*out = d;
	return ES_OK;
}

static es_err src_next(es_source *base, uint64_t wait_ms, es_delivery *out)
{
	struct amqp_src *s = (struct amqp_src *)base;
	if (!s->conn)
		return reconnect(s, wait_ms);
	amqp_envelope_t env;
	struct timeval tv = tv_ms(wait_ms);
	amqp_maybe_release_buffers(s->conn);
	amqp_rpc_reply_t r = amqp_consume_message(s->conn, &env, &tv, 0);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		es_err err = take(&env, out);
		amqp_destroy_envelope(&env);
		return err;
	}
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    r.library_error == AMQP_STATUS_TIMEOUT)
		return ES_ETIMEDOUT;
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    r.library_error == AMQP_STATUS_UNEXPECTED_STATE)
		return other_frame(s);
	char why[256];
	reply_text(r, why, sizeof why);
	return lost(s, why);
}

static es_err src_ack(es_source *base, uint64_t tag)
{
	struct amqp_src *s = (struct amqp_src *)base;
	if (!s->conn)
		return ES_ENOTCONN;
	int rc = amqp_basic_ack(s->conn, CHANNEL, tag, 1);
	if (rc != AMQP_STATUS_OK) {
		lost(s, amqp_error_string2(rc));
		return ES_ENOTCONN;
	}
	return ES_OK;
}

static void src_where(es_source *base, char *url, size_t cap, uint64_t *failovers)
{
	struct amqp_src *s = (struct amqp_src *)base;
	snprintf(url, cap, "%s", atomic_load(&s->up) ? s->shown[atomic_load(&s->cur)] : "");
	*failovers = s->failovers;
}

/* Consuming: connected, the queue declared and bound, basic.consume-ok. */
static bool src_ready(es_source *base)
{
	return atomic_load(&((struct amqp_src *)base)->up);
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void src_free(es_source *base)
{
	struct amqp_src *s = (struct amqp_src *)base;
	if (s->conn) {
		amqp_channel_close(s->conn, CHANNEL, AMQP_REPLY_SUCCESS);
		amqp_connection_close(s->conn, AMQP_REPLY_SUCCESS);
	}
	disconnect(s);
	free_list(s->urls, s->o.nurls);
	free_list(s->binds, s->o.nbinds);
	free_list(s->shown, s->o.nurls);
	free(s->queue);
	free(s->tag);
	free(s);
}

static const es_source_ops amqp_ops = {.name = "amqp",
				       .next = src_next,
				       .ack = src_ack,
				       .where = src_where,
				       .ready = src_ready,
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

/* "amqp://user:secret@host" -> "amqp://user:***@host". */
static char *hide_password(const char *url)
{
	const char *at = strchr(url, '@');
	const char *colon = strchr(url + 7, ':');
	char *out = malloc(strlen(url) + 4);
	if (!out)
		return NULL;
	if (!at || !colon || colon > at) {
		strcpy(out, url);
		return out;
	}
	snprintf(out, strlen(url) + 4, "%.*s:***%s", (int)(colon - url), url, at);
	return out;
}

static char **hidden_list(const char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof *out);
	for (size_t i = 0; out && i < n; i++)
		if (!(out[i] = hide_password(v[i]))) {
			free_list(out, i);
			return NULL;
		}
	return out;
}

es_err es_amqp_source_new(const es_amqp_opts *o, es_source **out)
{
	static const char *const all[] = {"#"};
	if (!o || !out || o->nurls == 0)
		return ES_EINVAL;
	for (size_t i = 0; i < o->nurls; i++)
		if (es_amqp_check_url(o->urls[i])) {
			es_error(TAG, "'%s' %s", o->urls[i], es_amqp_check_url(o->urls[i]));
			return ES_EINVAL;
		}
	struct amqp_src *s = calloc(1, sizeof *s);
	if (!s)
		return ES_ENOMEM;
	s->base.ops = &amqp_ops;
	s->o = *o;
	s->o.nbinds = o->nbinds || o->bind_none ? o->nbinds : 1;
	s->o.prefetch = o->prefetch ? o->prefetch : 256;
	s->o.heartbeat_s = o->heartbeat_s ? o->heartbeat_s : 30;
	s->urls = dup_list(o->urls, o->nurls);
	s->binds = dup_list(o->nbinds ? o->binds : all, s->o.nbinds);
	s->shown = hidden_list(o->urls, o->nurls);
	s->queue = o->queue ? strdup(o->queue) : NULL;
	s->tag = o->consumer_tag ? strdup(o->consumer_tag) : NULL;
	es_backoff_init(&s->backoff, o->backoff_base_ms ? o->backoff_base_ms : 250,
			o->backoff_max_ms ? o->backoff_max_ms : 30000);
	if (!s->urls || !s->binds || !s->shown || (o->queue && !s->queue) ||
	    (o->consumer_tag && !s->tag)) {
		src_free(&s->base);
		return ES_ENOMEM;
	}
	*out = &s->base;
	return ES_OK;
}
