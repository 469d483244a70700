/* http.c - the civetweb adapter.
 *
 * Threads: routes are set before start and only read afterwards; counters
 * are atomics. civetweb's workers run handlers concurrently.
 */
#include "http.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define TAG	   "http"
#define MAX_ROUTES 32

struct route {
	char method[8];
	char path[96];
	bool prefix;
	es_http_handler fn;
	void *ctx;
};

struct es_http {
	es_http_opts o;
	char *listen;
	struct mg_context *ctx;
	struct route routes[MAX_ROUTES];
	size_t nroutes;
	int port;
	_Atomic uint64_t requests, s2xx, s4xx, s5xx;
};

struct es_http_req {
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	es_http *h;
	const char *tail;
	int status;
};

const char *es_http_check_listen(const char *listen)
{
	if (!listen || !*listen)
		return "is empty";
	const char *colon = strrchr(listen, ':');
	if (!colon || colon == listen)
		return "must be HOST:PORT (e.g. 127.0.0.1:8080)";
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end || port < 0 || port > 65535)
		return "has an invalid port (0..65535; 0 picks a free one)";
	return NULL;
}

es_err es_http_new(const es_http_opts *opts, es_http **out)
{
	const char *why = opts ? es_http_check_listen(opts->listen) : "missing";
	if (why) {
		es_error(TAG, "listen address '%s' %s", opts && opts->listen ? opts->listen : "",
			 why);
		return ES_EINVAL;
	}
	es_http *h = calloc(1, sizeof *h);
	if (!h)
		return ES_ENOMEM;
	h->o = *opts;
	if (!h->o.threads)
		h->o.threads = 8;
	if (!h->o.max_body)
		h->o.max_body = 1024 * 1024;
	if (!h->o.request_timeout_ms)
		h->o.request_timeout_ms = 10000;
	if (!(h->listen = strdup(opts->listen))) {
		free(h);
		return ES_ENOMEM;
	}
	*out = h;
	return ES_OK;
}

static es_err add_route(es_http *h, const char *method, const char *path, bool prefix,
			es_http_handler fn, void *ctx)
{
	if (!h || !method || !path || !fn || h->ctx || h->nroutes == MAX_ROUTES)
		return ES_EINVAL;
	struct route *r = &h->routes[h->nroutes];
	if (strlen(path) >= sizeof r->path || strlen(method) >= sizeof r->method)
		return ES_EINVAL;
	if (prefix && path[strlen(path) - 1] != '/')
		return ES_EINVAL;
	snprintf(r->path, sizeof r->path, "%s", path);
	snprintf(r->method, sizeof r->method, "%s", method);
	r->prefix = prefix;
	r->fn = fn;
	r->ctx = ctx;
	h->nroutes++;
	return ES_OK;
}

es_err es_http_route(es_http *h, const char *method, const char *path, es_http_handler fn,
		     void *ctx)
{
	return add_route(h, method, path, false, fn, ctx);
}

es_err es_http_route_prefix(es_http *h, const char *method, const char *prefix, es_http_handler fn,
			    void *ctx)
{
	return add_route(h, method, prefix, true, fn, ctx);
}

/* ---- responses ----------------------------------------------------------- */

static void count(es_http *h, int status)
{
	atomic_fetch_add(&h->requests, 1);
	if (status < 300)
		atomic_fetch_add(&h->s2xx, 1);
	else if (status < 500)
		atomic_fetch_add(&h->s4xx, 1);
	else
		atomic_fetch_add(&h->s5xx, 1);
}

/* Headers every response carries: no sniffing, no caching of API data, no
 * framing, no referrer leaks, and a CSP that allows nothing for non-HTML. */
static const char security_headers[] =
	"X-Content-Type-Options: nosniff\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"X-Frame-Options: DENY\r\n"
	"Cache-Control: no-store\r\n"
	"Content-Security-Policy: default-src 'none'; frame-ancestors 'none'\r\n";

/* Writes a whole response -- status line, headers, body -- with one write:
 * civetweb's header functions send each line on its own, one TCP segment
 * each. The status line is always ours ("HTTP/1.1"), never echoed from the
 * request. */
