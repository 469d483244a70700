/* japi_test.c - the REST API over a journal, end to end: a real SQLite
 * journal in a temporary folder, the HTTP server on a loopback port 0, and
 * the HTTP client (a raw socket for the live stream, which does not end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <cJSON.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tmpdir.h"
#include "http.h"
#include "httpc.h"
#include "japi.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"

#define WAIT_MS 10000

typedef struct fixture {
	char dir[64], path[128], base[64];
	es_journal *journal;
	es_http *http;
	es_japi *api;
	es_httpc *client;
	es_metrics *metrics;
	char ids[8][ES_EVENT_ID_MAX + 1];
	size_t nids;
} fixture;

/* ---- the server ----------------------------------------------------------- */

static char *status_json(void *ctx)
{
	return strdup("{\"node\":\"japi-test\"}");
}

static int reply_null(es_http_req *req, void *ctx)
{
	return es_japi_reply_json(req, 200, NULL);
}

static int reply_metrics(es_http_req *req, void *ctx)
{
	return es_japi_reply_metrics(req, ((fixture *)ctx)->metrics);
}

static es_err start(fixture *f)
{
	es_journal_opts jo = {.path = f->path, .sync = ES_SYNC_NORMAL, .source = "/site/node"};
	es_http_opts ho = {.listen = "127.0.0.1:0", .threads = 4};
	es_metric_desc d = {.type = ES_METRIC_GAUGE, .name = "japi_test_answer", .help = "42."};
	es_metric_family *fam;
	es_err err = es_journal_open(&jo, &f->journal);
	if (!err)
		err = es_http_new(&ho, &f->http);
	if (!err) {
		es_japi_opts ao = {.http = f->http,
				   .journal = f->journal,
				   .status_json = status_json,
				   .live_max = 1};
		err = es_japi_new(&ao, &f->api);
	}
	if (!err)
		err = es_metrics_new(0, &f->metrics);
	if (!err && !(err = es_metrics_add(f->metrics, &d, &fam)))
		es_metric_set(es_metric_child(fam, NULL), 42);
	if (!err)
		err = es_http_route(f->http, "GET", "/null", reply_null, f);
	if (!err)
		err = es_http_route(f->http, "GET", "/metrics", reply_metrics, f);
	if (!err)
		err = es_http_start(f->http);
	if (!err)
		err = es_httpc_new(NULL, &f->client);
	return err;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	*state = f;
	if (es_tmpdir_make(f->dir, sizeof f->dir, "japi-test"))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/journal.db", f->dir);
	if (start(f))
		return -1;
	snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", es_http_port(f->http));
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char name[192];
	es_httpc_free(f->client);
	es_japi_stop(f->api); /* ends the live streams, which es_http_free waits for */
	es_http_free(f->http);
	es_japi_free(f->api);
	es_metrics_free(f->metrics);
	es_journal_close(f->journal);
	for (const char *const *s = (const char *const[]){"", "-wal", "-shm", NULL}; *s; s++) {
		snprintf(name, sizeof name, "%s%s", f->path, *s);
		unlink(name);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* Journals one event; its id goes to f->ids. */
static void append(fixture *f, const char *type, const char *subject)
{
	es_event *ev;
	es_verr v;
	es_append_result res;
	assert_int_equal(es_event_new(type, subject, "{\"v\":1}", &ev, &v), ES_OK);
	assert_int_equal(es_journal_append(f->journal, &ev, 1, &res), ES_OK);
	es_event_free(ev);
	assert_true(f->nids < 8);
	memcpy(f->ids[f->nids++], res.id, sizeof res.id);
}

/* GET path: the status must be want; the body parsed (the caller frees). */
static cJSON *get(fixture *f, const char *path, long want)
{
	char *url = malloc(strlen(f->base) + strlen(path) + 1);
	es_httpc_resp r;
	assert_non_null(url);
	sprintf(url, "%s%s", f->base, path);
	assert_int_equal(es_httpc_get(f->client, url, &r), ES_OK);
	free(url);
	if (r.status != want)
		fail_msg("GET %s: %ld, not %ld: %s", path, r.status, want, r.body);
	cJSON *o = cJSON_ParseWithLength(r.body, r.len);
	es_httpc_resp_free(&r);
	assert_non_null(o);
	return o;
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
	assert_non_null(s);
	return s;
}

/* The "seq" of every row of GET path, as "5,4,3"; *next its cursor (0 for
 * null). */
static void seqs(fixture *f, const char *path, char *out, size_t cap, uint64_t *next)
{
	cJSON *o = get(f, path, 200), *row;
	cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "next");
	size_t len = 0;
	out[0] = '\0';
	cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(o, "events"))
	{
		len += (size_t)snprintf(out + len, cap - len, "%s%.0f", len ? "," : "",
					num(row, "seq"));
	}
	assert_true(cJSON_IsNull(n) || cJSON_IsNumber(n));
	if (next)
		*next = cJSON_IsNumber(n) ? (uint64_t)n->valuedouble : 0;
	cJSON_Delete(o);
}

