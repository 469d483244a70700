/* device.c - the firmware core: sampling, the ring of unacknowledged
 * records, go-back-N delivery, hello, time sync, warm and cold boots (see
 * device.h and docs/link-protocol.md).
 *
 * Freestanding C99: no libc, no heap; single-threaded (fw_device_poll and
 * fw_device_on_frame from the same loop).
 *
 * Sequences and millis wrap at 2^32: they are compared by their difference
 * (a is before b when a - b, modulo 2^32, is at least 2^31), never with <,
 * so every rule below holds across a wrap. Sequence 0 is only special in a
 * fresh persistent counter (sequences start at 1); after 2^32 records the
 * numbers run on through 0 like any other.
 *
 * Records are sent before the gateway answers the hello: a gateway that
 * restarted knows the device from its journal and takes them at once; one
 * that does not know it drops them and asks for a hello (FW_ACK_SEND_HELLO),
 * and the records go again after the resend timeout. The hello goes first
 * in every poll, so a gateway sees it before the records that follow. */
#include "device.h"

/* The ring is indexed by seq % FW_RING: a power of two divides 2^32, so the
 * index of consecutive sequences stays consecutive across the wrap. */
typedef char fw_ring_is_a_power_of_two[(FW_RING & (FW_RING - 1u)) == 0 ? 1 : -1];

/* A private mark in a held record's flags: written at least once (so the
 * next write is counted as a resend). Never on the wire, and left out of
 * the check word so that marking a record needs no new check. */
#define SLOT_SENT  0x80u
#define CHECK_SEED 0x46575247u /* "FWRG": zeroed RAM is not an intact ring */
#define HALF_RANGE 0x80000000u
#define READ_CHUNK 32u
#define READ_MAX   8u /* chunks a poll: a flooded line cannot starve sampling */

static bool seq_before(uint32_t a, uint32_t b)
{
	return a - b >= HALF_RANGE;
}

/* millis, noticing a wrap since the last read: the wall clock offset grows
 * by 2^32 ms so that wall time runs on. Needs a read at least every 24 days
 * (every poll is one). */
static uint32_t clock_now(fw_device *d)
{
	uint32_t now = d->hal.millis(d->hal.ctx);

	if (now < d->now_ms && d->wall_valid)
		d->wall_offset_ms += (int64_t)1 << 32;
	d->now_ms = now;
	return now;
}

/* ---- the ring and its check word -------------------------------------- */

static uint32_t slot_check(uint32_t crc, const struct fw_slot *s)
{
	uint8_t b[22];

	fw_put_le32(b, s->seq);
	fw_put_le32(b + 4, s->rec.uptime_ms);
	b[8] = s->rec.kind;
	b[9] = (uint8_t)(s->rec.flags & ~SLOT_SENT);
	fw_put_le32(b + 10, (uint32_t)s->rec.value);
	fw_put_le64(b + 14, s->rec.wall_ms);
	return fw_crc32_update(crc, b, sizeof b);
}

/* A CRC over the ring's header and the records it holds, seeded so that
 * all-zero (or never initialised) RAM does not pass. */
static uint32_t ring_check(const fw_device *d)
{
	uint8_t b[16];
	uint32_t crc;

	fw_put_le32(b, d->first_seq);
	fw_put_le32(b + 4, d->count);
	fw_put_le32(b + 8, d->next_seq);
	fw_put_le32(b + 12, d->reserved);
	crc = fw_crc32_update(CHECK_SEED, b, sizeof b);
	for (uint32_t i = 0; i < d->count && i < FW_RING; i++)
		crc = slot_check(crc, &d->ring[(d->first_seq + i) % FW_RING]);
	return crc;
}

/* Whether RAM that survived a reset still holds a ring this code wrote:
 * consistent counters (checked first, so nothing is read out of bounds),
 * each slot where its sequence says, and the check word. */
static bool ring_intact(const fw_device *d)
{
	if (d->count > FW_RING || d->next_seq - d->first_seq != d->count)
		return false;
	if (seq_before(d->reserved, d->next_seq) || d->reserved - d->next_seq > FW_SEQ_BLOCK)
		return false;
	for (uint32_t i = 0; i < d->count; i++) {
		if (d->ring[(d->first_seq + i) % FW_RING].seq != d->first_seq + i)
			return false;
	}
	return d->check == ring_check(d);
}

/* Reserves the next FW_SEQ_BLOCK sequences in nv before any is used, so a
 * cold boot (which starts at the stored value) never reuses one. */
static void reserve(fw_device *d)
{
	d->reserved = d->next_seq + FW_SEQ_BLOCK;
	d->hal.nv_store(d->hal.ctx, FW_NV_SEQ, d->reserved);
}