static void send_response(struct mg_connection *conn, bool head_only, int status,
			  const char *content_type, const char *body, size_t len, bool close)
{
	char head[1024];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
			 status, mg_get_response_code_text(conn, status), content_type, len,
			 security_headers, close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof head)
		return;
	size_t total = (size_t)n + (head_only ? 0 : len);
	char *buf = total <= sizeof head ? head : malloc(total);
	if (!buf) {
		mg_write(conn, head, (size_t)n); /* the headers, then the body */
		mg_write(conn, body, len);
		return;
	}
	if (buf != head)
		memcpy(buf, head, (size_t)n);
	if (!head_only && len)
		memcpy(buf + n, body, len);
	mg_write(conn, buf, total);
	if (buf != head)
		free(buf);
}

int es_http_reply(es_http_req *r, int status, const char *content_type, const char *body,
		  size_t len)
{
	bool head_only = strcmp(r->ri->request_method, "HEAD") == 0;
	count(r->h, status); /* before sending: a client that got it sees it counted */
	/* after a 413 the unread body must not be taken for the next request */
	send_response(r->conn, head_only, status, content_type, body, len, status == 413);
	r->status = status;
	return status;
}

int es_http_reply_error(es_http_req *r, int status, const char *message, const char *field)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (o && cJSON_AddStringToObject(o, "error", message) &&
	    (!field || cJSON_AddStringToObject(o, "field", field)))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text) {
		static const char oom[] = "{\"error\":\"out of memory\"}";
		return es_http_reply(r, 500, "application/json", oom, sizeof oom - 1);
	}
	es_http_reply(r, status, "application/json", text, strlen(text));
	cJSON_free(text);
	return status;
}

/* ---- requests -------------------------------------------------------------- */

const char *es_http_method(const es_http_req *r)
{
	return r->ri->request_method;
}

const char *es_http_path(const es_http_req *r)
{
	return r->ri->local_uri;
}

const char *es_http_query(const es_http_req *r)
{
	return r->ri->query_string;
}

bool es_http_query_param(const es_http_req *r, const char *name, char *buf, size_t cap)
{
	const char *q = r->ri->query_string;
	if (!q || cap == 0)
		return false;
	return mg_get_var(q, strlen(q), name, buf, cap) >= 0;
}

const char *es_http_header(const es_http_req *r, const char *name)
{
	return mg_get_header(r->conn, name);
}

const char *es_http_tail(const es_http_req *r)
{
	return r->tail ? r->tail : "";
}

/* Reads up to max bytes into buf; stops early at end of body. */
static es_err read_all(struct mg_connection *conn, char *buf, size_t max, size_t *got)
{
	size_t n = 0;
	while (n < max) {
		int rc = mg_read(conn, buf + n, max - n);
		if (rc < 0)
			return ES_EIO;
		if (rc == 0)
			break;
		n += (size_t)rc;
	}
	*got = n;
	return ES_OK;
}

es_err es_http_read_body(es_http_req *r, char **body, size_t *len)
{
	long long declared = r->ri->content_length;
	size_t max = r->h->o.max_body;
	if (declared > 0 && (unsigned long long)declared > max)
		return ES_ETOOBIG;
	size_t cap = declared >= 0 ? (size_t)declared : max + 1;
	char *buf = malloc(cap + 1);
	if (!buf)
		return ES_ENOMEM;
	size_t got = 0;
	es_err err = read_all(r->conn, buf, cap, &got);
	if (!err && declared < 0 && got > max)
		err = ES_ETOOBIG;
	if (!err && declared >= 0 && got < (size_t)declared)
		err = ES_EIO;
	if (err) {
		free(buf);
		return err;
	}
	buf[got] = '\0';
	*body = buf;
	*len = got;
	return ES_OK;
}

/* ---- dispatch ---------------------------------------------------------------- */

static const struct route *find(const es_http *h, const char *method, const char *path,
				bool *path_known, const char **tail)
{
	*path_known = false;
	for (size_t i = 0; i < h->nroutes; i++) {
		const struct route *rt = &h->routes[i];
		size_t len = strlen(rt->path);
		bool match = rt->prefix ? strncmp(path, rt->path, len) == 0 && path[len] != '\0'
					: strcmp(path, rt->path) == 0;
		if (!match)
			continue;
		*path_known = true;
		if (strcmp(method, rt->method) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
			*tail = rt->prefix ? path + len : NULL;
			return rt;
		}
	}
	return NULL;
}

