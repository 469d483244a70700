/* agent_internal.h - the agent's state, shared by its files (agent.c,
 * publisher.c, resend.c, api.c). Not for use outside edge-agent/.
 *
 * Threads: the loop thread owns everything except what is marked. civetweb
 * workers (api.c) touch only the journal (thread-safe), the atomics, and the
 * snapshot and api_reader under their locks.
 */
#ifndef AGENT_INTERNAL_H
#define AGENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "agent.h"
#include "clock.h"
#include "http.h"
#include "japi.h"
#include "journal.h"
#include "links.h"
#include "metrics.h"
#include "mqtt.h"
#include "node_metrics.h"
#include "topic.h"
#include "uuid.h"

/* What a publish's tag says it was. */
#define TAG_CONTROL 0u		 /* status, replies: no bookkeeping */
#define TAG_RESEND  (1ull << 63) /* | seq: a re-sent event */

struct pub_row {
	uint64_t seq;
	char *type;
	char *body;
	size_t len;
	uint64_t journaled_ms; /* for the publish latency */
};

/* The publisher: pending events, in journal order, within the window. */
struct pub {
	struct pub_row *rows; /* a FIFO of rows read, not yet published */
	size_t head, n, cap, bytes;
	uint64_t cursor; /* highest sequence read into the FIFO */
	uint64_t latest; /* newest committed sequence known */
	bool more;	 /* rows may wait in the journal beyond cursor */
	uint64_t published, acked;
};

struct resend_req {
	uint64_t from, to;   /* as asked */
	uint64_t next, last; /* what is left to send */
	char request_id[64];
	uint64_t gone_from, gone_to;
};

/* The re-send service: a bounded queue served at a bounded rate. */
struct resend {
	struct resend_req *q;
	size_t head, n, cap;
	double tokens;
	uint64_t refill_ms;
	es_timer_id timer;
	uint64_t served, events, gone, busy, invalid;
};

/* A control message waiting for window room. */
struct control_msg {
	char *topic, *payload;
	size_t len;
	bool retain;
	struct control_msg *next;
};

/* What the HTTP threads may read about the loop's state. */
struct snapshot {
	bool connected;
	uint64_t connects, failures, inflight;
	uint64_t published, acked, resent;
	uint64_t connected_since_ms;
	char last_error[160];
};

enum reject_reason { R_MALFORMED, R_INVALID, R_TOO_BIG, R_CONTENT_TYPE, R_FULL, R_COUNT_ };

enum phase { P_NEW, P_RUNNING, P_DRAINING, P_SAYING_OFFLINE, P_DISCONNECTING, P_DONE };

struct agent {
	const agent_settings *s;
	es_loop *loop;
	es_journal *journal;
	es_journal_reader *reader;
	es_mqtt *mqtt;
	es_http *http;
	links *links;  /* the device links; NULL when none is configured */
	es_japi *japi; /* the journal's REST API and live stream */
	es_async *commit_async;
	_Atomic uint64_t committed_seq; /* set by the journal's writer */

	char source[2 * ES_TOPIC_ID_MAX + 3];
	char prefix[ES_TOPIC_MAX]; /* <root>/<site>/<node> */
	char status_topic[ES_TOPIC_MAX], cmd_topic[ES_TOPIC_MAX], reply_topic[ES_TOPIC_MAX];
	char client_id[160];
	char boot_id[ES_UUID_STR];
	char *password;

	struct pub pub;
	struct resend rs;
	struct control_msg *outbox_head, *outbox_tail;
	size_t outbox_n;
	es_timer_id status_timer, drain_timer;
	enum phase phase;
	_Atomic bool closing; /* read by HTTP threads */

	pthread_mutex_t snap_lock; /* guards snap */
	struct snapshot snap;
	pthread_mutex_t api_lock; /* guards api_reader */
	es_journal_reader *api_reader;
	_Atomic uint64_t rejected[R_COUNT_];
	_Atomic uint64_t ingested;
	_Atomic uint64_t refused_by_broker; /* MQTT 5 refusals */
	es_node_metrics *metrics;	    /* metrics.c; thread-safe */
	struct agent_metrics *metrics_state;
};

/* publisher.c */
void pub_init(agent *a);
void pub_free(agent *a);
void pub_reset(agent *a); /* connection lost: forget what was in flight */
void pub_committed(agent *a, uint64_t latest);
void pub_acked(agent *a, uint64_t seq);
void pub_pump(agent *a);
size_t pub_reserve(const agent *a); /* window slots kept for live events */

/* resend.c */
es_err resend_init(agent *a);
void resend_free(agent *a);
void resend_request(agent *a, const char *payload, size_t len);
void resend_pump(agent *a);
/* POST /api/replay: queues [from, to] on the loop thread and answers 202, or
 * 400/404/503 with why (any HTTP thread). */
int resend_http(agent *a, es_http_req *req, uint64_t from, uint64_t to);
bool resend_active(const agent *a);

/* agent.c */
void agent_snapshot_update(agent *a);
/* Queues a QoS 1 control message (status, reply); sent before events. */
void agent_control_send(agent *a, const char *topic, const char *payload, size_t len, bool retain);
void control_pump(agent *a);
void agent_publish_status(agent *a, bool online);
es_err agent_topic(const agent *a, const char *kind, const char *rest, char *buf, size_t cap);

/* api.c */
es_err api_register(agent *a);
char *agent_status_json(void *ctx); /* /api/status as text; any thread */

/* metrics.c: the registry and GET /metrics (agent_metrics_init, after
 * api_register); the publisher's counts and latency (loop thread); the
 * http module's request hook (any thread). */
es_err agent_metrics_init(agent *a);
void agent_metrics_free(agent *a);
void agent_metrics_published(agent *a, uint64_t seq, uint64_t journaled_ms);
void agent_metrics_acked(agent *a, uint64_t seq);
void agent_metrics_reset(agent *a); /* connection lost */
void agent_metrics_on_request(void *ctx, const char *method, const char *route, int status,
			      double seconds);

#endif
