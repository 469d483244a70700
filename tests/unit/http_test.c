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
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http.h"

#define MAX_BODY 1024

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

/* "<name param>|<raw query>|<X-Test header>|<path>" */
static int on_query(es_http_req *r, void *ctx)
{
	char name[64], out[512];
	if (!es_http_query_param(r, "name", name, sizeof name))
		snprintf(name, sizeof name, "(none)");
	const char *q = es_http_query(r), *h = es_http_header(r, "X-Test");
	int n = snprintf(out, sizeof out, "%s|%s|%s|%s %s", name, q ? q : "(null)",
			 h ? h : "(null)", es_http_method(r), es_http_path(r));
	return es_http_reply(r, 200, "text/plain", out, (size_t)n);
}

static int on_fail(es_http_req *r, void *ctx)
{
	return es_http_reply_error(r, 503, "not now", "queue");
}

static es_http *server;
static int port;

static int start_server(void **state)
{
	es_http_opts o = {.listen = "127.0.0.1:0", .threads = 4, .max_body = MAX_BODY};
	if (es_http_new(&o, &server) || es_http_route(server, "GET", "/hello", on_hello, NULL) ||
	    es_http_route(server, "POST", "/echo", on_echo, NULL) ||
	    es_http_route(server, "GET", "/query", on_query, NULL) ||
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
	expect_header(r, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exact_route_gives_200),
		cmocka_unit_test(unknown_path_gives_json_404),
		cmocka_unit_test(wrong_method_gives_405),
		cmocka_unit_test(prefix_route_gets_tail),
		cmocka_unit_test(query_and_headers),
		cmocka_unit_test(body_with_content_length),
		cmocka_unit_test(body_limit),
		cmocka_unit_test(chunked_body),
		cmocka_unit_test(short_body),
		cmocka_unit_test(malformed_request_gives_4xx),
		cmocka_unit_test(keep_alive_serves_two_requests),
		cmocka_unit_test(stats_count_by_class),
		cmocka_unit_test(check_listen),
		cmocka_unit_test(setup_errors),
	};
	return cmocka_run_group_tests(tests, start_server, stop_server);
}
