/* edge.c - the edge links: an es_mqtt per edge broker, the node routes,
 * and each link's state for the HTTP threads.
 *
 * Lock: `lock` guards every link's `shown`; everything else is the loop
 * thread's.
 */
#include "edge.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes.h"
#include "topic.h"

struct link {
	bridge_edge *e;
	size_t index;
	char *url;
	es_mqtt *mqtt;
	bool stopped;
	bridge_edge_stats shown; /* under e->lock */
};

struct route {
	size_t link; /* the link the node was last heard on */
};

struct bridge_edge {
	bridge_edge_deps d;
	char *root;
	struct link *links;
	size_t nlinks, nstopped;
	bridge_nodes *routes;
	pthread_mutex_t lock;
};

/* ---- the links' callbacks (loop thread) ---------------------------------- */

static void on_down(void *ctx, const char *cause, uint64_t retry_ms)
{
	struct link *l = ctx;
	bridge_edge *e = l->e;
	(void)cause;
	if (retry_ms || l->stopped)
		return;
	l->stopped = true;
	if (++e->nstopped == e->nlinks && e->d.stopped)
		e->d.stopped(e->d.ctx);
}

static void on_published(void *ctx, uint64_t tag, es_err err)
{
	/* re-send requests: a lost one is asked again at the next retry */
	(void)ctx;
	(void)tag;
	(void)err;
}

/* Notes the link the message's node was heard on, then hands it on. */
static void on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
	struct link *l = ctx;
	bridge_edge *e = l->e;
	es_topic_parts p;
	char node[BRIDGE_NODE_MAX];
	if (!es_topic_split(topic, e->root, &p) &&
	    (size_t)snprintf(node, sizeof node, "%.*s/%.*s", (int)p.site_len, p.site,
			     (int)p.node_len, p.node) < sizeof node) {
		struct route *r = bridge_nodes_get(e->routes, node);
		if (r)
			r->link = l->index;
	}
	e->d.message(e->d.ctx, topic, payload, len);
}

/* ---- life ------------------------------------------------------------------ */

static es_err make_link(bridge_edge *e, const bridge_edge_opts *o, size_t i)
{
	struct link *l = &e->links[i];
	es_mqtt_opts m = o->mqtt;
	*l = (struct link){.e = e, .index = i};
	if (!(l->url = strdup(o->urls[i])))
		return ES_ENOMEM;
	l->shown.url = l->url;
	m.url = l->url;
	m.urls = NULL;
	m.nurls = 0;
	m.cbs = (es_mqtt_cbs){
		.disconnected = on_down, .published = on_published, .message = on_message};
	m.ctx = l;
	es_err err = es_mqtt_new(e->d.loop, &m, &l->mqtt);
	for (size_t s = 0; !err && s < o->nsubs; s++)
		err = es_mqtt_subscribe(l->mqtt, o->subs[s].filter, o->subs[s].qos);
	return err;
}

es_err bridge_edge_new(const bridge_edge_opts *o, const bridge_edge_deps *d, bridge_edge **out)
{
	if (!o || !o->nurls || !o->root || !d || !d->loop || !d->message || !out)
		return ES_EINVAL;
	bridge_edge *e = calloc(1, sizeof *e);
	if (!e)
		return ES_ENOMEM;
	pthread_mutex_init(&e->lock, NULL);
	e->d = *d;
	e->nlinks = o->nurls;
	es_err err = ES_ENOMEM;
	if (!(e->root = strdup(o->root)) || !(e->links = calloc(e->nlinks, sizeof *e->links)) ||
	    (err = bridge_nodes_new(sizeof(struct route), &e->routes)))
		goto fail;
	for (size_t i = 0; i < e->nlinks; i++)
		if ((err = make_link(e, o, i)))
			goto fail;
	*out = e;
	return ES_OK;
fail:
	bridge_edge_free(e);
	return err;
}

void bridge_edge_free(bridge_edge *e)
{
	if (!e)
		return;
	for (size_t i = 0; e->links && i < e->nlinks; i++) {
		es_mqtt_free(e->links[i].mqtt);
		free(e->links[i].url);
	}
	free(e->links);
	bridge_nodes_free(e->routes, NULL, NULL);
	free(e->root);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

es_err bridge_edge_start(bridge_edge *e)
{
	es_err err = ES_OK;
	for (size_t i = 0; !err && i < e->nlinks; i++)
		err = es_mqtt_start(e->links[i].mqtt);
	return err;
}

void bridge_edge_stop(bridge_edge *e)
{
	for (size_t i = 0; i < e->nlinks; i++)
		es_mqtt_disconnect(e->links[i].mqtt, 0);
}

/* ---- sending ------------------------------------------------------------------ */

es_err bridge_edge_send(bridge_edge *e, const char *node, const char *topic, const void *payload,
			size_t len)
{
	const struct route *r = bridge_nodes_find(e->routes, node);
	return es_mqtt_publish(e->links[r ? r->link : 0].mqtt, topic, payload, len, 1, false, 0);
}

void bridge_edge_send_all(bridge_edge *e, const char *topic, const void *payload, size_t len)
{
	for (size_t i = 0; i < e->nlinks; i++)
		es_mqtt_publish(e->links[i].mqtt, topic, payload, len, 0, false, 0);
}

size_t bridge_edge_count(const bridge_edge *e)
{
	return e->nlinks;
}

void bridge_edge_show(bridge_edge *e)
{
	es_mqtt_stats st;
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->nlinks; i++) {
		struct link *l = &e->links[i];
		es_mqtt_stats_get(l->mqtt, &st);
		l->shown.up = st.connected;
		l->shown.subscribed = st.subscribed;
		l->shown.connects = st.connects;
		l->shown.failures = st.failures;
	}
	pthread_mutex_unlock(&e->lock);
}

void bridge_edge_stats_get(bridge_edge *e, size_t i, bridge_edge_stats *out)
{
	pthread_mutex_lock(&e->lock);
	*out = e->links[i].shown;
	pthread_mutex_unlock(&e->lock);
}
