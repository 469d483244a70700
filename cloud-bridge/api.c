/* api.c - the bridge's HTTP API (api.h).
 *
 * Lock: `lock` guards `reader` (the HTTP workers share it).
 */
#include "api.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dashboard.h"
#include "japi.h"
#include "lanes.h"

struct bridge_api {
	bridge_api_deps d;
	char *node_id, *site, *filter, *journal_path;
	uint64_t journal_max_bytes;
	size_t cloud_nodes;
	es_japi *japi;
	pthread_mutex_t lock;
	es_journal_reader *reader;
};

static int healthz(es_http_req *req, void *ctx)
{
	bridge_api *a = ctx;
	bridge_view v;
	a->d.view(a->d.ctx, &v);
	bool writable = es_journal_writable(a->d.journal);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", v.closing ? "stopping" : writable ? "ok" : "failing");
	cJSON_AddBoolToObject(o, "journal_writable", writable);
	return es_japi_reply_json(req, !v.closing && writable ? 200 : 503, o);
}

/* Ready to take events: started, not stopping, the inbox committing, and
 * every edge broker acknowledged the subscriptions (so what an agent
 * publishes from now on reaches the bridge). The cloud link is not needed:
 * the inbox holds what it cannot forward yet. */
static int readyz(es_http_req *req, void *ctx)
{
	bridge_api *a = ctx;
	bridge_view v;
	a->d.view(a->d.ctx, &v);
	bool edge = v.nedges > 0;
	for (size_t i = 0; i < v.nedges; i++)
		edge = edge && v.edge[i].subscribed;
	es_ready_check checks[] = {
		{"running", v.running && !v.closing},
		{"inbox", es_journal_writable(a->d.journal)},
		{"edge", edge},
	};
	return es_japi_reply_ready(req, checks, sizeof checks / sizeof checks[0]);
}

/* One priority lane of the uplink (lanes.h): eta_s is the backlog over the
 * drain rate, 0 when the backlog is empty, null when it is not draining. */
static void add_lane(const bridge_lane_stats *l, int lane, uint64_t now, cJSON *lanes)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(lanes, o)) {
		cJSON_Delete(o);
		return;
	}
	cJSON_AddStringToObject(o, "lane", bridge_lane_name(lane));
	cJSON_AddNumberToObject(o, "backlog", (double)l->backlog);
	cJSON_AddNumberToObject(
		o, "oldest_age_s",
		l->oldest_ms && now > l->oldest_ms ? (double)(now - l->oldest_ms) / 1000.0 : 0.0);
	cJSON_AddNumberToObject(o, "held", (double)l->held);
	cJSON_AddNumberToObject(o, "sent", (double)l->sent);
	cJSON_AddNumberToObject(o, "acked", (double)l->acked);
	cJSON_AddNumberToObject(o, "expired", (double)l->expired);
	cJSON_AddNumberToObject(o, "bytes", (double)l->bytes);
	cJSON_AddNumberToObject(o, "bytes_per_event",
				l->sent ? (double)l->bytes / (double)l->sent : 0.0);
	cJSON_AddNumberToObject(o, "drain_per_s", (double)l->drain_per_s);
	if (l->backlog && !l->drain_per_s)
		cJSON_AddNullToObject(o, "eta_s");
	else
		cJSON_AddNumberToObject(
			o, "eta_s", l->backlog ? (double)l->backlog / (double)l->drain_per_s : 0.0);
}

static void add_lanes(const bridge_forward_stats *f, cJSON *c)
{
	uint64_t now = es_clock_wall_ms();
	cJSON *lanes = cJSON_AddArrayToObject(c, "lanes");
	for (int i = 0; lanes && i < BRIDGE_LANES; i++)
		add_lane(&f->lanes[i], i, now, lanes);
	cJSON_AddNumberToObject(c, "inflight_bytes", (double)f->inflight_bytes);
	cJSON_AddNumberToObject(c, "inflight_cap", (double)f->inflight_cap);
}

