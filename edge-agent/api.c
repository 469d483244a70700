/* api.c - the agent's HTTP API: ingest (POST /api/events), /healthz and
 * /api/status. Runs on civetweb's worker threads. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent_internal.h"
#include "event.h"
#include "log.h"

#define TAG "api"

/* ---- POST /api/events ------------------------------------------------------ */

static bool json_content_type(const char *ct)
{
	static const char *const ok[] = {"application/json", "application/cloudevents+json",
					 "application/cloudevents-batch+json"};
	if (!ct)
		return false;
	size_t len = strcspn(ct, "; \t");
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		if (len == strlen(ok[i]) && strncasecmp(ct, ok[i], len) == 0)
			return true;
	return false;
}

static int reject(agent *a, es_http_req *req, enum reject_reason why, int status,
		  const char *message, const char *field)
{
	atomic_fetch_add(&a->rejected[why], 1);
	return es_http_reply_error(req, status, message, field);
}

/* 202 {"accepted": n, "events": [{"id", "sequence", "duplicate"}]} */
static int accepted(es_http_req *req, const es_append_result *res, size_t n)
{
	cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "events");
	bool ok = o && list && cJSON_AddNumberToObject(o, "accepted", (double)n);
	for (size_t i = 0; ok && i < n; i++) {
		cJSON *e = cJSON_CreateObject();
		ok = e && cJSON_AddItemToArray(list, e) &&
		     cJSON_AddStringToObject(e, "id", res[i].id) &&
		     cJSON_AddNumberToObject(e, "sequence", (double)res[i].seq) &&
		     cJSON_AddBoolToObject(e, "duplicate", res[i].duplicate);
	}
	char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!text) /* committed, but the answer could not be built */
		return es_http_reply(req, 202, "application/json", "{}", 2);
	int status = es_http_reply(req, 202, "application/json", text, strlen(text));
	cJSON_free(text);
	return status;
}

static int journal_error(agent *a, es_http_req *req, es_err err)
{
	switch (err) {
	case ES_EFULL:
		return reject(a, req, R_FULL, 507,
			      "journal full: the event was not accepted (journal.max_bytes reached "
			      "or disk full); retry later",
			      NULL);
	case ES_ETOOBIG:
		return reject(a, req, R_TOO_BIG, 413, "event larger than event.max_bytes", NULL);
	case ES_ECLOSED:
		return es_http_reply_error(req, 503, "shutting down", NULL);
	default:
		es_error(TAG, "journal append failed: %s", es_strerror(err));
		return es_http_reply_error(req, 500, es_strerror(err), NULL);
	}
}

static int decode_error(agent *a, es_http_req *req, es_err err, const es_verr *v)
{
	if (err == ES_ETOOBIG)
		return reject(a, req, R_TOO_BIG, 413, v->reason, v->field[0] ? v->field : NULL);
	if (err == ES_ENOMEM)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	/* Errors without a field are about the body as a whole (syntax, UTF-8). */
	bool malformed = v->field[0] == '\0';
	return reject(a, req, malformed ? R_MALFORMED : R_INVALID, 400, v->reason,
		      v->field[0] ? v->field : NULL);
}

/* Decodes, journals, answers: 202 only after the commit. */
static int ingest(agent *a, es_http_req *req, const char *body, size_t len)
{
	es_event **evs;
	size_t n;
	es_verr v = {{0}, {0}};
	es_err err = es_event_decode_input(body, len, (size_t)a->s->event_max_bytes,
					   (size_t)a->s->http_max_batch, &evs, &n, &v);
	if (err)
		return decode_error(a, req, err, &v);
	es_append_result *res = calloc(n, sizeof *res);
	int status;
	if (!res)
		status = es_http_reply_error(req, 503, "out of memory", NULL);
	else if ((err = es_journal_append(a->journal, evs, n, res)))
		status = journal_error(a, req, err);
	else {
		atomic_fetch_add(&a->ingested, n);
		status = accepted(req, res, n);
	}
	free(res);
	es_event_free_array(evs, n);
	return status;
}

