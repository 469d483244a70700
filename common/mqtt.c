/* mqtt.c - the paho MQTTAsync adapter.
 *
 * Threads: the loop thread owns everything but the inbox. paho's threads
 * only append to the inbox (under `lock`) and wake the loop through `async`.
 * A paho client is created for each connection attempt; each gets a `conn`
 * (its generation) as callback context, freed only after MQTTAsync_destroy,
 * which guarantees no later callback. Publish callbacks get a `slot`: the
 * slots array is made once, so slot addresses are stable. Subscribe
 * callbacks get their `sub`, each allocated once for the same reason; a
 * SUBACK counts for the connection (generation) it was sent on.
 *
 * Lock `lock` guards: inbox, ninbox, capinbox.
 *
 * A message over max_message is not copied: paho's copy is freed at once.
 * paho reads each message whole into a buffer it keeps (at its largest) for
 * the life of the process, and copies it once more for the callback. With
 * glibc, freeing a large mapped block raises the mmap threshold to its
 * size, so the next copy of that size comes from a thread's arena and its
 * pages stay with the process (measured: 30 MB messages left two 30 MB
 * regions; malloc_trim did not give them back). So the first client fixes
 * the threshold at MMAP_THRESHOLD: large blocks are always mapped, and
 * unmapped when freed. What stays is paho's one buffer: RSS grows at most
 * once by the largest message the broker lets through.
 */
#include "mqtt.h"

#include <MQTTAsync.h>
#include <openssl/crypto.h>
#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
#include "grow.h"
#include "log.h"
#include "rotation.h"
#include "topic.h"

#define TAG "mqtt"
/* glibc: blocks this large are mapped on their own, whatever came before. */
#define MMAP_THRESHOLD (1 << 20)

enum state { S_IDLE, S_CONNECTING, S_UP, S_WAITING, S_STOPPING, S_STOPPED };

enum kind {
	K_ACK,
	K_NACK,
	K_CONNECTED,
	K_CONNECT_FAILED,
	K_LOST,
	K_MESSAGE,
	K_STOPPED,
	K_SUBACK,
	K_SUBFAIL
};

struct entry {
	enum kind kind;
	uint32_t gen;
	uint32_t slot; /* K_ACK, K_NACK; the subscription's index for K_SUB* */
	uint64_t tag;  /* K_ACK, K_NACK: the slot's tag when it completed */
	int code;      /* paho or reason code */
	bool flag;     /* K_CONNECTED: session present; K_MESSAGE: oversized; K_NACK: refused */
	char *text;    /* cause, or topic of K_MESSAGE */
	void *payload;
	size_t len;
	es_mqtt_props *props; /* K_MESSAGE under MQTT 5: its properties (one block), or NULL */
};

struct conn {
	es_mqtt *m;
	uint32_t gen;
};

struct slot {
	es_mqtt *m;
	uint32_t index;
	uint32_t gen; /* client generation it was used in */
	uint64_t tag;
	bool used;
};

/* A subscription: made once, at a stable address (paho's callbacks get
 * it as context); `gen` is the client generation it was last sent in. */
struct sub {
	es_mqtt *m;
	uint32_t index;
	uint32_t gen;
	char *filter;
	int qos;
	bool granted; /* acknowledged on the current connection */
};

struct es_mqtt {
	es_loop *loop;
	es_mqtt_opts o;
	char **urls, **uris; /* as configured; paho form (tcp:// or ssl://) */
	size_t nurls;
	es_rotation rot; /* which of them */
	MQTTAsync client;
	MQTTAsync keeper; /* never connected: keeps paho's threads up (keep_threads) */
	struct conn *conn;
	uint32_t gen;
	enum state state;
	es_backoff backoff;
	es_timer_id retry_timer;
	es_async *async;

	struct slot *slots;
	uint32_t *free_slots;
	size_t nfree, window;

	struct sub **subs;
	size_t nsubs, ngranted; /* ngranted: on the current connection */

	pthread_mutex_t lock;
	struct entry *inbox;
	size_t ninbox, capinbox;
	struct entry *spare; /* loop thread only */
	size_t capspare;

	es_mqtt_stats stats;
};

static void connect_now(void *arg);

/* The paho URI in use or being tried. */
static const char *cur_uri(const es_mqtt *m)
{
	return m->uris[es_rotation_current(&m->rot)];
}

static void show_url(es_mqtt *m)
{
	size_t i = es_rotation_current(&m->rot);
	snprintf(m->stats.url, sizeof m->stats.url, "%s", m->urls[i]);
	m->stats.node = i;
	m->stats.failovers = m->rot.failovers;
}

/* ---- URLs and options ---------------------------------------------------- */

#define URL_HOST_MAX 1024 /* host[:port] in an mqtt[s]:// URL */

const char *es_mqtt_check_url(const char *url)
{
	if (!url || !*url)
		return "is empty";
	const char *rest;
	if (strncmp(url, "mqtt://", 7) == 0)
		rest = url + 7;
	else if (strncmp(url, "mqtts://", 8) == 0)
		rest = url + 8;
	else
		return "must start with mqtt:// or mqtts://";
	if (!*rest || *rest == ':' || *rest == '/')
		return "has no host";
	if (strnlen(rest, URL_HOST_MAX + 1) > URL_HOST_MAX)
		return "has a host:port longer than 1024 characters";
	const char *colon = strrchr(rest, ':');
	if (strchr(rest, '/') || strchr(rest, '@'))
		return "must be mqtt[s]://host[:port], without path or user";
	if (colon) {
		char *end;
		long port = strtol(colon + 1, &end, 10);
		if (*end || port < 1 || port > 65535)
			return "has an invalid port";
	}
	return NULL;
}

