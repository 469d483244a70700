/* japi.c - the REST API over a journal (see japi.h and docs/api.md).
 *
 * Locks: a->read_lock guards a->reader (one connection, any HTTP thread);
 * a->lock guards the series ring, a->lives and a->stop, and a->tick wakes
 * the sampler and the live streams.
 */
#include "japi.h"

#include <cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "log.h"
#include "utf8.h"

#define TAG	      "api"
#define PAYLOAD_MAX   4096
#define SUBJECT_MAX   (4 * ES_EVENT_SUBJECT_MAX) /* bytes: 256 characters of UTF-8 */
#define TYPE_MAX      ES_EVENT_TYPE_MAX		 /* bytes: a type is ASCII */
#define LIMIT_DEFAULT 50

struct point {
	uint64_t t; /* the end of its step, wall ms */
	uint64_t in, out, pending;
};

struct es_japi {
	es_japi_opts o;
	pthread_mutex_t read_lock;
	es_journal_reader *reader;
	pthread_mutex_t lock;
	pthread_cond_t tick;
	struct point ring[ES_JAPI_POINTS];
	size_t head, n;
	uint64_t last_in, last_out; /* the counters at the last point */
	int lives;
	bool stop;
	pthread_t sampler;
	bool sampling;
};

/* ---- parameters ----------------------------------------------------------- */

bool es_japi_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!s || !*s || strlen(s) > 19 || strspn(s, "0123456789") != strlen(s))
		return false;
	uint64_t v = strtoull(s, NULL, 10);
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* True if every parameter of the query string is one of names. */
static bool only_known(const es_http_req *req, const char *const *names, char *bad, size_t cap)
{
	const char *q = es_http_query(req);
	while (q && *q) {
		size_t len = strcspn(q, "=&");
		bool known = false;
		for (size_t i = 0; names[i] && !known; i++)
			known = strlen(names[i]) == len && strncmp(names[i], q, len) == 0;
		if (!known) {
			snprintf(bad, cap, "%.*s", (int)(len < 64 ? len : 64), q);
			return false;
		}
		q += strcspn(q, "&");
		q += *q == '&';
	}
	return true;
}

/* A time parameter: Unix ms or RFC 3339. */
static bool parse_time(const char *s, uint64_t *ms)
{
	return es_japi_parse_u64(s, 0, UINT64_MAX >> 1, ms) || es_time_parse(s, ms);
}

static int bad_param(es_http_req *req, const char *name, const char *why)
{
	char msg[160];
	snprintf(msg, sizeof msg, "%s %s", name, why);
	return es_http_reply_error(req, 400, msg, name);
}

/* Parameter name into buf[cap] (*given says whether it is there): 0, or the
 * status of the 400 sent when it is too long (longer than cap - 1 bytes
 * decoded), given twice or malformed. Never read as absent when it is not:
 * that would answer as if the filter had been applied. */
static int param(es_http_req *req, const char *name, char *buf, size_t cap, bool *given)
{
	char why[64];
	es_err err = es_http_query_param(req, name, buf, cap);
	*given = err == ES_OK;
	if (err == ES_OK || err == ES_ENOTFOUND)
		return 0;
	if (err == ES_ETOOBIG)
		snprintf(why, sizeof why, "is longer than %zu bytes", cap - 1);
	else if (err == ES_EEXIST)
		snprintf(why, sizeof why, "is given more than once");
	else
		snprintf(why, sizeof why, "is malformed (no '=', a bad %%-escape, or %%00)");
	return bad_param(req, name, why);
}

/* A whole-number parameter in [min, max] into *out (left as it is when
 * absent): 0, or the status of the 400 sent, which says why. */
static int u64_param(es_http_req *req, const char *name, uint64_t min, uint64_t max,
		     const char *why, uint64_t *out, bool *given)
{
	char v[24];
	uint64_t x;
	int rc = param(req, name, v, sizeof v, given);
	if (rc || !*given)
		return rc;
	if (!es_japi_parse_u64(v, min, max, &x))
		return bad_param(req, name, why);
	*out = x;
	return 0;
}

/* ---- replies -------------------------------------------------------------- */

int es_japi_reply_json(es_http_req *req, int status, void *json)
{
	cJSON *o = json;
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!text)
		return es_http_reply_error(req, 503, "out of memory", NULL);
	int rc = es_http_reply(req, status, "application/json", text, strlen(text));
	cJSON_free(text);
	return rc;
}