static void add_cloud(const bridge_api *a, const bridge_view *v, cJSON *o)
{
	cJSON *c = cJSON_AddObjectToObject(o, "cloud");
	cJSON_AddStringToObject(c, "url", v->cloud.url);
	cJSON_AddNumberToObject(c, "node", (double)v->cloud.node);
	cJSON_AddNumberToObject(c, "nodes", (double)a->cloud_nodes);
	cJSON_AddStringToObject(c, "state", v->cloud.up ? "connected" : "disconnected");
	cJSON_AddNumberToObject(c, "failures", (double)v->cloud.failures);
	cJSON_AddNumberToObject(c, "failovers", (double)v->cloud.failovers);
	cJSON_AddNumberToObject(c, "inflight", (double)v->cloud.inflight);
	cJSON_AddNumberToObject(c, "forwarded", (double)v->forward.forwarded);
	cJSON_AddNumberToObject(c, "batches", (double)v->forward.batches);
	cJSON_AddNumberToObject(c, "batch_bytes", (double)v->forward.batch_bytes);
	cJSON_AddNumberToObject(c, "acked", (double)v->forward.acked);
	cJSON_AddNumberToObject(c, "refused", (double)v->forward.refused);
	cJSON_AddStringToObject(c, "last_error", v->cloud.error);
	add_lanes(&v->forward, c);
}

static void add_links(const bridge_api *a, const bridge_view *v, cJSON *o)
{
	cJSON *edges = cJSON_AddArrayToObject(o, "edge");
	for (size_t i = 0; i < v->nedges; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddItemToArray(edges, e);
		cJSON_AddStringToObject(e, "url", v->edge[i].url);
		cJSON_AddStringToObject(e, "state", v->edge[i].up ? "connected" : "disconnected");
		cJSON_AddBoolToObject(e, "subscribed", v->edge[i].subscribed);
		cJSON_AddNumberToObject(e, "failures", (double)v->edge[i].failures);
	}
	add_cloud(a, v, o);
}

static void add_inbox(bridge_api *a, const bridge_view *v, cJSON *o)
{
	es_journal_stats st = {0};
	es_journal_counters c;
	es_journal_counters_get(a->d.journal, &c);
	pthread_mutex_lock(&a->lock);
	es_err err = es_journal_stats_get(a->reader, &st);
	pthread_mutex_unlock(&a->lock);
	uint64_t now = es_clock_wall_ms();
	cJSON *j = cJSON_AddObjectToObject(o, "inbox");
	cJSON_AddStringToObject(j, "path", a->journal_path);
	cJSON_AddNumberToObject(j, "received", (double)v->intake.received);
	cJSON_AddNumberToObject(j, "batches_received", (double)v->intake.batches);
	cJSON_AddNumberToObject(j, "journaled", (double)c.appended);
	cJSON_AddNumberToObject(j, "backlog", (double)c.pending);
	cJSON_AddNumberToObject(j, "oldest_unforwarded_age_s",
				!err && st.oldest_pending_ms && now > st.oldest_pending_ms
					? (double)(now - st.oldest_pending_ms) / 1000.0
					: 0.0);
	cJSON_AddNumberToObject(j, "duplicates_dropped", (double)v->intake.duplicates);
	cJSON_AddNumberToObject(j, "invalid", (double)v->intake.invalid);
	cJSON_AddNumberToObject(j, "conflicts", (double)v->intake.conflicts);
	cJSON_AddNumberToObject(j, "deadletters", (double)st.deadletters);
	cJSON_AddNumberToObject(j, "overload_dropped", (double)v->intake.overload);
	cJSON_AddNumberToObject(j, "refused_full", (double)c.refused_full);
	cJSON_AddNumberToObject(j, "errors", (double)v->intake.errors);
	cJSON_AddNumberToObject(j, "used_bytes", (double)st.used_bytes);
	cJSON_AddNumberToObject(j, "max_bytes", (double)a->journal_max_bytes);
}

/* Re-send requests that came over the cloud (answer.c). */
static void add_answers(const bridge_answer_stats *a, cJSON *o)
{
	cJSON *r = cJSON_AddObjectToObject(o, "cloud_resend");
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {{"requests", a->requests}, {"from_inbox", a->from_inbox},
		 {"relayed", a->relayed},   {"passed", a->passed},
		 {"dropped", a->dropped},   {"ok", a->ok},
		 {"partial", a->partial},   {"gone", a->gone},
		 {"busy", a->busy},	    {"invalid", a->invalid},
		 {"waiting", a->waiting}};
	for (size_t i = 0; r && i < sizeof f / sizeof f[0]; i++)
		cJSON_AddNumberToObject(r, f[i].name, (double)f[i].v);
}