/* "mqtt://h:p" -> "tcp://h:p", "mqtts://h" -> "ssl://h:8883". */
static char *paho_uri(const char *url)
{
	bool tls = strncmp(url, "mqtts://", 8) == 0;
	const char *host = url + (tls ? 8 : 7);
	/* es_mqtt_check_url() bounds it; the bound also tells the compiler. */
	size_t cap = strnlen(host, URL_HOST_MAX) + 16;
	char *uri = malloc(cap);
	if (!uri)
		return NULL;
	if (strchr(host, ':'))
		snprintf(uri, cap, "%s://%s", tls ? "ssl" : "tcp", host);
	else
		snprintf(uri, cap, "%s://%s:%d", tls ? "ssl" : "tcp", host, tls ? 8883 : 1883);
	return uri;
}

static void free_opts(es_mqtt_opts *o)
{
	free((char *)o->url);
	free((char *)o->client_id);
	free((char *)o->username);
	free((char *)o->password);
	free((char *)o->ca_file);
	free((char *)o->cert_file);
	free((char *)o->key_file);
	free((char *)o->will_topic);
	free((char *)o->will_payload);
}

static bool dup_str(const char **s)
{
	if (!*s)
		return true;
	*s = strdup(*s);
	return *s != NULL;
}

static es_err copy_opts(es_mqtt_opts *dst, const es_mqtt_opts *src)
{
	*dst = *src;
	dst->urls = NULL; /* copied by make_urls */
	dst->nurls = 0;
	const char **strs[] = {&dst->url,      &dst->client_id,	 &dst->username,
			       &dst->password, &dst->ca_file,	 &dst->cert_file,
			       &dst->key_file, &dst->will_topic, &dst->will_payload};
	bool ok = true;
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
		if (ok)
			ok = dup_str(strs[i]);
		else
			*strs[i] = NULL;
	if (!ok) {
		free_opts(dst);
		return ES_ENOMEM;
	}
	if (!dst->keepalive_s)
		dst->keepalive_s = 30;
	if (!dst->inflight)
		dst->inflight = 100;
	if (!dst->session_expiry_s)
		dst->session_expiry_s = 86400;
	if (!dst->connect_timeout_s)
		dst->connect_timeout_s = 10;
	if (!dst->backoff_base_ms)
		dst->backoff_base_ms = 250;
	if (!dst->backoff_max_ms)
		dst->backoff_max_ms = 30000;
	return ES_OK;
}

static es_err check_urls(const es_mqtt_opts *o)
{
	size_t n = o->nurls ? o->nurls : 1;
	for (size_t i = 0; i < n; i++) {
		const char *url = o->nurls ? o->urls[i] : o->url;
		const char *why = es_mqtt_check_url(url);
		if (why) {
			es_error(TAG, "url '%s' %s", url ? url : "", why);
			return ES_EINVAL;
		}
	}
	return ES_OK;
}

static es_err check_opts(const es_mqtt_opts *o)
{
	if (o->nurls && !o->urls)
		return ES_EINVAL;
	if (check_urls(o))
		return ES_EINVAL;
	if (!o->client_id || !*o->client_id || strlen(o->client_id) > 128) {
		es_error(TAG, "client id must be 1..128 characters");
		return ES_EINVAL;
	}
	if (o->version != 4 && o->version != 5) {
		es_error(TAG, "MQTT version must be 4 (3.1.1) or 5, not %d", o->version);
		return ES_EINVAL;
	}
	if (o->inflight < 0 || o->inflight > 65535) {
		es_error(TAG, "inflight window must be 1..65535");
		return ES_EINVAL;
	}
	return ES_OK;
}

/* ---- the inbox: paho threads to the loop ------------------------------- */

/* Any thread. On out-of-memory the entry is lost: an ack then shows up as a
 * re-publish (a duplicate), a lost-connection as a keepalive timeout. */
static void post(es_mqtt *m, const struct entry *e)
{
	pthread_mutex_lock(&m->lock);
	struct entry *grown = es_grow(m->inbox, &m->capinbox, m->ninbox + 1, sizeof *grown, 256);
	if (!grown) {
		pthread_mutex_unlock(&m->lock);
		free(e->text);
		free(e->payload);
		free(e->props);
		return;
	}
	m->inbox = grown;
	m->inbox[m->ninbox++] = *e;
	pthread_mutex_unlock(&m->lock);
	es_async_send(m->async);
}

static char *dup_cause(const char *prefix, const char *msg, int code)
{
	char buf[192];
	snprintf(buf, sizeof buf, "%s%s%s (code %d)", prefix, msg ? ": " : "", msg ? msg : "",
		 code);
	return strdup(buf);
}

static void on_lost(void *context, char *cause)
{
	struct conn *c = context;
	post(c->m, &(struct entry){.kind = K_LOST,
				   .gen = c->gen,
				   .text = strdup(cause ? cause : "connection lost")});
}

