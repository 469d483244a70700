/* publisher.c - publishes pending events in journal order within the
 * inflight window, and marks them acked on PUBACK (publisher.h). Loop
 * thread only. */
#include "publisher.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
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

/* A batch awaiting its PUBACK: its tag (its first sequence) and every
 * sequence in it. */
struct pub_flight {
	uint64_t tag;
	uint64_t *seqs;
	size_t n;
};

struct agent_publisher {
	agent_publisher_opts o;
	es_batch_enc *enc; /* NULL: an event a message */
	es_batch_coding coding;
	struct pub_flight *flights;
	size_t nflights, capflights;
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
	p->o.batch = NULL; /* not kept: the caller's */
	p->more = true;
	if (o->batch) {
		es_err err = es_batch_enc_new(o->batch, &p->enc);
		if (err) {
			free(p);
			return err;
		}
		p->coding = o->batch->coding;
	}
	*out = p;
	return ES_OK;
}

static void drop_flights(agent_publisher *p)
{
	for (size_t i = 0; i < p->nflights; i++)
		free(p->flights[i].seqs);
	p->nflights = 0;
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
	drop_flights(p);
	free(p->flights);
	free(p->rows);
	es_batch_enc_free(p->enc);
	free(p);
}

void agent_publisher_reset(agent_publisher *p)
{
	drop_rows(p);
	drop_flights(p);
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

static void ack_one(agent_publisher *p, uint64_t seq, es_err err)
{
	if (err == ES_EPROTO)
		p->stats.refused++;
	p->stats.acked++;
	es_node_metrics_acked(p->o.metrics, seq);
	if (es_journal_ack(p->o.journal, seq))
		es_warn(TAG, "cannot queue the ack of %llu; it will be re-published",
			(unsigned long long)seq);
}

/* The batch in flight tagged tag, or NULL (an event's tag). */
static struct pub_flight *flight_of(agent_publisher *p, uint64_t tag)
{
	for (size_t i = 0; i < p->nflights; i++)
		if (p->flights[i].tag == tag)
			return &p->flights[i];
	return NULL;
}

void agent_publisher_acked(agent_publisher *p, uint64_t tag, es_err err)
{
	struct pub_flight *fl = flight_of(p, tag);
	size_t n = fl ? fl->n : 1;
	if (err == ES_EPROTO)
		/* Never taken (e.g. not authorized): counted and passed, or it
		 * would block the watermark and go again after every reconnect. */
		es_error(TAG,
			 "%zu event(s) from %llu refused by the broker; they stay in the "
			 "journal, not delivered",
			 n, (unsigned long long)tag);
	if (!fl) {
		ack_one(p, tag, err);
		return;
	}
	for (size_t i = 0; i < fl->n; i++)
		ack_one(p, fl->seqs[i], err);
	free(fl->seqs);
	*fl = p->flights[--p->nflights];
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

/* ---- batches (mqtt.format batch) --------------------------------------------- */

/* Puts the FIFO's rows from its head into the encoder while the caps take
 * them; returns how many (0: the first alone passes the byte cap). */
static size_t fill_batch(agent_publisher *p)
{
	size_t k = 0;
	es_batch_enc_reset(p->enc);
	while (k < p->n) {
		const struct pub_row *r = &p->rows[(p->head + k) % p->cap];
		if (es_batch_enc_add(p->enc, r->body, r->len))
			break; /* full, or this one alone too big (it goes as an event) */
		k++;
	}
	return k;
}

/* Room for one more batch in flight, with its k sequences. */
static uint64_t *flight_room(agent_publisher *p, size_t k)
{
	struct pub_flight *grown =
		es_grow(p->flights, &p->capflights, p->nflights + 1, sizeof *grown, 8);
	if (!grown)
		return NULL;
	p->flights = grown;
	return malloc(k * sizeof(uint64_t));
}

/* The k rows at the FIFO's head went in the batch tagged tag. */
static void went(agent_publisher *p, size_t k, uint64_t *seqs, uint64_t tag)
{
	for (size_t i = 0; i < k; i++) {
		const struct pub_row *r = &p->rows[p->head];
		if (seqs)
			seqs[i] = r->seq;
		p->stats.published++;
		es_node_metrics_sent(p->o.metrics, r->seq, r->journaled_ms);
		pop_row(p);
	}
	if (seqs)
		p->flights[p->nflights++] = (struct pub_flight){.tag = tag, .seqs = seqs, .n = k};
	p->stats.batches++;
}

/* Publishes the rows at the FIFO's head: as one batch, as many as the caps
 * take, or the first as an event when it cannot be a batch (alone past the
 * byte cap, no memory, a compressor's failure); false when the window or
 * the connection says stop. */
static bool publish_batch(agent_publisher *p)
{
	const agent_names *nm = &p->o.names;
	char topic[ES_TOPIC_MAX];
	const void *payload;
	size_t len, k = fill_batch(p);
	uint64_t *seqs = k ? flight_room(p, k) : NULL;
	if (!seqs ||
	    es_batch_topic(topic, sizeof topic, nm->root, nm->site, nm->node, &p->coding) ||
	    es_batch_enc_finish(p->enc, &payload, &len)) {
		free(seqs);
		if (!publish_row(p, &p->rows[p->head]))
			return false;
		pop_row(p);
		return true;
	}
	es_mqtt_prop pairs[2];
	es_mqtt_props props;
	es_batch_props(&p->coding, pairs, &props);
	uint64_t tag = p->rows[p->head].seq;
	es_err err = p->o.ops->publish(p->o.ops_ctx, topic, payload, len, false, tag, &props);
	if (err == ES_EBUSY || err == ES_ENOTCONN) {
		free(seqs);
		return false;
	}
	if (err) {
		es_error(TAG, "batch of %zu events from %llu not published: %s", k,
			 (unsigned long long)tag, es_strerror(err));
		free(seqs);
		seqs = NULL; /* read again after the next reset */
	}
	went(p, k, seqs, tag);
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
		if (!p->n)
			break;
		if (p->enc) {
			if (!publish_batch(p))
				break;
		} else if (publish_row(p, &p->rows[p->head])) {
			pop_row(p);
		} else {
			break;
		}
	}
}