int es_japi_reply_ready(es_http_req *req, const es_ready_check *checks, size_t n)
{
	bool ready = true;
	cJSON *o = cJSON_CreateObject();
	cJSON *c = cJSON_CreateObject();
	if (!o || !c) {
		cJSON_Delete(o);
		cJSON_Delete(c);
		return es_japi_reply_json(req, 503, NULL);
	}
	for (size_t i = 0; i < n; i++) {
		ready = ready && checks[i].ok;
		cJSON_AddBoolToObject(c, checks[i].name, checks[i].ok);
	}
	cJSON_AddBoolToObject(o, "ready", ready);
	cJSON_AddItemToObject(o, "checks", c);
	return es_japi_reply_json(req, ready ? 200 : 503, o);
}

int es_japi_reply_metrics(es_http_req *req, es_metrics *m)
{
	char *text;
	size_t len;
	if (es_metrics_render(m, &text, &len))
		return es_http_reply_error(req, 503, "out of memory", NULL);
	int status = es_http_reply(req, 200, ES_METRICS_CONTENT_TYPE, text, len);
	free(text);
	return status;
}

static void add_u64(cJSON *o, const char *name, uint64_t v)
{
	cJSON_AddNumberToObject(o, name, (double)v);
}

static void add_cursor(cJSON *o, uint64_t next)
{
	if (next)
		add_u64(o, "next", next);
	else
		cJSON_AddNullToObject(o, "next");
}

/* ---- GET /api/events ------------------------------------------------------ */

struct list_ctx {
	cJSON *list;
	const char *pending_name, *acked_name;
};

static const char *time_of(const es_journal_row *row, char *buf)
{
	es_time_format(row->journaled_ms, buf);
	return buf;
}

static int add_row(void *ctx, const es_journal_row *row)
{
	struct list_ctx *c = ctx;
	char t[ES_TIME_STR];
	cJSON *e = cJSON_CreateObject();
	add_u64(e, "seq", row->seq);
	cJSON_AddStringToObject(e, "id", row->id ? row->id : "");
	cJSON_AddStringToObject(e, "type", row->type ? row->type : "");
	if (row->subject)
		cJSON_AddStringToObject(e, "subject", row->subject);
	cJSON_AddStringToObject(e, "state",
				row->state == ES_STATE_ACKED ? c->acked_name : c->pending_name);
	add_u64(e, "journaled_ms", row->journaled_ms);
	cJSON_AddStringToObject(e, "journaled", time_of(row, t));
	if (row->origin) {
		cJSON_AddStringToObject(e, "origin", row->origin);
		add_u64(e, "origin_seq", row->origin_seq);
	}
	cJSON_AddItemToArray(c->list, e);
	return 0;
}

static int parse_state(es_http_req *req, es_journal_query *q)
{
	char v[16];
	bool given;
	q->state = -1;
	int rc = param(req, "state", v, sizeof v, &given);
	if (rc || !given)
		return rc;
	if (strcmp(v, "pending") == 0)
		q->state = ES_STATE_PENDING;
	else if (strcmp(v, "acked") == 0 || strcmp(v, "forwarded") == 0)
		q->state = ES_STATE_ACKED;
	else
		return bad_param(req, "state", "must be pending or acked");
	return 0;
}

static int parse_cursor(es_http_req *req, es_journal_query *q)
{
	uint64_t limit = LIMIT_DEFAULT;
	bool given, before;
	int rc = u64_param(req, "limit", 1, ES_JAPI_LIMIT, "must be a whole number from 1 to 500",
			   &limit, &given);
	if (!rc)
		rc = u64_param(req, "before", 1, INT64_MAX, "must be a sequence number from 1",
			       &q->before, &before);
	if (!rc)
		rc = u64_param(req, "after", 0, INT64_MAX - ES_QUERY_SCAN_MAX,
			       "must be a sequence number", &q->after, &q->ascending);
	if (rc)
		return rc;
	if (before && q->ascending)
		return bad_param(req, "after", "and before cannot be used together");
	q->limit = (size_t)limit;
	return 0;
}

