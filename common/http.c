/* http.c - the civetweb adapter.
 *
 * Threads: routes, assets and the credentials are set before start and only
 * read afterwards; counters are atomics. civetweb's workers run handlers
 * concurrently; a connection's state (struct conn_state) is only touched by
 * the worker that serves the connection.
 *
 * Every request goes through dispatch(): its framing is checked (one
 * Content-Length, or Transfer-Encoding: chunked alone), the path is decoded
 * and checked (no NUL, no ".." segment, at most MAX_PATH bytes), then
 * routed; then the credentials are checked unless the route is public; then
 * a write (any method but GET and HEAD) is refused if it comes from another
 * site; then query parameters are refused on a route that reads none; then
 * the handler, an asset, 405 or 404. Nothing is ever read from disk:
 * civetweb has no document_root, and one handler takes every URI.
 *
 * What civetweb answers or drops itself before dispatch (a head too big or
 * too slow, a request target that is not a path) is answered in
 * on_http_error and on_connection_close with our statuses and JSON.
 */
#include "http.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <civetweb.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "log.h"

#define TAG	   "http"
#define MAX_ROUTES 32
#define MAX_PATH   2048 /* longer paths are 414 */
/* more header fields are 431: civetweb drops any past MG_MAX_HEADERS */
#define MAX_FIELDS	(MG_MAX_HEADERS - 1)
#define ETAG_SIZE	24
#define KEEP_ALIVE_MS	5000 /* at most: an idle connection holds a worker */
#define KICK_EVERY_MS	50   /* a body read past its deadline is woken this often */
#define ALLOWED_METHODS "GET, HEAD, POST"

/* glibc 2.36 declares the field but not its usual name. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

struct route {
	char method[8];
	char path[96];
	unsigned flags; /* ES_ROUTE_* */
	es_http_handler fn;
	void *ctx;
};

struct es_http {
	es_http_opts o;
	char *listen;
	es_auth *auth;	 /* NULL: no authentication (loopback only) */
	bool auth_basic; /* users (else only a token) */
	struct mg_context *ctx;
	struct route routes[MAX_ROUTES];
	size_t nroutes;
	const es_http_asset *assets; /* borrowed */
	char (*etags)[ETAG_SIZE];    /* one per asset */
	size_t nassets;
	int port;
	_Atomic uint64_t requests, s2xx, s4xx, s5xx, auth_failures;
};

struct es_http_req {
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	es_http *h;
	const char *path; /* percent-decoded, checked */
	const char *tail;
	const char *user; /* NULL until authenticated */
	char user_buf[ES_AUTH_USER_MAX + 1];
	int status; /* the response sent, 0 before */
	bool streaming;
	bool body_read;	  /* all of it: the connection may serve another request */
	uint64_t head_ms; /* when the head had arrived (monotonic) */
};

/* A connection, as civetweb's connection data: since when its next request
 * has been awaited, and whether it served one before (civetweb then waits
 * for the head KEEP_ALIVE_MS, else request_timeout_ms). */
struct conn_state {
	uint64_t since_ms;
	bool served;
	bool answered; /* civetweb's own error went out through on_http_error */
};

const char *es_http_check_listen(const char *listen)
{
	if (!listen || !*listen)
		return "is empty";
	if (strchr(listen, ','))
		return "must be one HOST:PORT (no list)";
	const char *colon = strrchr(listen, ':');
	if (!colon || colon == listen)
		return "must be HOST:PORT (e.g. 127.0.0.1:8080)";
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end || port < 0 || port > 65535)
		return "has an invalid port (0..65535; 0 picks a free one)";
	return NULL;
}

/* True when the host of a checked listen address is a loopback one:
 * 127.0.0.0/8, ::1 or localhost. */