static void expect_seqs(fixture *f, const char *path, const char *want)
{
	char got[256];
	seqs(f, path, got, sizeof got, NULL);
	if (strcmp(got, want) != 0)
		fail_msg("GET %s: rows %s, not %s", path, got, want);
}

/* The five events most tests use: a.x s1, a.x s2, b.y s1, a.x s1, b.y s2. */
static void five(fixture *f)
{
	append(f, "a.x", "s1");
	append(f, "a.x", "s2");
	append(f, "b.y", "s1");
	append(f, "a.x", "s1");
	append(f, "b.y", "s2");
}

/* ---- GET /api/events ------------------------------------------------------ */

static void events_newest_first(void **state)
{
	fixture *f = *state;
	expect_seqs(f, "/api/events", "");
	five(f);
	cJSON *o = get(f, "/api/events", 200);
	cJSON *rows = cJSON_GetObjectItemCaseSensitive(o, "events");
	assert_int_equal(cJSON_GetArraySize(rows), 5);
	cJSON *first = cJSON_GetArrayItem(rows, 0);
	assert_int_equal(num(first, "seq"), 5);
	assert_string_equal(str(first, "id"), f->ids[4]);
	assert_string_equal(str(first, "type"), "b.y");
	assert_string_equal(str(first, "subject"), "s2");
	assert_string_equal(str(first, "state"), "pending");
	assert_true(num(first, "journaled_ms") > 1.7e12);
	assert_int_equal(strlen(str(first, "journaled")), strlen("2026-11-27T10:00:00.000Z"));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "next")));
	cJSON_Delete(o);
}

/* Following "next" walks the journal in pages, both ways, without a row
 * missed or repeated. */
static void events_pages(void **state)
{
	fixture *f = *state;
	char path[128], got[64], all[256] = "";
	uint64_t next = 0;
	five(f);
	seqs(f, "/api/events?limit=2", got, sizeof got, &next);
	assert_string_equal(got, "5,4");
	assert_int_equal(next, 4);
	for (strcat(all, got); next;) {
		snprintf(path, sizeof path, "/api/events?limit=2&before=%llu",
			 (unsigned long long)next);
		seqs(f, path, got, sizeof got, &next);
		strcat(strcat(all, got[0] ? "," : ""), got);
	}
	assert_string_equal(all, "5,4,3,2,1");
	all[0] = '\0';
	next = 0;
	do {
		snprintf(path, sizeof path, "/api/events?limit=2&after=%llu",
			 (unsigned long long)next);
		seqs(f, path, got, sizeof got, &next);
		strcat(strcat(all, all[0] && got[0] ? "," : ""), got);
	} while (next);
	assert_string_equal(all, "1,2,3,4,5");
}