/* Starts empty after the last reserved block: any sequence below it may
 * have gone out before the reset. The gateway sees a gap, never a reused
 * sequence. */
static void ring_cold(fw_device *d)
{
	uint32_t next = d->hal.nv_load(d->hal.ctx, FW_NV_SEQ);

	if (next == 0)
		next = 1; /* a fresh counter: sequences start at 1 */
	d->first_seq = next;
	d->next_seq = next;
	d->count = 0;
	reserve(d);
	d->check = ring_check(d);
}

/* Keeps the ring; if nv lags behind the ring's reservation (a store lost
 * to the reset), it is written again. */
static void ring_warm(fw_device *d)
{
	uint32_t stored = d->hal.nv_load(d->hal.ctx, FW_NV_SEQ);

	if (seq_before(stored, d->reserved))
		d->hal.nv_store(d->hal.ctx, FW_NV_SEQ, d->reserved);
}

static void ring_push(fw_device *d, const fw_record *r)
{
	struct fw_slot *s = &d->ring[d->next_seq % FW_RING];

	if (d->next_seq == d->reserved)
		reserve(d);
	s->seq = d->next_seq;
	s->rec = *r;
	d->next_seq++;
	d->count++;
	d->check = ring_check(d);
}

/* ---- boot ------------------------------------------------------------- */

static bool sensor_ok(const fw_sensor_cfg *s)
{
	return s->kind >= 1 && s->kind <= FW_KIND_MAX_ && s->period_ms > 0 &&
	       s->period_ms < HALF_RANGE;
}

/* Besides what device.h lists, a zero period or resend time (the device
 * would do it on every poll) and times of 2^31 ms or more (beyond what
 * wrapping arithmetic can tell apart) are refused. */
static bool config_ok(const fw_config *c)
{
	if (c == NULL || c->device_id == 0 || c->nsensors < 1 || c->nsensors > FW_SENSORS_MAX)
		return false;
	if (c->window < 1 || c->window > FW_RING || c->resend_ms == 0 || c->resend_ms >= HALF_RANGE)
		return false;
	for (uint8_t i = 0; i < c->nsensors; i++) {
		if (!sensor_ok(&c->sensors[i]))
			return false;
	}
	return true;
}

static bool hal_ok(const fw_hal *h)
{
	return h != NULL && h->millis != NULL && h->sample != NULL && h->write != NULL &&
	       h->nv_load != NULL && h->nv_store != NULL;
}

/* What no reset keeps: counters, timers, the link state. Everything held
 * is sent again (the gateway re-acks what it already has): a boot is a
 * go-back, so the gateway's answer to the hello, which makes no progress
 * when it has nothing yet, does not cause another. */
static void volatile_reset(fw_device *d)
{
	static const fw_stats zero;
	uint32_t now = d->hal.millis(d->hal.ctx);

	d->stats = zero;
	d->send_seq = d->first_seq;
	d->last_ack = d->first_seq - 1;
	d->progress_ms = now;
	d->went_back = true;
	d->greeted = false;
	d->hello_ms = now - FW_HELLO_MS; /* the first poll says hello */
	for (unsigned i = 0; i < FW_SENSORS_MAX; i++) {
		d->next_sample_ms[i] = now;
		d->in_alarm[i] = false;
	}
	d->now_ms = now;
	d->wall_offset_ms = 0;
	d->wall_valid = false;
	fw_decoder_init(&d->dec);
}

bool fw_device_boot(fw_device *d, const fw_config *cfg, const fw_hal *hal, bool warm)
{
	if (d == NULL || !config_ok(cfg) || !hal_ok(hal))
		return false;
	d->cfg = *cfg;
	d->hal = *hal;
	d->boot = hal->nv_load(hal->ctx, FW_NV_BOOT) + 1;
	hal->nv_store(hal->ctx, FW_NV_BOOT, d->boot);
	if (warm && ring_intact(d))
		ring_warm(d);
	else
		ring_cold(d);
	volatile_reset(d);
	return true;
}

/* ---- sampling --------------------------------------------------------- */

static fw_record make_record(const fw_device *d, const fw_sensor_cfg *s, int32_t value,
			     uint32_t now, bool was_alarm)
{
	bool alarm = value < s->alarm_low || value > s->alarm_high;
	unsigned flags = alarm ? FW_REC_ALARM : 0u;
	fw_record r;

	if (alarm != was_alarm)
		flags |= FW_REC_ALARM_EDGE;
	if (d->wall_valid)
		flags |= FW_REC_WALL;
	r.uptime_ms = now;
	r.kind = s->kind;
	r.flags = (uint8_t)flags;
	r.value = value;
	r.wall_ms = d->wall_valid ? (uint64_t)((int64_t)now + d->wall_offset_ms) : 0;
	return r;
}

