/* source.h - where a consumer's deliveries come from: a const ops table per
 * transport (AMQP 0-9-1 in amqp.c, MQTT in msource.c) behind one interface.
 *
 * A source is pulled by one thread: es_source_next() waits up to wait_ms
 * for the next delivery; es_source_ack() acknowledges every delivery up to
 * and including a tag (AMQP basic.ack multiple; a no-op for MQTT, whose
 * client library acknowledges each message before the application sees it).
 * Connecting, and reconnecting with backoff across several URLs, happen
 * inside next(). After a lost connection next() returns ES_ENOTCONN once:
 * the caller drops the deliveries it has not applied (their tags belong to
 * the lost connection; the broker delivers them again).
 */
#ifndef ES_SOURCE_H
#define ES_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "err.h"
#include "mqtt.h"

/* One message as received. Strings owned by the delivery. */
typedef struct es_delivery {
	char *where; /* MQTT topic or AMQP routing key, for logs */
	char *body;  /* NUL-terminated (a compressed batch may hold NULs: use len) */
	size_t len;
	uint64_t tag; /* AMQP delivery tag; 0 for MQTT */
	char sep;     /* where's level separator: '/' (MQTT) or '.' (AMQP); 0: '/' */
	/* What the message says of its format (batch.h), NULL when it says
	 * nothing: MQTT 5 content type and the user properties
	 * "content-encoding" and "dictionary"; AMQP: the content-type property
	 * only (the routing key says the rest). */
	char *content_type, *encoding, *dict;
} es_delivery;

void es_delivery_clear(es_delivery *d);

typedef struct es_source es_source;

/* An answer to one of a source's re-send requests: the node as the
 * events' `source` names it ("/<site>/<node>") and the reply. */
typedef struct es_source_reply {
	char node[136];
	es_resend_reply r;
} es_source_reply;

typedef struct es_source_ops {
	const char *name; /* "amqp", "mqtt" */
	es_err (*next)(es_source *s, uint64_t wait_ms, es_delivery *out);
	es_err (*ack)(es_source *s, uint64_t tag);
	/* Optional (NULL: nothing to do): stop taking new messages; those
	 * already taken stay to be pulled by next(). For a transport whose
	 * client acknowledged them already (MQTT), so that a clean stop applies
	 * them rather than losing them. */
	void (*quiesce)(es_source *s);
	/* The URL connected to now ("" when none) and failovers so far. */
	void (*where)(es_source *s, char *url, size_t cap, uint64_t *failovers);
	/* Ready: the queue is consumed (AMQP), or the broker acknowledged
	 * every subscription (MQTT): what is published from now on reaches
	 * this source. Any thread. Optional (NULL: always ready). */
	bool (*ready)(es_source *s);
	/* Optional (NULL: this source cannot ask): asks node (an event's
	 * `source`, "/<site>/<node>") to re-send from..to on the source's
	 * broker (docs/protocol.md, Re-send), without waiting: the request goes
	 * out on the source's own thread. ES_EBUSY when too many wait to go,
	 * ES_EINVAL for a node that is not "/<site>/<node>" (AMQP: or has a
	 * '.' in its names), or a source made without a resend_root. Any
	 * thread. */
	es_err (*ask)(es_source *s, const char *node, uint64_t from, uint64_t to);
	/* Optional: takes the oldest answer to this source's requests into
	 * *out; false when there is none. Any thread. */
	bool (*reply)(es_source *s, es_source_reply *out);
	void (*free)(es_source *s);
} es_source_ops;

struct es_source {
	const es_source_ops *ops;
};