static void events_filters(void **state)
{
	fixture *f = *state;
	five(f);
	expect_seqs(f, "/api/events?type=a.x", "4,2,1");
	expect_seqs(f, "/api/events?type=b.*", "5,3");
	expect_seqs(f, "/api/events?type=a*", "4,2,1");
	expect_seqs(f, "/api/events?type=c.z", "");
	expect_seqs(f, "/api/events?subject=s1", "4,3,1");
	expect_seqs(f, "/api/events?subject=s1&type=a.x", "4,1");
	expect_seqs(f, "/api/events?state=acked", "");
	assert_int_equal(es_journal_ack(f->journal, 1), ES_OK);
	assert_int_equal(es_journal_ack(f->journal, 2), ES_OK);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
	expect_seqs(f, "/api/events?state=acked", "2,1");
	expect_seqs(f, "/api/events?state=forwarded", "2,1");
	expect_seqs(f, "/api/events?state=pending", "5,4,3");
	expect_seqs(f, "/api/events?since=2000-01-01T00:00:00Z", "5,4,3,2,1");
	expect_seqs(f, "/api/events?since=4102444800000", ""); /* 2100 */
	expect_seqs(f, "/api/events?until=946684800000", "");  /* 2000 */
	cJSON *o = get(f, "/api/events?before=2", 200);
	cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "events"), 0);
	assert_string_equal(str(row, "state"), "acked");
	cJSON_Delete(o);
}

/* A bad parameter is a 400 naming it, never a page of something else. */
static void events_bad_parameters(void **state)
{
	fixture *f = *state;
	static const struct {
		const char *query, *field;
	} bad[] = {
		{"limit=0", "limit"},
		{"limit=501", "limit"},
		{"limit=abc", "limit"},
		{"limit=-1", "limit"},
		{"before=0", "before"},
		{"after=x", "after"},
		{"after=1&before=5", "after"},
		{"state=lost", "state"},
		{"type=a*b", "type"},
		{"type=", "type"},
		{"type=a%20b", "type"},
		{"since=yesterday", "since"},
		{"until=12:00", "until"},
		{"subject=", "subject"},
		{"colour=red", "colour"},
		{"limit=5&x=1", "x"},
		/* read as absent, these answered with every event (issue 14) */
		{"until=0", "until"},
		{"until=1970-01-01T00:00:00Z", "until"},
		{"type", "type"},
		{"type=a.x&type=b.y", "type"},
		{"type=a%zz", "type"},
		{"subject=s%001", "subject"},
		{"subject=s%2", "subject"},
		{"limit=5&limit=6", "limit"},
		{"state=pendingpendingpending", "state"},
		{"limit=000000000000000000000000000005", "limit"},
		{"before=100000000000000000000000000000", "before"},
		{"after=100000000000000000000000000000", "after"},
		{"since=2026-01-01T00:00:00.000000000000000000000000000000Z", "since"},
		{"subject=%ff", "subject"},
	};
	char path[128];
	five(f);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(path, sizeof path, "/api/events?%s", bad[i].query);
		cJSON *o = get(f, path, 400);
		assert_string_equal(str(o, "field"), bad[i].field);
		assert_non_null(strstr(str(o, "error"), bad[i].field));
		cJSON_Delete(o);
	}
	cJSON *o = get(f, "/api/events?colour=red", 400);
	assert_string_equal(str(o, "error"), "colour is not a parameter of /api/events");
	cJSON_Delete(o);
	o = get(f, "/api/deadletters?after=1", 400);
	assert_string_equal(str(o, "field"), "after");
	cJSON_Delete(o);
}

/* "/api/events?<name>=" and n times c (then more, may be NULL). */
static char *long_query(const char *name, char c, size_t n, const char *more)
{
	char *path = malloc(64 + n + (more ? strlen(more) : 0));
	assert_non_null(path);
	int len = sprintf(path, "/api/events?%s=", name);
	memset(path + len, c, n);
	sprintf(path + len + n, "%s", more ? more : "");
	return path;
}

/* A value as long as the events' own is a filter that applies; one byte
 * longer is a 400 naming it: never an answer with every event. */
