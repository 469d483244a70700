/* link_ingest.c - the gateway's side of the device link: frames in, through
 * the device table's verdicts, into one journal append per round, and the
 * acks out once it committed (docs/link-protocol.md, decision 20).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "links_int.h"
#include "log.h"

#define ASK_HELLO_MS 1000 /* at most one hello asked of a device out of step a second */

/* ---- output --------------------------------------------------------------- */

static void conn_send(struct conn *c, const fw_frame *f)
{
	uint8_t wire[FW_WIRE_MAX];
	size_t n = fw_frame_encode(f, wire, sizeof wire);
	if (c->fd < 0 || n == 0)
		return;
	if (c->nout + n > sizeof c->out) {
		c->st->out_dropped++; /* the device resends; its re-ack goes then */
		return;
	}
	memcpy(c->out + c->nout, wire, n);
	c->nout += n;
}

static void send_ack(struct conn *c, uint32_t device, uint32_t seq, uint8_t flags)
{
	fw_frame f;
	fw_frame_init(&f, FW_ACK, device, seq);
	fw_ack_pack(&f, flags);
	conn_send(c, &f);
	c->st->acks++;
}

void link_send_time(struct conn *c, uint32_t device)
{
	fw_frame f;
	fw_frame_init(&f, FW_TIME, device, 0);
	fw_time_pack(&f, es_clock_wall_ms());
	conn_send(c, &f);
}

/* ---- frames in ------------------------------------------------------------ */

static void batch_add(struct links *l, es_event *ev)
{
	if (ev)
		l->batch.evs[l->batch.n++] = ev;
}

static void dead_letter(struct links *l, struct conn *c, const fw_frame *f)
{
	char why[96];
	c->st->bad_payload++;
	snprintf(why, sizeof why, "device %u record %u: a payload of %u bytes that is not a record",
		 f->device, f->seq, f->len);
	es_journal_dead_letter(l->o.journal, c->name, why, f->payload, f->len);
}

/* A record the table could not place (DEV_OUT_OF_STEP): never acked, the
 * device is asked for a hello, at most once a second (each ask makes it
 * send its window again). */
static void out_of_step(struct conn *c, dev *d)
{
	uint64_t now = es_clock_mono_ms();
	c->st->out_of_step++;
	if (d->hello_asked_ms && now - d->hello_asked_ms < ASK_HELLO_MS)
		return;
	d->hello_asked_ms = now;
	send_ack(c, d->id, 0, FW_ACK_SEND_HELLO);
}

/* A device time that cannot be one (2^64 - 1 would read as the year 9999)
 * is left out of the event, and counted. */
static void check_time(struct conn *c, fw_record *r)
{
	if ((r->flags & FW_REC_WALL) && !link_time_plausible(r->wall_ms, es_clock_wall_ms())) {
		r->flags = (uint8_t)(r->flags & ~FW_REC_WALL);
		c->st->bad_time++;
	}
}

static void on_record(struct links *l, struct conn *c, const fw_frame *f)
{
	dev *d;
	fw_record r;
	dev_verdict v = devices_record(l->devs, f->device, f->seq, &d);
	if (v == DEV_UNKNOWN) {
		c->st->unknown_device++;
		send_ack(c, f->device, 0, FW_ACK_SEND_HELLO);
		return;
	}
	d->conn = c;
	if (v == DEV_OUT_OF_STEP) {
		out_of_step(c, d);
		return;
	}
	if (v != DEV_TAKE) { /* journaled (or in this batch), or one before it lost */
		if (v == DEV_DUPLICATE)
			c->st->duplicates++;
		else
			c->st->early++;
		if (!d->dirty)
			send_ack(c, d->id, d->last, 0);
		return;
	}
	if (l->batch.n == BATCH_MAX || !devices_take(l->devs, d))
		return; /* no room this round: the device resends it */
	c->st->records++;
	if (!fw_record_unpack(f, &r)) {
		dead_letter(l, c, f);
		return;
	}
	check_time(c, &r);
	batch_add(l, link_record_event(d->id, c->name, f->seq, &r));
	d->reading = r;
	d->has_reading = true;
}

/* A hello the table refused: no answer (so the device says it again, which
 * is how a real one gets taken in the end), a warning now and then. */