typedef struct es_amqp_opts {
	/* amqp://user:pass@host:port/vhost, or amqps:// for TLS; one or more */
	const char *const *urls;
	size_t nurls;
	const char *queue;	  /* NULL or "": an exclusive auto-delete server-named queue */
	const char *const *binds; /* routing-key patterns on amq.topic; none: "#" */
	size_t nbinds;
	bool bind_none;		  /* with no binds: bind nothing (use the queue's own) */
	const char *consumer_tag; /* NULL: the server picks */
	uint16_t prefetch;	  /* 0: 256 */
	int heartbeat_s;	  /* 0: 30 */
	uint64_t backoff_base_ms, backoff_max_ms; /* 0: 250, 30000 */
	/* Credentials given apart from the URLs (NULL: the URL's, else guest):
	 * a password read from a file keeps it out of the URL, which shows
	 * wherever the URL does. */
	const char *username, *password;
	/* amqps:// only. The broker's certificate is verified (chain and host
	 * name) against ca_file, or the system's CAs when NULL, unless
	 * tls_insecure. A client certificate and its key, both or neither. */
	const char *ca_file, *cert_file, *key_file;
	bool tls_insecure;
	/* The nodes' topic root, as MQTT names it, for re-send requests
	 * (ask/reply above): a request is published on amq.topic with routing
	 * key es_amqp_resend_key() (RabbitMQ's MQTT plugin hands it to the
	 * site's bridge as <root>/<site>/<node>/cmd/resend), with request ids
	 * "<asker_id>-<n>"; answers are consumed from an exclusive auto-delete
	 * queue bound to <root>.*.*.reply.resend. Both go over a connection of
	 * their own, on a thread of their own, so neither waits on the puller
	 * nor makes it wait. NULL: the source does not ask. A root with a '.'
	 * in a level is refused (ES_EINVAL): it would be a word more in AMQP. */
	const char *resend_root;
	const char *asker_id; /* NULL: consumer_tag, else "edgespool" */
} es_amqp_opts;

typedef struct es_msource_opts {
	/* The connection, as for es_mqtt_new (a program makes it from its
	 * settings with es_link_mqtt_opts): the URL, or several of one service
	 * (the next is tried when one fails), a stable client id (the
	 * persistent session's name), clean for none (edgespool tail), ...
	 * The callbacks are the source's own. */
	es_mqtt_opts mqtt;
	const char *const *topics; /* filters; none: "edgespool/#" */
	size_t ntopics;
	size_t queue_max; /* messages held for the puller; 0: 1024 */
	/* The nodes' topic root for re-send requests (ask/reply above):
	 * requests go to <root>/<site>/<node>/cmd/resend with request ids
	 * "<client id>-<n>", answers are taken from <root>/+/+/reply/resend
	 * (subscribed to) and never handed to the puller, nor are requests
	 * seen on a broad subscription. NULL: the source does not ask. */
	const char *resend_root;
} es_msource_opts;

/* Checks an amqp:// or amqps:// URL: NULL when valid, else why not. */
const char *es_amqp_check_url(const char *url);

/* True when an amqp:// URL carries a password (user:password@). */
bool es_amqp_url_has_password(const char *url);

/* The AMQP routing key of node's ("/<site>/<node>") re-send requests under
 * root (a topic root as MQTT names it): "<root>.<site>.<node>.cmd.resend",
 * the request topic with each '/' a '.'. ES_EINVAL for a node that is not
 * "/<site>/<node>" of valid names, or a root, site or node with a '.' of
 * its own (a word more in AMQP, which no bridge's subscription matches);
 * ES_ETOOBIG when it does not fit in cap. */
es_err es_amqp_resend_key(const char *root, const char *node, char *buf, size_t cap);

/* The node ("/<site>/<node>") that answered with routing key key
 * ("<root>.<site>.<node>.reply.resend", root as above) into node; false
 * (node untouched) when key is not such an answer's or does not fit. */
bool es_amqp_reply_node(const char *root, const char *key, char *node, size_t cap);

/* Makes a source. ES_EINVAL (logged) for a bad URL, or a client
 * certificate without its key, or a bad resend_root; ES_ENOMEM. A URL with
 * a password in it is logged as a warning. The AMQP source connects in the
 * first next() (its asking side, with a resend_root, at once on its own
 * thread), the MQTT one on a thread of its own from the start; the
 * options' strings are copied. */
es_err es_amqp_source_new(const es_amqp_opts *o, es_source **out);
es_err es_msource_new(const es_msource_opts *o, es_source **out);

static inline es_err es_source_next(es_source *s, uint64_t wait_ms, es_delivery *out)
{
	return s->ops->next(s, wait_ms, out);
}
static inline es_err es_source_ack(es_source *s, uint64_t tag)
{
	return s->ops->ack(s, tag);
}
static inline bool es_source_ready(es_source *s)
{
	return !s->ops->ready || s->ops->ready(s);
}
void es_source_free(es_source *s);

#endif