static bool listen_is_loopback(const char *listen)
{
	char host[64];
	int n = (int)(strrchr(listen, ':') - listen);
	if (n <= 0 || (size_t)n >= sizeof host)
		return false;
	snprintf(host, sizeof host, "%.*s", n, listen);
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (host[0] == '[' && host[n - 1] == ']') {
		host[n - 1] = '\0';
		return inet_pton(AF_INET6, host + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return strcasecmp(host, "localhost") == 0;
}

/* Loads the credentials, or (with none) accepts only a loopback address. */
static es_err setup_auth(es_http *h)
{
	const es_http_opts *o = &h->o;
	if (!o->auth_file && !o->token_file) {
		if (!listen_is_loopback(o->listen)) {
			es_error(TAG,
				 "http.listen %s is not a loopback address, and neither "
				 "http.auth_file nor http.token_file is set: refusing to serve "
				 "without authentication (make an auth file with `edgespool "
				 "passwd FILE USER`, or listen on 127.0.0.1)",
				 o->listen);
			return ES_EINVAL;
		}
		es_info(TAG, "no http.auth_file: serving on loopback only, without authentication");
		return ES_OK;
	}
	char why[512];
	es_err err = es_auth_new(o->auth_file, o->token_file, &h->auth, why, sizeof why);
	if (err) {
		es_error(TAG, "http credentials: %s", why);
		return err;
	}
	es_info(TAG, "HTTP authentication: %s%s%s", o->auth_file ? "the users of " : "",
		o->auth_file ? o->auth_file : "",
		o->token_file ? (o->auth_file ? " and a bearer token" : "a bearer token") : "");
	return ES_OK;
}

es_err es_http_new(const es_http_opts *opts, es_http **out)
{
	const char *why = opts ? es_http_check_listen(opts->listen) : "missing";
	if (!out || why) {
		es_error(TAG, "listen address '%s' %s", opts && opts->listen ? opts->listen : "",
			 why ? why : "has nowhere to go");
		return ES_EINVAL;
	}
	es_http *h = calloc(1, sizeof *h);
	if (!h)
		return ES_ENOMEM;
	h->o = *opts; /* auth_file and token_file are borrowed until we return */
	h->auth_basic = opts->auth_file != NULL;
	if (!h->o.threads)
		h->o.threads = ES_HTTP_THREADS;
	if (!h->o.max_body)
		h->o.max_body = 1024 * 1024;
	if (!h->o.request_timeout_ms)
		h->o.request_timeout_ms = 10000;
	es_err err = ES_ENOMEM;
	if (!(h->listen = strdup(opts->listen)))
		goto fail;
	h->o.listen = h->listen;
	if ((err = setup_auth(h)))
		goto fail;
	h->o.auth_file = h->o.token_file = NULL;
	*out = h;
	return ES_OK;
fail:
	free(h->listen);
	free(h);
	return err;
}

static es_err add_route(es_http *h, const char *method, const char *path, unsigned flags,
			es_http_handler fn, void *ctx)
{
	if (!h || !method || !path || !fn || h->ctx || h->nroutes == MAX_ROUTES)
		return ES_EINVAL;
	struct route *r = &h->routes[h->nroutes];
	if (path[0] != '/' || strlen(path) >= sizeof r->path || strlen(method) >= sizeof r->method)
		return ES_EINVAL;
	if ((flags & ES_ROUTE_PREFIX) && path[strlen(path) - 1] != '/')
		return ES_EINVAL;
	if (flags &
	    ~(unsigned)(ES_ROUTE_PUBLIC | ES_ROUTE_METRICS | ES_ROUTE_PREFIX | ES_ROUTE_QUERY))
		return ES_EINVAL;
	snprintf(r->path, sizeof r->path, "%s", path);
	snprintf(r->method, sizeof r->method, "%s", method);
	r->flags = flags;
	r->fn = fn;
	r->ctx = ctx;
	h->nroutes++;
	return ES_OK;
}

es_err es_http_route_flags(es_http *h, const char *method, const char *path, unsigned flags,
			   es_http_handler fn, void *ctx)
{
	return add_route(h, method, path, flags, fn, ctx);
}

es_err es_http_route(es_http *h, const char *method, const char *path, es_http_handler fn,
		     void *ctx)
{
	return add_route(h, method, path, 0, fn, ctx);
}

es_err es_http_route_prefix(es_http *h, const char *method, const char *prefix, es_http_handler fn,
			    void *ctx)
{
	return add_route(h, method, prefix, ES_ROUTE_PREFIX, fn, ctx);
}

/* A strong validator of an asset's bytes: FNV-1a, 64 bits, quoted. */
static void make_etag(const es_http_asset *a, char out[ETAG_SIZE])
{
	uint64_t x = 14695981039346656037ull;
	for (size_t i = 0; i < a->len; i++)
		x = (x ^ a->data[i]) * 1099511628211ull;
	snprintf(out, ETAG_SIZE, "\"%016" PRIx64 "\"", x ^ a->len);
}

es_err es_http_assets(es_http *h, const es_http_asset *assets, size_t n)
{
	if (!h || h->ctx || (n && !assets))
		return ES_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!assets[i].path || assets[i].path[0] != '/' || !assets[i].type ||
		    (assets[i].len && !assets[i].data))
			return ES_EINVAL;
	char(*etags)[ETAG_SIZE] = n ? calloc(n, sizeof *etags) : NULL;
	if (n && !etags)
		return ES_ENOMEM;
	for (size_t i = 0; i < n; i++)
		make_etag(&assets[i], etags[i]);
	free(h->etags);
	h->etags = etags;
	h->assets = assets;
	h->nassets = n;
	return ES_OK;
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
	if (status == 401)
		atomic_fetch_add(&h->auth_failures, 1);
}

/* Headers every response carries: a CSP that allows only our own origin,
 * no sniffing, no framing, no referrer leaks. Cache-Control is per
 * response: no-store but for the assets. */
static const char security_headers[] =
	"Content-Security-Policy: default-src 'self'; img-src 'self' data:; style-src 'self'; "
	"script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
	"form-action 'self'\r\n"
	"X-Content-Type-Options: nosniff\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"X-Frame-Options: DENY\r\n";

/* What a response says besides its body. */
struct head {
	int status;
	const char *type;  /* NULL: no Content-Type (304) */
	const char *cache; /* Cache-Control value */
	const char *extra; /* more header lines, each ending in CRLF */
	bool length;	   /* send Content-Length (not for 304 and streams) */
	bool close;
};

/* The status line and headers into buf; its length, or -1 if too long. The
 * status line is always ours ("HTTP/1.1"), never echoed from the request. */
static int format_head(struct mg_connection *conn, const struct head *hd, size_t len, char *buf,
		       size_t cap)
{
	char type[160] = "", length[48] = "";
	if (hd->type)
		snprintf(type, sizeof type, "Content-Type: %s\r\n", hd->type);
	if (hd->length)
		snprintf(length, sizeof length, "Content-Length: %zu\r\n", len);
	int n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\n%s%sCache-Control: %s\r\n%s%s%s\r\n",
			 hd->status, mg_get_response_code_text(conn, hd->status), type, length,
			 hd->cache, security_headers, hd->extra ? hd->extra : "",
			 hd->close ? "Connection: close\r\n" : "");
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* Writes a whole response -- status line, headers, body -- with one write:
 * civetweb's header functions send each line on its own, one TCP segment
 * each. With hd->close, civetweb closes the connection after it (and drops
 * what is left of the request unread). False when the write failed. */
static bool send_response(struct mg_connection *conn, const struct head *hd, bool head_only,
			  const char *body, size_t len)
{
	char head[2048];
	if (hd->close)
		mg_disable_connection_keep_alive(conn);
	int n = format_head(conn, hd, len, head, sizeof head);
	if (n < 0)
		return false;
	size_t total = (size_t)n + (head_only ? 0 : len);
	char *buf = total <= sizeof head ? head : malloc(total);
	if (!buf) /* the headers, then the body */
		return mg_write(conn, head, (size_t)n) > 0 && mg_write(conn, body, len) > 0;
	if (buf != head)
		memcpy(buf, head, (size_t)n);
	if (!head_only && len)
		memcpy(buf + n, body, len);
	bool ok = mg_write(conn, buf, total) > 0;
	if (buf != head)
		free(buf);
	return ok;
}

static bool is_head(const es_http_req *r)
{
	return strcmp(r->ri->request_method, "HEAD") == 0;
}

/* True when the request announced a body (a Content-Length above 0, or
 * chunks) that has not been read to its end. */
static bool body_unread(const es_http_req *r)
{
	if (r->body_read)
		return false;
	return r->ri->content_length > 0 || mg_get_header(r->conn, "Transfer-Encoding") != NULL;
}

/* Statuses after which what follows on the connection cannot be trusted. */
static bool closes(int status)
{
	return status == 408 || status == 413 || status == 431;
}

/* Sends the response unless one was sent; returns the status sent. */
static int reply_head(es_http_req *r, struct head *hd, const char *body, size_t len)
{
	if (r->status)
		return r->status;
	/* an unread body must not be taken for the next request, nor read */
	hd->close = hd->close || closes(hd->status) || body_unread(r);
	count(r->h, hd->status); /* before sending: a client that got it sees it counted */
	send_response(r->conn, hd, is_head(r), body, len);
	r->status = hd->status;
	return hd->status;
}

int es_http_reply(es_http_req *r, int status, const char *content_type, const char *body,
		  size_t len)
{
	struct head hd = {
		.status = status, .type = content_type, .cache = "no-store", .length = true};
	return reply_head(r, &hd, body, len);
}

/* {"error": message, "field": field}, malloc'd (cJSON_free), or NULL. */
static char *error_json(const char *message, const char *field)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (o && cJSON_AddStringToObject(o, "error", message) &&
	    (!field || cJSON_AddStringToObject(o, "field", field)))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

/* An error reply with more header lines (extra, or NULL), closing the
 * connection after it when close. */
static int reply_error_full(es_http_req *r, int status, const char *message, const char *field,
			    const char *extra, bool close)
{
	char *text = error_json(message, field);
	if (!text) {
		static const char oom[] = "{\"error\":\"out of memory\"}";
		return es_http_reply(r, 500, "application/json", oom, sizeof oom - 1);
	}
	struct head hd = {.status = status,
			  .type = "application/json",
			  .cache = "no-store",
			  .extra = extra,
			  .length = true,
			  .close = close};
	int sent = reply_head(r, &hd, text, strlen(text));
	cJSON_free(text);
	return sent;
}

static int reply_error_extra(es_http_req *r, int status, const char *message, const char *field,
			     const char *extra)
{
	return reply_error_full(r, status, message, field, extra, false);
}

int es_http_reply_error(es_http_req *r, int status, const char *message, const char *field)
{
	return reply_error_full(r, status, message, field, NULL, false);
}

es_err es_http_stream_begin(es_http_req *r, const char *content_type)
{
	if (!r || !content_type || r->status)
		return ES_EINVAL;
	struct head hd = {.status = 200,
			  .type = content_type,
			  .cache = "no-store",
			  .extra = "X-Accel-Buffering: no\r\n",
			  .close = true};
	count(r->h, 200);
	r->status = 200;
	r->streaming = true;
	return send_response(r->conn, &hd, true, NULL, 0) ? ES_OK : ES_ECLOSED;
}

es_err es_http_stream_write(es_http_req *r, const char *data, size_t len)
{
	if (!r || !r->streaming || (len && !data))
		return ES_EINVAL;
	if (len == 0)
		return ES_OK;
	return mg_write(r->conn, data, len) > 0 ? ES_OK : ES_ECLOSED;
}

const char *es_http_user(const es_http_req *r)
{
	return r ? r->user : NULL;
}

/* ---- requests -------------------------------------------------------------- */

const char *es_http_method(const es_http_req *r)
{
	return r->ri->request_method;
}

const char *es_http_path(const es_http_req *r)
{
	return r->path;
}

const char *es_http_query(const es_http_req *r)
{
	return r->ri->query_string;
}

/* The raw (still encoded) value of the one pair named name in query q:
 * ES_OK with *value and *len, ES_ENOTFOUND, ES_EEXIST (named twice) or
 * ES_EINVAL (no '='). Names are compared as they are, unencoded. */
static es_err find_param(const char *q, const char *name, const char **value, size_t *len)
{
	size_t nlen = strlen(name);
	es_err err = ES_ENOTFOUND;
	for (const char *p = q; p && *p;) {
		size_t pair = strcspn(p, "&"), key = strcspn(p, "=&");
		if (key == nlen && strncmp(p, name, nlen) == 0) {
			if (err != ES_ENOTFOUND)
				return ES_EEXIST;
			err = key == pair ? ES_EINVAL : ES_OK;
			*value = p + key + (key < pair);
			*len = pair - key - (key < pair);
		}
		p += pair + (p[pair] == '&');
	}
	return err;
}

/* True when every '%' of s[0..len) starts an escape of two hex digits. */
static bool escapes_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '%' && (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
				    !isxdigit((unsigned char)s[i + 2])))
			return false;
	return true;
}