static int post_events(es_http_req *req, void *ctx)
{
	agent *a = ctx;
	if (atomic_load(&a->closing))
		return es_http_reply_error(req, 503, "shutting down", NULL);
	if (!json_content_type(es_http_header(req, "Content-Type")))
		return reject(a, req, R_CONTENT_TYPE, 415,
			      "Content-Type must be application/json or "
			      "application/cloudevents+json",
			      NULL);
	char *body;
	size_t len;
	es_err err = es_http_read_body(req, &body, &len);
	if (err == ES_ETOOBIG)
		return reject(a, req, R_TOO_BIG, 413, "request body larger than http.max_body",
			      NULL);
	if (err)
		return es_http_reply_error(req, 400, "could not read the request body", NULL);
	int status = ingest(a, req, body, len);
	free(body);
	return status;
}

/* ---- GET /healthz and GET /api/status ------------------------------------- */

static int healthz(es_http_req *req, void *ctx)
{
	agent *a = ctx;
	es_journal_counters c;
	es_journal_counters_get(a->journal, &c);
	bool closing = atomic_load(&a->closing);
	bool writable = es_journal_writable(a->journal);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", closing ? "stopping" : writable ? "ok" : "failing");
	cJSON_AddBoolToObject(o, "journal_writable", writable);
	cJSON_AddNumberToObject(o, "pending", (double)c.pending);
	return es_japi_reply_json(req, !closing && writable ? 200 : 503, o);
}

static void add_broker(agent *a, cJSON *o)
{
	struct snapshot s;
	pthread_mutex_lock(&a->snap_lock);
	s = a->snap;
	pthread_mutex_unlock(&a->snap_lock);
	cJSON *b = cJSON_AddObjectToObject(o, "broker");
	cJSON_AddStringToObject(b, "url", a->s->mqtt_url);
	cJSON_AddStringToObject(b, "client_id", a->client_id);
	cJSON_AddStringToObject(b, "state", s.connected ? "connected" : "disconnected");
	cJSON_AddNumberToObject(b, "connects", (double)s.connects);
	cJSON_AddNumberToObject(b, "failures", (double)s.failures);
	cJSON_AddNumberToObject(b, "inflight", (double)s.inflight);
	cJSON_AddNumberToObject(b, "published", (double)s.published);
	cJSON_AddNumberToObject(b, "acked", (double)s.acked);
	cJSON_AddNumberToObject(b, "resent", (double)s.resent);
	cJSON_AddNumberToObject(b, "refused", (double)atomic_load(&a->refused_by_broker));
	cJSON_AddStringToObject(b, "last_error", s.last_error);
}

static void add_journal(agent *a, cJSON *o)
{
	es_journal_stats st = {0};
	es_journal_counters c;
	es_journal_counters_get(a->journal, &c);
	pthread_mutex_lock(&a->api_lock);
	es_err err = es_journal_stats_get(a->api_reader, &st);
	pthread_mutex_unlock(&a->api_lock);
	uint64_t now = es_clock_wall_ms();
	cJSON *j = cJSON_AddObjectToObject(o, "journal");
	cJSON_AddStringToObject(j, "path", a->s->journal.path);
	cJSON_AddStringToObject(j, "id", es_journal_id(a->journal));
	cJSON_AddBoolToObject(j, "writable", es_journal_writable(a->journal));
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
	cJSON_AddNumberToObject(j, "max_bytes", (double)a->s->journal.max_bytes);
	cJSON_AddNumberToObject(j, "appended", (double)c.appended);
	cJSON_AddNumberToObject(j, "duplicates", (double)c.duplicates);
	cJSON_AddNumberToObject(j, "refused_full", (double)c.refused_full);
	cJSON_AddNumberToObject(j, "evicted", (double)c.evicted);
	cJSON_AddNumberToObject(j, "expired", (double)c.expired);
	cJSON_AddNumberToObject(j, "commits", (double)c.commits);
	cJSON_AddNumberToObject(j, "errors", (double)c.errors);
	char last[160];
	es_journal_last_error(a->journal, last, sizeof last);
	cJSON_AddStringToObject(j, "last_error", last);
}