/* ---- MQTT 5 properties ---------------------------------------------------- */

#define USER_PROPS_MAX 32 /* user properties kept of a received message */

static bool wanted(const MQTTProperty *p)
{
	return p->identifier == MQTTPROPERTY_CODE_CONTENT_TYPE ||
	       p->identifier == MQTTPROPERTY_CODE_USER_PROPERTY;
}

static size_t slen(const MQTTLenString *s)
{
	return s->len > 0 && s->data ? (size_t)s->len : 0;
}

static char *put_str(char **at, const MQTTLenString *s)
{
	char *out = *at;
	size_t n = slen(s);
	if (n)
		memcpy(out, s->data, n);
	out[n] = '\0';
	*at += n + 1;
	return out;
}

/* The content type and user properties of a received message, copied into
 * one block (freed with free()); NULL when it has none (or out of memory:
 * the message then arrives without them). paho's thread. */
static es_mqtt_props *copy_props(const MQTTProperties *in)
{
	size_t n = 0, bytes = sizeof(es_mqtt_props);
	for (int i = 0; i < in->count; i++) {
		const MQTTProperty *p = &in->array[i];
		bool user = p->identifier == MQTTPROPERTY_CODE_USER_PROPERTY;
		if (!wanted(p) || (user && n == USER_PROPS_MAX))
			continue;
		bytes += slen(&p->value.data) + 1;
		if (user)
			bytes += sizeof(es_mqtt_prop) + slen(&p->value.value) + 1;
		n += user;
	}
	if (bytes == sizeof(es_mqtt_props))
		return NULL;
	es_mqtt_props *out = calloc(1, bytes);
	if (!out)
		return NULL;
	es_mqtt_prop *user = (es_mqtt_prop *)(out + 1);
	char *at = (char *)(user + n);
	out->user = user;
	for (int i = 0; i < in->count; i++) {
		const MQTTProperty *p = &in->array[i];
		if (p->identifier == MQTTPROPERTY_CODE_CONTENT_TYPE && !out->content_type)
			out->content_type = put_str(&at, &p->value.data);
		else if (p->identifier == MQTTPROPERTY_CODE_USER_PROPERTY && out->nuser < n)
			user[out->nuser++] = (es_mqtt_prop){put_str(&at, &p->value.data),
							    put_str(&at, &p->value.value)};
	}
	return out;
}

static bool add_str(MQTTProperties *out, enum MQTTPropertyCodes id, const char *a, const char *b)
{
	MQTTProperty p = {.identifier = id};
	p.value.data = (MQTTLenString){(int)strlen(a), (char *)a};
	if (b)
		p.value.value = (MQTTLenString){(int)strlen(b), (char *)b};
	return MQTTProperties_add(out, &p) == 0;
}

/* paho's form of props (copied by paho: free it after sending). */
static bool make_props(const es_mqtt_props *props, MQTTProperties *out)
{
	if (props->content_type &&
	    !add_str(out, MQTTPROPERTY_CODE_CONTENT_TYPE, props->content_type, NULL))
		return false;
	for (size_t i = 0; i < props->nuser; i++)
		if (!add_str(out, MQTTPROPERTY_CODE_USER_PROPERTY, props->user[i].name,
			     props->user[i].value))
			return false;
	return true;
}

/* paho's threads are detached: destroying the last client waits until they
 * say they stopped, but each then still has to exit, and one that spoke TLS
 * frees its OpenSSL thread state as it does. OpenSSL's own atexit cleanup
 * frees every thread's state: when main returned while such a thread was
 * still exiting, both freed the same memory ("double free or corruption" at
 * exit, about 1 run in 10 of it_tls_v5 under qemu, where threads are slow).
 * So before main, before anything can initialise OpenSSL with its default,
 * OpenSSL is told not to clean up at exit: the process is ending, and the
 * kernel takes its memory back. */