static void events_long_values(void **state)
{
	fixture *f = *state;
	five(f);
	char *type = malloc(ES_EVENT_TYPE_MAX + 1), *subject = malloc(ES_EVENT_SUBJECT_MAX + 1);
	assert_true(type && subject);
	memset(type, 't', ES_EVENT_TYPE_MAX);
	type[ES_EVENT_TYPE_MAX] = '\0';
	memset(subject, 's', ES_EVENT_SUBJECT_MAX);
	subject[ES_EVENT_SUBJECT_MAX] = '\0';
	append(f, type, subject);
	free(type);
	free(subject);
	static const struct {
		const char *name;
		size_t n;
		const char *more, *want; /* rows, or NULL: a 400 */
	} cases[] = {
		{"type", ES_EVENT_TYPE_MAX, NULL, "6"},
		{"type", ES_EVENT_TYPE_MAX - 1, "*", "6"},
		{"type", ES_EVENT_TYPE_MAX, "*", "6"},
		{"type", ES_EVENT_TYPE_MAX + 1, NULL, NULL},
		{"type", 300, NULL, NULL},
		{"subject", ES_EVENT_SUBJECT_MAX, NULL, "6"},
		{"subject", ES_EVENT_SUBJECT_MAX - 1, NULL, ""},
		{"subject", ES_EVENT_SUBJECT_MAX + 1, NULL, NULL},
		{"subject", 300, NULL, NULL},
		{"subject", 5000, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char c = cases[i].name[0];
		char *path = long_query(cases[i].name, c, cases[i].n, cases[i].more);
		if (cases[i].want) {
			expect_seqs(f, path, cases[i].want);
		} else {
			cJSON *o = get(f, path, 400);
			assert_string_equal(str(o, "field"), cases[i].name);
			cJSON_Delete(o);
		}
		free(path);
	}
	/* 256 characters of UTF-8 (512 bytes) are a subject too */
	char *path = malloc(64 + 6 * ES_EVENT_SUBJECT_MAX);
	assert_non_null(path);
	int len = sprintf(path, "/api/events?subject=");
	for (int i = 0; i < ES_EVENT_SUBJECT_MAX; i++)
		len += sprintf(path + len, "%%C3%%A9");
	expect_seqs(f, path, "");
	sprintf(path + len, "%%C3%%A9");
	cJSON *o = get(f, path, 400);
	assert_string_equal(str(o, "field"), "subject");
	cJSON_Delete(o);
	free(path);
}

/* ---- GET /api/events/{id} ------------------------------------------------- */

static void one_event(void **state)
{
	fixture *f = *state;
	char path[192];
	five(f);
	snprintf(path, sizeof path, "/api/events/%s", f->ids[2]);
	cJSON *o = get(f, path, 200);
	assert_int_equal(num(o, "seq"), 3);
	assert_string_equal(str(o, "state"), "pending");
	cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
	assert_string_equal(str(ev, "id"), f->ids[2]);
	assert_string_equal(str(ev, "type"), "b.y");
	assert_string_equal(str(ev, "source"), "/site/node");
	assert_int_equal(num(cJSON_GetObjectItemCaseSensitive(ev, "data"), "v"), 1);
	cJSON_Delete(o);
	o = get(f, "/api/events/0190a0a0-0000-7000-8000-000000000000", 404);
	cJSON_Delete(o);
	char longid[200] = "/api/events/";
	memset(longid + strlen(longid), 'a', 129);
	cJSON_Delete(get(f, longid, 404));
	cJSON_Delete(get(f, "/api/events/a/b", 404));
}

/* ---- GET /api/deadletters ------------------------------------------------- */

static void deadletters(void **state)
{
	fixture *f = *state;
	static const unsigned char binary[] = {0x00, 0x01, 0x02, 0xff};
	char big[5000], path[64];
	memset(big, 'z', sizeof big);
	assert_int_equal(es_journal_dead_letter(f->journal, "t/text", "not JSON", "{oops", 5),
			 ES_OK);
	assert_int_equal(es_journal_dead_letter(f->journal, "t/bin", "binary", binary, 4), ES_OK);
	assert_int_equal(es_journal_dead_letter(f->journal, "t/big", "big", big, sizeof big),
			 ES_OK);
	append(f, "a.x", "s1"); /* returns once committed: the dead letters were queued first */
	cJSON *o = get(f, "/api/deadletters", 200);
	cJSON *rows = cJSON_GetObjectItemCaseSensitive(o, "deadletters");
	assert_int_equal(cJSON_GetArraySize(rows), 3);
	cJSON *b = cJSON_GetArrayItem(rows, 0), *bin = cJSON_GetArrayItem(rows, 1);
	cJSON *text = cJSON_GetArrayItem(rows, 2);
	assert_string_equal(str(text, "topic"), "t/text");
	assert_string_equal(str(text, "reason"), "not JSON");
	assert_string_equal(str(text, "payload"), "{oops");
	assert_int_equal(num(text, "payload_bytes"), 5);
	assert_null(cJSON_GetObjectItemCaseSensitive(bin, "payload"));
	assert_string_equal(str(bin, "payload_base64"), "AAEC/w==");
	assert_int_equal(num(bin, "payload_bytes"), 4);
	assert_int_equal(strlen(str(b, "payload")), 4096); /* shown cut */
	assert_int_equal(num(b, "payload_bytes"), sizeof big);
	assert_true(num(b, "id") > num(bin, "id"));
	cJSON_Delete(o);
	/* Pages, newest first. */
	o = get(f, "/api/deadletters?limit=2", 200);
	double next = num(o, "next");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "deadletters")), 2);
	cJSON_Delete(o);
	snprintf(path, sizeof path, "/api/deadletters?limit=2&before=%.0f", next);
	o = get(f, path, 200);
	rows = cJSON_GetObjectItemCaseSensitive(o, "deadletters");
	assert_int_equal(cJSON_GetArraySize(rows), 1);
	assert_string_equal(str(cJSON_GetArrayItem(rows, 0), "topic"), "t/text");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "next")));
	cJSON_Delete(o);
	cJSON_Delete(get(f, "/api/deadletters?limit=0", 400));
}

