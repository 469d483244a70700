/* httpc_test.c - the HTTP client, against the HTTP server adapter on a
 * port-0 loopback server: statuses, bodies both ways, the body cap, the
 * timeout, the cancel flag, the errors when no answer comes, and escaping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http.h"
#include "httpc.h"

#define BIG 100000

/* ---- the server ----------------------------------------------------------- */

static int on_hello(es_http_req *r, void *ctx)
{
	return es_http_reply(r, 200, "text/plain", "hello", 5);
}

static int on_empty(es_http_req *r, void *ctx)
{
	return es_http_reply(r, 200, "text/plain", "", 0);
}

/* "<Content-Type>|<body>" */
static int on_echo(es_http_req *r, void *ctx)
{
	char *body = NULL, *out;
	size_t len = 0;
	const char *type = es_http_header(r, "Content-Type");
	if (es_http_read_body(r, &body, &len))
		return es_http_reply_error(r, 400, "no body", NULL);
	type = type ? type : "(none)";
	out = malloc(strlen(type) + 1 + len);
	if (!out) {
		free(body);
		return es_http_reply_error(r, 503, "out of memory", NULL);
	}
	memcpy(out, type, strlen(type));
	out[strlen(type)] = '|';
	memcpy(out + strlen(type) + 1, body, len);
	int status = es_http_reply(r, 200, "application/octet-stream", out, strlen(type) + 1 + len);
	free(out);
	free(body);
	return status;
}

static int on_big(es_http_req *r, void *ctx)
{
	char *b = malloc(BIG);
	if (!b)
		return es_http_reply_error(r, 503, "out of memory", NULL);
	memset(b, 'b', BIG);
	int status = es_http_reply(r, 200, "text/plain", b, BIG);
	free(b);
	return status;
}

/* /slow answers once the test opens the gate (or after 10 s). */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static int on_slow(es_http_req *r, void *ctx)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&gate_lock);
	while (!gate_open && pthread_cond_timedwait(&gate_cv, &gate_lock, &until) == 0)
		;
	pthread_mutex_unlock(&gate_lock);
	return es_http_reply(r, 200, "text/plain", "late", 4);
}

static void open_gate(void)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = true;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_lock);
}

static es_http *server;
static char base[64];

static int start_server(void **state)
{
	es_http_opts o = {.listen = "127.0.0.1:0", .threads = 4};
	if (es_http_new(&o, &server) || es_http_route(server, "GET", "/hello", on_hello, NULL) ||
	    es_http_route(server, "GET", "/empty", on_empty, NULL) ||
	    es_http_route(server, "POST", "/echo", on_echo, NULL) ||
	    es_http_route(server, "GET", "/big", on_big, NULL) ||
	    es_http_route(server, "GET", "/slow", on_slow, NULL) || es_http_start(server))
		return -1;
	snprintf(base, sizeof base, "http://127.0.0.1:%d", es_http_port(server));
	return 0;
}

static int stop_server(void **state)
{
	open_gate();
	es_http_free(server);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static es_httpc *client(long timeout_ms, size_t max_body)
{
	es_httpc_opts o = {.timeout_ms = timeout_ms, .max_body = max_body};
	es_httpc *c = NULL;
	assert_int_equal(es_httpc_new(&o, &c), ES_OK);
	assert_non_null(c);
	return c;
}

static const char *url(const char *path)
{
	static char buf[128];
	snprintf(buf, sizeof buf, "%s%s", base, path);
	return buf;
}

/* ---- tests ---------------------------------------------------------------- */

static void get_answers_with_status_and_body(void **state)
{
	es_httpc *c = client(0, 0);
	es_httpc_resp r;
	assert_int_equal(es_httpc_get(c, url("/hello"), &r), ES_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 5);
	assert_string_equal(r.body, "hello");
	assert_string_equal(es_httpc_error(c), "");
	es_httpc_resp_free(&r);
	assert_null(r.body);
	/* Any status is an answer, not an error. */
	assert_int_equal(es_httpc_get(c, url("/nowhere"), &r), ES_OK);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "\"error\""));
	es_httpc_resp_free(&r);
	/* No body: "" rather than NULL. */
	assert_int_equal(es_httpc_get(c, url("/empty"), &r), ES_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	assert_string_equal(r.body, "");
	es_httpc_resp_free(&r);
	es_httpc_free(c);
}

static void post_sends_body_and_type(void **state)
{
	es_httpc *c = client(0, 0);
	es_httpc_resp r;
	static const char body[] = {'{', '}', '\0', 'x'}; /* bytes, not a string */
	assert_int_equal(es_httpc_post(c, url("/echo"), "application/json", body, sizeof body, &r),
			 ES_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, strlen("application/json|") + sizeof body);
	assert_memory_equal(r.body, "application/json|{}\0x", r.len);
	es_httpc_resp_free(&r);
	assert_int_equal(es_httpc_post(c, url("/echo"), "text/plain", NULL, 0, &r), ES_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "text/plain|");
	es_httpc_resp_free(&r);
	/* The same client GETs again (not a POST: /hello has no POST route),
	 * without the POST's Content-Type. */
	assert_int_equal(es_httpc_get(c, url("/hello"), &r), ES_OK);
	assert_int_equal(r.status, 200);
	es_httpc_resp_free(&r);
	assert_int_equal(es_httpc_post(c, url("/hello"), "text/plain", "x", 1, &r), ES_OK);
	assert_int_equal(r.status, 405);
	es_httpc_resp_free(&r);
	es_httpc_free(c);
}