/* A time parameter: Unix ms or RFC 3339, from min_ms on. */
static int time_param(es_http_req *req, const char *name, uint64_t min_ms, uint64_t *ms)
{
	char v[48];
	bool given;
	int rc = param(req, name, v, sizeof v, &given);
	if (rc || !given)
		return rc;
	if (!parse_time(v, ms) || *ms < min_ms)
		return bad_param(req, name,
				 min_ms ? "must be Unix milliseconds or an RFC 3339 time after 1970"
					: "must be Unix milliseconds or an RFC 3339 time");
	return 0;
}

/* until=0 would be read as no bound (the journal's "open"), and answer with
 * everything: nothing was journaled before 1970, so it is refused. */
static int parse_times(es_http_req *req, es_journal_query *q)
{
	int rc = time_param(req, "since", 0, &q->since_ms);
	return rc ? rc : time_param(req, "until", 1, &q->until_ms);
}

/* A subject as the events have them: 1 to 256 characters of UTF-8. */
static bool subject_ok(const char *s)
{
	size_t len = strlen(s), chars = 0;
	for (size_t i = 0; i < len; i++)
		chars += ((unsigned char)s[i] & 0xC0) != 0x80;
	return chars >= 1 && chars <= ES_EVENT_SUBJECT_MAX && es_utf8_valid(s, len, NULL);
}

/* Reads every filter of GET /api/events into q (strings into type and
 * subject); returns 0, or the status of the error answer it sent. */
static int parse_query(es_http_req *req, es_journal_query *q, char *type, char *subject)
{
	static const char *const known[] = {"before", "after", "limit", "type", "subject",
					    "state",  "since", "until", NULL};
	char bad[80];
	int rc;
	if (!only_known(req, known, bad, sizeof bad))
		return bad_param(req, bad, "is not a parameter of /api/events");
	bool given;
	if ((rc = parse_cursor(req, q)) || (rc = parse_state(req, q)) || (rc = parse_times(req, q)))
		return rc;
	/* a type and its '*' */
	if ((rc = param(req, "type", type, TYPE_MAX + 2, &given)))
		return rc;
	if (given) {
		size_t n = strlen(type);
		bool prefix = n && type[n - 1] == '*';
		if (!n || n - prefix > TYPE_MAX ||
		    strspn(type, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				 "0123456789._:-*") != n ||
		    strchr(type, '*') != (prefix ? type + n - 1 : NULL))
			return bad_param(req, "type",
					 "must be a type (1 to 128 of A-Z a-z 0-9 . _ : -), or a "
					 "prefix ending in *");
		q->type = type;
	}
	if ((rc = param(req, "subject", subject, SUBJECT_MAX + 1, &given)))
		return rc;
	if (given) {
		if (!subject_ok(subject))
			return bad_param(req, "subject", "must be 1 to 256 characters of UTF-8");
		q->subject = subject;
	}
	return 0;
}

static int get_events(es_http_req *req, void *ctx)
{
	es_japi *a = ctx;
	char type[TYPE_MAX + 2], subject[SUBJECT_MAX + 1];
	es_journal_query q = {0};
	uint64_t next = 0;
	int rc = parse_query(req, &q, type, subject);
	if (rc)
		return rc;
	cJSON *o = cJSON_CreateObject();
	struct list_ctx c = {cJSON_AddArrayToObject(o, "events"), "pending", "acked"};
	pthread_mutex_lock(&a->read_lock);
	es_err err = es_journal_query_rows(a->reader, &q, add_row, &c, &next);
	pthread_mutex_unlock(&a->read_lock);
	if (err) {
		cJSON_Delete(o);
		return es_http_reply_error(req, 500, es_strerror(err), NULL);
	}
	add_cursor(o, next);
	return es_japi_reply_json(req, 200, o);
}

/* ---- GET /api/events/{id} ------------------------------------------------- */

struct one_ctx {
	cJSON *o;
};

static int take_one(void *ctx, const es_journal_row *row)
{
	struct one_ctx *c = ctx;
	char t[ES_TIME_STR];
	c->o = cJSON_CreateObject();
	add_u64(c->o, "seq", row->seq);
	cJSON_AddStringToObject(c->o, "state", row->state == ES_STATE_ACKED ? "acked" : "pending");
	add_u64(c->o, "journaled_ms", row->journaled_ms);
	cJSON_AddStringToObject(c->o, "journaled", time_of(row, t));
	cJSON *ev = cJSON_ParseWithLength(row->body, row->body_len);
	if (ev)
		cJSON_AddItemToObject(c->o, "event", ev);
	else /* never expected: bodies are checked on the way in */
		cJSON_AddStringToObject(c->o, "error", "the stored body does not parse as JSON");
	return 1;
}