es_err es_http_query_param(const es_http_req *r, const char *name, char *buf, size_t cap)
{
	const char *q = r->ri->query_string, *raw = NULL;
	size_t len = 0;
	if (!name || !buf || cap == 0 || cap > INT_MAX)
		return ES_EINVAL;
	es_err err = q ? find_param(q, name, &raw, &len) : ES_ENOTFOUND;
	if (err)
		return err;
	if (len > INT_MAX || !escapes_ok(raw, len))
		return ES_EINVAL;
	int n = mg_url_decode(raw, (int)len, buf, (int)cap, 1);
	if (n < 0 || (size_t)n >= cap)
		return ES_ETOOBIG;
	return strlen(buf) == (size_t)n ? ES_OK : ES_EINVAL; /* a %00 */
}

const char *es_http_header(const es_http_req *r, const char *name)
{
	return mg_get_header(r->conn, name);
}

const char *es_http_tail(const es_http_req *r)
{
	return r->tail ? r->tail : "";
}

/* SIGURG interrupts a read blocked in civetweb's poll (EINTR makes it
 * return an error): nothing else to do. */
static void on_kick(int sig)
{
	(void)sig;
}

/* A timer that sends SIGURG to this thread after ms, then every
 * KICK_EVERY_MS until deleted, so that a client trickling its body cannot
 * keep a read going past the deadline (civetweb's read waits as long as
 * bytes keep coming). False when it cannot be made: the deadline is then
 * only seen between reads. */