/* One reading of sensor i into the ring. When the ring is full the reading
 * is dropped and the sensor's alarm state left as it was, so the next
 * record that is kept still carries the edge. */
static void sample_one(fw_device *d, uint8_t i, uint32_t now)
{
	const fw_sensor_cfg *s = &d->cfg.sensors[i];
	int32_t value = 0;
	fw_record r;

	if (!d->hal.sample(d->hal.ctx, i, s->kind, &value)) {
		d->stats.sample_fails++;
		return;
	}
	if (d->count >= FW_RING) {
		d->stats.dropped_full++;
		return;
	}
	r = make_record(d, s, value, now, d->in_alarm[i]);
	d->in_alarm[i] = (r.flags & FW_REC_ALARM) != 0;
	ring_push(d, &r);
	d->stats.sampled++;
}

/* Samples every sensor whose time has come. A sensor late by a whole period
 * or more (a long stall) takes one reading and starts afresh from now
 * rather than catching up in a burst. */
static void sample_due(fw_device *d, uint32_t now)
{
	for (uint8_t i = 0; i < d->cfg.nsensors; i++) {
		uint32_t period = d->cfg.sensors[i].period_ms;

		if (now - d->next_sample_ms[i] >= HALF_RANGE)
			continue;
		sample_one(d, i, now);
		d->next_sample_ms[i] += period;
		if (now - d->next_sample_ms[i] < HALF_RANGE)
			d->next_sample_ms[i] = now + period;
	}
}

/* ---- sending ---------------------------------------------------------- */

static bool write_frame(fw_device *d, const fw_frame *f)
{
	uint8_t wire[FW_WIRE_MAX];
	size_t n = fw_frame_encode(f, wire, sizeof wire);

	return n > 0 && d->hal.write(d->hal.ctx, wire, n);
}

/* Records written and not yet acknowledged. */
static bool in_flight(const fw_device *d)
{
	return d->send_seq != d->first_seq;
}

static void go_back(fw_device *d)
{
	d->send_seq = d->first_seq;
	d->went_back = true;
}

static uint8_t sensor_kinds(const fw_device *d)
{
	unsigned kinds = 0;

	for (uint8_t i = 0; i < d->cfg.nsensors; i++)
		kinds |= 1u << (d->cfg.sensors[i].kind - 1u);
	return (uint8_t)kinds;
}

/* Until the gateway answers: a hello at boot and every FW_HELLO_MS, its
 * seq the oldest record held (next_seq when none is). Returns false if the
 * link refused it: nothing more is written in this poll. */
static bool send_hello(fw_device *d, uint32_t now)
{
	fw_frame f;
	fw_hello h;

	if (d->greeted || now - d->hello_ms < FW_HELLO_MS)
		return true;
	fw_frame_init(&f, FW_HELLO, d->cfg.device_id, d->first_seq);
	h.boot = d->boot;
	h.uptime_ms = now;
	h.next_seq = d->next_seq;
	h.fw_major = FW_FW_MAJOR;
	h.fw_minor = FW_FW_MINOR;
	h.kinds = sensor_kinds(d);
	fw_hello_pack(&f, &h);
	if (!write_frame(d, &f))
		return false;
	d->stats.hellos++;
	d->hello_ms = now;
	return true;
}

/* Writes the record at send_seq. The resend timer starts when the first
 * record goes in flight; later writes do not restart it. */
static bool send_one(fw_device *d, uint32_t now)
{
	struct fw_slot *s = &d->ring[d->send_seq % FW_RING];
	fw_record r = s->rec;
	fw_frame f;

	r.flags = (uint8_t)(r.flags & ~SLOT_SENT);
	fw_frame_init(&f, FW_RECORD, d->cfg.device_id, s->seq);
	fw_record_pack(&f, &r);
	if (!write_frame(d, &f))
		return false;
	if (!in_flight(d))
		d->progress_ms = now;
	if (s->rec.flags & SLOT_SENT) {
		d->stats.resent++;
	} else {
		d->stats.sent++;
		s->rec.flags = (uint8_t)(s->rec.flags | SLOT_SENT);
	}
	d->send_seq++;
	return true;
}

/* Records in sequence order from send_seq, at most cfg.window past the last
 * acknowledged one, until the link refuses one. */
static void send_records(fw_device *d, uint32_t now)
{
	uint32_t limit = d->first_seq + d->cfg.window;

	while (seq_before(d->send_seq, d->next_seq) && seq_before(d->send_seq, limit)) {
		if (!send_one(d, now))
			return;
	}
}

/* No ACK progress for resend_ms while records are in flight: the gateway
 * lost one (or restarted), go back to the oldest held. */
