/* ingest.c - POST /api/events (ingest.h): decode, journal, answer 202 only
 * after the commit. On the HTTP worker threads: the counters and `closed`
 * are atomics; the journal's append is thread-safe. */
#include "ingest.h"

#include <cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "event.h"
#include "log.h"

#define TAG "api"

struct agent_ingest {
	agent_ingest_opts o;
	_Atomic bool closed;
	_Atomic uint64_t accepted;
	_Atomic uint64_t rejected[AGENT_INGEST_REASONS];
};

static const char *const reason_names[AGENT_INGEST_REASONS] = {"malformed", "invalid", "too_big",
							       "content_type", "journal_full"};

const char *agent_ingest_reason_name(enum agent_ingest_reason r)
{
	return r < AGENT_INGEST_REASONS ? reason_names[r] : "?";
}

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

static int reject(agent_ingest *in, es_http_req *req, enum agent_ingest_reason why, int status,
		  const char *message, const char *field)
{
	atomic_fetch_add(&in->rejected[why], 1);
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

static int journal_error(agent_ingest *in, es_http_req *req, es_err err)
{
	switch (err) {
	case ES_EFULL:
		return reject(in, req, AGENT_INGEST_FULL, 507,
			      "journal full: the event was not accepted (journal.max_bytes reached "
			      "or disk full); retry later",
			      NULL);
	case ES_ETOOBIG:
		return reject(in, req, AGENT_INGEST_TOO_BIG, 413,
			      "event larger than event.max_bytes", NULL);
	case ES_ECLOSED:
		return es_http_reply_error(req, 503, "shutting down", NULL);
	default:
		es_error(TAG, "journal append failed: %s", es_strerror(err));
		return es_http_reply_error(req, 500, es_strerror(err), NULL);
	}
}

static int decode_error(agent_ingest *in, es_http_req *req, es_err err, const es_verr *v)
{
	if (err == ES_ETOOBIG)
		return reject(in, req, AGENT_INGEST_TOO_BIG, 413, v->reason,
			      v->field[0] ? v->field : NULL);
	if (err == ES_ENOMEM)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	/* Errors without a field are about the body as a whole (syntax, UTF-8). */
	bool malformed = v->field[0] == '\0';
	return reject(in, req, malformed ? AGENT_INGEST_MALFORMED : AGENT_INGEST_INVALID, 400,
		      v->reason, v->field[0] ? v->field : NULL);
}

/* The index of the first event naming a source other than this node's,
 * or n. Events without one get this node's (the journal stamps it). */
static size_t foreign_source(const agent_ingest *in, es_event *const *evs, size_t n)
{
	for (size_t i = 0; in->o.source && i < n; i++) {
		const char *src = es_event_source(evs[i]);
		if (src && strcmp(src, in->o.source) != 0)
			return i;
	}
	return n;
}

/* 400: an event journaled here goes out under this node's sequence, as
 * this node's (the bridge refuses one whose source is not the node of its
 * topic), so it may not speak for another. */
static int refuse_source(agent_ingest *in, es_http_req *req, const char *body, size_t len,
			 const es_event *ev, size_t i)
{
	char message[400], field[32];
	snprintf(message, sizeof message,
		 "source '%.100s' is not this node (%s): leave source out and the agent fills "
		 "it in",
		 es_event_source(ev), in->o.source);
	size_t k = 0;
	while (k < len && strchr(" \t\r\n", body[k]) && body[k])
		k++;
	bool batch = k < len && body[k] == '[';
	snprintf(field, sizeof field, batch ? "[%zu].source" : "source", i);
	return reject(in, req, AGENT_INGEST_INVALID, 400, message, field);
}

/* Decodes, journals, answers: 202 only after the commit. */
static int ingest(agent_ingest *in, es_http_req *req, const char *body, size_t len)
{
	es_event **evs;
	size_t n, bad;
	es_verr v = {{0}, {0}};
	es_err err = es_event_decode_input(body, len, in->o.event_max_bytes, in->o.max_batch, &evs,
					   &n, &v);
	if (err)
		return decode_error(in, req, err, &v);
	if ((bad = foreign_source(in, evs, n)) < n) {
		int status = refuse_source(in, req, body, len, evs[bad], bad);
		es_event_free_array(evs, n);
		return status;
	}
	es_append_result *res = calloc(n, sizeof *res);
	int status;
	if (!res)
		status = es_http_reply_error(req, 503, "out of memory", NULL);
	else if ((err = es_journal_append(in->o.journal, evs, n, res)))
		status = journal_error(in, req, err);
	else {
		atomic_fetch_add(&in->accepted, n);
		status = accepted(req, res, n);
	}
	free(res);
	es_event_free_array(evs, n);
	return status;
}

static int post_events(es_http_req *req, void *ctx)
{
	agent_ingest *in = ctx;
	if (atomic_load(&in->closed))
		return es_http_reply_error(req, 503, "shutting down", NULL);
	if (!json_content_type(es_http_header(req, "Content-Type")))
		return reject(in, req, AGENT_INGEST_CONTENT_TYPE, 415,
			      "Content-Type must be application/json or "
			      "application/cloudevents+json",
			      NULL);
	char *body;
	size_t len;
	es_err err = es_http_read_body(req, &body, &len);
	if (err == ES_ETOOBIG)
		return reject(in, req, AGENT_INGEST_TOO_BIG, 413,
			      "request body larger than http.max_body", NULL);
	if (err)
		return es_http_reply_error(req, 400, "could not read the request body", NULL);
	int status = ingest(in, req, body, len);
	free(body);
	return status;
}

es_err agent_ingest_new(const agent_ingest_opts *o, agent_ingest **out)
{
	if (!o || !o->http || !o->journal || !out)
		return ES_EINVAL;
	agent_ingest *in = calloc(1, sizeof *in);
	if (!in)
		return ES_ENOMEM;
	in->o = *o;
	es_err err = es_http_route(o->http, "POST", "/api/events", post_events, in);
	if (err) {
		free(in);
		return err;
	}
	*out = in;
	return ES_OK;
}

void agent_ingest_free(agent_ingest *in)
{
	free(in);
}

void agent_ingest_close(agent_ingest *in)
{
	atomic_store(&in->closed, true);
}

void agent_ingest_stats_get(agent_ingest *in, agent_ingest_stats *out)
{
	out->accepted = atomic_load(&in->accepted);
	for (int k = 0; k < AGENT_INGEST_REASONS; k++)
		out->rejected[k] = atomic_load(&in->rejected[k]);
}
