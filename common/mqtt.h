/* mqtt.h - an MQTT client for edgespool: the only module that includes paho.
 *
 * Wraps paho's MQTTAsync: MQTT 3.1.1 or 5, QoS 1 with a bounded inflight
 * window, clean session off (3.1.1) / clean start off with a session expiry
 * (5) under a stable client id, TLS (CA, client certificate and key, server
 * verification on by default), username and password, keepalive, a last
 * will, and reconnection forever with exponential backoff and full jitter.
 * Given several URLs (a cluster's nodes), it keeps one connection and moves
 * to the next URL when that one is lost or cannot be reached (rotation.h);
 * the stats say which URL is in use and count the fail-overs.
 *
 * Every callback runs on the loop thread given at creation: paho's threads
 * only queue what happened and wake the loop. Nothing here ever blocks on
 * the network (no MQTTAsync_waitForCompletion).
 *
 * Each connection attempt uses a fresh paho client. So after a connection is
 * lost, paho resends nothing by itself: the caller re-publishes what was not
 * acknowledged, from its journal, in its own order. Contract for published():
 * ES_OK, the broker acknowledged it (delivered even if it raced with a lost
 * connection: an ack is an ack); ES_EPROTO, the broker refused it (MQTT 5
 * reason code >= 0x80, logged): sending it again will not help; ES_ENOTCONN,
 * it was lost with its connection (paho often says so just before the
 * connection loss itself): publish it again. After disconnected(), nothing
 * more is reported for publishes of the lost connection: every one not
 * acknowledged by then is lost.
 */
#ifndef ES_MQTT_H
#define ES_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "loop.h"

typedef struct es_mqtt es_mqtt;

typedef struct es_mqtt_cbs {
	/* Connected (again); subscriptions were (re)made. */
	void (*connected)(void *ctx, bool session_present);
	/* A connection attempt failed or the connection was lost; a retry is
	 * scheduled after retry_ms. Also called once after es_mqtt_disconnect
	 * completes, with cause "stopped" and retry_ms 0. */
	void (*disconnected)(void *ctx, const char *cause, uint64_t retry_ms);
	/* A QoS 1 publish completed: ES_OK, ES_EPROTO or ES_ENOTCONN (above). */
	void (*published)(void *ctx, uint64_t tag, es_err err);
	/* A message arrived on a subscription. Pointers valid during the call. */
	void (*message)(void *ctx, const char *topic, const void *payload, size_t len);
	/* Optional: the broker acknowledged every subscription made, on this
	 * connection (at once after connected() when there are none): from now
	 * on what is published to them reaches this client. After each
	 * connection, and again after a subscription added while connected;
	 * a subscription the broker refused (logged) keeps it from coming. */
	void (*subscribed)(void *ctx);
} es_mqtt_cbs;

typedef struct es_mqtt_opts {
	const char *url; /* mqtt://host[:1883] or mqtts://host[:8883] */
	/* Or several URLs of one service (a cluster's nodes): the client stays
	 * on one and moves to the next when it loses it (rotation.h). When
	 * nurls > 0 these replace url. */
	const char *const *urls;
	size_t nurls;
	const char *client_id;			    /* stable across restarts */
	int version;				    /* 4 (MQTT 3.1.1) or 5 */
	const char *username, *password;	    /* NULL: none */
	const char *ca_file, *cert_file, *key_file; /* TLS; NULL: none */
	bool tls_verify;			    /* verify the broker's certificate and name */
	bool clean;		   /* a clean session (nothing kept for a client that comes back) */
	int keepalive_s;	   /* 0: 30 */
	int inflight;		   /* unacknowledged QoS 1 publishes at most; 0: 100 */
	uint32_t session_expiry_s; /* MQTT 5 only; 0: 86400 */
	int connect_timeout_s;	   /* 0: 10 */
	uint64_t backoff_base_ms, backoff_max_ms; /* 0: 250 and 30000 */
	const char *will_topic;			  /* NULL: no will */
	const char *will_payload;
	bool will_retain;
	es_mqtt_cbs cbs;
	void *ctx;
} es_mqtt_opts;

typedef struct es_mqtt_stats {
	bool connected;
	bool subscribed;   /* connected and every subscription acknowledged */
	uint64_t connects; /* successful connections */
	uint64_t failures; /* failed attempts and lost connections */
	uint64_t published, acked, refused;
	uint64_t received;
	uint64_t connected_since_ms; /* wall ms of the current connection */
	char last_error[160];
	char url[256];	    /* the URL in use or being tried (as configured) */
	size_t node;	    /* its index in the URL list */
	uint64_t failovers; /* connections made to another URL than the last one */
} es_mqtt_stats;

/* Checks a URL as es_mqtt_new would: NULL when valid, else why not. */
const char *es_mqtt_check_url(const char *url);

/* Makes a client; copies every string of opts (and the URL list). Does not
 * connect. ES_EINVAL for a bad URL, client id or version (logged). */
es_err es_mqtt_new(es_loop *loop, const es_mqtt_opts *opts, es_mqtt **out);

/* Starts connecting, and reconnecting whenever the connection is lost. */
es_err es_mqtt_start(es_mqtt *m);

/* Subscribes now if connected and again on every connection; until the
 * broker acknowledges it, es_mqtt_is_subscribed() is false. Loop thread. */
es_err es_mqtt_subscribe(es_mqtt *m, const char *filter, int qos);

/* Publishes; completion of QoS 1 via published(tag). QoS 0 publishes are not
 * tracked (no callback) and need no window room. Errors: ES_ENOTCONN,
 * ES_EBUSY (the inflight window is full), ES_EINVAL (bad topic, logged),
 * ES_ETOOBIG. Loop thread. */
es_err es_mqtt_publish(es_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
		       bool retain, uint64_t tag);

/* QoS 1 publishes awaiting acknowledgement, and the window size. */
size_t es_mqtt_inflight(const es_mqtt *m);
size_t es_mqtt_window(const es_mqtt *m);
bool es_mqtt_is_connected(const es_mqtt *m);
/* Connected, and the broker acknowledged every subscription made (SUBACK)
 * on this connection: what is published to them now reaches this client.
 * True once connected when there are none. */
bool es_mqtt_is_subscribed(const es_mqtt *m);
void es_mqtt_stats_get(const es_mqtt *m, es_mqtt_stats *out);

/* Disconnects cleanly (waiting up to timeout_ms for inflight acks inside
 * paho) and stops reconnecting; disconnected(ctx, "stopped", 0) follows.
 * Loop thread. */
es_err es_mqtt_disconnect(es_mqtt *m, uint64_t timeout_ms);

/* Destroys the client at once: paho sends DISCONNECT if it can, so the will
 * is not published; nothing in flight is waited for. Loop thread. NULL ok. */
void es_mqtt_free(es_mqtt *m);

#endif
