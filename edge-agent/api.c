/* api.c - GET /healthz, GET /readyz, GET /api/status, GET /api/devices and POST
 * /api/replay (api.h). On the HTTP worker threads: reads the journal (its
 * reader under the lock given), the view's copy of the loop's state, and
 * hands replays to the re-send service. */
#include "api.h"

#include <cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "japi.h"

struct agent_api {
	agent_api_opts o;
};

/* ---- GET /healthz ------------------------------------------------------------ */

static bool stopping(agent_api *api)
{
	agent_view_data v;
	agent_view_get(api->o.view, &v);
	return v.stopping;
}

static int healthz(es_http_req *req, void *ctx)
{
	agent_api *api = ctx;
	es_journal_counters c;
	es_journal_counters_get(api->o.journal, &c);
	bool closing = stopping(api);
	bool writable = es_journal_writable(api->o.journal);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", closing ? "stopping" : writable ? "ok" : "failing");
	cJSON_AddBoolToObject(o, "journal_writable", writable);
	cJSON_AddNumberToObject(o, "pending", (double)c.pending);
	return es_japi_reply_json(req, !closing && writable ? 200 : 503, o);
}

/* ---- GET /readyz ------------------------------------------------------------- */

/* Ready to take events: started (links and MQTT client running), not
 * stopping, the journal committing. The broker is not needed: events are
 * journaled first and published once it is there. */
static int readyz(es_http_req *req, void *ctx)
{
	agent_api *api = ctx;
	agent_view_data v;
	agent_view_get(api->o.view, &v);
	es_ready_check checks[] = {
		{"running", v.running && !v.stopping},
		{"journal", es_journal_writable(api->o.journal)},
	};
	return es_japi_reply_ready(req, checks, sizeof checks / sizeof checks[0]);
}

/* ---- GET /api/status ------------------------------------------------------------ */

static void add_broker(agent_api *api, const agent_view_data *s, cJSON *o)
{
	cJSON *b = cJSON_AddObjectToObject(o, "broker");
	cJSON_AddStringToObject(b, "url", api->o.broker_url);
	cJSON_AddStringToObject(b, "client_id", api->o.client_id);
	cJSON_AddStringToObject(b, "state", s->connected ? "connected" : "disconnected");
	cJSON_AddNumberToObject(b, "connects", (double)s->connects);
	cJSON_AddNumberToObject(b, "failures", (double)s->failures);
	cJSON_AddNumberToObject(b, "inflight", (double)s->inflight);
	cJSON_AddNumberToObject(b, "published", (double)s->published);
	cJSON_AddNumberToObject(b, "acked", (double)s->acked);
	cJSON_AddNumberToObject(b, "resent", (double)s->resent);
	cJSON_AddNumberToObject(b, "refused", (double)s->refused);
	cJSON_AddNumberToObject(b, "batches", (double)s->batches);
	cJSON_AddStringToObject(b, "last_error", s->last_error);
}

static void add_counters(cJSON *j, const es_journal_counters *c)
{
	cJSON_AddNumberToObject(j, "appended", (double)c->appended);
	cJSON_AddNumberToObject(j, "duplicates", (double)c->duplicates);
	cJSON_AddNumberToObject(j, "refused_full", (double)c->refused_full);
	cJSON_AddNumberToObject(j, "evicted", (double)c->evicted);
	cJSON_AddNumberToObject(j, "expired", (double)c->expired);
	cJSON_AddNumberToObject(j, "commits", (double)c->commits);
	cJSON_AddNumberToObject(j, "errors", (double)c->errors);
}

static void add_journal(agent_api *api, cJSON *o)
{
	es_journal *jl = api->o.journal;
	es_journal_stats st = {0};
	es_journal_counters c;
	es_journal_counters_get(jl, &c);
	pthread_mutex_lock(api->o.reader_lock);
	es_err err = es_journal_stats_get(api->o.reader, &st);
	pthread_mutex_unlock(api->o.reader_lock);
	uint64_t now = es_clock_wall_ms();
	cJSON *j = cJSON_AddObjectToObject(o, "journal");
	cJSON_AddStringToObject(j, "path", api->o.journal_path);
	cJSON_AddStringToObject(j, "id", es_journal_id(jl));
	cJSON_AddBoolToObject(j, "writable", es_journal_writable(jl));
	cJSON_AddNumberToObject(j, "pending", (double)c.pending);
	cJSON_AddNumberToObject(j, "oldest_pending_age_s",
				!err && st.oldest_pending_ms && now > st.oldest_pending_ms
					? (double)(now - st.oldest_pending_ms) / 1000.0
					: 0.0);
	cJSON_AddNumberToObject(j, "latest_seq", (double)c.latest_seq);
	cJSON_AddNumberToObject(j, "acked_seq", (double)st.acked_seq);
	cJSON_AddNumberToObject(j, "oldest_seq", (double)st.oldest_seq);
	cJSON_AddNumberToObject(j, "used_bytes", (double)st.used_bytes);
	cJSON_AddNumberToObject(j, "file_bytes", (double)st.file_bytes);
	cJSON_AddNumberToObject(j, "max_bytes", (double)api->o.journal_max_bytes);
	add_counters(j, &c);
	char last[160];
	es_journal_last_error(jl, last, sizeof last);
	cJSON_AddStringToObject(j, "last_error", last);
}

static void add_ingest(agent_api *api, cJSON *o)
{
	agent_ingest_stats s;
	agent_ingest_stats_get(api->o.ingest, &s);
	cJSON *i = cJSON_AddObjectToObject(o, "ingest");
	cJSON_AddNumberToObject(i, "accepted", (double)s.accepted);
	cJSON *r = cJSON_AddObjectToObject(i, "rejected");
	for (int k = 0; k < AGENT_INGEST_REASONS; k++)
		cJSON_AddNumberToObject(r, agent_ingest_reason_name((enum agent_ingest_reason)k),
					(double)s.rejected[k]);
}

