/* http_test.c - the civetweb adapter, on a port-0 loopback server, talked to
 * by a plain socket client that sends raw HTTP/1.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http.h"

#define MAX_BODY 1024
#define CSP                                                                                        \
	"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "          \
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/* ---- the server ------------------------------------------------------------ */

static int on_hello(es_http_req *r, void *ctx)
{
	return es_http_reply(r, 200, "text/plain", "hello", 5);
}

/* Replies with the body read, or the error reading it gave. */
static int on_echo(es_http_req *r, void *ctx)
{
	char *body = NULL;
	size_t len = 0;
	es_err err = es_http_read_body(r, &body, &len);
	if (err == ES_ETOOBIG)
		return es_http_reply_error(r, 413, "body too large", NULL);
	if (err)
		return es_http_reply_error(r, 400, es_strerror(err), "body");
	int status = es_http_reply(r, 200, "application/octet-stream", body, len);
	free(body);
	return status;
}

static int on_item(es_http_req *r, void *ctx)
{
	const char *tail = es_http_tail(r);
	return es_http_reply(r, 200, "text/plain", tail, strlen(tail));
}

/* "<name param>|<raw query>|<X-Test header>|<path>"; the param is "(none)"
 * when absent, else "(<error>)" when es_http_query_param fails. */
static int on_query(es_http_req *r, void *ctx)
{
	char name[8], out[512];
	es_err err = es_http_query_param(r, "name", name, sizeof name);
	if (err == ES_ENOTFOUND)
		snprintf(name, sizeof name, "(none)");
	else if (err)
		snprintf(name, sizeof name, "%s",
			 err == ES_ETOOBIG  ? "(big)"
			 : err == ES_EEXIST ? "(twice)"
					    : "(bad)");
	const char *q = es_http_query(r), *h = es_http_header(r, "X-Test");
	int n = snprintf(out, sizeof out, "%s|%s|%s|%s %s", name, q ? q : "(null)",
			 h ? h : "(null)", es_http_method(r), es_http_path(r));
	return es_http_reply(r, 200, "text/plain", out, (size_t)n);
}

static int on_fail(es_http_req *r, void *ctx)
{
	return es_http_reply_error(r, 503, "not now", "queue");
}

/* Replies twice: only the first goes out, and its status is returned. */
static int on_twice(es_http_req *r, void *ctx)
{
	int first = es_http_reply(r, 200, "text/plain", "first", 5);
	int second = es_http_reply_error(r, 500, "second", NULL);
	return first == 200 && second == 200 ? 200 : 500;
}

static int on_stream(es_http_req *r, void *ctx)
{
	if (es_http_stream_begin(r, "text/event-stream"))
		return 200;
	for (int i = 0; i < 3; i++) {
		char ev[32];
		int n = snprintf(ev, sizeof ev, "data: %d\n\n", i);
		if (es_http_stream_write(r, ev, (size_t)n))
			break;
	}
	return 200;
}

static int on_whoami(es_http_req *r, void *ctx)
{
	const char *u = es_http_user(r);
	return es_http_reply(r, 200, "text/plain", u ? u : "-", strlen(u ? u : "-"));
}

static const unsigned char index_html[] = "<!doctype html><title>t</title>";
static const unsigned char app_js[] = "console.log(1);";
static const es_http_asset assets[] = {
	{"/index.html", "text/html; charset=utf-8", index_html, sizeof index_html - 1},
	{"/app.js", "text/javascript", app_js, sizeof app_js - 1},
};

/* The requests the on_request hook saw, in the order it saw them: a
 * worker calls it after its response went out, so a request of an earlier
 * test may be reported after a later one (a ring, searched by expect_hook). */
#define HOOK_LOG 64
struct hook_entry {
	char method[16], route[128];
	int status;
	double seconds;
};
static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hook_entry hook_log[HOOK_LOG];
static size_t hook_n; /* entries ever logged */

static void on_request(void *ctx, const char *method, const char *route, int status, double seconds)
{
	pthread_mutex_lock(&hook_lock);
	struct hook_entry *e = &hook_log[hook_n++ % HOOK_LOG];
	snprintf(e->method, sizeof e->method, "%s", method);
	snprintf(e->route, sizeof e->route, "%s", route);
	e->status = status;
	e->seconds = seconds;
	pthread_mutex_unlock(&hook_lock);
}

static es_http *server;
static int port;

static int start_server(void **state)
{
	es_http_opts o = {.listen = "127.0.0.1:0",
			  .threads = 4,
			  .max_body = MAX_BODY,
			  .on_request = on_request};
	if (es_http_new(&o, &server) || es_http_route(server, "GET", "/hello", on_hello, NULL) ||
	    es_http_route(server, "GET", "/stream", on_stream, NULL) ||
	    es_http_assets(server, assets, sizeof assets / sizeof assets[0]) ||
	    es_http_route(server, "POST", "/echo", on_echo, NULL) ||
	    es_http_route_flags(server, "GET", "/query", ES_ROUTE_QUERY, on_query, NULL) ||
	    es_http_route(server, "GET", "/twice", on_twice, NULL) ||
	    es_http_route(server, "GET", "/fail", on_fail, NULL) ||
	    es_http_route_prefix(server, "GET", "/items/", on_item, NULL) ||
	    es_http_route_prefix(server, "DELETE", "/items/", on_item, NULL))
		return -1;
	if (es_http_start(server))
		return -1;
	port = es_http_port(server);
	return port > 0 ? 0 : -1;
}

