/* publisher.c - publishes pending events in journal order within the
 * inflight window, and marks them acked on PUBACK.
 *
 * Rows are read from the journal in batches into a FIFO (bounded in rows and
 * bytes, so a backlog of a million events stays on disk) and published from
 * it while the window has room. When the connection drops, everything in
 * flight is forgotten and the next connection starts again from the oldest
 * pending event: at-least-once, in order.
 */
#include <stdlib.h>
#include <string.h>

#include "agent_internal.h"
#include "log.h"

#define TAG	   "publish"
#define READ_ROWS  512
#define READ_BYTES (1024 * 1024)

void pub_init(agent *a)
{
	memset(&a->pub, 0, sizeof a->pub);
	a->pub.more = true;
}

static void drop_rows(struct pub *p)
{
	for (size_t i = 0; i < p->n; i++) {
		struct pub_row *r = &p->rows[(p->head + i) % p->cap];
		free(r->type);
		free(r->body);
	}
	p->head = p->n = p->bytes = 0;
}

void pub_free(agent *a)
{
	drop_rows(&a->pub);
	free(a->pub.rows);
	a->pub.rows = NULL;
}

void pub_reset(agent *a)
{
	drop_rows(&a->pub);
	a->pub.cursor = 0;
	a->pub.more = true;
	agent_metrics_reset(a);
}

void pub_committed(agent *a, uint64_t latest)
{
	if (latest > a->pub.latest) {
		a->pub.latest = latest;
		a->pub.more = true;
	}
	pub_pump(a);
}

void pub_acked(agent *a, uint64_t seq)
{
	a->pub.acked++;
	agent_metrics_acked(a, seq);
	if (es_journal_ack(a->journal, seq))
		es_warn(TAG, "cannot queue the ack of %llu; it will be re-published",
			(unsigned long long)seq);
}

static int take_row(void *ctx, const es_journal_row *row)
{
	struct pub *p = ctx;
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
static void refill(agent *a)
{
	struct pub *p = &a->pub;
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
	if (es_journal_read(a->reader, p->cursor + 1, UINT64_MAX, READ_ROWS, true, take_row, p))
		return; /* logged by the journal; the next commit or timer retries */
	if (p->cursor == before)
		p->more = false; /* caught up: wait for the next commit */
}

static void pop_row(struct pub *p)
{
	struct pub_row *r = &p->rows[p->head];
	p->bytes -= r->len;
	free(r->type);
	free(r->body);
	p->head = (p->head + 1) % p->cap;
	p->n--;
}

/* Publishes one row; false when the window or connection says stop. */
static bool publish_row(agent *a, const struct pub_row *r)
{
	char topic[ES_TOPIC_MAX];
	if (agent_topic(a, "ev", r->type, topic, sizeof topic)) {
		es_error(TAG, "event %llu has a type that cannot be a topic: %s",
			 (unsigned long long)r->seq, r->type);
		return true; /* cannot happen: types are checked on the way in */
	}
	es_err err = es_mqtt_publish(a->mqtt, topic, r->body, r->len, 1, false, r->seq);
	if (err == ES_EBUSY || err == ES_ENOTCONN)
		return false;
	if (err)
		es_error(TAG, "event %llu not published: %s", (unsigned long long)r->seq,
			 es_strerror(err));
	a->pub.published++;
	agent_metrics_published(a, r->seq, r->journaled_ms);
	return true;
}

size_t pub_reserve(const agent *a)
{
	return resend_active(a) ? es_mqtt_window(a->mqtt) / 4 : 0;
}

void pub_pump(agent *a)
{
	struct pub *p = &a->pub;
	size_t reserve = pub_reserve(a);
	control_pump(a);
	while (es_mqtt_is_connected(a->mqtt) && a->phase == P_RUNNING) {
		if (es_mqtt_inflight(a->mqtt) + reserve >= es_mqtt_window(a->mqtt))
			break;
		refill(a);
		if (!p->n || !publish_row(a, &p->rows[p->head]))
			break;
		pop_row(p);
	}
	resend_pump(a);
}
