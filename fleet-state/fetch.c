/* fetch.c - a node's journal through its HTTP API (es_httpc), handed to a
 * sink: fleet-state --rebuild-from URL applies it through the consumer,
 * the repair thread (repair.c) hands it to the consumer's thread.
 *
 * GET <url>/api/events?after=N&limit=500 lists the node's journal oldest
 * first (ids and sequences); GET <url>/api/events/<id> gives each event.
 * The listing is in sequence order and a node's sequences are dense, so a
 * sequence of the range asked for that the listing skips, or that lies
 * past where the listing ended, is no longer held (retention or the cap
 * removed it), and so is one whose event answers 404: those are reported
 * as gone. A failed request reports nothing it would have decided. One
 * keep-alive connection; credentials may be given in the URL
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

/* GET url; the body parsed as JSON into *out. ES_ENOTFOUND for a 404 (not
 * logged: the caller decides), ES_EIO (logged: no answer, another status,
 * not JSON), ES_ECLOSED, ES_ENOMEM. */
static es_err get_json(es_httpc *http, const char *url, cJSON **out)
{
	es_httpc_resp resp;
	es_err err = es_httpc_get(http, url, &resp);
	if (err == ES_ENOMEM || err == ES_ECLOSED)
		return err;
	if (err) {
		es_error(TAG, "GET %s", es_httpc_error(http));
		return ES_EIO;
	}
	if (resp.status == 404) {
		err = ES_ENOTFOUND;
	} else if (resp.status != 200) {
		es_error(TAG, "GET %s: %ld %s", url, resp.status, resp.len ? resp.body : "no body");
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
	const fleet_fetch_sink *sink;
	uint64_t to;		     /* the last sequence wanted */
	uint64_t expect;	     /* below it: handed over or found gone */
	uint64_t gone_from, gone_to; /* a gone range gathered; gone_from 0: none */
	es_delivery batch[BATCH];
	size_t n;
	uint64_t read;
};

static es_err flush(struct run *r)
{
	es_err err = r->n ? r->sink->events(r->sink->arg, r->batch, r->n) : ES_OK;
	for (size_t i = 0; i < r->n; i++)
		es_delivery_clear(&r->batch[i]);
	r->n = 0;
	return err;
}

/* Reports the gone range gathered, if any. */
static es_err flush_gone(struct run *r)
{
	es_err err = ES_OK;
	if (r->gone_from && r->sink->gone)
		err = r->sink->gone(r->sink->arg, r->gone_from, r->gone_to);
	r->gone_from = 0;
	return err;
}

/* from..to is not held: joined to the range gathered when they touch. */
static es_err gone(struct run *r, uint64_t from, uint64_t to)
{
	es_err err = ES_OK;
	if (r->gone_from && r->gone_to + 1 == from) {
		r->gone_to = to;
		return ES_OK;
	}
	err = flush_gone(r);
	r->gone_from = from;
	r->gone_to = to;
	return err;
}

static bool cancelled(const struct run *r)
{
	return r->sink->cancel && atomic_load(r->sink->cancel);
}

/* The event of this id, as a delivery in the batch (or gone when 404). */
static es_err take(struct run *r, const char *id, uint64_t seq)
{
	char url[1024];
	cJSON *o = NULL;
	char *esc = es_httpc_escape(r->http, id);
	if (!esc)
		return ES_ENOMEM;
	snprintf(url, sizeof url, "%s/api/events/%s", r->base, esc);
	free(esc);
	es_err err = get_json(r->http, url, &o);
	if (err == ES_ENOTFOUND) /* removed since it was listed */
		return gone(r, seq, seq);
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

/* One listed row: what the listing skipped before it is gone; the event is
 * taken. *past when the row lies past the range (the rest of the range is
 * gone then); *top: the highest sequence listed so far. */
static es_err row(struct run *r, const cJSON *row, bool *past, uint64_t *top)
{
	const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(row, "id"));
	double seq = cJSON_GetNumberValue(cJSON_GetObjectItem(row, "seq"));
	if (!(seq >= 1) || !(seq < 18446744073709551615.0) || (uint64_t)seq < r->expect)
		return ES_OK;
	uint64_t s = (uint64_t)seq;
	*top = s > *top ? s : *top;
	*past = s > r->to;
	es_err err = s > r->expect ? gone(r, r->expect, *past ? r->to : s - 1) : ES_OK;
	if (*past)
		r->expect = r->to + 1;
	else if (!err && id && !(err = take(r, id, s)))
		r->expect = s + 1;
	return err;
}

/* Where the page's listing may go on from (its `next`): the page covered
 * every sequence up to it. 0: the end of the journal. */
static uint64_t next_of(const cJSON *o, int n, int limit, uint64_t top)
{
	const cJSON *next = cJSON_GetObjectItemCaseSensitive(o, "next");
	double v = cJSON_GetNumberValue(next);
	if (cJSON_IsNumber(next) && v >= 1 && v < 18446744073709551615.0)
		return (uint64_t)v;
	return !next && n == limit ? top : 0; /* a node that gives no cursor */
}

/* One page of the journal after *after, up to r->to; *more when there may
 * be more to read. What the page covered and did not list is gone. */
static es_err page(struct run *r, uint64_t *after, bool *more)
{
	char url[1024];
	cJSON *o = NULL, *item;
	uint64_t want = r->to - *after, top = *after;
	int limit = want < PAGE ? (int)want : PAGE, n = 0;
	bool past = false;
	snprintf(url, sizeof url, "%s/api/events?after=%llu&limit=%d", r->base,
		 (unsigned long long)*after, limit);
	es_err err = cancelled(r) ? ES_ECLOSED : get_json(r->http, url, &o);
	if (err == ES_ENOTFOUND) {
		es_error(TAG, "GET %s: 404 (not a node's API?)", url);
		err = ES_EIO;
	}
	cJSON *rows = err ? NULL : cJSON_GetObjectItemCaseSensitive(o, "events");
	cJSON_ArrayForEach(item, rows)
	{
		n++;
		if (!err && !past)
			err = row(r, item, &past, &top);
	}
	uint64_t next = err || past ? 0 : next_of(o, n, limit, top);
	cJSON_Delete(o);
	*more = !err && next > *after && next < r->to && r->expect <= r->to;
	*after = next;
	/* Covered: up to next, or to the end of the journal. */
	uint64_t covered = next && next < r->to ? next : r->to;
	if (!err && !past && r->expect <= covered && (next || r->to != UINT64_MAX)) {
		err = gone(r, r->expect, covered);
		r->expect = covered + 1;
	}
	return err;
}

/* Contract in fetch.h. */
es_err fleet_fetch_range(const char *base_url, uint64_t from, uint64_t to,
			 const fleet_fetch_sink *sink, uint64_t *read)
{
	if (!base_url || !sink || !sink->events || !read || from == 0 || from > to)
		return ES_EINVAL;
	struct run r = {.sink = sink, .to = to, .expect = from};
	size_t len = strlen(base_url);
	char *base = strdup(base_url);
	if (!base)
		return ES_ENOMEM;
	while (len && base[len - 1] == '/')
		base[--len] = '\0';
	r.base = base;
	es_httpc_opts ho = {
		.timeout_ms = 30000, .connect_timeout_ms = 5000, .cancel = sink->cancel};
	es_err err = es_httpc_new(&ho, &r.http);
	uint64_t after = from - 1;
	bool more = !err;
	while (!err && more)
		err = page(&r, &after, &more);
	es_err ferr = flush(&r);
	es_err gerr = flush_gone(&r);
	err = err ? err : ferr ? ferr : gerr;
	es_httpc_free(r.http);
	free(base);
	*read = r.read;
	return err;
}

static es_err apply_batch(void *arg, es_delivery *d, size_t n)
{
	return es_consumer_apply(arg, d, n);
}

/* Contract in fetch.h. */
es_err fleet_fetch_node(es_consumer *c, const char *base_url, uint64_t *read)
{
	fleet_fetch_sink sink = {.events = apply_batch, .arg = c};
	return c ? fleet_fetch_range(base_url, 1, UINT64_MAX, &sink, read) : ES_EINVAL;
}