static bool kicker_new(uint64_t ms, timer_t *out)
{
	struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGURG};
	sev.sigev_notify_thread_id = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, out) != 0)
		return false;
	struct itimerspec its = {.it_value = {.tv_sec = (time_t)(ms / 1000),
					      .tv_nsec = (long)(ms % 1000) * 1000000 + 1},
				 .it_interval = {.tv_nsec = KICK_EVERY_MS * 1000000L}};
	if (timer_settime(*out, 0, &its, NULL) != 0) {
		timer_delete(*out);
		return false;
	}
	return true;
}

/* Reads up to max bytes into buf, stopping early at the end of the body;
 * ES_ETIMEDOUT once the monotonic clock passes deadline_ms, ES_EIO when the
 * client stops sending. */
static es_err read_all(struct mg_connection *conn, char *buf, size_t max, uint64_t deadline_ms,
		       size_t *got)
{
	size_t n = 0;
	es_err err = ES_OK;
	uint64_t now = es_clock_mono_ms();
	timer_t kicker;
	bool kicking = now < deadline_ms && kicker_new(deadline_ms - now, &kicker);
	for (;;) {
		int rc = mg_read(conn, buf + n, max - n);
		n += rc > 0 ? (size_t)rc : 0;
		if (rc == 0 || n == max)
			break; /* the end of the body, or all that fits */
		if (es_clock_mono_ms() >= deadline_ms) {
			err = ES_ETIMEDOUT;
			break;
		}
		if (rc < 0) {
			err = ES_EIO;
			break;
		}
	}
	if (kicking)
		timer_delete(kicker); /* a kick already sent is taken before this returns */
	*got = n;
	return err;
}