static int dispatch(struct mg_connection *conn, void *cbdata)
{
	es_http *h = cbdata;
	es_http_req req = {.conn = conn, .ri = mg_get_request_info(conn), .h = h};
	const char *path = req.ri->local_uri ? req.ri->local_uri : "";
	bool known;
	const struct route *rt = find(h, req.ri->request_method, path, &known, &req.tail);
	int status;
	if (rt)
		status = rt->fn(&req, rt->ctx);
	else if (known)
		status = es_http_reply_error(&req, 405, "method not allowed on this path", NULL);
	else
		status = es_http_reply_error(&req, 404, "no such resource", NULL);
	es_debug(TAG, "%s %s -> %d", req.ri->request_method, path, status);
	return status;
}

/* civetweb's own errors (a malformed request line, headers too big, a
 * timeout) get a JSON body like ours, and the connection is closed: after a
 * malformed request nothing that follows can be trusted. */
static int on_http_error(struct mg_connection *conn, int status, const char *msg)
{
	es_http *h = mg_get_user_data(mg_get_context(conn));
	char body[256];
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "error", msg && *msg ? msg : "bad request") ||
	    !cJSON_PrintPreallocated(o, body, sizeof body, false))
		snprintf(body, sizeof body, "{\"error\":\"bad request\"}");
	cJSON_Delete(o);
	count(h, status);
	send_response(conn, false, status, "application/json", body, strlen(body), true);
	return 0;
}

static int on_log(const struct mg_connection *conn, const char *message)
{
	es_warn(TAG, "%s", message);
	return 1;
}

es_err es_http_start(es_http *h)
{
	char threads[16], timeout[16];
	snprintf(threads, sizeof threads, "%d", h->o.threads);
	snprintf(timeout, sizeof timeout, "%d", h->o.request_timeout_ms);
	const char *options[] = {
		"listening_ports",
		h->listen,
		"num_threads",
		threads,
		"request_timeout_ms",
		timeout,
		"enable_keep_alive",
		"yes",
		"keep_alive_timeout_ms",
		"30000",
		"enable_directory_listing",
		"no",
		"max_request_size",
		"16384",
		"linger_timeout_ms",
		"1000",
		/* Headers and body go out in separate writes: without NODELAY the
		 * body waits ~40 ms for the client's delayed ACK. */
		"tcp_nodelay",
		"1",
		NULL,
	};
	struct mg_callbacks cb = {.http_error = on_http_error, .log_message = on_log};
	mg_init_library(0);
	h->ctx = mg_start(&cb, h, options);
	if (!h->ctx) {
		es_error(TAG, "cannot listen on %s", h->listen);
		return ES_ESYS;
	}
	mg_set_request_handler(h->ctx, "/", dispatch, h);
	struct mg_server_port ports[4];
	int n = mg_get_server_ports(h->ctx, 4, ports);
	h->port = n > 0 ? ports[0].port : 0;
	return ES_OK;
}

int es_http_port(const es_http *h)
{
	return h->port;
}

void es_http_stats_get(const es_http *h, es_http_stats *out)
{
	es_http *m = (es_http *)h;
	*out = (es_http_stats){.requests = atomic_load(&m->requests),
			       .status_2xx = atomic_load(&m->s2xx),
			       .status_4xx = atomic_load(&m->s4xx),
			       .status_5xx = atomic_load(&m->s5xx)};
}

struct stopper {
	struct mg_context *ctx;
	atomic_bool done;
};

static void *stop_thread(void *arg)
{
	struct stopper *s = arg;
	mg_stop(s->ctx);
	atomic_store(&s->done, true);
	return NULL;
}

/* A connection of our own to the listening socket. */
static void poke(const es_http *h)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
	char host[64];
	snprintf(host, sizeof host, "%.*s", (int)(strrchr(h->listen, ':') - h->listen), h->listen);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || sa.sin_addr.s_addr == INADDR_ANY)
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		/* already closed: nothing to wake */
	}
	close(fd);
}

/* civetweb's listener polls in 2-second steps and looks at its stop flag
 * only between them; mg_stop alone takes up to 2 s. So mg_stop runs on a
 * thread while this one wakes the listener with connections of its own. */
static void stop_quickly(es_http *h)
{
	struct stopper s = {.ctx = h->ctx};
	pthread_t t;
	if (pthread_create(&t, NULL, stop_thread, &s) != 0) {
		mg_stop(h->ctx);
		return;
	}
	while (!atomic_load(&s.done)) {
		poke(h);
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
	}
	pthread_join(t, NULL);
}

void es_http_free(es_http *h)
{
	if (!h)
		return;
	if (h->ctx)
		stop_quickly(h);
	free(h->listen);
	free(h);
}