static int stop_server(void **state)
{
	es_http_free(server);
	server = NULL;
	return 0;
}

/* ---- a raw client ------------------------------------------------------------- */

typedef struct client {
	int fd;
	char buf[65536];
	size_t len; /* bytes received and not yet consumed */
} client;

typedef struct response {
	int status;
	char head[8192]; /* status line and headers */
	char body[16384];
	size_t body_len;
} response;

static client *dial(void)
{
	client *c = calloc(1, sizeof *c);
	assert_non_null(c);
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
	return c;
}

static void hang_up(client *c)
{
	close(c->fd);
	free(c);
}

static void send_text(client *c, const char *text)
{
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);
		assert_true(n > 0);
		off += (size_t)n;
	}
}

/* Receives more bytes; false at end of stream. */
static bool fill(client *c)
{
	assert_true(c->len < sizeof c->buf);
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
	if (n < 0)
		fail_msg("recv: %s", strerror(errno));
	c->len += (size_t)(n > 0 ? n : 0);
	return n > 0;
}

static void consume(client *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* The value of header name in r->head, copied into out; false if absent. */
static bool header(const response *r, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	for (const char *line = strstr(r->head, "\r\n"); line && line[2];
	     line = strstr(line + 2, "\r\n")) {
		const char *h = line + 2;
		if (strncasecmp(h, name, nlen) == 0 && h[nlen] == ':') {
			const char *v = h + nlen + 1, *end = strstr(v, "\r\n");
			while (*v == ' ')
				v++;
			snprintf(out, cap, "%.*s", (int)(end - v), v);
			return true;
		}
	}
	return false;
}

/* Reads one response: status line, headers, and a Content-Length body (none
 * for HEAD). */
static void read_response(client *c, response *r, bool head_request)
{
	memset(r, 0, sizeof *r);
	char *end;
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (!fill(c))
			fail_msg("connection closed before the headers (%zu bytes)", c->len);
	size_t hlen = (size_t)(end - c->buf) + 4;
	assert_true(hlen < sizeof r->head);
	memcpy(r->head, c->buf, hlen);
	consume(c, hlen);
	/* The status is the first three-digit word (the status line itself is
	 * checked by the tests that care). */
	const char *sp = r->head;
	while ((sp = strchr(sp, ' ')) && !(isdigit((unsigned char)sp[1]) && sp[4] == ' '))
		sp++;
	if (!sp || sscanf(sp, " %d", &r->status) != 1)
		fail_msg("no status in:\n%s", r->head);
	char cl[32];
	if (head_request || !header(r, "Content-Length", cl, sizeof cl))
		return;
	r->body_len = strtoul(cl, NULL, 10);
	assert_true(r->body_len < sizeof r->body);
	while (c->len < r->body_len)
		if (!fill(c))
			fail_msg("connection closed inside the body");
	memcpy(r->body, c->buf, r->body_len);
	consume(c, r->body_len);
}

/* One request on a new connection. */
static void roundtrip(const char *request, response *r)
{
	client *c = dial();
	send_text(c, request);
	read_response(c, r, strncmp(request, "HEAD ", 5) == 0);
	hang_up(c);
}

static void expect_header(const response *r, const char *name, const char *value)
{
	char got[256];
	if (!header(r, name, got, sizeof got))
		fail_msg("no %s header in:\n%s", name, r->head);
	assert_string_equal(got, value);
}

static void expect_security_headers(const response *r)
{
	expect_header(r, "X-Content-Type-Options", "nosniff");
	expect_header(r, "Cache-Control", "no-store");
	expect_header(r, "Content-Security-Policy", CSP);
	expect_header(r, "X-Frame-Options", "DENY");
	expect_header(r, "Referrer-Policy", "no-referrer");
}

static void expect_body(const response *r, const char *body)
{
	assert_int_equal(r->body_len, strlen(body));
	assert_memory_equal(r->body, body, r->body_len);
}

/* ---- tests -------------------------------------------------------------------- */

static void exact_route_gives_200(void **state)
{
	response r;
	roundtrip("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "hello");
	expect_header(&r, "Content-Type", "text/plain");
	expect_header(&r, "Content-Length", "5");
	expect_security_headers(&r);
	/* HEAD is served by the GET route, without a body. */
	roundtrip("HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_header(&r, "Content-Length", "5");
}

static void unknown_path_gives_json_404(void **state)
{
	response r;
	roundtrip("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
	expect_header(&r, "Content-Type", "application/json");
	expect_body(&r, "{\"error\":\"no such resource\"}");
	expect_security_headers(&r);
	/* A path that only starts like a route is not that route. */
	roundtrip("GET /hello/more HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
	roundtrip("GET /hell HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
}

static void wrong_method_gives_405(void **state)
{
	response r;
	roundtrip(
		"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		&r);
	assert_int_equal(r.status, 405);
	expect_header(&r, "Content-Type", "application/json");
	expect_body(&r, "{\"error\":\"method not allowed on this path\"}");
	roundtrip("PUT /items/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: "
		  "close\r\n\r\n",
		  &r);
	assert_int_equal(r.status, 405);
}

static void prefix_route_gets_tail(void **state)
{
	response r;
	roundtrip("GET /items/abc-123 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "abc-123");
	roundtrip("GET /items/a/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "a/b");
	roundtrip("DELETE /items/9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "9");
	/* The prefix alone has no tail: no route. */
	roundtrip("GET /items/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
}

static void query_and_headers(void **state)
{
	response r;
	roundtrip("GET /query?x=1&name=ada%20b HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\n"
		  "Connection: close\r\n\r\n",
		  &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "ada b|x=1&name=ada%20b|yes|GET /query");
	roundtrip("GET /query HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "(none)|(null)|(null)|GET /query");
}

/* A value that is not there exactly as asked is never taken as absent. */
static void query_param_errors(void **state)
{
	static const struct {
		const char *query, *want;
	} cases[] = {
		{"name=1234567", "1234567"}, /* 7 bytes and the NUL: fits */
		{"name=12345678", "(big)"},
		{"name=%41%42%43%44%45%46%47", "ABCDEFG"},
		{"name=%41%42%43%44%45%46%47%48", "(big)"},
		{"name=a+b", "a b"},
		{"name=", ""},
		{"name", "(bad)"},	/* no '=' */
		{"name=a%zz", "(bad)"}, /* a bad escape */
		{"name=a%2", "(bad)"},
		{"name=a%00b", "(bad)"}, /* a NUL inside */
		{"name=a&name=b", "(twice)"},
		{"name=a&name", "(twice)"},
		{"names=a", "(none)"},
		{"nam=a", "(none)"},
		{"Name=a", "(none)"}, /* names are exact */
		{"x=1&&name=z&", "z"},
	};
	char req[256], want[128];
	response r;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(req, sizeof req,
			 "GET /query?%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 cases[i].query);
		roundtrip(req, &r);
		assert_int_equal(r.status, 200);
		int n = snprintf(want, sizeof want, "%s|%s|(null)|GET /query", cases[i].want,
				 cases[i].query);
		if (r.body_len != (size_t)n || memcmp(r.body, want, (size_t)n) != 0)
			fail_msg("%s: got %.*s, want %s", cases[i].query, (int)r.body_len, r.body,
				 want);
	}
}

/* A route that reads no parameter refuses any, naming it: it would not
 * filter what it answers. */
static void params_refused_where_unread(void **state)
{
	response r;
	roundtrip("GET /hello?id=7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	expect_body(&r, "{\"error\":\"id is not a parameter of /hello\",\"field\":\"id\"}");
	roundtrip("GET /items/3?x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	expect_body(&r, "{\"error\":\"x is not a parameter of /items/\",\"field\":\"x\"}");
	roundtrip("GET /hello? HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	roundtrip("GET /hello?&& HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	roundtrip("GET /hello?&y=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	expect_body(&r, "{\"error\":\"y is not a parameter of /hello\",\"field\":\"y\"}");
	/* assets are not routes: a query changes nothing there */
	roundtrip("GET /app.js?v=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
}

static void one_response_per_request(void **state)
{
	response r;
	client *c = dial();
	send_text(c, "GET /twice HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n"
		     "Connection: close\r\n\r\n");
	read_response(c, &r, false);
	assert_int_equal(r.status, 200);
	expect_body(&r, "first");
	read_response(c, &r, false); /* the next response is the next request's */
	expect_body(&r, "hello");
	hang_up(c);
}

static void body_with_content_length(void **state)
{
	response r;
	roundtrip(
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
		"hello world",
		&r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "hello world");
	roundtrip(
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		&r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
}

/* Exactly max_body is fine; one more byte is 413. */
static void body_limit(void **state)
{
	char *req = malloc(MAX_BODY + 256);
	assert_non_null(req);
	int n = snprintf(req, 256,
			 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
			 "Connection: close\r\n\r\n",
			 MAX_BODY);
	memset(req + n, 'b', MAX_BODY);
	req[n + MAX_BODY] = '\0';
	response r;
	roundtrip(req, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, MAX_BODY);
	free(req);

	/* Declared too big: refused before anything is read. */
	roundtrip("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", &r);
	assert_int_equal(r.status, 413);
	expect_header(&r, "Content-Type", "application/json");
	expect_header(&r, "Connection", "close");
	expect_body(&r, "{\"error\":\"body too large\"}");
	expect_security_headers(&r);
}

static void chunked_body(void **state)
{
	response r;
	roundtrip("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
		  "Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
		  &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "hello world");

	/* Chunked past max_body: 413 once the limit is crossed. */
	char *req = malloc(4 * MAX_BODY);
	assert_non_null(req);
	int n = snprintf(req, 256,
			 "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
			 "\r\n%x\r\n",
			 MAX_BODY + 1);
	memset(req + n, 'c', MAX_BODY + 1);
	snprintf(req + n + MAX_BODY + 1, 16, "\r\n0\r\n\r\n");
	roundtrip(req, &r);
	free(req);
	assert_int_equal(r.status, 413);
}

/* A client that declares more than it sends and stops: 400 from the handler
 * (ES_EIO), not a hang or a crash. */
static void short_body(void **state)
{
	client *c = dial();
	send_text(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten!!");
	shutdown(c->fd, SHUT_WR);
	response r;
	read_response(c, &r, false);
	hang_up(c);
	assert_int_equal(r.status, 400);
	expect_body(&r, "{\"error\":\"I/O error\",\"field\":\"body\"}");
}

/* civetweb's own errors get a well-formed 4xx with our JSON body and headers;
 * nothing of the bad request is echoed into the response head. */
static void malformed_request_gives_4xx(void **state)
{
	const char *bad[] = {
		"GARBAGE\r\n\r\n",
		"GET\r\n\r\n",
		"GET /hello HTTP/1.1 x\r\nX-Injected: 1\r\n\r\n",
		"GET /hello HTTP/9.9 extra words\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		client *c = dial();
		send_text(c, bad[i]);
		response r;
		read_response(c, &r, false);
		hang_up(c);
		print_message("%.*s -> %d\n", (int)strcspn(bad[i], "\r"), bad[i], r.status);
		assert_in_range(r.status, 400, 499);
		if (strncmp(r.head, "HTTP/1.0 ", 9) != 0 && strncmp(r.head, "HTTP/1.1 ", 9) != 0)
			fail_msg("bad status line for %s:\n%s", bad[i], r.head);
		assert_null(strstr(r.head, "X-Injected"));
		expect_header(&r, "Content-Type", "application/json");
		expect_security_headers(&r);
	}
}

static void keep_alive_serves_two_requests(void **state)
{
	client *c = dial();
	response r;
	send_text(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	read_response(c, &r, false);
	assert_int_equal(r.status, 200);
	expect_body(&r, "hello");
	send_text(c, "GET /items/second HTTP/1.1\r\nHost: x\r\n\r\n");
	read_response(c, &r, false);
	assert_int_equal(r.status, 200);
	expect_body(&r, "second");
	/* Pipelined: both sent before either is read. */
	send_text(c, "GET /items/p1 HTTP/1.1\r\nHost: x\r\n\r\n"
		     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\np2");
	read_response(c, &r, false);
	expect_body(&r, "p1");
	read_response(c, &r, false);
	expect_body(&r, "p2");
	hang_up(c);
}

/* The connection ends with nothing more after what was read. */
static void expect_closed(client *c)
{
	while (fill(c))
		;
	if (c->len)
		fail_msg("more after the response: %.*s", (int)c->len, c->buf);
}

/* What a proxy in front could frame otherwise is refused, and the connection
 * closed: what follows (here a smuggled GET) is never read as a request. */
static void framing_refused(void **state)
{
	static const char *const heads[] = {
		"Content-Length: 5\r\nContent-Length: 40\r\n",
		"Content-Length: 5\r\nContent-Length: 5\r\n",
		"Content-Length: 5, 40\r\n",
		"Content-Length: +5\r\n",
		"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
		"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
		"Transfer-Encoding: identity\r\nContent-Length: 5\r\n",
	};
	char req[512];
	for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
		snprintf(req, sizeof req,
			 "POST /echo HTTP/1.1\r\nHost: x\r\n%s\r\n5\r\nhello\r\n0\r\n\r\n"
			 "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
			 heads[i]);
		client *c = dial();
		send_text(c, req);
		response r;
		read_response(c, &r, false);
		if (r.status != 400)
			fail_msg("%s: %d, want 400", heads[i], r.status);
		expect_header(&r, "Connection", "close");
		expect_header(&r, "Content-Type", "application/json");
		assert_non_null(strstr(r.body, "\"field\":\""));
		expect_closed(c);
		hang_up(c);
	}
	/* One chunked body, or one Content-Length, is served as before. */
	response r;
	roundtrip("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n"
		  "Connection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		  &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "ok");
}

/* A reply that leaves the body unread closes the connection instead of
 * reading and dropping the body at the client's pace. */
static void unread_body_closes(void **state)
{
	client *c = dial();
	send_text(c, "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc");
	response r;
	read_response(c, &r, false);
	assert_int_equal(r.status, 200);
	expect_header(&r, "Connection", "close");
	expect_closed(c);
	hang_up(c);
	/* read, it keeps the connection */
	c = dial();
	send_text(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
		     "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
	read_response(c, &r, false);
	expect_body(&r, "hi");
	read_response(c, &r, false);
	expect_body(&r, "hello");
	hang_up(c);
}

/* 16 KiB of head at most (413), 63 header fields at most (431). */
static void head_limits(void **state)
{
	char *big = malloc(20000);
	assert_non_null(big);
	int n = sprintf(big, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + n, 'h', 17000);
	sprintf(big + n + 17000, "\r\n\r\n");
	response r;
	roundtrip(big, &r);
	assert_int_equal(r.status, 413);
	expect_header(&r, "Content-Type", "application/json");
	expect_header(&r, "Connection", "close");
	n = sprintf(big, "GET /hello HTTP/1.1\r\n");
	for (int i = 0; i < 64; i++)
		n += sprintf(big + n, "X-F%d: %d\r\n", i, i);
	sprintf(big + n, "\r\n");
	roundtrip(big, &r);
	assert_int_equal(r.status, 431);
	n = sprintf(big, "GET /hello HTTP/1.1\r\n");
	for (int i = 0; i < 62; i++)
		n += sprintf(big + n, "X-F%d: %d\r\n", i, i);
	sprintf(big + n, "Connection: close\r\n\r\n");
	roundtrip(big, &r);
	assert_int_equal(r.status, 200);
	free(big);
}

/* civetweb drops these without a word; they get an answer. */
static void targets_not_paths(void **state)
{
	response r;
	client *c = dial();
	send_text(c, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
	read_response(c, &r, true);
	assert_int_equal(r.status, 204);
	expect_header(&r, "Allow", "GET, HEAD, POST");
	expect_closed(c);
	hang_up(c);
	roundtrip("GET * HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	expect_body(&r, "{\"error\":\"the request target must be a path\"}");
	roundtrip("GET http://elsewhere.example/hello HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n",
		  &r);
	assert_int_equal(r.status, 400);
}

/* A head or a body that does not arrive within request_timeout_ms is 408,
 * also when it trickles in: a client cannot hold a worker past it. */
static void time_limits(void **state)
{
	es_http *h;
	es_http_opts o = {.listen = "127.0.0.1:0", .threads = 2, .request_timeout_ms = 600};
	assert_int_equal(es_http_new(&o, &h), ES_OK);
	assert_int_equal(es_http_route(h, "POST", "/echo", on_echo, NULL), ES_OK);
	assert_int_equal(es_http_start(h), ES_OK);
	int saved = port;
	port = es_http_port(h);
	static const char *const starts[] = {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-",
					     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: "
					     "50\r\n\r\nabc"};
	for (int i = 0; i < 2; i++) {
		client *c = dial();
		uint64_t t0 = es_clock_mono_ms();
		send_text(c, starts[i]);
		response r;
		/* a byte every 100 ms: never a pause as long as the limit */
		for (int k = 0; k < 40 && !memmem(c->buf, c->len, "\r\n\r\n", 4); k++) {
			struct timespec ts = {0, 100000000};
			nanosleep(&ts, NULL);
			if (send(c->fd, "x", 1, MSG_NOSIGNAL) != 1)
				break;
			struct timeval tv = {0};
			setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
			fd_set fds;
			FD_ZERO(&fds);
			FD_SET(c->fd, &fds);
			if (select(c->fd + 1, &fds, NULL, NULL, &tv) == 1)
				break;
		}
		struct timeval tv = {.tv_sec = 10};
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		read_response(c, &r, false);
		uint64_t took = es_clock_mono_ms() - t0;
		print_message("%s: %d after %" PRIu64 " ms\n", i ? "body" : "head", r.status, took);
		assert_int_equal(r.status, 408);
		expect_header(&r, "Connection", "close");
		assert_in_range(took, 550, 2000);
		hang_up(c);
	}
	es_http_free(h);
	port = saved;
}

static es_http_stats stats(void)
{
	es_http_stats s;
	es_http_stats_get(server, &s);
	return s;
}

/* Counters are bumped after the response is sent: poll for them. */
static es_http_stats wait_requests(uint64_t want)
{
	uint64_t deadline = es_clock_mono_ms() + 5000;
	es_http_stats s = stats();
	while (s.requests < want && es_clock_mono_ms() < deadline) {
		struct timespec ts = {0, 2000000};
		nanosleep(&ts, NULL);
		s = stats();
	}
	return s;
}

static void stats_count_by_class(void **state)
{
	es_http_stats before = stats();
	response r;
	roundtrip("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	roundtrip("GET /items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	roundtrip("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	roundtrip("GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 503);
	expect_body(&r, "{\"error\":\"not now\",\"field\":\"queue\"}");
	es_http_stats s = wait_requests(before.requests + 4);
	assert_int_equal(s.requests, before.requests + 4);
	assert_int_equal(s.status_2xx, before.status_2xx + 2);
	assert_int_equal(s.status_4xx, before.status_4xx + 1);
	assert_int_equal(s.status_5xx, before.status_5xx + 1);
}

static void check_listen(void **state)
{
	assert_null(es_http_check_listen("127.0.0.1:8080"));
	assert_null(es_http_check_listen("0.0.0.0:0"));
	assert_null(es_http_check_listen("localhost:65535"));
	assert_non_null(es_http_check_listen(NULL));
	assert_non_null(es_http_check_listen(""));
	assert_non_null(es_http_check_listen("8080"));
	assert_non_null(es_http_check_listen(":8080"));
	assert_non_null(es_http_check_listen("host:"));
	assert_non_null(es_http_check_listen("host:65536"));
	assert_non_null(es_http_check_listen("host:-1"));
	assert_non_null(es_http_check_listen("host:80x"));
}

static void setup_errors(void **state)
{
	es_http *h = NULL;
	es_http_opts o = {.listen = "nonsense"};
	assert_int_equal(es_http_new(&o, &h), ES_EINVAL);
	assert_null(h);
	assert_int_equal(es_http_new(NULL, &h), ES_EINVAL);
	o.listen = "127.0.0.1:0";
	assert_int_equal(es_http_new(&o, &h), ES_OK);
	assert_int_equal(es_http_route_prefix(h, "GET", "/no-slash", on_item, NULL), ES_EINVAL);
	assert_int_equal(es_http_route(h, "GET", "/x", NULL, NULL), ES_EINVAL);
	assert_int_equal(es_http_route(h, "VERYLONGMETHOD", "/x", on_hello, NULL), ES_EINVAL);
	char longpath[200];
	memset(longpath, 'a', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	assert_int_equal(es_http_route(h, "GET", longpath, on_hello, NULL), ES_EINVAL);
	es_http_free(h);
	es_http_free(NULL);

	/* The running server's port is taken: start fails, cleanly. */
	char listen[32];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
	o.listen = listen;
	assert_int_equal(es_http_new(&o, &h), ES_OK);
	assert_int_equal(es_http_start(h), ES_ESYS);
	es_http_free(h);
	/* Routes are fixed once serving. */
	assert_int_equal(es_http_route(server, "GET", "/late", on_hello, NULL), ES_EINVAL);
}

/* ---- security ----------------------------------------------------------------- */

/* `openssl passwd -6 -salt edgespoolsalt 's3cret pass'`; base64("ops:s3cret pass") */
#define OPS_HASH                                                                                   \
	"$6$edgespoolsalt$znCD2zFu.mn01wOrkajwjdBvnJAOka4bFrxB3MsnHV4SM2/"                         \
	"5cwv5D.eOhHb1k9cr0iZDVhUOX"                                                               \
	"iGiCi6p5AuXe/"
#define OPS_BASIC "Authorization: Basic b3BzOnMzY3JldCBwYXNz\r\n"
#define TOKEN	  "0123456789abcdef-token"

static int on_metrics(es_http_req *r, void *ctx)
{
	return es_http_reply(r, 200, "text/plain", "m 1\n", 4);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A second server with users, a token and the same routes; its port in
 * *out_port. metrics_open as given. */
static es_http *start_secure(bool metrics_open, int *out_port)
{
	char users[] = "/tmp/es-http-users-XXXXXX", token[] = "/tmp/es-http-token-XXXXXX";
	int fu = mkstemp(users), ft = mkstemp(token);
	assert_true(fu >= 0 && ft >= 0);
	close(fu);
	close(ft);
	write_text(users, "# test users\nops:" OPS_HASH "\n");
	write_text(token, TOKEN "\n");
	es_http_opts o = {.listen = "127.0.0.1:0",
			  .auth_file = users,
			  .token_file = token,
			  .metrics_open = metrics_open};
	es_http *h = NULL;
	assert_int_equal(es_http_new(&o, &h), ES_OK);
	unlink(users);
	unlink(token);
	assert_int_equal(es_http_route(h, "GET", "/hello", on_hello, NULL), ES_OK);
	assert_int_equal(es_http_route(h, "GET", "/whoami", on_whoami, NULL), ES_OK);
	assert_int_equal(es_http_route(h, "POST", "/echo", on_echo, NULL), ES_OK);
	assert_int_equal(es_http_route_flags(h, "GET", "/healthz", ES_ROUTE_PUBLIC, on_hello, NULL),
			 ES_OK);
	assert_int_equal(
		es_http_route_flags(h, "GET", "/metrics", ES_ROUTE_METRICS, on_metrics, NULL),
		ES_OK);
	assert_int_equal(es_http_assets(h, assets, 2), ES_OK);
	assert_int_equal(es_http_start(h), ES_OK);
	*out_port = es_http_port(h);
	return h;
}

/* One request to another port than the main server's. */
static void roundtrip_to(int p, const char *request, response *r)
{
	int saved = port;
	port = p;
	roundtrip(request, r);
	port = saved;
}

static void get_as(int p, const char *path, const char *auth, response *r)
{
	char req[512];
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", path,
		 auth);
	roundtrip_to(p, req, r);
}

static void credentials_required(void **state)
{
	int p;
	es_http *h = start_secure(false, &p);
	response r;
	get_as(p, "/hello", "", &r);
	assert_int_equal(r.status, 401);
	expect_header(&r, "WWW-Authenticate", "Basic realm=\"edgespool\", charset=\"UTF-8\"");
	expect_header(&r, "Content-Type", "application/json");
	expect_body(&r, "{\"error\":\"authentication required\"}");
	expect_security_headers(&r);
	get_as(p, "/whoami", OPS_BASIC, &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "ops");
	get_as(p, "/whoami", "Authorization: Basic b3BzOndyb25n\r\n", &r); /* ops:wrong */
	assert_int_equal(r.status, 401);
	get_as(p, "/whoami", "Authorization: Bearer " TOKEN "\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "token");
	get_as(p, "/whoami", "Authorization: Bearer " TOKEN "x\r\n", &r);
	assert_int_equal(r.status, 401);
	/* public; metrics closed; unknown paths and assets need credentials */
	get_as(p, "/healthz", "", &r);
	assert_int_equal(r.status, 200);
	get_as(p, "/metrics", "", &r);
	assert_int_equal(r.status, 401);
	get_as(p, "/nope", "", &r);
	assert_int_equal(r.status, 401);
	get_as(p, "/nope", OPS_BASIC, &r);
	assert_int_equal(r.status, 404);
	expect_security_headers(&r);
	get_as(p, "/", "", &r);
	assert_int_equal(r.status, 401);
	get_as(p, "/", OPS_BASIC, &r);
	assert_int_equal(r.status, 200);
	es_http_stats s;
	es_http_stats_get(h, &s);
	assert_int_equal(s.auth_failures, 6);
	es_http_free(h);
}

static void metrics_open_opens_only_metrics(void **state)
{
	int p;
	es_http *h = start_secure(true, &p);
	response r;
	get_as(p, "/metrics", "", &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "m 1\n");
	get_as(p, "/hello", "", &r);
	assert_int_equal(r.status, 401);
	es_http_free(h);
}

#define POST_ECHO                                                                                  \
	"POST /echo HTTP/1.1\r\nHost: %s\r\n" OPS_BASIC                                            \
	"%sContent-Length: 2\r\nConnection: close\r\n\r\nhi"

static void cross_site_writes_refused(void **state)
{
	int p;
	es_http *h = start_secure(false, &p);
	char req[512], host[64];
	snprintf(host, sizeof host, "127.0.0.1:%d", p);
	struct {
		const char *extra;
		int status;
	} cases[] = {
		{"", 200},
		{"Origin: http://evil.example\r\n", 403},
		{"Origin: null\r\n", 403},
		{"Origin: http://127.0.0.1\r\n", 403}, /* another port */
		{"Sec-Fetch-Site: cross-site\r\n", 403},
		{"Sec-Fetch-Site: same-origin\r\n", 200},
	};
	response r;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(req, sizeof req, POST_ECHO, host, cases[i].extra);
		roundtrip_to(p, req, &r);
		if (r.status != cases[i].status)
			fail_msg("%s: %d, want %d", cases[i].extra, r.status, cases[i].status);
		expect_security_headers(&r);
	}
	/* same origin, any scheme */
	char origin[128];
	snprintf(origin, sizeof origin, "Origin: http://%s\r\n", host);
	snprintf(req, sizeof req, POST_ECHO, host, origin);
	roundtrip_to(p, req, &r);
	assert_int_equal(r.status, 200);
	snprintf(origin, sizeof origin, "Origin: https://%s\r\n", host);
	snprintf(req, sizeof req, POST_ECHO, host, origin);
	roundtrip_to(p, req, &r);
	assert_int_equal(r.status, 200);
	/* reads are not refused */
	get_as(p, "/hello", OPS_BASIC "Origin: http://evil.example\r\n", &r);
	assert_int_equal(r.status, 200);
	es_http_free(h);
}

static void bad_paths_refused(void **state)
{
	const char *bad[] = {
		"/../etc/passwd",
		"/%2e%2e/%2e%2e/etc/passwd",
		"/%2E%2E",
		"/index.html%00",
		"/a/./b",
		"/items/..",
		"/items/%2e%2e%2fx",
		"/x\\..\\y",
		"/hello%00.txt",
	};
	response r;
	char req[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 bad[i]);
		roundtrip(req, &r);
		if (r.status != 400)
			fail_msg("%s: %d, want 400", bad[i], r.status);
		expect_header(&r, "Content-Type", "application/json");
		expect_security_headers(&r);
	}
	char *big = malloc(12000);
	assert_non_null(big);
	int n = snprintf(big, 64, "GET /");
	memset(big + n, 'a', 10000);
	snprintf(big + n + 10000, 64, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	roundtrip(big, &r);
	assert_int_equal(r.status, 414);
	expect_security_headers(&r);
	/* exactly 2048 bytes is a path (404), 2049 is not */
	memset(big + n, 'a', 2047);
	snprintf(big + n + 2047, 64, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	roundtrip(big, &r);
	assert_int_equal(r.status, 404);
	memset(big + n, 'a', 2048);
	snprintf(big + n + 2048, 64, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	roundtrip(big, &r);
	assert_int_equal(r.status, 414);
	free(big);
	/* an encoded path that is fine is decoded for routing */
	roundtrip("GET /item%73/a%20b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, "a b");
}

static void assets_with_etag(void **state)
{
	response r;
	roundtrip("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, (const char *)index_html);
	expect_header(&r, "Content-Type", "text/html; charset=utf-8");
	expect_header(&r, "Cache-Control", "no-cache");
	expect_header(&r, "X-Content-Type-Options", "nosniff");
	expect_header(&r, "Content-Security-Policy", CSP);
	char etag[64], req[256];
	assert_true(header(&r, "ETag", etag, sizeof etag));
	assert_int_equal(etag[0], '"');
	roundtrip("GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	expect_header(&r, "ETag", etag);
	snprintf(req, sizeof req,
		 "GET /index.html HTTP/1.1\r\nHost: x\r\nIf-None-Match: %s\r\n"
		 "Connection: close\r\n\r\n",
		 etag);
	roundtrip(req, &r);
	assert_int_equal(r.status, 304);
	assert_int_equal(r.body_len, 0);
	expect_header(&r, "ETag", etag);
	roundtrip("GET /app.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n"
		  "Connection: close\r\n\r\n",
		  &r);
	assert_int_equal(r.status, 200);
	expect_body(&r, (const char *)app_js);
	expect_header(&r, "Content-Type", "text/javascript");
	char etag2[64];
	assert_true(header(&r, "ETag", etag2, sizeof etag2));
	assert_string_not_equal(etag, etag2);
	roundtrip("HEAD /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	expect_header(&r, "Content-Length", "15");
	roundtrip("POST /app.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: "
		  "close\r\n\r\n",
		  &r);
	assert_int_equal(r.status, 405);
	roundtrip("GET /app.js/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
}

static void expect_hook(const char *method, const char *route, int status);

static void streaming(void **state)
{
	client *c = dial();
	send_text(c, "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	const char *want = "data: 0\n\ndata: 1\n\ndata: 2\n\n";
	char *end;
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)) ||
	       (size_t)(c->buf + c->len - (end + 4)) < strlen(want))
		if (!fill(c))
			fail_msg("closed early: %.*s", (int)c->len, c->buf);
	response r = {0};
	size_t hlen = (size_t)(end - c->buf) + 4;
	memcpy(r.head, c->buf, hlen);
	assert_memory_equal(end + 4, want, strlen(want));
	hang_up(c);
	assert_int_equal(strncmp(r.head, "HTTP/1.1 200 ", 13), 0);
	expect_header(&r, "Content-Type", "text/event-stream");
	expect_header(&r, "Cache-Control", "no-store");
	expect_header(&r, "X-Accel-Buffering", "no");
	expect_header(&r, "Connection", "close");
	expect_header(&r, "X-Frame-Options", "DENY");
	char cl[16];
	assert_false(header(&r, "Content-Length", cl, sizeof cl));
	/* The handler ends after its last write: its hook comes after the
	 * client has read everything, and must not land in the next test. */
	expect_hook("GET", "/stream", 200);
}

/* Waits until the hook reported method, route and status (with a sane
 * duration) among its latest entries; takes that entry out of the running. */
static void expect_hook(const char *method, const char *route, int status)
{
	uint64_t deadline = es_clock_mono_ms() + 5000;
	for (;;) {
		bool ok = false;
		pthread_mutex_lock(&hook_lock);
		for (size_t i = hook_n > HOOK_LOG ? hook_n - HOOK_LOG : 0; i < hook_n && !ok; i++) {
			struct hook_entry *e = &hook_log[i % HOOK_LOG];
			ok = strcmp(e->method, method) == 0 && strcmp(e->route, route) == 0 &&
			     e->status == status && e->seconds >= 0 && e->seconds < 5;
			if (ok)
				e->status = -1;
		}
		pthread_mutex_unlock(&hook_lock);
		if (ok)
			return;
		if (es_clock_mono_ms() > deadline)
			fail_msg("hook: no %s %s %d reported", method, route, status);
		nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
	}
}

static void request_hook(void **state)
{
	response r;
	roundtrip("GET /items/42 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	expect_hook("GET", "/items/", 200);
	roundtrip("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	expect_hook("GET", "other", 404);
	roundtrip("HEAD /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	expect_hook("HEAD", "assets", 200);
	roundtrip("POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: "
		  "close\r\n\r\n",
		  &r);
	expect_hook("POST", "/hello", 405);
	roundtrip("BREW /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: "
		  "close\r\n\r\n",
		  &r);
	expect_hook("other", "other", 400); /* civetweb refuses unknown methods */
	roundtrip("GET /%2e%2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	expect_hook("GET", "other", 400);
}

static void no_credentials_means_loopback(void **state)
{
	es_http *h = NULL;
	es_http_opts o = {.listen = "0.0.0.0:0"};
	assert_int_equal(es_http_new(&o, &h), ES_EINVAL);
	o.listen = "192.168.1.10:0";
	assert_int_equal(es_http_new(&o, &h), ES_EINVAL);
	o.listen = "[::]:0";
	assert_int_equal(es_http_new(&o, &h), ES_EINVAL);
	assert_null(h);
	const char *fine[] = {"127.0.0.1:0", "127.1.2.3:0", "localhost:0", "[::1]:0"};
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
		o.listen = fine[i];
		assert_int_equal(es_http_new(&o, &h), ES_OK);
		es_http_free(h);
	}
	char token[] = "/tmp/es-http-token-XXXXXX";
	int fd = mkstemp(token);
	assert_true(fd >= 0);
	close(fd);
	write_text(token, "short\n");
	o = (es_http_opts){.listen = "0.0.0.0:0", .token_file = token};
	assert_int_equal(es_http_new(&o, &h), ES_EINVAL); /* a bad token file */
	write_text(token, TOKEN "\n");
	assert_int_equal(es_http_new(&o, &h), ES_OK);
	es_http_free(h);
	unlink(token);
	assert_non_null(es_http_check_listen("127.0.0.1:80,0.0.0.0:81"));
	assert_non_null(es_http_check_listen("127.0.0.1:8080s"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exact_route_gives_200),
		cmocka_unit_test(unknown_path_gives_json_404),
		cmocka_unit_test(wrong_method_gives_405),
		cmocka_unit_test(prefix_route_gets_tail),
		cmocka_unit_test(query_and_headers),
		cmocka_unit_test(query_param_errors),
		cmocka_unit_test(params_refused_where_unread),
		cmocka_unit_test(one_response_per_request),
		cmocka_unit_test(framing_refused),
		cmocka_unit_test(unread_body_closes),
		cmocka_unit_test(head_limits),
		cmocka_unit_test(targets_not_paths),
		cmocka_unit_test(time_limits),
		cmocka_unit_test(body_with_content_length),
		cmocka_unit_test(body_limit),
		cmocka_unit_test(chunked_body),
		cmocka_unit_test(short_body),
		cmocka_unit_test(malformed_request_gives_4xx),
		cmocka_unit_test(keep_alive_serves_two_requests),
		cmocka_unit_test(stats_count_by_class),
		cmocka_unit_test(check_listen),
		cmocka_unit_test(setup_errors),
		cmocka_unit_test(credentials_required),
		cmocka_unit_test(metrics_open_opens_only_metrics),
		cmocka_unit_test(cross_site_writes_refused),
		cmocka_unit_test(bad_paths_refused),
		cmocka_unit_test(assets_with_etag),
		cmocka_unit_test(streaming),
		cmocka_unit_test(request_hook),
		cmocka_unit_test(no_credentials_means_loopback),
	};
	return cmocka_run_group_tests(tests, start_server, stop_server);
}
