#include "httpc.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct httpc {
	CURL *curl;
	struct curl_slist *headers;
};

struct buf {
	char *data;
	size_t len;
	int oom;
};

static size_t collect(char *ptr, size_t size, size_t n, void *ctx)
{
	struct buf *b = ctx;
	size_t add = size * n;
	char *grown = realloc(b->data, b->len + add + 1);
	if (!grown) {
		b->oom = 1;
		return 0;
	}
	memcpy(grown + b->len, ptr, add);
	b->data = grown;
	b->len += add;
	b->data[b->len] = '\0';
	return add;
}

es_err httpc_new(httpc **out)
{
	httpc *c = calloc(1, sizeof *c);
	if (!c)
		return ES_ENOMEM;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	c->curl = curl_easy_init();
	c->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!c->curl || !c->headers) {
		httpc_free(c);
		return ES_ENOMEM;
	}
	return *out = c, ES_OK;
}

void httpc_free(httpc *c)
{
	if (!c)
		return;
	curl_slist_free_all(c->headers);
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c);
}

es_err httpc_post_json(httpc *c, const char *url, const char *body, size_t len, long *status,
		       char **resp, char *err, size_t errcap)
{
	struct buf b = {0};
	CURL *h = c->curl;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_OK || b.oom) {
		snprintf(err, errcap, "%s: %s", url,
			 b.oom ? "out of memory" : curl_easy_strerror(rc));
		free(b.data);
		return ES_EIO;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	*resp = b.data ? b.data : strdup("");
	return *resp ? ES_OK : ES_ENOMEM;
}
