/* bridge_internal.h - the bridge's state, shared by its files: bridge.c
 * (life), intake.c (edge side and the inbox thread), forward.c (cloud side),
 * repair.c (gap tracking, re-send requests, peers), api.c (HTTP).
 *
 * Threads: the loop thread owns everything not marked otherwise. The inbox
 * thread owns its batch while it is being journaled; `in.lock` guards the
 * queues between them. HTTP workers read `view` under `view_lock` and use the
 * journal (thread-safe) and api_reader under api_lock.
 */
#ifndef BRIDGE_INTERNAL_H
#define BRIDGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "bridge.h"
#include "clock.h"
#include "gap.h"
#include "http.h"
#include "japi.h"
#include "journal.h"
#include "metrics.h"
#include "mqtt.h"
#include "node_metrics.h"
#include "remap.h"
#include "topic.h"

#define NODE_KEY_MAX (2 * ES_TOPIC_ID_MAX + 2)

/* An event taken from an edge broker, on its way into the inbox. */
struct item {
	char *topic, *body;
	size_t len;
	char *id, *type, *subject;
	char origin[NODE_KEY_MAX];
	uint64_t origin_seq;
	size_t link;
	es_append_result res; /* filled by the inbox thread */
	struct item *next;
};

/* The hand-off to the inbox thread and back. */
struct intake {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* guards queue, nqueue, bytes, done, stop */
	pthread_cond_t cond;
	struct item *queue, *queue_tail; /* waiting to be journaled */
	size_t nqueue, bytes;
	struct item *done, *done_tail; /* journaled (or failed), for the loop */
	es_err last_err;
	bool stop;
	es_async *async;
};

struct edge_link {
	struct bridge *b;
	size_t index;
	const char *url;
	es_mqtt *mqtt;
	bool stopped;
};

/* A row read from the inbox, waiting for its turn to go to the cloud. */
struct held {
	uint64_t seq, origin_seq;
	char *type, *body;
	size_t len;
	uint64_t since_ms;
	uint64_t journaled_ms; /* for the forward latency */
};

/* What the bridge knows of one source node. */
struct node {
	char name[NODE_KEY_MAX];
	size_t link;		/* the edge link it was last seen on */
	uint64_t forwarded_max; /* highest origin sequence forwarded */
	uint64_t taken_upto;	/* rows up to this origin sequence were read out of
				   inbox order (to fill a hole): skip them in order */
	struct held *held;	/* held[first..first+nheld), sorted by origin_seq */
	size_t first, nheld, capheld;
	bool active; /* on the active list */
	struct node *next_hash, *next_active;
};

struct forward {
	uint64_t cursor;     /* highest inbox sequence read */
	bool more;	     /* rows may wait beyond cursor */
	size_t rows, bytes;  /* held in memory */
	struct node **table; /* hash table of nodes */
	size_t nbuckets, nnodes;
	struct node *active; /* nodes with held rows */
	uint64_t forwarded, acked, out_of_order, refused;
	uint64_t next_due_ms; /* a held row's wait ends */
	es_async *pump;	      /* one pump per batch of completions */
	struct node **heap;   /* drain_nodes' scratch */
	size_t capheap;
};

/* Counters and states the HTTP threads may read (under view_lock). */
struct view {
	size_t nlinks;
	bool edge_up[16];
	uint64_t edge_failures[16], edge_connects[16];
	bool cloud_up;
	uint64_t cloud_failures, cloud_inflight, cloud_connects, cloud_failovers;
	char cloud_error[160];
	char cloud_url[256]; /* the cluster node in use or being tried */
	size_t cloud_node;   /* its index in cloud.url */
	es_gap_stats gap;
	uint64_t forwarded, acked, out_of_order, held, refused;
	uint64_t received, invalid, duplicates, overload, inbox_errors, lost_replies;
};

enum bphase { B_NEW, B_RUNNING, B_DRAINING, B_STOPPING, B_DONE };

struct bridge {
	const bridge_settings *s;
	es_loop *loop;
	es_journal *journal;
	es_journal_reader *reader;
	es_http *http;
	es_japi *japi; /* the inbox's REST API and live stream */
	bridge_remap *remap;
	es_gap *gap;
	struct intake in;
	struct edge_link *links;
	size_t nlinks;
	es_mqtt *cloud;
	struct forward fw;

	char client_edge[160], client_cloud[160];
	char filter[ES_TOPIC_MAX], peer_topic[ES_TOPIC_MAX];
	char *edge_password, *cloud_password;

	uint64_t gap_covers; /* the inbox sequence the tracker has taken in */
	bool gap_dirty;
	uint64_t last_save_ms;
	char *peer_report; /* share group: what we stored since the last report */
	size_t peer_len, peer_cap;

	uint64_t received, invalid, duplicates, overload, inbox_errors, lost_replies;
	es_timer_id tick, drain_timer;
	enum bphase phase;
	size_t links_stopped;
	_Atomic bool closing;

	pthread_mutex_t view_lock; /* guards view */
	struct view view;
	pthread_mutex_t api_lock; /* guards api_reader */
	es_journal_reader *api_reader;
	es_node_metrics *metrics; /* metrics.c; thread-safe */
	struct bridge_metrics *metrics_state;
};

/* intake.c */
es_err intake_start(bridge *b);
void intake_stop(bridge *b);
void intake_message(bridge *b, size_t link, const char *topic, const void *payload, size_t len);

/* forward.c */
es_err forward_init(bridge *b);
void forward_free(bridge *b);
void forward_reset(bridge *b);
void forward_pump(bridge *b);
void forward_published(bridge *b, uint64_t tag, es_err err);
struct node *forward_node(bridge *b, const char *name);

/* repair.c */
es_err repair_restore(bridge *b);
void repair_committed(bridge *b, const struct item *it);
void repair_duplicate(bridge *b, const struct item *it);
void repair_status(bridge *b, const char *node, const char *payload, size_t len);
void repair_reply(bridge *b, const char *node, const char *payload, size_t len);
void repair_peer(bridge *b, const char *payload, size_t len);
void repair_tick(bridge *b);
void repair_save(bridge *b);

/* bridge.c */
void bridge_view_update(bridge *b);

/* api.c */
es_err bridge_api_register(bridge *b);
char *bridge_status_json(void *ctx); /* /api/status as text; any thread */

/* metrics.c: the registry and GET /metrics (bridge_metrics_init, after
 * bridge_api_register); forwards, acks and their latency (loop thread);
 * the http module's request hook (any thread). */
es_err bridge_metrics_init(bridge *b);
void bridge_metrics_free(bridge *b);
void bridge_metrics_forwarded(bridge *b, uint64_t seq, uint64_t journaled_ms);
void bridge_metrics_acked(bridge *b, uint64_t seq);
void bridge_metrics_reset(bridge *b); /* connection lost */
void bridge_metrics_on_request(void *ctx, const char *method, const char *route, int status,
			       double seconds);

#endif