es_err es_http_read_body(es_http_req *r, char **body, size_t *len)
{
	long long declared = r->ri->content_length;
	size_t max = r->h->o.max_body;
	if (r->status || r->body_read)
		return ES_EINVAL;
	if (declared > 0 && (unsigned long long)declared > max)
		return ES_ETOOBIG;
	size_t cap = declared >= 0 ? (size_t)declared : max + 1;
	char *buf = malloc(cap + 1);
	if (!buf)
		return ES_ENOMEM;
	size_t got = 0;
	uint64_t deadline = r->head_ms + (uint64_t)r->h->o.request_timeout_ms;
	es_err err = read_all(r->conn, buf, cap, deadline, &got);
	if (!err && declared < 0 && got > max)
		err = ES_ETOOBIG;
	if (!err && declared >= 0 && got < (size_t)declared)
		err = ES_EIO;
	if (err == ES_ETIMEDOUT)
		reply_error_full(r, 408, "the request body did not arrive in time", NULL, NULL,
				 true);
	if (err) {
		free(buf);
		return err;
	}
	r->body_read = true;
	buf[got] = '\0';
	*body = buf;
	*len = got;
	return ES_OK;
}

/* ---- dispatch ---------------------------------------------------------------- */

/* The route for method and path, or NULL; *any gets the first route of that
 * path whatever its method (for 405), or NULL. */
static const struct route *find(const es_http *h, const char *method, const char *path,
				const struct route **any, const char **tail)
{
	*any = NULL;
	for (size_t i = 0; i < h->nroutes; i++) {
		const struct route *rt = &h->routes[i];
		size_t len = strlen(rt->path);
		bool match = (rt->flags & ES_ROUTE_PREFIX)
				     ? strncmp(path, rt->path, len) == 0 && path[len] != '\0'
				     : strcmp(path, rt->path) == 0;
		if (!match)
			continue;
		if (!*any)
			*any = rt;
		if (strcmp(method, rt->method) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
			*tail = (rt->flags & ES_ROUTE_PREFIX) ? path + len : NULL;
			return rt;
		}
	}
	return NULL;
}

static size_t find_asset(const es_http *h, const char *path)
{
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	for (size_t i = 0; i < h->nassets; i++)
		if (strcmp(path, h->assets[i].path) == 0)
			return i;
	return SIZE_MAX;
}

/* True when a decoded path has a "." or ".." segment ('\\' counts as '/'). */
static bool has_dot_segment(const char *path)
{
	for (const char *p = path; *p;) {
		size_t n = strcspn(p, "/\\");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return true;
		p += n + (p[n] != '\0');
	}
	return false;
}

/* Decodes and checks the request's path into buf (MAX_PATH + 1 bytes):
 * 0 when it may be routed, else the error status already sent. civetweb
 * is told not to decode (decode_url=no), so a %00 is seen here. */
static int check_path(es_http_req *req, char *buf)
{
	const char *raw = req->ri->local_uri_raw;
	if (!raw || raw[0] != '/')
		return es_http_reply_error(req, 400, "the request target must be a path", NULL);
	size_t len = strlen(raw);
	int n = len > MAX_PATH ? -1 : mg_url_decode(raw, (int)len, buf, MAX_PATH + 1, 0);
	if (n < 0 || n > MAX_PATH)
		return es_http_reply_error(req, 414, "the path is longer than 2048 bytes", NULL);
	if (memchr(buf, '\0', (size_t)n))
		return es_http_reply_error(req, 400, "the path holds a NUL byte", NULL);
	if (has_dot_segment(buf))
		return es_http_reply_error(req, 400, "the path holds a '.' or '..' segment", NULL);
	req->path = buf;
	return 0;
}

static bool needs_credentials(const es_http *h, unsigned flags)
{
	if (!h->auth || (flags & ES_ROUTE_PUBLIC))
		return false;
	return !((flags & ES_ROUTE_METRICS) && h->o.metrics_open);
}

static int unauthorized(es_http_req *req)
{
	/* With users, Basic: a browser then asks for them. Token only: Bearer. */
	return reply_error_extra(req, 401, "authentication required", NULL,
				 req->h->auth_basic
					 ? "WWW-Authenticate: Basic realm=\"edgespool\", "
					   "charset=\"UTF-8\"\r\n"
					 : "WWW-Authenticate: Bearer realm=\"edgespool\"\r\n");
}

