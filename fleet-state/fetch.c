/* fetch.c - fleet-state --rebuild-from URL: a node's journal through its
 * HTTP API (es_httpc), applied through the consumer.
 *
 * GET <url>/api/events?after=N&limit=500 lists the node's journal oldest
 * first (ids and sequences); GET <url>/api/events/<id> gives each event.
 * They are applied in batches through es_consumer_apply: ids applied
 * already are dropped as duplicates, the others fill the projection (which
 * does not depend on arrival order) and the sequence holes. So it is the
 * way to repair what the MQTT hop lost, or to build a projection from a
 * node's journal. fleet_fetch_range does the same for one range of
 * sequences: the automatic repair of holes (repair.node). One keep-alive
 * connection; credentials may be given in the URL
 * (http://user:password@host:port).
 */
#include "fetch.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "log.h"

#define TAG   "fetch"
#define PAGE  500
#define BATCH 256

/* GET url; the body parsed as JSON into *out. ES_EIO (logged: no answer,
 * not 200, not JSON), ES_ENOMEM. */
static es_err get_json(es_httpc *http, const char *url, cJSON **out)
{
	es_httpc_resp resp;
	es_err err = es_httpc_get(http, url, &resp);
	if (err == ES_ENOMEM)
		return err;
	if (err) {
		es_error(TAG, "GET %s", es_httpc_error(http));
		return ES_EIO;
	}
	if (resp.status != 200) {
		es_error(TAG, "GET %s: %s", url, resp.len ? resp.body : "no body");
		err = ES_EIO;
	} else if (!(*out = cJSON_ParseWithLength(resp.body, resp.len))) {
		es_error(TAG, "GET %s: the answer is not JSON", url);
		err = ES_EIO;
	}
	es_httpc_resp_free(&resp);
	return err;
}

struct run {
	es_httpc *http;
	const char *base;
	es_consumer *c;
	uint64_t to; /* the last sequence wanted */
	es_delivery batch[BATCH];
	size_t n;
	uint64_t read;
};

static es_err flush(struct run *r)
{
	es_err err = r->n ? es_consumer_apply(r->c, r->batch, r->n) : ES_OK;
	for (size_t i = 0; i < r->n; i++)
		es_delivery_clear(&r->batch[i]);
	r->n = 0;
	return err;
}

/* Fetches the event with this id and adds it to the batch. */
static es_err take(struct run *r, const char *id)
{
	char url[1024];
	cJSON *o = NULL;
	char *esc = es_httpc_escape(r->http, id);
	if (!esc)
		return ES_ENOMEM;
	snprintf(url, sizeof url, "%s/api/events/%s", r->base, esc);
	free(esc);
	es_err err = get_json(r->http, url, &o);
	cJSON *ev = err ? NULL : cJSON_GetObjectItemCaseSensitive(o, "event");
	es_delivery *d = &r->batch[r->n];
	if (!err && !(d->body = ev ? cJSON_PrintUnformatted(ev) : NULL))
		err = ev ? ES_ENOMEM : ES_EIO;
	if (!err && !(d->where = strdup(r->base)))
		err = ES_ENOMEM;
	cJSON_Delete(o);
	if (err) {
		es_delivery_clear(d);
		return err;
	}
	d->len = strlen(d->body);
	r->n++;
	r->read++;
	return r->n == BATCH ? flush(r) : ES_OK;
}

/* One page of the journal after *after, up to r->to; *more when there may
 * be more to read. */
static es_err page(struct run *r, uint64_t *after, bool *more)
{
	char url[1024];
	cJSON *o = NULL, *row;
	uint64_t want = r->to - *after;
	int limit = want < PAGE ? (int)want : PAGE;
	snprintf(url, sizeof url, "%s/api/events?after=%llu&limit=%d", r->base,
		 (unsigned long long)*after, limit);
	es_err err = get_json(r->http, url, &o);
	cJSON *rows = err ? NULL : cJSON_GetObjectItemCaseSensitive(o, "events");
	int n = 0;
	bool past = false;
	cJSON_ArrayForEach(row, rows)
	{
		const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(row, "id"));
		double seq = cJSON_GetNumberValue(cJSON_GetObjectItem(row, "seq"));
		n++;
		if (err || past || !id || !(seq >= 1))
			continue;
		if ((uint64_t)seq > r->to) {
			past = true;
			continue;
		}
		err = take(r, id);
		*after = (uint64_t)seq;
	}
	cJSON_Delete(o);
	*more = !err && !past && n == limit && *after < r->to;
	return err;
}

es_err fleet_fetch_node(es_consumer *c, const char *base_url, uint64_t *read)
{
	return fleet_fetch_range(c, base_url, 1, UINT64_MAX, read);
}

es_err fleet_fetch_range(es_consumer *c, const char *base_url, uint64_t from, uint64_t to,
			 uint64_t *read)
{
	if (!c || !base_url || !read || from == 0 || from > to)
		return ES_EINVAL;
	struct run r = {.base = base_url, .c = c, .to = to};
	size_t len = strlen(base_url);
	char *base = strdup(base_url);
	if (!base)
		return ES_ENOMEM;
	while (len && base[len - 1] == '/')
		base[--len] = '\0';
	r.base = base;
	/* The repair runs on the consumer's thread: an unreachable node must
	 * not hold it long. */
	es_httpc_opts ho = {.timeout_ms = 30000, .connect_timeout_ms = 5000};
	es_err err = es_httpc_new(&ho, &r.http);
	uint64_t after = from - 1;
	bool more = true;
	while (!err && more)
		err = page(&r, &after, &more);
	es_err ferr = flush(&r);
	if (!err)
		err = ferr;
	es_httpc_free(r.http);
	free(base);
	*read = r.read;
	return err;
}
