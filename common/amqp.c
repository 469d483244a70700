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
 * An amqps:// URL goes over rabbitmq-c's TLS socket (OpenSSL): the broker's
 * chain and host name verified against the CA given or the system's, a
 * client certificate when given. OpenSSL itself is named here only to give
 * that socket the system's CAs, which rabbitmq-c does not load.
 *
 * With a resend_root the source also asks nodes to re-send (source.h's
 * ask/reply) through an asker: a second source of this kind (its own
 * connection, an exclusive auto-delete queue bound to the answers' routing
 * key) run by a thread of its own, which publishes the requests posted to
 * it (at most ASK_MAX wait; while it is not connected they are let go: the
 * gap tracker asks again) and keeps the answers to our request ids for the
 * puller in a bounded list (REPLY_MAX; the oldest let go beyond it).
 *
 * Threads: the puller's thread owns everything but the asker; cur,
 * failovers and up are atomics because src_where is called from any thread
 * (the HTTP status). The asker's thread owns its link; its lock guards
 * jobs and replies.
 */
#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <inttypes.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "backoff.h"
#include "clock.h"
#include "control.h"
#include "log.h"
#include "source.h"
#include "topic.h"

#define TAG	       "amqp"
#define CHANNEL	       1
#define RPC_TIMEOUT_MS 10000
#define EXCHANGE       "amq.topic"
#define FRAME_MAX      131072
#define ASK_MAX	       64
#define REPLY_MAX      64
#define ASK_POLL_MS    100

struct asker;

struct amqp_src {
	es_source base;
	es_amqp_opts o;
	char **urls, **binds, *queue, *tag;
	char *user, *password, *ca, *cert, *key; /* copies of the options' */
	char **shown; /* the URLs with their password hidden, for logs and status */
	amqp_connection_state_t conn;
	_Atomic size_t cur; /* index of the URL in use or to try next */
	uint64_t retry_at;  /* mono ms of the next attempt */
	es_backoff backoff;
	bool was_connected; /* a connection was up before: the next is a failover */
	_Atomic uint64_t failovers;
	atomic_bool up; /* connected and consuming */
	bool blocked;
	struct asker *asker; /* NULL: the source does not ask */
};

/* A request waiting for the asker's thread. */
struct ask_job {
	char key[ES_TOPIC_MAX];
	uint64_t from, to;
};