/* ---- GET /api/series ------------------------------------------------------ */

static void series(void **state)
{
	fixture *f = *state;
	cJSON *o = get(f, "/api/series", 200), *p;
	assert_int_equal(num(o, "step_s"), ES_JAPI_STEP_S);
	cJSON *points = cJSON_GetObjectItemCaseSensitive(o, "points");
	/* A first point at once, made when the API started on an empty
	 * journal. */
	assert_true(cJSON_GetArraySize(points) >= 1);
	p = cJSON_GetArrayItem(points, 0);
	assert_true(num(p, "t") > 1.7e12);
	assert_int_equal(num(p, "in"), 0);
	assert_int_equal(num(p, "out"), 0);
	assert_int_equal(num(p, "pending"), 0);
	cJSON_Delete(o);
}

/* ---- GET /api/live -------------------------------------------------------- */

/* Opens GET /api/live on a raw socket and reads until its first status
 * event; returns the socket (still open) and that event's data. */
static int live_open(fixture *f, cJSON **data)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)es_http_port(f->http))};
	struct timeval tv = {.tv_sec = WAIT_MS / 1000};
	static const char req[] = "GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	char buf[8192];
	size_t len = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), sizeof req - 1);
	char *ev = NULL, *end = NULL;
	while (!end) {
		ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
		assert_true(n > 0); /* a timeout (SO_RCVTIMEO) fails here */
		len += (size_t)n;
		buf[len] = '\0';
		ev = strstr(buf, "event: status\ndata: ");
		end = ev ? strstr(ev, "\n\n") : NULL;
	}
	assert_non_null(strstr(buf, "200 OK"));
	assert_non_null(strstr(buf, "text/event-stream"));
	assert_true(strstr(buf, "retry: 2000\n\n") < ev);
	*end = '\0';
	*data = cJSON_Parse(ev + strlen("event: status\ndata: "));
	assert_non_null(*data);
	return fd;
}