__attribute__((constructor)) static void openssl_no_cleanup_at_exit(void)
{
	(void)OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

static void fix_mmap_threshold(void)
{
#ifdef __GLIBC__
	if (!mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
		es_warn(TAG, "cannot fix malloc's mmap threshold");
#endif
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct conn *c = context;
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	struct entry e = {.kind = K_MESSAGE, .gen = c->gen, .len = (size_t)msg->payloadlen};
	size_t max = c->m->o.max_message;
	e.flag = max && e.len > max;
	e.text = malloc(tlen + 1);
	e.payload = e.flag ? NULL : malloc(e.len + 1);
	if (!e.flag && msg->properties.count > 0)
		e.props = copy_props(&msg->properties);
	if (e.text && (e.flag || e.payload)) {
		memcpy(e.text, topic, tlen);
		e.text[tlen] = '\0';
		if (!e.flag) {
			memcpy(e.payload, msg->payload, e.len);
			((char *)e.payload)[e.len] = '\0';
		}
		post(c->m, &e);
	} else {
		free(e.text);
		free(e.payload);
		free(e.props);
	}
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void on_connect_ok(void *context, MQTTAsync_successData *d)
{
	struct conn *c = context;
	post(c->m, &(struct entry){.kind = K_CONNECTED,
				   .gen = c->gen,
				   .flag = d && d->alt.connect.sessionPresent});
}

static void on_connect_ok5(void *context, MQTTAsync_successData5 *d)
{
	struct conn *c = context;
	post(c->m, &(struct entry){.kind = K_CONNECTED,
				   .gen = c->gen,
				   .flag = d && d->alt.connect.sessionPresent});
}

static void on_connect_fail(void *context, MQTTAsync_failureData *d)
{
	struct conn *c = context;
	int code = d ? d->code : -1;
	post(c->m,
	     &(struct entry){.kind = K_CONNECT_FAILED,
			     .gen = c->gen,
			     .code = code,
			     .text = dup_cause("connect failed", d ? d->message : NULL, code)});
}

static void on_connect_fail5(void *context, MQTTAsync_failureData5 *d)
{
	struct conn *c = context;
	int code = d ? (d->reasonCode ? (int)d->reasonCode : d->code) : -1;
	post(c->m,
	     &(struct entry){.kind = K_CONNECT_FAILED,
			     .gen = c->gen,
			     .code = code,
			     .text = dup_cause("connect failed", d ? d->message : NULL, code)});
}

static void on_pub_ok(void *context, MQTTAsync_successData *d)
{
	struct slot *s = context;
	post(s->m, &(struct entry){.kind = K_ACK, .gen = s->gen, .slot = s->index, .tag = s->tag});
}

static void on_pub_ok5(void *context, MQTTAsync_successData5 *d)
{
	struct slot *s = context;
	post(s->m, &(struct entry){.kind = K_ACK, .gen = s->gen, .slot = s->index, .tag = s->tag});
}

/* MQTT 3.1.1 has no refusals: every publish failure is the transport's
 * (paho fails it before it reports the lost connection). */
static void on_pub_fail(void *context, MQTTAsync_failureData *d)
{
	struct slot *s = context;
	post(s->m, &(struct entry){.kind = K_NACK,
				   .gen = s->gen,
				   .slot = s->index,
				   .tag = s->tag,
				   .code = d ? d->code : -1});
}

/* MQTT 5: a PUBACK reason code of 0x80 or more is the broker refusing the
 * message (flag); anything else is the transport failing. */
static void on_pub_fail5(void *context, MQTTAsync_failureData5 *d)
{
	struct slot *s = context;
	bool refused = d && (int)d->reasonCode >= 0x80;
	post(s->m, &(struct entry){.kind = K_NACK,
				   .gen = s->gen,
				   .slot = s->index,
				   .tag = s->tag,
				   .flag = refused,
				   .code = refused ? (int)d->reasonCode
					   : d	   ? d->code
						   : -1});
}

static void on_disconnected(void *context, MQTTAsync_successData *d)
{
	struct conn *c = context;
	post(c->m, &(struct entry){.kind = K_STOPPED, .gen = c->gen});
}

static void on_disconnect_fail(void *context, MQTTAsync_failureData *d)
{
	struct conn *c = context;
	post(c->m, &(struct entry){.kind = K_STOPPED, .gen = c->gen});
}

/* ---- client lifecycle (loop thread) ------------------------------------ */

static void set_error(es_mqtt *m, const char *text)
{
	snprintf(m->stats.last_error, sizeof m->stats.last_error, "%s", text);
}

static void release_slot(es_mqtt *m, struct slot *s)
{
	s->used = false;
	m->free_slots[m->nfree++] = s->index;
}

/* Destroys the current paho client. paho fails the commands it still held
 * (synchronously, from inside MQTTAsync_destroy); those entries carry the old
 * generation and are dropped. Every slot is then free again. */
static void destroy_client(es_mqtt *m)
{
	if (m->client)
		MQTTAsync_destroy(&m->client);
	m->client = NULL;
	free(m->conn);
	m->conn = NULL;
	m->gen++;
	for (size_t i = 0; i < m->window; i++)
		if (m->slots[i].used)
			release_slot(m, &m->slots[i]);
	for (size_t i = 0; i < m->nsubs; i++)
		m->subs[i]->granted = false;
	m->ngranted = 0;
	m->stats.connected = false;
	m->stats.subscribed = false;
}

/* Moves on to the next URL (if several): the next node is tried after the
 * backoff's first, short step; only after a whole round of failures do the
 * delays grow. */
static void schedule_retry(es_mqtt *m, const char *cause)
{
	uint64_t delay;
	if (es_rotation_failed(&m->rot)) {
		delay = es_backoff_next(&m->backoff);
	} else {
		es_backoff hop = m->backoff;
		es_backoff_reset(&hop);
		delay = es_backoff_next(&hop);
		m->backoff.rng = hop.rng;
	}
	show_url(m);
	if (m->nurls > 1)
		es_info(TAG, "next: %s in %llu ms", cur_uri(m), (unsigned long long)delay);
	m->state = S_WAITING;
	m->stats.failures++;
	set_error(m, cause);
	es_loop_timer(m->loop, delay, connect_now, m, &m->retry_timer);
	if (m->o.cbs.disconnected)
		m->o.cbs.disconnected(m->o.ctx, cause, delay);
}

/* paho refuses a publish (MQTTASYNC_MAX_BUFFERED_MESSAGES, -12) while
 * maxBufferedMessages publishes of the client wait to be written, QoS 1 and
 * QoS 0 alike; its default, 100, is our default window. So when the broker
 * read slowly (a loaded machine) a full window of QoS 1 publishes left no
 * room for a QoS 0 one (the bridge's share-group reports were refused, and
 * lost). The window bounds QoS 1; QoS 0 messages get room of their own. */
#define QOS0_ROOM 1024

static int create_client(es_mqtt *m)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	co.MQTTVersion = m->o.version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	co.sendWhileDisconnected = 0;
	co.maxBufferedMessages = (int)m->window + QOS0_ROOM;
	int rc = MQTTAsync_createWithOptions(&m->client, cur_uri(m), m->o.client_id,
					     MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS)
		return rc;
	m->conn = malloc(sizeof *m->conn);
	if (!m->conn)
		return MQTTASYNC_FAILURE;
	*m->conn = (struct conn){.m = m, .gen = m->gen};
	return MQTTAsync_setCallbacks(m->client, m->conn, on_lost, on_message, NULL);
}

static void fill_tls(const es_mqtt *m, MQTTAsync_SSLOptions *ssl)
{
	ssl->trustStore = m->o.ca_file;
	ssl->keyStore = m->o.cert_file;
	ssl->privateKey = m->o.key_file;
	ssl->enableServerCertAuth = m->o.tls_verify;
	ssl->verify = m->o.tls_verify;
}

/* Fills the options shared by both protocol versions and starts the attempt. */
static int start_connect(es_mqtt *m, MQTTAsync_connectOptions *co)
{
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	co->keepAliveInterval = m->o.keepalive_s;
	co->maxInflight = (int)m->window;
	co->connectTimeout = m->o.connect_timeout_s;
	co->automaticReconnect = 0;
	co->username = m->o.username;
	co->password = m->o.password;
	co->context = m->conn;
	if (strncmp(cur_uri(m), "ssl://", 6) == 0) {
		fill_tls(m, &ssl);
		co->ssl = &ssl;
	}
	if (m->o.will_topic) {
		will.topicName = m->o.will_topic;
		will.message = m->o.will_payload ? m->o.will_payload : "";
		will.qos = 1;
		will.retained = m->o.will_retain;
		co->will = &will;
	}
	return MQTTAsync_connect(m->client, co);
}

static int connect5(es_mqtt *m)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty expiry = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
			       .value.integer4 = m->o.session_expiry_s};
	MQTTProperties_add(&props, &expiry);
	co.cleanstart = m->o.clean;
	co.connectProperties = &props;
	co.onSuccess5 = on_connect_ok5;
	co.onFailure5 = on_connect_fail5;
	int rc = start_connect(m, &co);
	MQTTProperties_free(&props);
	return rc;
}

