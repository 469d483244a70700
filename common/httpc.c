/* httpc.c - the HTTP client over libcurl's easy interface (see httpc.h):
 * one easy handle per client, so its connection is kept alive between
 * requests; a body collector with a cap; curl's codes mapped to es_err. */
#include "httpc.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS_DEFAULT 60000L
#define MAX_BODY_DEFAULT   ((size_t)16 << 20)

struct es_httpc {
	CURL *curl;
	long timeout_ms, connect_timeout_ms;
	size_t max_body;
	const atomic_bool *cancel;
	char error[600];
};

/* What the write callback collected, and why it stopped. */
struct body {
	char *data;
	size_t len, max;
	bool oom, too_big;
};

static size_t collect(char *ptr, size_t size, size_t n, void *ctx)
{
	struct body *b = ctx;
	size_t add = size * n;
	if (add > b->max - b->len) {
		b->too_big = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	char *grown = realloc(b->data, b->len + add + 1);
	if (!grown) {
		b->oom = true;
		return 0;
	}
	memcpy(grown + b->len, ptr, add);
	b->data = grown;
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}

es_err es_httpc_new(const es_httpc_opts *opts, es_httpc **out)
{
	es_httpc_opts o = opts ? *opts : (es_httpc_opts){0};
	if (!out || o.timeout_ms < 0 || o.connect_timeout_ms < 0)
		return ES_EINVAL;
	es_httpc *c = calloc(1, sizeof *c);
	if (!c)
		return ES_ENOMEM;
	/* Reference-counted, and thread-safe in the libcurl we build with. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(c->curl = curl_easy_init())) {
		free(c);
		return ES_ENOMEM;
	}
	c->timeout_ms = o.timeout_ms ? o.timeout_ms : TIMEOUT_MS_DEFAULT;
	c->connect_timeout_ms = o.connect_timeout_ms;
	c->max_body = o.max_body ? o.max_body : MAX_BODY_DEFAULT;
	c->cancel = o.cancel;
	*out = c;
	return ES_OK;
}

void es_httpc_free(es_httpc *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c);
}

/* curl's progress callback (about once a second while waiting): non-zero
 * aborts the transfer. */
static int progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		    curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	const es_httpc *c = ctx;
	return c->cancel && atomic_load(c->cancel);
}

/* curl's code for a request to url, as an es_err, with why in c->error. */
static es_err failed(es_httpc *c, const char *url, CURLcode rc, const struct body *b)
{
	es_err err = ES_EIO;
	if (b->too_big)
		err = ES_ETOOBIG;
	else if (b->oom || rc == CURLE_OUT_OF_MEMORY)
		err = ES_ENOMEM;
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		err = ES_ETIMEDOUT;
	else if (rc == CURLE_ABORTED_BY_CALLBACK)
		err = ES_ECLOSED;
	else if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL)
		err = ES_EINVAL;
	if (b->too_big)
		snprintf(c->error, sizeof c->error, "%s: the answer is larger than %zu bytes", url,
			 c->max_body);
	else
		snprintf(c->error, sizeof c->error, "%s: %s", url,
			 b->oom ? "out of memory" : curl_easy_strerror(rc));
	return err;
}

/* Performs the request set up on c->curl. */
static es_err perform(es_httpc *c, const char *url, es_httpc_resp *resp)
{
	struct body b = {.max = c->max_body};
	CURL *h = c->curl;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	/* Programs with threads: no signals for timeouts. */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (c->cancel) {
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	}
	CURLcode rc = curl_easy_perform(h);
	es_err err = rc == CURLE_OK && !b.oom ? ES_OK : failed(c, url, rc, &b);
	if (!err && !b.data && !(b.data = calloc(1, 1))) {
		snprintf(c->error, sizeof c->error, "%s: out of memory", url);
		err = ES_ENOMEM;
	}
	if (err) {
		free(b.data);
		return err;
	}
	c->error[0] = '\0';
	*resp = (es_httpc_resp){.body = b.data, .len = b.len};
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	return ES_OK;
}

es_err es_httpc_get(es_httpc *c, const char *url, es_httpc_resp *resp)
{
	if (!c || !url || !resp)
		return ES_EINVAL;
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	return perform(c, url, resp);
}

es_err es_httpc_post(es_httpc *c, const char *url, const char *content_type, const void *body,
		     size_t len, es_httpc_resp *resp)
{
	if (!c || !url || !content_type || (!body && len) || !resp)
		return ES_EINVAL;
	char header[256];
	snprintf(header, sizeof header, "Content-Type: %s", content_type);
	struct curl_slist *headers = curl_slist_append(NULL, header);
	if (!headers) {
		snprintf(c->error, sizeof c->error, "%s: out of memory", url);
		return ES_ENOMEM;
	}
	curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	es_err err = perform(c, url, resp);
	/* The handle must not keep pointers to what this call owned. */
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	curl_slist_free_all(headers);
	return err;
}

void es_httpc_resp_free(es_httpc_resp *resp)
{
	if (!resp)
		return;
	free(resp->body);
	*resp = (es_httpc_resp){0};
}

const char *es_httpc_error(const es_httpc *c)
{
	return c ? c->error : "";
}

char *es_httpc_escape(es_httpc *c, const char *s)
{
	if (!c || !s)
		return NULL;
	char *esc = curl_easy_escape(c->curl, s, 0);
	char *copy = esc ? strdup(esc) : NULL;
	curl_free(esc);
	return copy;
}