static void add_devices(agent_api *api, cJSON *o)
{
	char *text = api->o.links ? links_status_json(api->o.links) : NULL;
	cJSON *d = text ? cJSON_Parse(text) : NULL;
	free(text);
	if (d)
		cJSON_AddItemToObject(o, "devices", d);
}

char *agent_api_status_json(void *ctx)
{
	agent_api *api = ctx;
	agent_view_data v;
	agent_view_get(api->o.view, &v);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "agent");
	cJSON_AddStringToObject(o, "node", api->o.node);
	cJSON_AddStringToObject(o, "site", api->o.site);
	cJSON_AddStringToObject(o, "source", api->o.source);
	cJSON_AddStringToObject(o, "boot_id", api->o.boot_id);
	cJSON_AddStringToObject(o, "state", v.stopping ? "stopping" : "running");
	add_broker(api, &v, o);
	add_journal(api, o);
	add_ingest(api, o);
	add_devices(api, o);
	es_japi_add_recent_errors(o);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static int status(es_http_req *req, void *ctx)
{
	char *text = agent_api_status_json(ctx);
	if (!text)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	int rc = es_http_reply(req, 200, "application/json", text, strlen(text));
	cJSON_free(text);
	return rc;
}

/* ---- GET /api/devices ------------------------------------------------------ */

static int devices(es_http_req *req, void *ctx)
{
	agent_api *api = ctx;
	char *text = api->o.links ? links_devices_json(api->o.links) : strdup("{\"devices\":[]}");
	if (!text)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	int rc = es_http_reply(req, 200, "application/json", text, strlen(text));
	free(text);
	return rc;
}

/* ---- POST /api/replay ------------------------------------------------------ */

/* {"from": N, "to": M}, 1 <= N <= M, whole numbers; false if not. */
static bool parse_range(const char *body, size_t len, uint64_t *from, uint64_t *to,
			const char **field)
{
	cJSON *o = cJSON_ParseWithLength(body, len);
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "from");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "to");
	bool ok = cJSON_IsNumber(f) && cJSON_IsNumber(t) && f->valuedouble >= 1 &&
		  t->valuedouble >= f->valuedouble && t->valuedouble < 9007199254740992.0 &&
		  f->valuedouble == (double)(uint64_t)f->valuedouble &&
		  t->valuedouble == (double)(uint64_t)t->valuedouble;
	if (ok)
		*from = (uint64_t)f->valuedouble, *to = (uint64_t)t->valuedouble;
	*field = !cJSON_IsNumber(f) ? "from" : "to";
	cJSON_Delete(o);
	return ok;
}

static int replay_answer(es_http_req *req, uint64_t from, uint64_t to, const agent_resend_answer *a)
{
	char body[200];
	if (a->status != ES_RESEND_OK)
		return es_http_reply_error(req,
					   a->status == ES_RESEND_GONE	 ? 404
					   : a->status == ES_RESEND_BUSY ? 503
									 : 400,
					   a->why, NULL);
	int n = snprintf(body, sizeof body,
			 "{\"replaying\":{\"from\":%llu,\"to\":%llu,\"events\":%llu,"
			 "\"request_id\":\"%s\"}}",
			 (unsigned long long)from, (unsigned long long)to,
			 (unsigned long long)a->events, a->request_id);
	return es_http_reply(req, 202, "application/json", body, (size_t)n);
}

static int replay(es_http_req *req, void *ctx)
{
	agent_api *api = ctx;
	char *body;
	size_t len;
	uint64_t from = 0, to = 0;
	const char *field;
	agent_resend_answer a;
	if (es_http_read_body(req, &body, &len))
		return es_http_reply_error(req, 400, "could not read the request body", NULL);
	bool ok = parse_range(body, len, &from, &to, &field);
	free(body);
	if (!ok)
		return es_http_reply_error(req, 400,
					   "the body must be {\"from\": N, \"to\": M} with "
					   "1 <= N <= M, whole numbers",
					   field);
	es_err err = agent_resend_ask(api->o.resend, from, to, &a);
	if (err == ES_ENOMEM)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	if (err)
		return es_http_reply_error(req, 503, "the agent is busy or shutting down", NULL);
	return replay_answer(req, from, to, &a);
}

/* ---- setup ------------------------------------------------------------------ */

es_err agent_api_new(const agent_api_opts *o, agent_api **out)
{
	if (!o || !o->http || !o->journal || !o->reader || !o->reader_lock || !o->view ||
	    !o->ingest || !o->resend || !out)
		return ES_EINVAL;
	agent_api *api = calloc(1, sizeof *api);
	if (!api)
		return ES_ENOMEM;
	api->o = *o;
	es_err err = es_http_route_flags(o->http, "GET", "/healthz", ES_ROUTE_PUBLIC, healthz, api);
	if (!err)
		err = es_http_route_flags(o->http, "GET", "/readyz", ES_ROUTE_PUBLIC, readyz, api);
	if (!err)
		err = es_http_route(o->http, "GET", "/api/status", status, api);
	if (!err)
		err = es_http_route(o->http, "GET", "/api/devices", devices, api);
	if (!err)
		err = es_http_route(o->http, "POST", "/api/replay", replay, api);
	if (err) {
		free(api);
		return err;
	}
	*out = api;
	return ES_OK;
}

void agent_api_free(agent_api *api)
{
	free(api);
}
