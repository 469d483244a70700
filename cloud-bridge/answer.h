/* answer.h - re-send requests that come over the cloud broker: the way a
 * cloud that cannot open a connection into the site closes its holes. The
 * bridge subscribes, on its own outgoing cloud link, to its nodes' command
 * topics as the cloud sees them (cloud.resend_topic); a request is answered
 * from the inbox while it holds the range (forwarded events stay there for
 * journal.retain_s), and what the inbox no longer holds is relayed to the
 * agent over the edge broker under a request id of ours. While a relay
 * waits, the agent's re-published events of that node and range are
 * answers to it: they are passed to the cloud even when the inbox already
 * forwarded them (an unsolicited copy still stops at the inbox). The
 * agent's reply is translated back to the asker's request id and range.
 *
 * Everything is bounded before it costs anything, requests coming from the
 * network: at most opts.queue requests wait (a quarter per asker, the
 * request id up to its last '-'; beyond: "busy"), the inbox's events and
 * every answer go out at most opts.rate a second (an answer that finds no
 * room is dropped and counted: the asker asks again), a relay gets no
 * answer from the agent within opts.relay_ms: "busy".
 *
 * Thread: the loop's, except bridge_answer_stats_get (any thread).
 * Needs: the inbox (a reader of its own), a QoS 1 publish on the cloud link
 * (tags with BRIDGE_ANSWER_TAG set are ours), a publish to one node over
 * its edge link.
 */
#ifndef BRIDGE_ANSWER_H
#define BRIDGE_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "err.h"
#include "journal.h"
#include "view.h"

#define BRIDGE_ANSWER_DEFAULT_TOPIC "{root}/{site}/{node}/cmd/resend"
#define BRIDGE_ANSWER_DEFAULT_REPLY "{root}/{site}/{node}/reply/resend"
/* The cloud publish tags of answers have this bit; forward.c's never do
 * (they are inbox sequences). */
#define BRIDGE_ANSWER_TAG (UINT64_C(1) << 63)

typedef struct bridge_answer bridge_answer;

typedef struct bridge_answer_opts {
	const char *root;	 /* the edge's topic root, {root} */
	const char *event_topic; /* cloud.topic: where an event goes on the cloud */
	const char *topic;	 /* requests on the cloud: {root} {site} {node} levels */
	const char *reply_topic; /* answers on the cloud, same placeholders */
	const char *client_id;	 /* relayed request ids begin with it */
	uint32_t rate;		 /* messages published a second, at least 1 */
	size_t queue;		 /* requests waiting at most, at least 1 */
	uint64_t relay_ms;	 /* a relay unanswered this long is answered busy */
	size_t event_max_bytes;	 /* a larger edge message is no answer */
	/* cloud.format batch: events go as batches of one (NULL: as events). */
	const es_batch_enc_opts *batch;
} bridge_answer_opts;

typedef struct bridge_answer_deps {
	es_journal *journal; /* the inbox */
	void *ctx;
	/* QoS 1 on the cloud link; ES_EBUSY / ES_ENOTCONN: no room now. */
	es_err (*publish)(void *ctx, const char *topic, const void *payload, size_t len,
			  uint64_t tag);
	/* A request to node ("site/node") over its edge link. */
	es_err (*relay)(void *ctx, const char *node, const char *topic, const void *payload,
			size_t len);
	/* Optional (NULL: every node): whether node is one of this bridge's
	 * (its status was seen). Requests for other nodes are another site's
	 * bridge's business: ignored, not answered. */
	bool (*knows)(void *ctx, const char *node);
} bridge_answer_deps;

/* Checks the templates (why[0..cap) on ES_EINVAL: each of {site} and
 * {node} exactly once, each a whole level; no wildcard), opens a reader of
 * the inbox. Copies o's strings. */
es_err bridge_answer_new(const bridge_answer_opts *o, const bridge_answer_deps *d,
			 bridge_answer **out, char *why, size_t cap);
void bridge_answer_free(bridge_answer *a); /* NULL ok */

/* Only checks a template, as bridge_answer_new does. */
es_err bridge_answer_check_topic(const char *tmpl, char *why, size_t cap);

/* The filter to subscribe to on the cloud: the request template with
 * {site} and {node} as '+'. */
const char *bridge_answer_filter(const bridge_answer *a);

/* A message on the cloud subscription. */
void bridge_answer_request(bridge_answer *a, const char *topic, const void *payload, size_t len);

/* A message from the edge: an event of <root>/<site>/<node>/ev/<type> is
 * published to the cloud when a relay waits for it. Cheap when none waits. */
void bridge_answer_event(bridge_answer *a, const char *topic, const void *payload, size_t len);

/* A re-send reply from node over the edge; true when it answered one of our
 * relays (and went to the cloud). */
bool bridge_answer_reply(bridge_answer *a, const char *node, const void *payload, size_t len);

/* Every tick: re-publishes from the inbox within the rate, times relays out. */
void bridge_answer_tick(bridge_answer *a);

void bridge_answer_stats_get(bridge_answer *a, bridge_answer_stats *out);

#endif