static bool authenticate(es_http_req *req)
{
	const char *value = mg_get_header(req->conn, "Authorization");
	if (!value || !es_auth_check(req->h->auth, value, req->user_buf, sizeof req->user_buf))
		return false;
	req->user = req->user_buf;
	return true;
}

/* host[:port] of an Origin ("https://a.example:8443") into out. */
static bool origin_authority(const char *origin, char *out, size_t cap)
{
	const char *p = strstr(origin, "://");
	if (!p)
		return false;
	p += 3;
	size_t n = strcspn(p, "/");
	if (n == 0 || n >= cap)
		return false;
	snprintf(out, cap, "%.*s", (int)n, p);
	return true;
}

/* A write from a page of another site: the browser says so (Sec-Fetch-Site)
 * or its Origin is not this server's Host. No Origin (curl, our CLI,
 * devices): not a browser's cross-site request. */
static bool cross_site(es_http_req *req)
{
	const char *site = mg_get_header(req->conn, "Sec-Fetch-Site");
	if (site && strcasecmp(site, "cross-site") == 0)
		return true;
	const char *origin = mg_get_header(req->conn, "Origin");
	if (!origin)
		return false;
	const char *host = mg_get_header(req->conn, "Host");
	char authority[256];
	if (!host || !origin_authority(origin, authority, sizeof authority))
		return true;
	return strcasecmp(authority, host) != 0;
}