static int connect311(es_mqtt *m)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	co.cleansession = m->o.clean;
	/* Not paho's default, which falls back to MQTT 3.1 (23-character
	 * client ids) after a failed attempt. */
	co.MQTTVersion = MQTTVERSION_3_1_1;
	co.onSuccess = on_connect_ok;
	co.onFailure = on_connect_fail;
	return start_connect(m, &co);
}

static void connect_now(void *arg)
{
	es_mqtt *m = arg;
	m->retry_timer = 0;
	if (m->state == S_STOPPING || m->state == S_STOPPED)
		return;
	destroy_client(m);
	m->state = S_CONNECTING;
	int rc = create_client(m);
	if (rc == MQTTASYNC_SUCCESS)
		rc = m->o.version == 5 ? connect5(m) : connect311(m);
	if (rc != MQTTASYNC_SUCCESS) {
		char cause[96];
		snprintf(cause, sizeof cause, "cannot start connecting (paho %d: %s)", rc,
			 MQTTAsync_strerror(rc));
		es_warn(TAG, "%s: %s", cur_uri(m), cause);
		destroy_client(m);
		schedule_retry(m, cause);
	}
}

/* ---- subscriptions --------------------------------------------------------- */

/* SUBACKs go to the loop like everything else; a refusal is logged there. */
static void post_suback(struct sub *s, bool granted, int code)
{
	post(s->m, &(struct entry){.kind = granted ? K_SUBACK : K_SUBFAIL,
				   .gen = s->gen,
				   .slot = s->index,
				   .code = code});
}

/* MQTT 3.1.1: a granted QoS of 0x80 is a refusal. */
static void on_sub_ok(void *context, MQTTAsync_successData *d)
{
	int qos = d ? d->alt.qos : 0;
	post_suback(context, qos != 0x80, qos);
}

static void on_sub_fail(void *context, MQTTAsync_failureData *d)
{
	post_suback(context, false, d ? d->code : -1);
}

static void on_sub_ok5(void *context, MQTTAsync_successData5 *d)
{
	int reason = d ? (int)d->reasonCode : 0;
	post_suback(context, reason < 0x80, reason);
}

static void on_sub_fail5(void *context, MQTTAsync_failureData5 *d)
{
	post_suback(context, false, d ? (int)d->reasonCode : -1);
}

static void send_subscribe(es_mqtt *m, struct sub *s)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	if (m->o.version == 5) {
		ro.onSuccess5 = on_sub_ok5;
		ro.onFailure5 = on_sub_fail5;
	} else {
		ro.onSuccess = on_sub_ok;
		ro.onFailure = on_sub_fail;
	}
	s->gen = m->gen; /* before paho can call back */
	s->granted = false;
	ro.context = s;
	int rc = MQTTAsync_subscribe(m->client, s->filter, s->qos, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		es_error(TAG, "subscribe %s: paho %d", s->filter, rc);
}