static void refused_hello(struct conn *c, const fw_frame *f, const fw_hello *h)
{
	uint64_t now = es_clock_mono_ms();
	c->st->hellos_implausible++;
	if (now < c->odd_log_at)
		return;
	c->odd_log_at = now + FAULT_LOG_MS;
	es_warn(TAG,
		"%s: device %u says hello from record %u (next %u, boot %u), which its last known "
		"state cannot explain: refused until it keeps saying so; %" PRIu64 " such so far",
		c->name, f->device, f->seq, h->next_seq, h->boot, c->st->hellos_implausible);
}

static void on_hello(struct links *l, struct conn *c, const fw_frame *f)
{
	fw_hello h;
	dev_hello what;
	if (!fw_hello_unpack(f, &h)) {
		c->st->bad_payload++;
		return;
	}
	dev_greeting g = {.seq = f->seq,
			  .next_seq = h.next_seq,
			  .boot = h.boot,
			  .now_ms = es_clock_mono_ms()};
	dev *d = devices_hello(l->devs, f->device, &g, &what);
	if (what.refused)
		refused_hello(c, f, &h);
	if (!d)
		return;
	d->conn = c;
	link_send_time(c, d->id);
	if (what.news) {
		if (l->batch.n == BATCH_MAX || !devices_stage_hello(l->devs, d, h.boot))
			return; /* next hello, then */
		batch_add(l, link_hello_event(d->id, c->name, &h, &what));
	} else if (!d->dirty) {
		send_ack(c, d->id, d->last, 0);
	}
}

struct feed {
	struct links *l;
	struct conn *c;
};

static void on_frame(void *ctx, const fw_frame *f)
{
	struct feed *fd = ctx;
	struct conn *c = fd->c;
	c->st->frames++;
	if (f->type == FW_RECORD && f->device)
		on_record(fd->l, c, f);
	else if (f->type == FW_HELLO && f->device)
		on_hello(fd->l, c, f);
	else
		c->st->wrong_direction++;
	if (f->device)
		devices_seen(fd->l->devs, f->device, c->name, es_clock_wall_ms());
}

static void on_fault(void *ctx, enum fw_fault why)
{
	struct conn *c = ((struct feed *)ctx)->c;
	uint64_t now = es_clock_mono_ms();
	c->st->faults[why]++;
	if (now >= c->fault_log_at) {
		c->fault_log_at = now + FAULT_LOG_MS;
		es_warn(TAG, "%s: a bad frame (%s), dropped; %" PRIu64 " %s faults so far", c->name,
			fw_fault_name(why), c->st->faults[why], fw_fault_name(why));
	}
}

void link_ingest(struct links *l, struct conn *c, const uint8_t *buf, size_t n)
{
	struct feed fd = {l, c};
	c->st->bytes_in += n;
	fw_decoder_feed(&c->dec, buf, n, on_frame, on_fault, &fd);
}

/* ---- the batch ------------------------------------------------------------ */

static void ack(void *ctx, dev *d)
{
	if (d->conn)
		send_ack(d->conn, d->id, d->last, 0);
}

/* The batch was journaled (ok) or not: acknowledge, or forget it so the
 * devices' resends bring it again. */
static void batch_done(struct links *l, bool ok)
{
	struct batch *b = &l->batch;
	devices_done(l->devs, ok, ack, NULL);
	for (size_t i = 0; i < b->n; i++)
		es_event_free(b->evs[i]);
	b->n = 0;
}

static void refused(struct links *l, es_err err)
{
	uint64_t now = es_clock_mono_ms();
	l->journal_refused += l->batch.n;
	if (now >= l->refused_log_at) {
		l->refused_log_at = now + FAULT_LOG_MS;
		es_warn(TAG,
			"the journal refused %zu device events (%s): not acknowledged, the "
			"devices keep them and resend",
			l->batch.n, es_strerror(err));
	}
}

void link_batch_flush(struct links *l)
{
	struct batch *b = &l->batch;
	size_t nkv = devices_staged(l->devs);
	if (!nkv && !b->n)
		return;
	es_journal_kv *kv = calloc(nkv ? nkv : 1, sizeof *kv);
	es_append_result *res = calloc(b->n ? b->n : 1, sizeof *res);
	es_err err = kv && res ? ES_OK : ES_ENOMEM;
	if (!err) {
		devices_staged_kv(l->devs, kv);
		err = es_journal_append_kv(l->o.journal, b->evs, b->n, res, kv, nkv);
	}
	free(kv);
	free(res);
	pthread_mutex_lock(&l->lock);
	if (err)
		refused(l, err);
	batch_done(l, err == ES_OK);
	pthread_mutex_unlock(&l->lock);
}

void link_batch_drop(struct links *l)
{
	batch_done(l, false);
}