static bool is_read(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static bool etag_matches(const char *if_none_match, const char *etag)
{
	return if_none_match &&
	       (strcmp(if_none_match, "*") == 0 || strstr(if_none_match, etag) != NULL);
}

static int serve_asset(es_http_req *req, size_t i)
{
	const es_http_asset *a = &req->h->assets[i];
	char extra[64];
	snprintf(extra, sizeof extra, "ETag: %s\r\n", req->h->etags[i]);
	if (!is_read(req->ri->request_method))
		return es_http_reply_error(req, 405, "method not allowed on this path", NULL);
	struct head hd = {.status = 200,
			  .type = a->type,
			  .cache = "no-cache",
			  .extra = extra,
			  .length = true};
	if (etag_matches(mg_get_header(req->conn, "If-None-Match"), req->h->etags[i])) {
		hd.status = 304;
		hd.type = NULL;
		hd.length = false;
		return reply_head(req, &hd, NULL, 0);
	}
	return reply_head(req, &hd, (const char *)a->data, a->len);
}

/* A route that reads no parameter refuses any: 0, or the 400 sent naming
 * the first. */
static int refuse_params(es_http_req *req, const struct route *rt)
{
	const char *q = req->ri->query_string;
	if (!q || (rt->flags & ES_ROUTE_QUERY))
		return 0;
	q += strspn(q, "&"); /* empty pairs name nothing */
	if (!*q)
		return 0;
	char name[72], msg[200];
	size_t n = strcspn(q, "=&");
	snprintf(name, sizeof name, "%.*s", (int)(n < 64 ? n : 64), q);
	snprintf(msg, sizeof msg, "%s is not a parameter of %s", name, rt->path);
	return es_http_reply_error(req, 400, msg, name);
}

/* Routes a checked request; *label gets the route's name for on_request. */
static int route_request(es_http_req *req, const char **label)
{
	es_http *h = req->h;
	const char *method = req->ri->request_method;
	const struct route *any;
	const struct route *rt = find(h, method, req->path, &any, &req->tail);
	size_t asset = any ? SIZE_MAX : find_asset(h, req->path);
	unsigned flags = any ? any->flags : 0;
	if (rt)
		flags = rt->flags;
	*label = any ? (rt ? rt->path : any->path) : asset != SIZE_MAX ? "assets" : "other";
	if (needs_credentials(h, flags) && !authenticate(req))
		return unauthorized(req);
	if (!is_read(method) && cross_site(req))
		return es_http_reply_error(req, 403, "cross-site request refused", "Origin");
	int status = rt ? refuse_params(req, rt) : 0;
	if (status)
		return status;
	if (rt)
		return rt->fn(req, rt->ctx);
	if (any)
		return es_http_reply_error(req, 405, "method not allowed on this path", NULL);
	if (asset != SIZE_MAX)
		return serve_asset(req, asset);
	return es_http_reply_error(req, 404, "no such resource", NULL);
}

/* The method as a label with few values (for metrics). */
static const char *method_label(const char *method)
{
	static const char *const known[] = {"GET",    "HEAD",  "POST",	 "PUT",
					    "DELETE", "PATCH", "OPTIONS"};
	for (size_t i = 0; method && i < sizeof known / sizeof known[0]; i++)
		if (strcmp(method, known[i]) == 0)
			return known[i];
	return "other";
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void hook(const es_http *h, const char *method, const char *route, int status,
		 const struct timespec *t0)
{
	if (h->o.on_request)
		h->o.on_request(h->o.hook_ctx, method_label(method), route, status,
				seconds_since(t0));
}

/* A header's value: digits only (a Content-Length). */
static bool all_digits(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

/* Refuses a request that another HTTP reader could frame differently (a
 * proxy in front: request smuggling): Content-Length twice, or not a plain
 * number; Transfer-Encoding twice, other than "chunked", or with a
 * Content-Length. civetweb would take the first Content-Length, or the
 * chunks. Also more header fields than civetweb keeps (it would ignore the
 * rest, Content-Length included). 0, or the error sent; the connection is
 * then closed without reading further. */
static int check_framing(es_http_req *req)
{
	const struct mg_request_info *ri = req->ri;
	int ncl = 0, nte = 0;
	const char *cl = NULL, *te = NULL;
	if (ri->num_headers > MAX_FIELDS)
		return reply_error_full(req, 431, "too many header fields", NULL, NULL, true);
	for (int i = 0; i < ri->num_headers; i++) {
		const char *name = ri->http_headers[i].name;
		if (strcasecmp(name, "Content-Length") == 0 && ++ncl)
			cl = ri->http_headers[i].value;
		else if (strcasecmp(name, "Transfer-Encoding") == 0 && ++nte)
			te = ri->http_headers[i].value;
	}
	const char *why = "Content-Length must be given once, as a number";
	const char *field = "Content-Length";
	if (ncl <= 1 && (!cl || all_digits(cl))) {
		field = "Transfer-Encoding";
		if (cl && te)
			why = "Content-Length and Transfer-Encoding cannot both be given";
		else if (nte > 1 || (te && strcasecmp(te, "chunked") != 0))
			why = "Transfer-Encoding must be given once, as chunked";
		else
			return 0;
	}
	return reply_error_full(req, 400, why, field, NULL, true);
}

static int dispatch(struct mg_connection *conn, void *cbdata)
{
	es_http *h = cbdata;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char path[MAX_PATH + 1];
	es_http_req req = {.conn = conn,
			   .ri = mg_get_request_info(conn),
			   .h = h,
			   .path = "",
			   .head_ms = es_clock_mono_ms()};
	const char *label = "other";
	int status = check_framing(&req);
	if (!status)
		status = check_path(&req, path);
	if (!status)
		status = route_request(&req, &label);
	es_debug(TAG, "%s %s -> %d", req.ri->request_method, req.path, status);
	hook(h, req.ri->request_method, label, status, &t0);
	return status;
}

/* Sends a JSON error for a request that never reached dispatch (civetweb's
 * own errors, targets that are not paths) and closes the connection. */
static void reply_outside(struct mg_connection *conn, int status, const char *msg,
			  const char *extra)
{
	es_http *h = mg_get_user_data(mg_get_context(conn));
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	char body[256];
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "error", msg && *msg ? msg : "bad request") ||
	    !cJSON_PrintPreallocated(o, body, sizeof body, false))
		snprintf(body, sizeof body, "{\"error\":\"bad request\"}");
	cJSON_Delete(o);
	count(h, status);
	struct head hd = {.status = status,
			  .type = status == 204 ? NULL : "application/json",
			  .cache = "no-store",
			  .extra = extra,
			  .length = status != 204,
			  .close = true};
	send_response(conn, &hd, status == 204, body, strlen(body));
	hook(h, ri ? ri->request_method : NULL, "other", status, &t0);
}

/* civetweb says "Malformed message" (400) for a head that did not fit in
 * its buffer and for one that did not arrive in time (and for a client that
 * went away, which reads no answer): told apart by how long the head was
 * awaited, they are 413 and 408 as docs/api.md says. */
static int head_status(const es_http *h, const struct conn_state *cs, const char **msg)
{
	if (!cs)
		return 400;
	uint64_t waited = es_clock_mono_ms() - cs->since_ms;
	uint64_t limit = (uint64_t)h->o.request_timeout_ms;
	if (cs->served && limit > KEEP_ALIVE_MS)
		limit = KEEP_ALIVE_MS;
	if (waited + 50 >= limit) {
		*msg = "the request did not arrive in time";
		return 408;
	}
	*msg = "the request head is larger than 16 KiB";
	return 413;
}

/* civetweb's own errors (a malformed request line, a head too big or too
 * slow) get a JSON body like ours, and the connection is closed: after a
 * malformed request nothing that follows can be trusted. */
static int on_http_error(struct mg_connection *conn, int status, const char *msg)
{
	es_http *h = mg_get_user_data(mg_get_context(conn));
	struct conn_state *cs = mg_get_user_connection_data(conn);
	if (status == 400 && msg && strcmp(msg, "Malformed message") == 0)
		status = head_status(h, cs, &msg);
	if (cs)
		cs->answered = true;
	reply_outside(conn, status, msg, NULL);
	return 0;
}

/* Every request, from the first one the listening socket accepts: as
 * begin_request it is in place when mg_start starts listening (a handler
 * set with mg_set_request_handler after mg_start left a window in which
 * civetweb answered 404 itself, seen by tests polling /healthz at start). */
static int on_begin_request(struct mg_connection *conn)
{
	return dispatch(conn, mg_get_user_data(mg_get_context(conn)));
}

static int on_init_connection(const struct mg_connection *conn, void **data)
{
	(void)conn;
	struct conn_state *cs = malloc(sizeof *cs); /* NULL: its errors stay 400 */
	if (cs)
		*cs = (struct conn_state){.since_ms = es_clock_mono_ms()};
	*data = cs;
	return 0;
}

static void on_end_request(const struct mg_connection *conn, int status)
{
	(void)status;
	struct conn_state *cs = mg_get_user_connection_data(conn);
	if (cs) {
		cs->since_ms = es_clock_mono_ms();
		cs->served = true;
	}
}

/* civetweb drops a request whose target is not a path ("*", or an absolute
 * URI of another server) without a word and closes: it is answered here,
 * before the socket closes. OPTIONS * (the server's capabilities) gets 204
 * and the methods; any other such request 400, as check_path says. The
 * connection is the caller's, only passed as const. */
static void on_connection_close(const struct mg_connection *cconn)
{
	struct mg_connection *conn = (struct mg_connection *)cconn;
	struct conn_state *cs = mg_get_user_connection_data(conn);
	const struct mg_request_info *ri = mg_get_request_info(conn);
	bool dropped = ri && ri->request_method && ri->request_uri && !ri->local_uri &&
		       !(cs && cs->answered);
	if (dropped && strcmp(ri->request_method, "OPTIONS") == 0 &&
	    strcmp(ri->request_uri, "*") == 0)
		reply_outside(conn, 204, NULL, "Allow: " ALLOWED_METHODS "\r\n");
	else if (dropped)
		reply_outside(conn, 400, "the request target must be a path", NULL);
	free(cs);
	mg_set_user_connection_data(conn, NULL);
}

static int on_log(const struct mg_connection *conn, const char *message)
{
	es_warn(TAG, "%s", message);
	return 1;
}

/* The no-op SIGURG handler that lets a kicker interrupt a read (a signal
 * ignored, as SIGURG is by default, interrupts nothing). One that is there
 * already interrupts as well and is kept. */
static es_err install_kick(void)
{
	struct sigaction old, sa = {.sa_handler = on_kick};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGURG, NULL, &old) != 0)
		return ES_ESYS;
	if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
		return ES_OK;
	return sigaction(SIGURG, &sa, NULL) == 0 ? ES_OK : ES_ESYS;
}