/* stats.subscribed: connected, and every subscription acknowledged. */
static void update_subscribed(es_mqtt *m)
{
	bool was = m->stats.subscribed;
	m->stats.subscribed = m->state == S_UP && m->ngranted == m->nsubs;
	if (m->stats.subscribed && !was) {
		if (m->nsubs)
			es_debug(TAG, "%s: %zu subscription(s) acknowledged", cur_uri(m), m->nsubs);
		if (m->o.cbs.subscribed)
			m->o.cbs.subscribed(m->o.ctx);
	}
}

static void handle_suback(es_mqtt *m, const struct entry *e)
{
	if (e->gen != m->gen || m->state != S_UP || e->slot >= m->nsubs)
		return; /* an earlier connection's */
	struct sub *s = m->subs[e->slot];
	if (e->kind == K_SUBFAIL) {
		es_error(TAG, "%s refused the subscription to %s (code %d)", cur_uri(m), s->filter,
			 e->code);
		return;
	}
	if (!s->granted) {
		s->granted = true;
		m->ngranted++;
	}
	update_subscribed(m);
}

es_err es_mqtt_subscribe(es_mqtt *m, const char *filter, int qos)
{
	const char *why = filter ? es_topic_check_filter(filter, strlen(filter)) : "is missing";
	if (why || qos < 0 || qos > 1) {
		es_error(TAG, "subscription filter '%s' %s", filter ? filter : "",
			 why ? why : "needs QoS 0 or 1");
		return ES_EINVAL;
	}
	struct sub **grown = realloc(m->subs, (m->nsubs + 1) * sizeof *grown);
	if (!grown)
		return ES_ENOMEM;
	m->subs = grown;
	struct sub *s = calloc(1, sizeof *s);
	if (!s)
		return ES_ENOMEM;
	*s = (struct sub){.m = m, .index = (uint32_t)m->nsubs, .qos = qos};
	if (!(s->filter = strdup(filter))) {
		free(s);
		return ES_ENOMEM;
	}
	m->subs[m->nsubs++] = s;
	update_subscribed(m); /* one more to be acknowledged */
	if (m->state == S_UP)
		send_subscribe(m, s);
	return ES_OK;
}

/* ---- publishing ------------------------------------------------------------ */

static es_err check_publish(const es_mqtt *m, const char *topic, size_t len, int qos)
{
	if (m->state != S_UP)
		return ES_ENOTCONN;
	const char *why = topic ? es_topic_check_name(topic, strlen(topic)) : "is missing";
	if (why || qos < 0 || qos > 1) {
		es_error(TAG, "cannot publish to '%s': %s", topic ? topic : "",
			 why ? why : "QoS must be 0 or 1");
		return ES_EINVAL;
	}
	if (len > 256u * 1024u * 1024u)
		return ES_ETOOBIG;
	if (qos == 1 && m->nfree == 0)
		return ES_EBUSY;
	return ES_OK;
}

es_err es_mqtt_publish(es_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
		       bool retain, uint64_t tag)
{
	return es_mqtt_publish_props(m, topic, payload, len, qos, retain, tag, NULL);
}

es_err es_mqtt_publish_props(es_mqtt *m, const char *topic, const void *payload, size_t len,
			     int qos, bool retain, uint64_t tag, const es_mqtt_props *props)
{
	es_err err = check_publish(m, topic, len, qos);
	if (err)
		return err;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	if (props && m->o.version == 5 && !make_props(props, &msg.properties)) {
		MQTTProperties_free(&msg.properties);
		return ES_ENOMEM;
	}
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = qos;
	msg.retained = retain;
	struct slot *s = NULL;
	if (qos == 1) {
		s = &m->slots[m->free_slots[--m->nfree]];
		*s = (struct slot){
			.m = m, .index = s->index, .gen = m->gen, .tag = tag, .used = true};
		ro.context = s;
		if (m->o.version == 5) {
			ro.onSuccess5 = on_pub_ok5;
			ro.onFailure5 = on_pub_fail5;
		} else {
			ro.onSuccess = on_pub_ok;
			ro.onFailure = on_pub_fail;
		}
	}
	int rc = MQTTAsync_sendMessage(m->client, topic, &msg, &ro);
	MQTTProperties_free(&msg.properties); /* paho sends its own copy */
	if (rc != MQTTASYNC_SUCCESS) {
		if (s)
			release_slot(m, s);
		es_warn(TAG, "publish to %s: paho %d (%s)", topic, rc, MQTTAsync_strerror(rc));
		return rc == MQTTASYNC_DISCONNECTED ? ES_ENOTCONN : ES_EBUSY;
	}
	m->stats.published++;
	return ES_OK;
}

/* ---- the loop side of the inbox ------------------------------------------ */