static void add_gaps(const bridge_view *v, cJSON *o)
{
	const es_gap_stats *gap = &v->repair.gap;
	cJSON *g = cJSON_AddObjectToObject(o, "gaps");
	cJSON_AddNumberToObject(g, "nodes", (double)gap->nodes);
	cJSON_AddNumberToObject(g, "holes_open", (double)gap->holes_open);
	cJSON_AddNumberToObject(g, "missing", (double)gap->missing);
	cJSON_AddNumberToObject(g, "holes_detected", (double)gap->holes_detected);
	cJSON_AddNumberToObject(g, "filled", (double)gap->filled);
	cJSON_AddNumberToObject(g, "lost", (double)gap->lost);
	cJSON_AddNumberToObject(g, "requests", (double)gap->requests);
	cJSON_AddNumberToObject(g, "gone_replies", (double)v->repair.gone_replies);
	cJSON_AddNumberToObject(g, "voided", (double)gap->voided);
	cJSON_AddNumberToObject(g, "epochs", (double)gap->resets);
	cJSON *r = cJSON_AddObjectToObject(o, "order");
	cJSON_AddNumberToObject(r, "held", (double)v->forward.held);
	cJSON_AddNumberToObject(r, "out_of_order", (double)v->forward.out_of_order);
}

char *bridge_api_status_json(void *api)
{
	bridge_api *a = api;
	bridge_view v;
	a->d.view(a->d.ctx, &v);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "bridge");
	cJSON_AddStringToObject(o, "node", a->node_id);
	cJSON_AddStringToObject(o, "site", a->site);
	cJSON_AddStringToObject(o, "state", v.closing ? "stopping" : "running");
	cJSON_AddStringToObject(o, "filter", a->filter);
	add_links(a, &v, o);
	add_inbox(a, &v, o);
	add_gaps(&v, o);
	add_answers(&v.answer, o);
	es_japi_add_recent_errors(o);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static int status(es_http_req *req, void *ctx)
{
	char *text = bridge_api_status_json(ctx);
	if (!text)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	es_http_reply(req, 200, "application/json", text, strlen(text));
	cJSON_free(text);
	return 200;
}

/* ---- life ------------------------------------------------------------------ */

static bool copy(char **dst, const char *src)
{
	return (*dst = strdup(src ? src : "")) != NULL;
}

static es_err route(bridge_api *a, int live_max)
{
	es_http *h = a->d.http;
	es_err err = es_http_route_flags(h, "GET", "/healthz", ES_ROUTE_PUBLIC, healthz, a);
	if (!err)
		err = es_http_route_flags(h, "GET", "/readyz", ES_ROUTE_PUBLIC, readyz, a);
	if (!err)
		err = es_http_route(h, "GET", "/api/status", status, a);
	if (!err)
		err = es_japi_new(&(es_japi_opts){.http = h,
						  .journal = a->d.journal,
						  .status_json = bridge_api_status_json,
						  .ctx = a,
						  .live_max = live_max},
				  &a->japi);
	if (!err)
		err = es_http_assets(h, es_dashboard_assets, es_dashboard_assets_count);
	return err;
}

es_err bridge_api_new(const bridge_api_opts *o, const bridge_api_deps *d, bridge_api **out)
{
	if (!o || !d || !d->http || !d->journal || !d->view || !out)
		return ES_EINVAL;
	bridge_api *a = calloc(1, sizeof *a);
	if (!a)
		return ES_ENOMEM;
	a->d = *d;
	a->journal_max_bytes = o->journal_max_bytes;
	a->cloud_nodes = o->cloud_nodes;
	pthread_mutex_init(&a->lock, NULL);
	es_err err = ES_ENOMEM;
	if (!copy(&a->node_id, o->node_id) || !copy(&a->site, o->site) ||
	    !copy(&a->filter, o->filter) || !copy(&a->journal_path, o->journal_path) ||
	    (err = es_journal_reader_new(d->journal, &a->reader)) ||
	    (err = route(a, o->live_max))) {
		bridge_api_free(a);
		return err;
	}
	*out = a;
	return ES_OK;
}

void bridge_api_stop(bridge_api *a)
{
	if (a)
		es_japi_stop(a->japi);
}

void bridge_api_free(bridge_api *a)
{
	if (!a)
		return;
	es_japi_free(a->japi);
	es_journal_reader_free(a->reader);
	free(a->node_id);
	free(a->site);
	free(a->filter);
	free(a->journal_path);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