/* The asking side (see the opening comment). */
struct asker {
	struct amqp_src *link; /* the thread's: its connection and queue */
	char *root, *id;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t lock;
	struct ask_job jobs[ASK_MAX];
	size_t jhead, jn;
	es_source_reply replies[REPLY_MAX];
	size_t rhead, rn;
	uint64_t asked; /* the thread's */
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
	if (amqp_parse_url(copy, info) != AMQP_STATUS_OK) {
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
	if (!url || (strncmp(url, "amqp://", 7) != 0 && strncmp(url, "amqps://", 8) != 0))
		return "is not an amqp:// or amqps:// URL (amqp://user@host:port/vhost)";
	char *copy = parse(url, &info);
	free(copy);
	return copy ? NULL : "is not a valid amqp:// URL (amqp://user@host:port/vhost)";
}

bool es_amqp_url_has_password(const char *url)
{
	const char *auth = url ? strstr(url, "://") : NULL;
	if (!auth)
		return false;
	auth += 3;
	size_t n = strcspn(auth, "/?#");
	const char *at = memchr(auth, '@', n);
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	return colon && colon + 1 < at;
}

/* Contract in source.h. */
es_err es_amqp_resend_key(const char *root, const char *node, char *buf, size_t cap)
{
	char site[ES_TOPIC_ID_MAX + 1], topic[ES_TOPIC_MAX];
	const char *slash = node && node[0] == '/' ? strchr(node + 1, '/') : NULL;
	if (!root || !buf || !slash || slash == node + 1 ||
	    (size_t)(slash - node - 1) > ES_TOPIC_ID_MAX || strchr(root, '.') || strchr(node, '.'))
		return ES_EINVAL;
	snprintf(site, sizeof site, "%.*s", (int)(slash - node - 1), node + 1);
	es_err err = es_topic_build(topic, sizeof topic, root, site, slash + 1, "cmd", "resend");
	if (err)
		return err;
	size_t len = strlen(topic);
	if (len >= cap)
		return ES_ETOOBIG;
	for (size_t i = 0; i <= len; i++)
		buf[i] = topic[i] == '/' ? '.' : topic[i];
	return ES_OK;
}

/* Whether key starts with root, each of root's '/' a '.'. */
static bool has_root(const char *key, const char *root)
{
	size_t i = 0;
	for (; root[i]; i++)
		if (key[i] != (root[i] == '/' ? '.' : root[i]))
			return false;
	return i > 0;
}

/* The node of key "<root>.<site>.<node><tail>" into node (NULL: only
 * whether key is one); false when it is not, or does not fit. */
static bool key_node(const char *root, const char *key, const char *tail, char *node, size_t cap)
{
	if (!root || !key || !has_root(key, root) || key[strlen(root)] != '.')
		return false;
	const char *site = key + strlen(root) + 1;
	size_t sl = strcspn(site, ".");
	const char *name = site[sl] ? site + sl + 1 : site + sl;
	size_t nl = strcspn(name, ".");
	if (!sl || !nl || sl > ES_TOPIC_ID_MAX || nl > ES_TOPIC_ID_MAX ||
	    strcmp(name + nl, tail) != 0 || (node && sl + nl + 3 > cap))
		return false;
	if (node)
		snprintf(node, cap, "/%.*s/%.*s", (int)sl, site, (int)nl, name);
	return true;
}

/* Contract in source.h. */
bool es_amqp_reply_node(const char *root, const char *key, char *node, size_t cap)
{
	return node && key_node(root, key, ".reply.resend", node, cap);
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
	amqp_rpc_reply_t r = amqp_login_with_properties(
		s->conn, info->vhost, 0, FRAME_MAX, s->o.heartbeat_s, &t, AMQP_SASL_METHOD_PLAIN,
		s->user ? s->user : info->user, s->password ? s->password : info->password);
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return true;
	char why[256];
	reply_text(r, why, sizeof why);
	es_warn(TAG, "%s: login: %s", s->shown[s->cur], why);
	return false;
}

/* A TLS setting refused by rabbitmq-c (a file that does not load). */
static bool tls_failed(struct amqp_src *s, const char *what, int rc)
{
	es_warn(TAG, "%s: TLS %s: %s", s->shown[s->cur], what, amqp_error_string2(rc));
	return false;
}

/* Verification (chain and host name) on unless told, the CA given or the
 * system's, the client certificate and key when given. */
static bool tls_setup(struct amqp_src *s, amqp_socket_t *sock)
{
	int rc;
	amqp_ssl_socket_set_verify_peer(sock, !s->o.tls_insecure);
	amqp_ssl_socket_set_verify_hostname(sock, !s->o.tls_insecure);
	if (s->ca && (rc = amqp_ssl_socket_set_cacert(sock, s->ca)) != AMQP_STATUS_OK)
		return tls_failed(s, s->ca, rc);
	if (!s->ca && SSL_CTX_set_default_verify_paths(amqp_ssl_socket_get_context(sock)) != 1)
		es_warn(TAG, "%s: the system's CA certificates cannot be loaded", s->shown[s->cur]);
	if (s->cert && (rc = amqp_ssl_socket_set_key(sock, s->cert, s->key)) != AMQP_STATUS_OK)
		return tls_failed(s, s->cert, rc);
	return true;
}

static amqp_socket_t *new_socket(struct amqp_src *s, const struct amqp_connection_info *info)
{
	if (!info->ssl)
		return amqp_tcp_socket_new(s->conn);
	amqp_socket_t *sock = amqp_ssl_socket_new(s->conn);
	return sock && tls_setup(s, sock) ? sock : NULL;
}

static bool open_socket(struct amqp_src *s, const struct amqp_connection_info *info)
{
	struct timeval tv = tv_ms(RPC_TIMEOUT_MS);
	s->conn = amqp_new_connection();
	amqp_socket_t *sock = s->conn ? new_socket(s, info) : NULL;
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

/* The message's content type, when it has one (a batch's, batch.h);
 * *ok false when out of memory. */
static char *content_type(const amqp_basic_properties_t *p, bool *ok)
{
	if (!(p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) || !p->content_type.bytes)
		return NULL;
	char *s = strndup(p->content_type.bytes, p->content_type.len);
	*ok = s != NULL;
	return s;
}

/* The routing key's levels are joined by '.' (RabbitMQ's MQTT plugin maps
 * '/' to '.'); a batch says itself by it, and by its content type. */
static es_err take(amqp_envelope_t *env, es_delivery *out)
{
	bool ok = true;
	es_delivery d = {.tag = env->delivery_tag, .len = env->message.body.len, .sep = '.'};
	d.where =
		strndup(env->routing_key.bytes ? env->routing_key.bytes : "", env->routing_key.len);
	d.body = malloc(d.len + 1);
	d.content_type = content_type(&env->message.properties, &ok);
	if (!d.where || !d.body || !ok) {
		es_delivery_clear(&d);
		return ES_ENOMEM;
	}
	if (d.len)
		memcpy(d.body, env->message.body.bytes, d.len);
	d.body[d.len] = '\0';
	*out = d;
	return ES_OK;
}

static bool resend_traffic(const struct amqp_src *s, const amqp_envelope_t *env);

static es_err src_next(es_source *base, uint64_t wait_ms, es_delivery *out)
{
	struct amqp_src *s = (struct amqp_src *)base;
	if (!s->conn)
		return reconnect(s, wait_ms);
	amqp_envelope_t env;
	struct timeval tv = tv_ms(wait_ms);
	amqp_maybe_release_buffers(s->conn);
	amqp_rpc_reply_t r = amqp_consume_message(s->conn, &env, &tv, 0);
	if (r.reply_type == AMQP_RESPONSE_NORMAL && resend_traffic(s, &env)) {
		int rc = amqp_basic_ack(s->conn, CHANNEL, env.delivery_tag, 0);
		amqp_destroy_envelope(&env);
		return rc == AMQP_STATUS_OK ? ES_ETIMEDOUT : lost(s, amqp_error_string2(rc));
	}
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

/* ---- the asker ---------------------------------------------------------- */

/* Asker's thread: an answer consumed; kept when it is to one of ours. */
static void take_reply(struct asker *k, const es_delivery *d)
{
	es_source_reply r;
	char why[160];
	size_t own = strlen(k->id);
	if (!es_amqp_reply_node(k->root, d->where, r.node, sizeof r.node) ||
	    es_resend_reply_decode(d->body, d->len, &r.r, why, sizeof why) ||
	    strncmp(r.r.request_id, k->id, own) != 0 || r.r.request_id[own] != '-')
		return; /* another asker's, or unreadable */
	pthread_mutex_lock(&k->lock);
	if (k->rn == REPLY_MAX) { /* the oldest goes: its range is asked again */
		k->rhead = (k->rhead + 1) % REPLY_MAX;
		k->rn--;
	}
	k->replies[(k->rhead + k->rn++) % REPLY_MAX] = r;
	pthread_mutex_unlock(&k->lock);
}

/* Puller's thread: a re-send request or answer that a broad binding
 * brought into the events' queue (like the MQTT source, an asking source
 * hands none of them over: they are no events). */
static bool resend_traffic(const struct amqp_src *s, const amqp_envelope_t *env)
{
	char key[ES_TOPIC_MAX];
	size_t n = env->routing_key.len;
	if (!s->asker || !n || n >= sizeof key)
		return false;
	memcpy(key, env->routing_key.bytes, n);
	key[n] = '\0';
	return key_node(s->asker->root, key, ".cmd.resend", NULL, 0) ||
	       key_node(s->asker->root, key, ".reply.resend", NULL, 0);
}

/* Asker's thread: publishes one request on amq.topic; a failed write is a
 * lost connection (the link connects again in its next()). */
static void publish_ask(struct asker *k, const struct ask_job *j)
{
	es_resend_req req = {.from = j->from, .to = j->to};
	char *json;
	size_t len;
	snprintf(req.request_id, sizeof req.request_id, "%s-%" PRIu64, k->id, ++k->asked);
	if (es_resend_req_encode(&req, &json, &len))
		return;
	amqp_basic_properties_t p = {._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
					       AMQP_BASIC_DELIVERY_MODE_FLAG,
				     .content_type = amqp_cstring_bytes("application/json"),
				     .delivery_mode = 1};
	int rc = amqp_basic_publish(k->link->conn, CHANNEL, amqp_cstring_bytes(EXCHANGE),
				    amqp_cstring_bytes(j->key), 0, 0, &p,
				    (amqp_bytes_t){.len = len, .bytes = json});
	free(json);
	if (rc != AMQP_STATUS_OK)
		(void)lost(k->link, amqp_error_string2(rc));
}

/* The oldest request waiting into *out; false when none waits. */
static bool take_job(struct asker *k, struct ask_job *out)
{
	pthread_mutex_lock(&k->lock);
	bool any = k->jn > 0;
	if (any) {
		*out = k->jobs[k->jhead];
		k->jhead = (k->jhead + 1) % ASK_MAX;
		k->jn--;
	}
	pthread_mutex_unlock(&k->lock);
	return any;
}

/* The asker's thread: answers taken as they come, requests published
 * between them (let go while not connected: the gap tracker asks again). */
static void *ask_run(void *arg)
{
	struct asker *k = arg;
	struct ask_job j;
	while (!atomic_load(&k->stop)) {
		es_delivery d = {0};
		if (src_next(&k->link->base, ASK_POLL_MS, &d) == ES_OK) {
			take_reply(k, &d);
			(void)src_ack(&k->link->base, d.tag);
			es_delivery_clear(&d);
		}
		while (take_job(k, &j))
			if (atomic_load(&k->link->up))
				publish_ask(k, &j);
	}
	return NULL;
}

static es_err src_ask(es_source *base, const char *node, uint64_t from, uint64_t to)
{
	struct asker *k = ((struct amqp_src *)base)->asker;
	struct ask_job j = {.from = from, .to = to};
	if (!k || !from || from > to || es_amqp_resend_key(k->root, node, j.key, sizeof j.key))
		return ES_EINVAL;
	pthread_mutex_lock(&k->lock);
	bool room = k->jn < ASK_MAX && !atomic_load(&k->stop);
	if (room)
		k->jobs[(k->jhead + k->jn++) % ASK_MAX] = j;
	pthread_mutex_unlock(&k->lock);
	return room ? ES_OK : ES_EBUSY;
}

static bool src_reply(es_source *base, es_source_reply *out)
{
	struct asker *k = ((struct amqp_src *)base)->asker;
	if (!k)
		return false;
	pthread_mutex_lock(&k->lock);
	bool any = k->rn > 0;
	if (any) {
		*out = k->replies[k->rhead];
		k->rhead = (k->rhead + 1) % REPLY_MAX;
		k->rn--;
	}
	pthread_mutex_unlock(&k->lock);
	return any;
}

static void src_free(es_source *base);

static void asker_free(struct asker *k)
{
	if (!k)
		return;
	if (k->started) {
		atomic_store(&k->stop, true);
		pthread_join(k->thread, NULL);
		pthread_mutex_destroy(&k->lock);
	}
	if (k->link)
		src_free(&k->link->base);
	free(k->root);
	free(k->id);
	free(k);
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
	asker_free(s->asker);
	free_list(s->urls, s->o.nurls);
	free_list(s->binds, s->o.nbinds);
	free_list(s->shown, s->o.nurls);
	free(s->queue);
	free(s->tag);
	free(s->user);
	free(s->password);
	free(s->ca);
	free(s->cert);
	free(s->key);
	free(s);
}

static const es_source_ops amqp_ops = {.name = "amqp",
				       .next = src_next,
				       .ack = src_ack,
				       .where = src_where,
				       .ready = src_ready,
				       .ask = src_ask,
				       .reply = src_reply,
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

/* Checks the URLs (logged), and warns of a password in one. */
static es_err check_urls(const es_amqp_opts *o)
{
	for (size_t i = 0; i < o->nurls; i++) {
		const char *why = es_amqp_check_url(o->urls[i]);
		char *shown = why ? NULL : hide_password(o->urls[i]);
		if (why)
			es_error(TAG, "'%s' %s", o->urls[i], why);
		else if (es_amqp_url_has_password(o->urls[i]))
			es_warn(TAG,
				"%s: the URL holds a password, which shows wherever the URL does; "
				"give it from a file instead (fleet-state: source.password_file)",
				shown ? shown : "a URL");
		free(shown);
		if (why)
			return ES_EINVAL;
	}
	if (!o->cert_file != !o->key_file) {
		es_error(TAG, "a client certificate and its key go together");
		return ES_EINVAL;
	}
	return ES_OK;
}

/* strdup of an optional string: false only when out of memory. */
static bool dup_opt(const char *v, char **out)
{
	*out = v ? strdup(v) : NULL;
	return !v || *out;
}

static bool dup_tls(struct amqp_src *s, const es_amqp_opts *o)
{
	return dup_opt(o->username, &s->user) && dup_opt(o->password, &s->password) &&
	       dup_opt(o->ca_file, &s->ca) && dup_opt(o->cert_file, &s->cert) &&
	       dup_opt(o->key_file, &s->key);
}

/* A source from checked options, not yet connected, not asking. */
static es_err src_make(const es_amqp_opts *o, struct amqp_src **out)
{
	static const char *const all[] = {"#"};
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
	    (o->consumer_tag && !s->tag) || !dup_tls(s, o)) {
		src_free(&s->base);
		return ES_ENOMEM;
	}
	*out = s;
	return ES_OK;
}

/* The asker's link: the same URLs and credentials, an exclusive queue of
 * its own bound to the answers' routing key, consumed under "<id>-resend". */
static es_err link_new(const es_amqp_opts *o, struct asker *k)
{
	char bind[ES_TOPIC_MAX], tag[ES_REQUEST_ID_MAX + 8];
	const char *binds[] = {bind};
	size_t n = strlen(k->root);
	if (n + sizeof ".*.*.reply.resend" > sizeof bind)
		return ES_EINVAL;
	for (size_t i = 0; i < n; i++)
		bind[i] = k->root[i] == '/' ? '.' : k->root[i];
	memcpy(bind + n, ".*.*.reply.resend", sizeof ".*.*.reply.resend");
	snprintf(tag, sizeof tag, "%s-resend", k->id);
	es_amqp_opts lo = *o;
	lo.queue = NULL;
	lo.binds = binds;
	lo.nbinds = 1;
	lo.bind_none = false;
	lo.consumer_tag = tag;
	lo.prefetch = REPLY_MAX;
	lo.resend_root = NULL;
	return src_make(&lo, &k->link);
}

/* The asking side, its thread started. ES_EINVAL (logged) for a bad root. */
static es_err asker_new(const es_amqp_opts *o, struct asker **out)
{
	const char *id = o->asker_id	   ? o->asker_id
			 : o->consumer_tag ? o->consumer_tag
					   : "edgespool";
	if (es_topic_check_root(o->resend_root) || strchr(o->resend_root, '.')) {
		es_error(TAG, "re-send root '%s' is not a topic root without dots", o->resend_root);
		return ES_EINVAL;
	}
	struct asker *k = calloc(1, sizeof *k);
	if (!k)
		return ES_ENOMEM;
	k->root = strdup(o->resend_root);
	k->id = strndup(id, 40); /* room for "-<n>" in a request id */
	es_err err = k->root && k->id ? link_new(o, k) : ES_ENOMEM;
	if (!err && pthread_mutex_init(&k->lock, NULL) != 0)
		err = ES_ENOMEM;
	if (!err && pthread_create(&k->thread, NULL, ask_run, k) != 0) {
		pthread_mutex_destroy(&k->lock);
		err = ES_ENOMEM;
	}
	k->started = !err;
	if (err) {
		asker_free(k);
		return err;
	}
	*out = k;
	return ES_OK;
}

es_err es_amqp_source_new(const es_amqp_opts *o, es_source **out)
{
	struct amqp_src *s;
	if (!o || !out || o->nurls == 0)
		return ES_EINVAL;
	if (check_urls(o))
		return ES_EINVAL;
	es_err err = src_make(o, &s);
	if (!err && o->resend_root && (err = asker_new(o, &s->asker)))
		src_free(&s->base);
	if (!err)
		*out = &s->base;
	return err;
}