es_err es_http_start(es_http *h)
{
	char threads[16], timeout[16], keepalive[16];
	snprintf(threads, sizeof threads, "%d", h->o.threads);
	snprintf(timeout, sizeof timeout, "%d", h->o.request_timeout_ms);
	/* an idle keep-alive connection holds a worker thread: not for long */
	snprintf(keepalive, sizeof keepalive, "%d",
		 h->o.request_timeout_ms < KEEP_ALIVE_MS ? h->o.request_timeout_ms : KEEP_ALIVE_MS);
	if (install_kick()) {
		es_error(TAG, "cannot set a SIGURG handler: %s", strerror(errno));
		return ES_ESYS;
	}
	/* No document_root: nothing is served from disk, so no directory
	 * listing, CGI, SSI, Lua or PUT/DELETE of files can happen; every URI
	 * goes to dispatch(). Empty CORS settings: civetweb must not answer
	 * preflights itself (with "*"). decode_url=no: check_path decodes. */
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
		keepalive,
		"enable_directory_listing",
		"no",
		"decode_url",
		"no",
		"access_control_allow_origin",
		"",
		"access_control_allow_methods",
		"",
		"access_control_allow_headers",
		"",
		"cgi_pattern",
		"",
		"ssi_pattern",
		"",
		"max_request_size",
		"16384", /* a longer request head is 413 */
		"linger_timeout_ms",
		"1000",
		/* Headers and body go out in separate writes: without NODELAY the
		 * body waits ~40 ms for the client's delayed ACK. */
		"tcp_nodelay",
		"1",
		NULL,
	};
	struct mg_callbacks cb = {.begin_request = on_begin_request,
				  .end_request = on_end_request,
				  .http_error = on_http_error,
				  .log_message = on_log,
				  .init_connection = on_init_connection,
				  .connection_close = on_connection_close};
	mg_init_library(0);
	h->ctx = mg_start(&cb, h, options);
	if (!h->ctx) {
		es_error(TAG, "cannot listen on %s", h->listen);
		return ES_ESYS;
	}
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
			       .status_5xx = atomic_load(&m->s5xx),
			       .auth_failures = atomic_load(&m->auth_failures)};
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
	es_auth_free(h->auth);
	free(h->etags);
	free(h->listen);
	free(h);
}