static void add_ingest(agent *a, cJSON *o)
{
	static const char *const names[R_COUNT_] = {"malformed", "invalid", "too_big",
						    "content_type", "journal_full"};
	cJSON *i = cJSON_AddObjectToObject(o, "ingest");
	cJSON_AddNumberToObject(i, "accepted", (double)atomic_load(&a->ingested));
	cJSON *r = cJSON_AddObjectToObject(i, "rejected");
	for (int k = 0; k < R_COUNT_; k++)
		cJSON_AddNumberToObject(r, names[k], (double)atomic_load(&a->rejected[k]));
}

char *agent_status_json(void *ctx)
{
	agent *a = ctx;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "agent");
	cJSON_AddStringToObject(o, "node", a->s->node_id);
	cJSON_AddStringToObject(o, "site", a->s->node_site);
	cJSON_AddStringToObject(o, "source", a->source);
	cJSON_AddStringToObject(o, "boot_id", a->boot_id);
	cJSON_AddStringToObject(o, "state", atomic_load(&a->closing) ? "stopping" : "running");
	add_broker(a, o);
	add_journal(a, o);
	add_ingest(a, o);
	char *ltext = a->links ? links_status_json(a->links) : NULL;
	cJSON *lo = ltext ? cJSON_Parse(ltext) : NULL;
	free(ltext);
	if (lo)
		cJSON_AddItemToObject(o, "devices", lo);
	es_japi_add_recent_errors(o);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static int status(es_http_req *req, void *ctx)
{
	char *text = agent_status_json(ctx);
	if (!text)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	int rc = es_http_reply(req, 200, "application/json", text, strlen(text));
	cJSON_free(text);
	return rc;
}

/* ---- GET /api/devices ------------------------------------------------------ */

static int devices(es_http_req *req, void *ctx)
{
	agent *a = ctx;
	char *text = a->links ? links_devices_json(a->links) : strdup("{\"devices\":[]}");
	if (!text)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	int rc = es_http_reply(req, 200, "application/json", text, strlen(text));
	free(text);
	return rc;
}

/* ---- POST /api/replay ------------------------------------------------------ */

static int replay(es_http_req *req, void *ctx)
{
	agent *a = ctx;
	char *body;
	size_t len;
	uint64_t from = 0, to = 0;
	if (es_http_read_body(req, &body, &len))
		return es_http_reply_error(req, 400, "could not read the request body", NULL);
	cJSON *o = cJSON_ParseWithLength(body, len);
	free(body);
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "from");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "to");
	bool ok = cJSON_IsNumber(f) && cJSON_IsNumber(t) && f->valuedouble >= 1 &&
		  t->valuedouble >= f->valuedouble && t->valuedouble < 9007199254740992.0 &&
		  f->valuedouble == (double)(uint64_t)f->valuedouble &&
		  t->valuedouble == (double)(uint64_t)t->valuedouble;
	if (ok)
		from = (uint64_t)f->valuedouble, to = (uint64_t)t->valuedouble;
	cJSON_Delete(o);
	if (!ok)
		return es_http_reply_error(req, 400,
					   "the body must be {\"from\": N, \"to\": M} with "
					   "1 <= N <= M, whole numbers",
					   !cJSON_IsNumber(f) ? "from" : "to");
	return resend_http(a, req, from, to);
}

es_err api_register(agent *a)
{
	es_err err = es_http_route(a->http, "POST", "/api/events", post_events, a);
	if (!err)
		err = es_http_route_flags(a->http, "GET", "/healthz", ES_ROUTE_PUBLIC, healthz, a);
	if (!err)
		err = es_http_route(a->http, "GET", "/api/status", status, a);
	if (!err)
		err = es_http_route(a->http, "GET", "/api/devices", devices, a);
	if (!err)
		err = es_http_route(a->http, "POST", "/api/replay", replay, a);
	return err;
}
