/* httpc.h - the HTTP client: the only module that includes libcurl.
 *
 * One es_httpc is one keep-alive connection (reopened as needed) with its
 * timeouts and a cap on the bodies it takes. A request's answer, whatever
 * its status, is a response; an error means no (usable) answer came.
 * Credentials may be given in the URL (http://user:password@host:port).
 *
 * It is a library of its own (es_httpc, not es_common), so only the
 * programs that make requests link libcurl. Not thread-safe: one owner.
 */
#ifndef ES_HTTPC_H
#define ES_HTTPC_H

#include <stdatomic.h>
#include <stddef.h>

#include "err.h"

typedef struct es_httpc es_httpc;

typedef struct es_httpc_opts {
	long timeout_ms;	 /* a whole request at most; 0: 60000 */
	long connect_timeout_ms; /* connecting at most; 0: only timeout_ms */
	size_t max_body;	 /* the largest response body taken; 0: 16 MiB */
	/* When set and it becomes true (another thread), a request under way
	 * ends within a second or so with ES_ECLOSED; NULL: none. */
	const atomic_bool *cancel;
} es_httpc_opts;

/* A response: its status and its body, malloc'd and NUL-terminated (len
 * excludes the NUL; "" when there was none). */
typedef struct es_httpc_resp {
	long status;
	char *body;
	size_t len;
} es_httpc_resp;

/* A client with opts (NULL: every default). ES_ENOMEM. */
es_err es_httpc_new(const es_httpc_opts *opts, es_httpc **out);
/* NULL ok. */
void es_httpc_free(es_httpc *c);

/* GET url. On ES_OK *resp is the answer (free it with es_httpc_resp_free).
 * Errors, with why in es_httpc_error: ES_EINVAL (an argument, or a URL
 * that is not valid), ES_ETIMEDOUT, ES_ETOOBIG (a body over max_body),
 * ES_EIO (no answer: refused, reset, not resolved, not HTTP), ES_ECLOSED
 * (cancelled), ES_ENOMEM. */
es_err es_httpc_get(es_httpc *c, const char *url, es_httpc_resp *resp);

/* POSTs body[0..len) as content_type to url. Like es_httpc_get. */
es_err es_httpc_post(es_httpc *c, const char *url, const char *content_type, const void *body,
		     size_t len, es_httpc_resp *resp);

/* Frees the body; the response may be used again. */
void es_httpc_resp_free(es_httpc_resp *resp);

/* Why the last request failed ("URL: reason"), or "" after a success. */
const char *es_httpc_error(const es_httpc *c);

/* s percent-encoded for a URL's path or query (malloc'd; NULL when out of
 * memory). */
char *es_httpc_escape(es_httpc *c, const char *s);

#endif
