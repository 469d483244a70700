/* api.c - the bridge's HTTP API: /healthz and /api/status. */
#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "bridge_internal.h"

static int healthz(es_http_req *req, void *ctx)
{
	bridge *b = ctx;
	bool closing = atomic_load(&b->closing);
	bool writable = es_journal_writable(b->journal);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", closing ? "stopping" : writable ? "ok" : "failing");
	cJSON_AddBoolToObject(o, "journal_writable", writable);
	return es_japi_reply_json(req, !closing && writable ? 200 : 503, o);
}

static void add_links(bridge *b, const struct view *v, cJSON *o)
{
	cJSON *edges = cJSON_AddArrayToObject(o, "edge");
	for (size_t i = 0; i < v->nlinks; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddItemToArray(edges, e);
		cJSON_AddStringToObject(e, "url", b->links[i].url);
		cJSON_AddStringToObject(e, "state", v->edge_up[i] ? "connected" : "disconnected");
		cJSON_AddNumberToObject(e, "failures", (double)v->edge_failures[i]);
	}
	cJSON *c = cJSON_AddObjectToObject(o, "cloud");
	cJSON_AddStringToObject(c, "url", v->cloud_url);
	cJSON_AddNumberToObject(c, "node", (double)v->cloud_node);
	cJSON_AddNumberToObject(c, "nodes", (double)b->s->cloud.url.n);
	cJSON_AddStringToObject(c, "state", v->cloud_up ? "connected" : "disconnected");
	cJSON_AddNumberToObject(c, "failures", (double)v->cloud_failures);
	cJSON_AddNumberToObject(c, "failovers", (double)v->cloud_failovers);
	cJSON_AddNumberToObject(c, "inflight", (double)v->cloud_inflight);
	cJSON_AddNumberToObject(c, "forwarded", (double)v->forwarded);
	cJSON_AddNumberToObject(c, "acked", (double)v->acked);
	cJSON_AddNumberToObject(c, "refused", (double)v->refused);
	cJSON_AddStringToObject(c, "last_error", v->cloud_error);
}

static void add_inbox(bridge *b, const struct view *v, cJSON *o)
{
	es_journal_stats st = {0};
	es_journal_counters c;
	es_journal_counters_get(b->journal, &c);
	pthread_mutex_lock(&b->api_lock);
	es_err err = es_journal_stats_get(b->api_reader, &st);
	pthread_mutex_unlock(&b->api_lock);
	uint64_t now = es_clock_wall_ms();
	cJSON *j = cJSON_AddObjectToObject(o, "inbox");
	cJSON_AddStringToObject(j, "path", b->s->journal.path);
	cJSON_AddNumberToObject(j, "received", (double)v->received);
	cJSON_AddNumberToObject(j, "journaled", (double)c.appended);
	cJSON_AddNumberToObject(j, "backlog", (double)c.pending);
	cJSON_AddNumberToObject(j, "oldest_unforwarded_age_s",
				!err && st.oldest_pending_ms && now > st.oldest_pending_ms
					? (double)(now - st.oldest_pending_ms) / 1000.0
					: 0.0);
	cJSON_AddNumberToObject(j, "duplicates_dropped", (double)v->duplicates);
	cJSON_AddNumberToObject(j, "invalid", (double)v->invalid);
	cJSON_AddNumberToObject(j, "deadletters", (double)st.deadletters);
	cJSON_AddNumberToObject(j, "overload_dropped", (double)v->overload);
	cJSON_AddNumberToObject(j, "refused_full", (double)c.refused_full);
	cJSON_AddNumberToObject(j, "errors", (double)v->inbox_errors);
	cJSON_AddNumberToObject(j, "used_bytes", (double)st.used_bytes);
	cJSON_AddNumberToObject(j, "max_bytes", (double)b->s->journal.max_bytes);
}

static void add_gaps(const struct view *v, cJSON *o)
{
	cJSON *g = cJSON_AddObjectToObject(o, "gaps");
	cJSON_AddNumberToObject(g, "nodes", (double)v->gap.nodes);
	cJSON_AddNumberToObject(g, "holes_open", (double)v->gap.holes_open);
	cJSON_AddNumberToObject(g, "missing", (double)v->gap.missing);
	cJSON_AddNumberToObject(g, "holes_detected", (double)v->gap.holes_detected);
	cJSON_AddNumberToObject(g, "filled", (double)v->gap.filled);
	cJSON_AddNumberToObject(g, "lost", (double)v->gap.lost);
	cJSON_AddNumberToObject(g, "requests", (double)v->gap.requests);
	cJSON_AddNumberToObject(g, "gone_replies", (double)v->lost_replies);
	cJSON *r = cJSON_AddObjectToObject(o, "order");
	cJSON_AddNumberToObject(r, "held", (double)v->held);
	cJSON_AddNumberToObject(r, "out_of_order", (double)v->out_of_order);
}

char *bridge_status_json(void *ctx)
{
	bridge *b = ctx;
	struct view v;
	pthread_mutex_lock(&b->view_lock);
	v = b->view;
	pthread_mutex_unlock(&b->view_lock);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "bridge");
	cJSON_AddStringToObject(o, "node", b->s->node_id);
	cJSON_AddStringToObject(o, "site", b->s->node_site);
	cJSON_AddStringToObject(o, "state", atomic_load(&b->closing) ? "stopping" : "running");
	cJSON_AddStringToObject(o, "filter", b->filter);
	add_links(b, &v, o);
	add_inbox(b, &v, o);
	add_gaps(&v, o);
	es_japi_add_recent_errors(o);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static int status(es_http_req *req, void *ctx)
{
	char *text = bridge_status_json(ctx);
	if (!text)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	es_http_reply(req, 200, "application/json", text, strlen(text));
	cJSON_free(text);
	return 200;
}

es_err bridge_api_register(bridge *b)
{
	es_err err = es_http_route_flags(b->http, "GET", "/healthz", ES_ROUTE_PUBLIC, healthz, b);
	if (!err)
		err = es_http_route(b->http, "GET", "/api/status", status, b);
	return err;
}