static void handle_connected(es_mqtt *m, const struct entry *e)
{
	m->state = S_UP;
	m->stats.connected = true;
	m->stats.connects++;
	m->stats.connected_since_ms = es_clock_wall_ms();
	es_backoff_reset(&m->backoff);
	if (es_rotation_connected(&m->rot))
		es_warn(TAG, "failed over to %s (fail-over %llu)", cur_uri(m),
			(unsigned long long)m->rot.failovers);
	show_url(m);
	es_info(TAG, "connected to %s as %s (MQTT %s, session %s)", cur_uri(m), m->o.client_id,
		m->o.version == 5 ? "5" : "3.1.1", e->flag ? "resumed" : "new");
	for (size_t i = 0; i < m->nsubs; i++)
		send_subscribe(m, m->subs[i]);
	if (m->o.cbs.connected)
		m->o.cbs.connected(m->o.ctx, e->flag);
	update_subscribed(m); /* at once when there is nothing to subscribe to */
}

static void handle_down(es_mqtt *m, const struct entry *e)
{
	const char *cause = e->text ? e->text : "connection lost";
	if (m->state == S_UP)
		es_warn(TAG, "lost %s: %s", cur_uri(m), cause);
	else
		es_info(TAG, "cannot reach %s: %s", cur_uri(m), cause);
	destroy_client(m);
	schedule_retry(m, cause);
}

static void handle_stopped(es_mqtt *m)
{
	destroy_client(m);
	m->state = S_STOPPED;
	es_info(TAG, "disconnected from %s", cur_uri(m));
	if (m->o.cbs.disconnected)
		m->o.cbs.disconnected(m->o.ctx, "stopped", 0);
}

/* A completion for a publish of an earlier client: its slot was already
 * freed; an ack is still an ack, a failure means nothing now. */
static void handle_completion(es_mqtt *m, const struct entry *e)
{
	struct slot *s = &m->slots[e->slot];
	bool current = e->gen == m->gen && s->used && s->gen == e->gen;
	if (current)
		release_slot(m, s);
	es_err err = ES_OK;
	if (e->kind == K_ACK) {
		m->stats.acked++;
	} else if (!current) {
		return; /* an earlier connection's: disconnected() said it is lost */
	} else if (e->flag) {
		m->stats.refused++;
		es_error(TAG, "%s refused a publish (reason code 0x%02x)", cur_uri(m),
			 (unsigned)e->code);
		err = ES_EPROTO;
	} else {
		es_debug(TAG, "a publish was lost with the connection (paho %d)", e->code);
		err = ES_ENOTCONN;
	}
	if (m->o.cbs.published)
		m->o.cbs.published(m->o.ctx, e->tag, err);
}

static void handle_message(es_mqtt *m, const struct entry *e)
{
	m->stats.received++;
	if (m->o.cbs.message_props) {
		es_mqtt_msg msg = {.topic = e->text, .payload = e->payload, .len = e->len};
		if (e->props)
			msg.props = *e->props;
		m->o.cbs.message_props(m->o.ctx, &msg);
	} else if (m->o.cbs.message) {
		m->o.cbs.message(m->o.ctx, e->text, e->payload, e->len);
	}
}

static void handle_oversized(es_mqtt *m, const struct entry *e)
{
	m->stats.oversized++;
	if (m->o.cbs.oversized)
		m->o.cbs.oversized(m->o.ctx, e->text, e->len);
	else
		es_warn(TAG, "a message of %zu bytes on %s let go: larger than %zu", e->len,
			e->text, m->o.max_message);
}

static void handle(es_mqtt *m, const struct entry *e)
{
	bool current = e->gen == m->gen;
	switch (e->kind) {
	case K_ACK:
	case K_NACK:
		handle_completion(m, e);
		break;
	case K_CONNECTED:
		if (current && m->state == S_CONNECTING)
			handle_connected(m, e);
		break;
	case K_CONNECT_FAILED:
	case K_LOST:
		if (current && (m->state == S_CONNECTING || m->state == S_UP))
			handle_down(m, e);
		else if (current && m->state == S_STOPPING)
			handle_stopped(m); /* lost while disconnecting: done all the same */
		break;
	case K_MESSAGE:
		if (e->flag) {
			m->stats.received++;
			handle_oversized(m, e);
		} else {
			handle_message(m, e);
		}
		break;
	case K_STOPPED:
		if (current && m->state == S_STOPPING)
			handle_stopped(m);
		break;
	case K_SUBACK:
	case K_SUBFAIL:
		handle_suback(m, e);
		break;
	}
}

/* Swaps the inbox with a spare buffer so steady traffic allocates nothing. */
static void drain_inbox(void *arg)
{
	es_mqtt *m = arg;
	pthread_mutex_lock(&m->lock);
	struct entry *batch = m->inbox;
	size_t n = m->ninbox, cap = m->capinbox;
	m->inbox = m->spare;
	m->capinbox = m->capspare;
	m->ninbox = 0;
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; i < n; i++) {
		handle(m, &batch[i]);
		free(batch[i].text);
		free(batch[i].payload);
		free(batch[i].props);
	}
	m->spare = batch;
	m->capspare = cap;
}

/* ---- public ------------------------------------------------------------------ */

static es_err make_slots(es_mqtt *m)
{
	m->window = (size_t)m->o.inflight;
	m->slots = calloc(m->window, sizeof *m->slots);
	m->free_slots = calloc(m->window, sizeof *m->free_slots);
	if (!m->slots || !m->free_slots)
		return ES_ENOMEM;
	for (size_t i = 0; i < m->window; i++) {
		m->slots[i] = (struct slot){.m = m, .index = (uint32_t)i};
		m->free_slots[i] = (uint32_t)(m->window - 1 - i);
	}
	m->nfree = m->window;
	return ES_OK;
}