static int get_event(es_http_req *req, void *ctx)
{
	es_japi *a = ctx;
	const char *id = es_http_tail(req);
	if (!*id || strlen(id) > 128 || strchr(id, '/'))
		return es_http_reply_error(req, 404, "no such event", NULL);
	es_journal_query q = {.limit = 1, .id = id, .state = -1};
	struct one_ctx c = {NULL};
	uint64_t next;
	pthread_mutex_lock(&a->read_lock);
	es_err err = es_journal_query_rows(a->reader, &q, take_one, &c, &next);
	pthread_mutex_unlock(&a->read_lock);
	if (err) {
		cJSON_Delete(c.o);
		return es_http_reply_error(req, 500, es_strerror(err), NULL);
	}
	if (!c.o)
		return es_http_reply_error(req, 404, "no such event in the journal", NULL);
	return es_japi_reply_json(req, 200, c.o);
}

/* ---- GET /api/deadletters ------------------------------------------------- */

static void add_payload(cJSON *e, const void *p, size_t len)
{
	size_t n = len < PAYLOAD_MAX ? len : PAYLOAD_MAX;
	char *copy = malloc(n + 1);
	if (!copy)
		return;
	memcpy(copy, p, n);
	copy[n] = '\0';
	if (memchr(copy, '\0', n) == NULL && es_utf8_valid(copy, n, NULL)) {
		cJSON_AddStringToObject(e, "payload", copy);
	} else {
		static const char b64[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		char *out = malloc(4 * ((n + 2) / 3) + 1), *w = out;
		const unsigned char *s = p;
		for (size_t i = 0; out && i < n; i += 3) {
			unsigned v = (unsigned)s[i] << 16 |
				     (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
				     (i + 2 < n ? s[i + 2] : 0);
			*w++ = b64[v >> 18 & 63];
			*w++ = b64[v >> 12 & 63];
			*w++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
			*w++ = i + 2 < n ? b64[v & 63] : '=';
		}
		if (out) {
			*w = '\0';
			cJSON_AddStringToObject(e, "payload_base64", out);
		}
		free(out);
	}
	free(copy);
	add_u64(e, "payload_bytes", len);
}

struct dead_ctx {
	cJSON *list;
	uint64_t last;
	size_t n;
};

static int add_dead(void *ctx, const es_journal_deadletter *d)
{
	struct dead_ctx *c = ctx;
	char t[ES_TIME_STR];
	cJSON *e = cJSON_CreateObject();
	add_u64(e, "id", d->id);
	add_u64(e, "received_ms", d->received_ms);
	es_time_format(d->received_ms, t);
	cJSON_AddStringToObject(e, "received", t);
	cJSON_AddStringToObject(e, "topic", d->topic ? d->topic : "");
	cJSON_AddStringToObject(e, "reason", d->reason ? d->reason : "");
	add_payload(e, d->payload, d->len);
	cJSON_AddItemToArray(c->list, e);
	c->last = d->id;
	c->n++;
	return 0;
}

static int get_deadletters(es_http_req *req, void *ctx)
{
	static const char *const known[] = {"before", "limit", NULL};
	es_japi *a = ctx;
	char bad[80];
	uint64_t before = 0, limit = LIMIT_DEFAULT;
	bool given;
	int rc;
	if (!only_known(req, known, bad, sizeof bad))
		return bad_param(req, bad, "is not a parameter of /api/deadletters");
	if ((rc = u64_param(req, "limit", 1, ES_JAPI_LIMIT, "must be a whole number from 1 to 500",
			    &limit, &given)) ||
	    (rc = u64_param(req, "before", 1, INT64_MAX, "must be a dead letter id from 1", &before,
			    &given)))
		return rc;
	cJSON *o = cJSON_CreateObject();
	struct dead_ctx c = {cJSON_AddArrayToObject(o, "deadletters"), 0, 0};
	pthread_mutex_lock(&a->read_lock);
	es_err err =
		es_journal_read_deadletters_before(a->reader, before, (size_t)limit, add_dead, &c);
	pthread_mutex_unlock(&a->read_lock);
	if (err) {
		cJSON_Delete(o);
		return es_http_reply_error(req, 500, es_strerror(err), NULL);
	}
	add_cursor(o, c.n == limit && c.last > 1 ? c.last : 0);
	return es_japi_reply_json(req, 200, o);
}

/* ---- the series ----------------------------------------------------------- */

static cJSON *point_json(const struct point *p)
{
	cJSON *e = cJSON_CreateObject();
	add_u64(e, "t", p->t);
	add_u64(e, "in", p->in);
	add_u64(e, "out", p->out);
	add_u64(e, "pending", p->pending);
	return e;
}

/* Caller holds a->lock. */
static void sample(es_japi *a, uint64_t now)
{
	es_journal_counters c;
	es_journal_counters_get(a->o.journal, &c);
	struct point p = {.t = now,
			  .in = c.appended - a->last_in,
			  .out = c.acked - a->last_out,
			  .pending = c.pending};
	a->last_in = c.appended;
	a->last_out = c.acked;
	a->ring[(a->head + a->n) % ES_JAPI_POINTS] = p;
	if (a->n < ES_JAPI_POINTS)
		a->n++;
	else
		a->head = (a->head + 1) % ES_JAPI_POINTS;
}

static void *sampler(void *arg)
{
	es_japi *a = arg;
	const uint64_t step = ES_JAPI_STEP_S * 1000;
	pthread_mutex_lock(&a->lock);
	uint64_t next = (es_clock_wall_ms() / step + 1) * step;
	while (!a->stop) {
		uint64_t now = es_clock_wall_ms();
		if (now >= next) {
			sample(a, next);
			next = now - next >= step ? (now / step + 1) * step : next + step;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1; /* wakes each second: a wall-clock jump costs little */
		pthread_cond_timedwait(&a->tick, &a->lock, &ts);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* The newest point, or the step in progress when there is none yet. */
static cJSON *last_point(es_japi *a)
{
	pthread_mutex_lock(&a->lock);
	struct point p = {0};
	if (a->n)
		p = a->ring[(a->head + a->n - 1) % ES_JAPI_POINTS];
	pthread_mutex_unlock(&a->lock);
	return a->n ? point_json(&p) : cJSON_CreateNull();
}

static int get_series(es_http_req *req, void *ctx)
{
	es_japi *a = ctx;
	cJSON *o = cJSON_CreateObject(), *list;
	cJSON_AddNumberToObject(o, "step_s", ES_JAPI_STEP_S);
	list = cJSON_AddArrayToObject(o, "points");
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < a->n; i++)
		cJSON_AddItemToArray(list, point_json(&a->ring[(a->head + i) % ES_JAPI_POINTS]));
	pthread_mutex_unlock(&a->lock);
	return es_japi_reply_json(req, 200, o);
}

/* ---- GET /api/live -------------------------------------------------------- */

void es_japi_add_recent_errors(void *json_object)
{
	es_log_entry e[ES_LOG_RECENT];
	size_t n = es_log_recent(e, ES_LOG_RECENT);
	cJSON *list = cJSON_AddArrayToObject(json_object, "recent_errors");
	static const char *const levels[] = {"error", "warn", "info", "debug"};
	for (size_t i = 0; list && i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "time", e[i].time);
		cJSON_AddStringToObject(o, "level", levels[e[i].level]);
		cJSON_AddStringToObject(o, "tag", e[i].tag);
		cJSON_AddStringToObject(o, "message", e[i].message);
		cJSON_AddItemToArray(list, o);
	}
}

/* One "status" event: the status object plus series_last. */
static es_err live_send(es_japi *a, es_http_req *req)
{
	char *status = a->o.status_json ? a->o.status_json(a->o.ctx) : NULL;
	cJSON *o = status ? cJSON_Parse(status) : cJSON_CreateObject();
	free(status);
	if (!o)
		return ES_ENOMEM;
	cJSON_AddItemToObject(o, "series_last", last_point(a));
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return ES_ENOMEM;
	size_t len = strlen(text) + 32;
	char *msg = malloc(len);
	es_err err = ES_ENOMEM;
	if (msg) {
		int n = snprintf(msg, len, "event: status\ndata: %s\n\n", text);
		err = es_http_stream_write(req, msg, (size_t)n);
	}
	free(msg);
	cJSON_free(text);
	return err;
}

static bool live_enter(es_japi *a)
{
	pthread_mutex_lock(&a->lock);
	bool ok = !a->stop && a->lives < a->o.live_max;
	a->lives += ok;
	pthread_mutex_unlock(&a->lock);
	return ok;
}

/* Waits ES_JAPI_LIVE_S or until stopped; false when stopped. */
static bool live_wait(es_japi *a)
{
	struct timespec ts;
	pthread_mutex_lock(&a->lock);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ES_JAPI_LIVE_S;
	if (!a->stop)
		pthread_cond_timedwait(&a->tick, &a->lock, &ts);
	bool go_on = !a->stop;
	pthread_mutex_unlock(&a->lock);
	return go_on;
}

static int get_live(es_http_req *req, void *ctx)
{
	es_japi *a = ctx;
	if (!live_enter(a)) {
		/* A 200 with one "busy" event, not a 503: a browser logs every
		 * failed load on its console, and the page polls instead. */
		static const char busy[] = "retry: 60000\nevent: busy\ndata: {\"error\":\"too many "
					   "live streams; poll /api/status\"}\n\n";
		if (es_http_stream_begin(req, "text/event-stream") == ES_OK)
			es_http_stream_write(req, busy, sizeof busy - 1);
		return 200;
	}
	es_err err = es_http_stream_begin(req, "text/event-stream");
	if (!err)
		err = es_http_stream_write(req, "retry: 2000\n\n", 13);
	uint64_t end = es_clock_mono_ms() + ES_JAPI_LIVE_MAX * 1000ull;
	while (!err && (err = live_send(a, req)) == ES_OK && es_clock_mono_ms() < end &&
	       live_wait(a))
		;
	pthread_mutex_lock(&a->lock);
	a->lives--;
	pthread_mutex_unlock(&a->lock);
	return 200;
}

/* ---- life ----------------------------------------------------------------- */

static es_err add_routes(es_japi *a)
{
	es_http *h = a->o.http;
	es_err err = es_http_route_flags(h, "GET", "/api/events", ES_ROUTE_QUERY, get_events, a);
	if (!err)
		err = es_http_route_prefix(h, "GET", "/api/events/", get_event, a);
	if (!err)
		err = es_http_route_flags(h, "GET", "/api/deadletters", ES_ROUTE_QUERY,
					  get_deadletters, a);
	if (!err)
		err = es_http_route(h, "GET", "/api/series", get_series, a);
	if (!err)
		err = es_http_route(h, "GET", "/api/live", get_live, a);
	return err;
}

es_err es_japi_new(const es_japi_opts *o, es_japi **out)
{
	if (!o || !o->http || !o->journal || !out)
		return ES_EINVAL;
	es_japi *a = calloc(1, sizeof *a);
	if (!a)
		return ES_ENOMEM;
	a->o = *o;
	if (a->o.live_max > ES_JAPI_LIVE_CAP)
		a->o.live_max = ES_JAPI_LIVE_CAP;
	pthread_mutex_init(&a->read_lock, NULL);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->tick, NULL);
	es_journal_counters c;
	es_journal_counters_get(o->journal, &c);
	a->last_in = c.appended;
	a->last_out = c.acked;
	/* A first point at once, so a chart has a line after the first step
	 * rather than after two. */
	sample(a, es_clock_wall_ms());
	es_err err = es_journal_reader_new(o->journal, &a->reader);
	if (!err)
		err = add_routes(a);
	if (!err && pthread_create(&a->sampler, NULL, sampler, a) != 0)
		err = ES_ENOMEM;
	a->sampling = !err;
	if (err) {
		es_japi_free(a);
		return err;
	}
	*out = a;
	return ES_OK;
}

void es_japi_stop(es_japi *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_broadcast(&a->tick);
	pthread_mutex_unlock(&a->lock);
}

void es_japi_free(es_japi *a)
{
	if (!a)
		return;
	es_japi_stop(a);
	if (a->sampling)
		pthread_join(a->sampler, NULL);
	es_journal_reader_free(a->reader);
	pthread_cond_destroy(&a->tick);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->read_lock);
	free(a);
}