static void live(void **state)
{
	fixture *f = *state;
	cJSON *data;
	char url[128];
	es_httpc_resp r;
	int fd = live_open(f, &data);
	assert_string_equal(str(data, "node"), "japi-test");
	cJSON *last = cJSON_GetObjectItemCaseSensitive(data, "series_last");
	assert_true(num(last, "t") > 1.7e12);
	cJSON_Delete(data);
	/* live_max is 1: a second stream gets one "busy" event and its end. */
	snprintf(url, sizeof url, "%s/api/live", f->base);
	assert_int_equal(es_httpc_get(f->client, url, &r), ES_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "retry: 60000\nevent: busy\ndata: {"));
	es_httpc_resp_free(&r);
	close(fd);
}

/* ---- the helpers other handlers use --------------------------------------- */

static void replies(void **state)
{
	fixture *f = *state;
	char url[128];
	es_httpc_resp r;
	cJSON *o = get(f, "/null", 503); /* no JSON to send */
	assert_string_equal(str(o, "error"), "out of memory");
	cJSON_Delete(o);
	snprintf(url, sizeof url, "%s/metrics", f->base);
	assert_int_equal(es_httpc_get(f->client, url, &r), ES_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\njapi_test_answer 42\n"));
	es_httpc_resp_free(&r);
}

static void parse_u64(void **state)
{
	uint64_t v = 7;
	assert_true(es_japi_parse_u64("10", 1, 10, &v));
	assert_int_equal(v, 10);
	assert_true(es_japi_parse_u64("9223372036854775807", 0, UINT64_MAX, &v));
	assert_int_equal(v, INT64_MAX);
	v = 7;
	assert_false(es_japi_parse_u64("11", 1, 10, &v));
	assert_false(es_japi_parse_u64("0", 1, 10, &v));
	assert_false(es_japi_parse_u64("", 0, 10, &v));
	assert_false(es_japi_parse_u64(NULL, 0, 10, &v));
	assert_false(es_japi_parse_u64("1a", 0, 10, &v));
	assert_false(es_japi_parse_u64("-1", 0, 10, &v));
	assert_false(es_japi_parse_u64(" 1", 0, 10, &v));
	assert_false(es_japi_parse_u64("+1", 0, 10, &v));
	assert_false(es_japi_parse_u64("18446744073709551615", 0, UINT64_MAX, &v)); /* 20 digits */
	assert_int_equal(v, 7);							    /* untouched */
}

static void recent_errors(void **state)
{
	es_warn("japi-test", "something odd: %d", 42);
	cJSON *o = cJSON_CreateObject();
	es_japi_add_recent_errors(o);
	cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "recent_errors"), 0);
	assert_non_null(e);
	assert_string_equal(str(e, "level"), "warn");
	assert_string_equal(str(e, "tag"), "japi-test");
	assert_string_equal(str(e, "message"), "something odd: 42");
	assert_int_equal(str(e, "time")[10], 'T');
	cJSON_Delete(o);
}

static void arguments(void **state)
{
	fixture *f = *state;
	es_japi *a = NULL;
	es_japi_opts o = {.journal = f->journal};
	assert_int_equal(es_japi_new(NULL, &a), ES_EINVAL);
	assert_int_equal(es_japi_new(&o, &a), ES_EINVAL); /* no server */
	o = (es_japi_opts){.http = f->http};
	assert_int_equal(es_japi_new(&o, &a), ES_EINVAL); /* no journal */
	assert_null(a);
	es_japi_stop(NULL);
	es_japi_free(NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(events_newest_first),
		T(events_pages),
		T(events_filters),
		T(events_bad_parameters),
		T(events_long_values),
		T(one_event),
		T(deadletters),
		T(series),
		T(live),
		T(replies),
		cmocka_unit_test(parse_u64),
		cmocka_unit_test(recent_errors),
		T(arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