/* Copies the URL list (or the one url) and makes their paho forms. */
static es_err make_urls(es_mqtt *m, const es_mqtt_opts *opts)
{
	size_t n = opts->nurls ? opts->nurls : 1;
	m->urls = calloc(n, sizeof *m->urls);
	m->uris = calloc(n, sizeof *m->uris);
	if (!m->urls || !m->uris)
		return ES_ENOMEM;
	m->nurls = n;
	for (size_t i = 0; i < n; i++) {
		const char *url = opts->nurls ? opts->urls[i] : opts->url;
		if (!(m->urls[i] = strdup(url)) || !(m->uris[i] = paho_uri(url)))
			return ES_ENOMEM;
	}
	es_rotation_init(&m->rot, n);
	show_url(m);
	return ES_OK;
}

es_err es_mqtt_new(es_loop *loop, const es_mqtt_opts *opts, es_mqtt **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	if (!loop || !opts || !out || check_opts(opts))
		return ES_EINVAL;
	pthread_once(&once, fix_mmap_threshold);
	es_mqtt *m = calloc(1, sizeof *m);
	if (!m)
		return ES_ENOMEM;
	m->loop = loop;
	pthread_mutex_init(&m->lock, NULL);
	es_err err = copy_opts(&m->o, opts);
	if (err) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		return err;
	}
	err = make_urls(m, opts);
	if (!err)
		err = make_slots(m);
	if (!err)
		err = es_async_new(loop, drain_inbox, m, &m->async);
	if (err) {
		es_mqtt_free(m);
		return err;
	}
	es_backoff_init(&m->backoff, m->o.backoff_base_ms, m->o.backoff_max_ms);
	*out = m;
	return ES_OK;
}

/* paho runs one sending and one receiving thread for all its clients, and
 * stops them when the last client is destroyed, polling in 100 ms sleeps:
 * with a fresh client for each connection attempt, every attempt that
 * failed then blocked the loop thread 100 to 400 ms in MQTTAsync_destroy
 * (and a SIGTERM waited behind it). A client that never connects, made
 * once, keeps the threads up while this es_mqtt lives. Without it (it could
 * not be made), things only go slower. */
static void keep_threads(es_mqtt *m)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	co.MQTTVersion = m->o.version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	if (MQTTAsync_createWithOptions(&m->keeper, cur_uri(m), m->o.client_id,
					MQTTCLIENT_PERSISTENCE_NONE, NULL,
					&co) != MQTTASYNC_SUCCESS)
		m->keeper = NULL;
}

es_err es_mqtt_start(es_mqtt *m)
{
	if (!m || m->state != S_IDLE)
		return ES_EINVAL;
	keep_threads(m);
	connect_now(m);
	return ES_OK;
}

es_err es_mqtt_disconnect(es_mqtt *m, uint64_t timeout_ms)
{
	if (!m)
		return ES_EINVAL;
	if (m->retry_timer)
		es_loop_timer_cancel(m->loop, m->retry_timer);
	m->retry_timer = 0;
	if (m->state != S_UP) {
		m->state = S_STOPPING;
		handle_stopped(m);
		return ES_OK;
	}
	m->state = S_STOPPING;
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = (int)timeout_ms;
	d.onSuccess = on_disconnected;
	d.onFailure = on_disconnect_fail;
	d.context = m->conn;
	if (MQTTAsync_disconnect(m->client, &d) != MQTTASYNC_SUCCESS)
		handle_stopped(m);
	return ES_OK;
}

void es_mqtt_free(es_mqtt *m)
{
	if (!m)
		return;
	if (m->retry_timer)
		es_loop_timer_cancel(m->loop, m->retry_timer);
	if (m->client)
		MQTTAsync_destroy(&m->client);
	if (m->keeper)
		MQTTAsync_destroy(&m->keeper);
	free(m->conn);
	es_async_free(m->async);
	for (size_t i = 0; i < m->ninbox; i++) {
		free(m->inbox[i].text);
		free(m->inbox[i].payload);
		free(m->inbox[i].props);
	}
	free(m->inbox);
	free(m->spare);
	for (size_t i = 0; i < m->nsubs; i++) {
		free(m->subs[i]->filter);
		free(m->subs[i]);
	}
	free(m->subs);
	free(m->slots);
	free(m->free_slots);
	for (size_t i = 0; i < m->nurls; i++) {
		free(m->urls[i]);
		free(m->uris[i]);
	}
	free(m->urls);
	free(m->uris);
	free_opts(&m->o);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

size_t es_mqtt_inflight(const es_mqtt *m)
{
	return m->window - m->nfree;
}

size_t es_mqtt_window(const es_mqtt *m)
{
	return m->window;
}

bool es_mqtt_is_connected(const es_mqtt *m)
{
	return m->state == S_UP;
}

bool es_mqtt_is_subscribed(const es_mqtt *m)
{
	return m->state == S_UP && m->stats.subscribed;
}

void es_mqtt_stats_get(const es_mqtt *m, es_mqtt_stats *out)
{
	*out = m->stats;
}
