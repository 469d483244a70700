/* http.h - the HTTP server adapter: the only module that includes civetweb.
 *
 * A small router over civetweb: exact-path routes and prefix routes, per
 * method, JSON error bodies for every error (400, 404, 405, 408, 413, 414,
 * 431, ...), request counters, and a hardened civetweb underneath (no file
 * serving, no directory listing, bounded threads, time limits on request
 * heads and bodies, framing that cannot be read two ways, security headers on
 * every response). Handlers run on civetweb's worker threads; they must hand
 * state changes to their owner thread (the journal's append is thread-safe).
 *
 * civetweb gives each connection a worker thread for as long as it lasts
 * (its head arriving, its body, an event stream, keep-alive idling), so a
 * client that is slow holds one: `threads` must exceed the connections a
 * hostile client set can keep open (docs/security.md has the figures).
 */
#ifndef ES_HTTP_H
#define ES_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct es_http es_http;
typedef struct es_http_req es_http_req;

/* Sends a response (through the es_http_reply* functions) and returns the
 * status code it sent. */
typedef int (*es_http_handler)(es_http_req *req, void *ctx);

typedef struct es_http_opts {
	const char *listen; /* "127.0.0.1:8080"; port 0 picks a free one */
	int threads;	    /* worker threads; 0: ES_HTTP_THREADS */
	size_t max_body;    /* largest request body; 0: 1 MiB */
	/* A request's head must arrive within this from the connection's start
	 * (or the previous response), its body within this from its head;
	 * else 408. 0: 10000. An idle keep-alive connection is closed after
	 * min(this, 5000). */
	int request_timeout_ms;
	/* Authentication. auth_file: "user:crypt-hash" lines (HTTP Basic);
	 * token_file: a bearer token on its first line (optional). With
	 * neither, only a loopback listen address is accepted (ES_EINVAL). */
	const char *auth_file, *token_file;
	bool metrics_open; /* ES_ROUTE_METRICS routes need no credentials */
	/* Called after every request (any thread): the route's pattern (or
	 * "other" for no route), and how long it took. For metrics. */
	void (*on_request)(void *ctx, const char *method, const char *route, int status,
			   double seconds);
	void *hook_ctx;
} es_http_opts;

/* Route flags. Every route needs credentials (when an auth file or token is
 * set) unless flagged; every route but GET and HEAD refuses a request whose
 * Origin header names another site (403). */
enum {
	ES_ROUTE_PUBLIC = 1u << 0,  /* no credentials ever (/healthz) */
	ES_ROUTE_METRICS = 1u << 1, /* no credentials when opts.metrics_open */
	ES_ROUTE_PREFIX = 1u << 2,  /* path is a prefix ending in '/' */
	/* The handler reads query parameters (es_http_query_param). A route
	 * without it answers a request with any parameter 400 naming it: a
	 * parameter nobody reads must not look like a filter that was applied. */
	ES_ROUTE_QUERY = 1u << 3,
};

#define ES_HTTP_THREADS 256 /* worker threads when opts.threads is 0 */

/* A file compiled into the program (the dashboard). */
typedef struct es_http_asset {
	const char *path; /* "/index.html"; "/" serves "/index.html" */
	const char *type; /* "text/html; charset=utf-8" */
	const unsigned char *data;
	size_t len;
} es_http_asset;

typedef struct es_http_stats {
	uint64_t requests, status_2xx, status_4xx, status_5xx;
	uint64_t auth_failures; /* 401s: credentials missing or wrong */
} es_http_stats;

/* Checks a listen address as es_http_new would: NULL when valid. */
const char *es_http_check_listen(const char *listen);

es_err es_http_new(const es_http_opts *opts, es_http **out);

/* Adds a route for exactly path ("/api/events"), before es_http_start. */
es_err es_http_route(es_http *h, const char *method, const char *path, es_http_handler fn,
		     void *ctx);
/* Adds a route for every path that starts with prefix (which ends in '/')
 * and goes on; es_http_tail() gives the rest ("/api/events/" + id). */
es_err es_http_route_prefix(es_http *h, const char *method, const char *prefix, es_http_handler fn,
			    void *ctx);

/* es_http_route / es_http_route_prefix with flags (ES_ROUTE_*). */
es_err es_http_route_flags(es_http *h, const char *method, const char *path, unsigned flags,
			   es_http_handler fn, void *ctx);

/* Serves assets[0..n) (borrowed, must outlive h) for GET and HEAD of their
 * paths, with an ETag, behind the same authentication as the API. Any other
 * path that is not a route is 404 (no file is ever read from disk). */
es_err es_http_assets(es_http *h, const es_http_asset *assets, size_t n);

/* Binds and starts serving. ES_ESYS when the address cannot be bound. */
es_err es_http_start(es_http *h);

/* The bound port (after start). */
int es_http_port(const es_http *h);

void es_http_stats_get(const es_http *h, es_http_stats *out);

/* Stops serving (waits for handlers to return) and frees. NULL ok. */
void es_http_free(es_http *h);

/* ---- requests -------------------------------------------------------- */

const char *es_http_method(const es_http_req *r);
const char *es_http_path(const es_http_req *r);
/* The query string without '?', or NULL. */
const char *es_http_query(const es_http_req *r);
/* The value of query parameter name (exactly that name, percent-decoded,
 * '+' read as a space) into buf[cap], NUL-terminated. ES_OK; ES_ENOTFOUND
 * when the query has no such parameter; ES_ETOOBIG when the value does not
 * fit in cap with its NUL (buf unspecified); ES_EEXIST when the name comes
 * more than once; ES_EINVAL when it has no '=', a '%' not followed by two
 * hex digits, or a %00. */
es_err es_http_query_param(const es_http_req *r, const char *name, char *buf, size_t cap);
/* A request header, or NULL. */
const char *es_http_header(const es_http_req *r, const char *name);
/* What followed a prefix route's prefix, or "". */
const char *es_http_tail(const es_http_req *r);

/* Reads the whole body (NUL-terminated, malloc'd). ES_ETOOBIG if larger than
 * the server's max_body (nothing useful read), ES_EIO if the client stopped
 * sending, ES_ENOMEM. ES_ETIMEDOUT if it did not arrive within
 * request_timeout_ms of the head: then 408 has been sent, and the reply the
 * handler makes is not (it returns 408). After any error the connection is
 * closed after the reply. An empty body gives *len 0. */
es_err es_http_read_body(es_http_req *r, char **body, size_t *len);

/* ---- responses ------------------------------------------------------- */

/* A request gets one response: a reply made after one was sent (or a stream
 * begun) sends nothing and returns the status sent. A reply to a request
 * whose body was not read closes the connection after it (civetweb would
 * otherwise read and drop the body, at the client's pace). */

int es_http_reply(es_http_req *r, int status, const char *content_type, const char *body,
		  size_t len);
/* A streamed response (Server-Sent Events): the status line and headers
 * (200, content_type, no caching, no length) go out at once; then each
 * es_http_stream_write sends data as it is. ES_ECLOSED once the client is
 * gone: the handler then returns 200. */
es_err es_http_stream_begin(es_http_req *r, const char *content_type);
es_err es_http_stream_write(es_http_req *r, const char *data, size_t len);

/* The user the request authenticated as ("token" for the bearer token), or
 * NULL when no authentication is configured. */
const char *es_http_user(const es_http_req *r);

/* {"error": message, "field": field} (field omitted when NULL). */
int es_http_reply_error(es_http_req *r, int status, const char *message, const char *field);

#endif
