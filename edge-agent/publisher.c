/* publisher.c - publishes pending events in journal order within the
 * inflight window, and marks them acked on PUBACK (publisher.h). Loop
 * thread only. */
#include "publisher.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "topic.h"

#define TAG	   "publish"
#define READ_ROWS  512
#define READ_BYTES (1024 * 1024)

struct pub_row {
	uint64_t seq;
	char *type;
	char *body;
	size_t len;
	uint64_t journaled_ms; /* for the publish latency */
};

struct agent_publisher {
	agent_publisher_opts o;
	struct pub_row *rows; /* a FIFO of rows read, not yet published */
	size_t head, n, cap, bytes;
	uint64_t cursor; /* highest sequence read into the FIFO */
	uint64_t latest; /* newest committed sequence known */
	bool more;	 /* rows may wait in the journal beyond cursor */
	bool stopped;
	agent_publisher_stats stats;
};

es_err agent_publisher_new(const agent_publisher_opts *o, agent_publisher **out)
{
	if (!o || !o->journal || !o->reader || !o->ops || !out)
		return ES_EINVAL;
	agent_publisher *p = calloc(1, sizeof *p);
	if (!p)
		return ES_ENOMEM;
	p->o = *o;
	p->more = true;
	*out = p;
	return ES_OK;
}

static void drop_rows(agent_publisher *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct pub_row *r = &p->rows[(p->head + i) % p->cap];
		free(r->type);
		free(r->body);
	}
	p->head = p->n = p->bytes = 0;
}

void agent_publisher_free(agent_publisher *p)
{
	if (!p)
		return;
	drop_rows(p);
	free(p->rows);
	free(p);
}

void agent_publisher_reset(agent_publisher *p)
{
	drop_rows(p);
	p->cursor = 0;
	p->more = true;
	es_node_metrics_reset(p->o.metrics);
}

void agent_publisher_committed(agent_publisher *p, uint64_t latest)
{
	if (latest > p->latest) {
		p->latest = latest;
		p->more = true;
	}
}

void agent_publisher_acked(agent_publisher *p, uint64_t seq, es_err err)
{
	if (err == ES_EPROTO) {
		/* Never taken (e.g. not authorized): counted and passed, or it
		 * would block the watermark and go again after every reconnect. */
		p->stats.refused++;
		es_error(TAG,
			 "event %llu refused by the broker; it stays in the journal, "
			 "not delivered",
			 (unsigned long long)seq);
	}
	p->stats.acked++;
	es_node_metrics_acked(p->o.metrics, seq);
	if (es_journal_ack(p->o.journal, seq))
		es_warn(TAG, "cannot queue the ack of %llu; it will be re-published",
			(unsigned long long)seq);
}

void agent_publisher_stop(agent_publisher *p)
{
	p->stopped = true;
}

void agent_publisher_stats_get(const agent_publisher *p, agent_publisher_stats *out)
{
	*out = p->stats;
}

/* ---- reading ahead --------------------------------------------------------- */

static int take_row(void *ctx, const es_journal_row *row)
{
	agent_publisher *p = ctx;
	if (p->n == p->cap || p->bytes >= READ_BYTES)
		return 1;
	struct pub_row *r = &p->rows[(p->head + p->n) % p->cap];
	r->type = strdup(row->type);
	r->body = malloc(row->body_len);
	if (!r->type || !r->body) {
		free(r->type);
		free(r->body);
		return 1; /* try again on the next pump */
	}
	memcpy(r->body, row->body, row->body_len);
	r->len = row->body_len;
	r->seq = row->seq;
	r->journaled_ms = row->journaled_ms;
	p->cursor = row->seq;
	p->bytes += row->body_len;
	p->n++;
	return 0;
}

/* Refills the FIFO from the journal when it ran dry. */
static void refill(agent_publisher *p)
{
	if (p->n || !p->more)
		return;
	if (!p->rows) {
		p->rows = calloc(READ_ROWS, sizeof *p->rows);
		if (!p->rows)
			return;
		p->cap = READ_ROWS;
	}
	p->head = 0;
	uint64_t before = p->cursor;
	if (es_journal_read(p->o.reader, p->cursor + 1, UINT64_MAX, READ_ROWS, true, take_row, p))
		return; /* logged by the journal; the next commit or timer retries */
	if (p->cursor == before)
		p->more = false; /* caught up: wait for the next commit */
}

static void pop_row(agent_publisher *p)
{
	struct pub_row *r = &p->rows[p->head];
	p->bytes -= r->len;
	free(r->type);
	free(r->body);
	p->head = (p->head + 1) % p->cap;
	p->n--;
}

/* ---- publishing ------------------------------------------------------------ */

/* Publishes one row; false when the window or connection says stop. */
static bool publish_row(agent_publisher *p, const struct pub_row *r)
{
	char topic[ES_TOPIC_MAX];
	const agent_names *nm = &p->o.names;
	if (es_topic_build(topic, sizeof topic, nm->root, nm->site, nm->node, "ev", r->type)) {
		es_error(TAG, "event %llu has a type that cannot be a topic: %s",
			 (unsigned long long)r->seq, r->type);
		return true; /* cannot happen: types are checked on the way in */
	}
	es_err err = p->o.ops->publish(p->o.ops_ctx, topic, r->body, r->len, false, r->seq, NULL);
	if (err == ES_EBUSY || err == ES_ENOTCONN)
		return false;
	if (err)
		es_error(TAG, "event %llu not published: %s", (unsigned long long)r->seq,
			 es_strerror(err));
	p->stats.published++;
	es_node_metrics_sent(p->o.metrics, r->seq, r->journaled_ms);
	return true;
}

void agent_publisher_pump(agent_publisher *p, size_t reserve)
{
	const agent_pub_ops *ops = p->o.ops;
	void *ctx = p->o.ops_ctx;
	while (!p->stopped && ops->connected(ctx)) {
		if (ops->inflight(ctx) + reserve >= ops->window(ctx))
			break;
		refill(p);
		if (!p->n || !publish_row(p, &p->rows[p->head]))
			break;
		pop_row(p);
	}
}