static void check_resend(fw_device *d, uint32_t now)
{
	if (in_flight(d) && now - d->progress_ms >= d->cfg.resend_ms)
		go_back(d);
}

static void link_frame(void *ctx, const fw_frame *f)
{
	fw_device_on_frame(ctx, f);
}

/* Feeds what the link has to the device's own decoder, at most READ_MAX
 * chunks, trusting no count the HAL returns beyond the buffer. */
static void read_link(fw_device *d)
{
	uint8_t buf[READ_CHUNK];

	for (unsigned i = 0; d->hal.read != NULL && i < READ_MAX; i++) {
		size_t n = d->hal.read(d->hal.ctx, buf, sizeof buf);

		if (n == 0)
			return;
		if (n > sizeof buf)
			n = sizeof buf;
		fw_decoder_feed(&d->dec, buf, n, link_frame, NULL, d);
	}
}

void fw_device_poll(fw_device *d)
{
	uint32_t now;

	if (d == NULL || d->hal.millis == NULL)
		return;
	read_link(d);
	now = clock_now(d);
	sample_due(d, now);
	if (!send_hello(d, now))
		return;
	check_resend(d, now);
	send_records(d, now);
}

/* ---- frames from the gateway ------------------------------------------ */

/* The gateway answered without taking what is in flight: it dropped a
 * record (a corrupted one, so the next came early) or lost its state. Go
 * back once; the repeats that follow are its answers to the records already
 * on the line, and going back for each would resend the window over and
 * over. The next progress re-arms it. */
static void no_progress(fw_device *d)
{
	if (in_flight(d) && !d->went_back)
		go_back(d);
}

/* ACKs are cumulative: frees every held record up to seq. One at or
 * behind the oldest held minus one (a repeat, or the gateway's "nothing
 * yet") makes no progress. One beyond what is held frees what is held. */
static void ack_upto(fw_device *d, uint32_t seq, uint32_t now)
{
	uint32_t n = seq - d->first_seq + 1u;

	d->last_ack = seq;
	if (seq_before(seq, d->first_seq))
		n = 0;
	if (n > d->count)
		n = d->count;
	if (n == 0) {
		no_progress(d);
		return;
	}
	d->first_seq += n;
	d->count -= n;
	d->stats.acked += n;
	d->progress_ms = now;
	d->went_back = false;
	if (seq_before(d->send_seq, d->first_seq))
		d->send_seq = d->first_seq;
	d->check = ring_check(d);
}

/* Any ACK means the gateway hears us. FW_ACK_SEND_HELLO means it knows
 * nothing of us: it acknowledges nothing (its seq is ignored) and dropped
 * what is in flight, so a hello goes out at once and the records follow it
 * from the oldest held. A broadcast ACK (device 0) carries only its flags:
 * its sequence is nobody's. */
static void on_ack(fw_device *d, const fw_frame *f)
{
	uint8_t flags;
	uint32_t now;

	if (!fw_ack_unpack(f, &flags)) {
		d->stats.bad_frames++;
		return;
	}
	now = clock_now(d);
	if (flags & FW_ACK_SEND_HELLO) {
		d->greeted = false;
		d->hello_ms = now - FW_HELLO_MS;
		go_back(d);
		return;
	}
	d->greeted = true;
	if (f->device != 0)
		ack_upto(d, f->seq, now);
}

/* wall = millis + offset from now on. A TIME sent to this device answers
 * its hello; a broadcast one does not (the gateway may not know us). */
static void on_time(fw_device *d, const fw_frame *f)
{
	uint64_t unix_ms;
	uint32_t now;

	if (!fw_time_unpack(f, &unix_ms) || unix_ms > (uint64_t)INT64_MAX) {
		d->stats.bad_frames++;
		return;
	}
	now = clock_now(d);
	d->wall_offset_ms = (int64_t)unix_ms - (int64_t)now;
	d->wall_valid = true;
	d->stats.time_syncs++;
	if (f->device != 0)
		d->greeted = true;
}

void fw_device_on_frame(fw_device *d, const fw_frame *f)
{
	if (d == NULL || f == NULL || d->hal.millis == NULL)
		return;
	if (f->device != d->cfg.device_id && f->device != 0)
		return;
	if (f->version != FW_LINK_VERSION) {
		d->stats.bad_frames++;
		return;
	}
	switch (f->type) {
	case FW_ACK:
		on_ack(d, f);
		break;
	case FW_TIME:
		on_time(d, f);
		break;
	case FW_HELLO:
	case FW_RECORD:
		break; /* a device's frame (its own echo on a shared line) */
	default:
		d->stats.bad_frames++;
		break;
	}
}
