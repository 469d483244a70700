/* httpc.h - a minimal HTTP client for the CLI (the only file that includes
 * libcurl). One object keeps its connection alive across requests. */
#ifndef CLI_HTTPC_H
#define CLI_HTTPC_H

#include <stddef.h>

#include "err.h"

typedef struct httpc httpc;

es_err httpc_new(httpc **out);
void httpc_free(httpc *c);

/* POSTs body as application/json to url. On ES_OK, *status is the HTTP
 * status and *resp a malloc'd NUL-terminated body (free it). ES_EIO when no
 * answer came (the message is in err). */
es_err httpc_post_json(httpc *c, const char *url, const char *body, size_t len, long *status,
		       char **resp, char *err, size_t errcap);

#endif