static void body_cap(void **state)
{
	es_httpc *small = client(0, 1000), *dflt = client(0, 0);
	es_httpc_resp r = {.status = 1};
	assert_int_equal(es_httpc_get(small, url("/big"), &r), ES_ETOOBIG);
	assert_int_equal(r.status, 1); /* untouched */
	assert_non_null(strstr(es_httpc_error(small), "larger than 1000 bytes"));
	assert_non_null(strstr(es_httpc_error(small), "/big"));
	/* The client is still good after it. */
	assert_int_equal(es_httpc_get(small, url("/hello"), &r), ES_OK);
	assert_int_equal(r.status, 200);
	es_httpc_resp_free(&r);
	assert_int_equal(es_httpc_get(dflt, url("/big"), &r), ES_OK);
	assert_int_equal(r.len, BIG);
	assert_int_equal(r.body[BIG - 1], 'b');
	assert_int_equal(r.body[BIG], '\0');
	es_httpc_resp_free(&r);
	es_httpc_free(small);
	es_httpc_free(dflt);
}

/* The cancel flag set by another thread while a request waits: it ends
 * long before its timeout. (Before `timeout`, which opens the gate.) */
static atomic_bool cancel_flag;

static void *cancel_soon(void *arg)
{
	(void)arg;
	usleep(200000);
	atomic_store(&cancel_flag, true);
	return NULL;
}

static void cancel(void **state)
{
	es_httpc_opts o = {.timeout_ms = 8000, .cancel = &cancel_flag};
	es_httpc *c = NULL;
	es_httpc_resp r;
	pthread_t t;
	assert_int_equal(es_httpc_new(&o, &c), ES_OK);
	assert_int_equal(pthread_create(&t, NULL, cancel_soon, NULL), 0);
	uint64_t t0 = es_clock_mono_ms();
	assert_int_equal(es_httpc_get(c, url("/slow"), &r), ES_ECLOSED);
	uint64_t took = es_clock_mono_ms() - t0;
	assert_true(took >= 150 && took < 4000);
	pthread_join(t, NULL);
	es_httpc_free(c);
}

static void timeout(void **state)
{
	es_httpc *c = client(300, 0);
	es_httpc_resp r;
	uint64_t t0 = es_clock_mono_ms();
	assert_int_equal(es_httpc_get(c, url("/slow"), &r), ES_ETIMEDOUT);
	uint64_t took = es_clock_mono_ms() - t0;
	assert_true(took >= 250 && took < 5000);
	assert_non_null(strstr(es_httpc_error(c), "/slow: "));
	open_gate();
	es_httpc_free(c);
}

/* A port nothing listens on. */
static int closed_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void errors_when_no_answer(void **state)
{
	es_httpc *c = client(5000, 0);
	es_httpc_resp r;
	char where[64];
	snprintf(where, sizeof where, "http://127.0.0.1:%d/x", closed_port());
	assert_int_equal(es_httpc_get(c, where, &r), ES_EIO);
	assert_int_equal(strncmp(es_httpc_error(c), where, strlen(where)), 0);
	assert_int_equal(es_httpc_post(c, where, "text/plain", "x", 1, &r), ES_EIO);
	assert_int_equal(es_httpc_get(c, "nope://host/", &r), ES_EINVAL);
	assert_int_equal(es_httpc_get(c, "http://[::1/", &r), ES_EINVAL);
	/* A success clears the error. */
	assert_int_equal(es_httpc_get(c, url("/hello"), &r), ES_OK);
	assert_string_equal(es_httpc_error(c), "");
	es_httpc_resp_free(&r);
	es_httpc_free(c);
}

static void escape(void **state)
{
	es_httpc *c = client(0, 0);
	char *e = es_httpc_escape(c, "a b/c?d&e=f");
	assert_string_equal(e, "a%20b%2Fc%3Fd%26e%3Df");
	free(e);
	e = es_httpc_escape(c, "AZaz09-._~");
	assert_string_equal(e, "AZaz09-._~");
	free(e);
	e = es_httpc_escape(c, "");
	assert_string_equal(e, "");
	free(e);
	assert_null(es_httpc_escape(c, NULL));
	es_httpc_free(c);
}

static void arguments(void **state)
{
	es_httpc *c = NULL;
	es_httpc_resp r;
	es_httpc_opts bad = {.timeout_ms = -1};
	assert_int_equal(es_httpc_new(&bad, &c), ES_EINVAL);
	assert_null(c);
	assert_int_equal(es_httpc_new(NULL, NULL), ES_EINVAL);
	assert_int_equal(es_httpc_new(NULL, &c), ES_OK);
	assert_int_equal(es_httpc_get(c, NULL, &r), ES_EINVAL);
	assert_int_equal(es_httpc_get(NULL, url("/hello"), &r), ES_EINVAL);
	assert_int_equal(es_httpc_post(c, url("/echo"), NULL, "x", 1, &r), ES_EINVAL);
	assert_int_equal(es_httpc_post(c, url("/echo"), "text/plain", NULL, 1, &r), ES_EINVAL);
	assert_string_equal(es_httpc_error(NULL), "");
	es_httpc_resp_free(NULL);
	es_httpc_free(c);
	es_httpc_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(get_answers_with_status_and_body),
		cmocka_unit_test(post_sends_body_and_type),
		cmocka_unit_test(body_cap),
		cmocka_unit_test(cancel),
		cmocka_unit_test(timeout),
		cmocka_unit_test(errors_when_no_answer),
		cmocka_unit_test(escape),
		cmocka_unit_test(arguments),
	};
	return cmocka_run_group_tests(tests, start_server, stop_server);
}
