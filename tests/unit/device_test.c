/* device_test.c - the firmware core against a fake HAL: a clock the test
 * advances, scripted sensor values, written frames decoded back, an nv
 * array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"

#define DEV	  7u
#define OUT_MAX	  4096
#define PERIOD	  100u
#define RESEND_MS 3000u
#define WINDOW	  4u

typedef struct fake {
	uint32_t now;
	int32_t value[FW_SENSORS_MAX];
	bool sample_fails;
	int writes_left; /* < 0: unlimited */
	uint32_t nv[2];
	uint32_t nv_stores;
	fw_decoder dec;
	fw_frame out[OUT_MAX]; /* frames written since the last take() */
	size_t nout;
	uint8_t rx[1024]; /* bytes hal.read hands out */
	size_t rx_n, rx_at;
} fake;

static uint32_t fake_millis(void *ctx)
{
	return ((fake *)ctx)->now;
}

static bool fake_sample(void *ctx, uint8_t index, uint8_t kind, int32_t *value)
{
	fake *f = ctx;
	assert_true(index < FW_SENSORS_MAX);
	assert_true(kind >= 1 && kind <= FW_KIND_MAX_);
	if (f->sample_fails)
		return false;
	*value = f->value[index];
	return true;
}

static void fake_frame(void *ctx, const fw_frame *fr)
{
	fake *f = ctx;
	assert_true(f->nout < OUT_MAX);
	f->out[f->nout++] = *fr;
}

/* Every write is one whole frame: it decodes to exactly one frame. */
static bool fake_write(void *ctx, const uint8_t *p, size_t n)
{
	fake *f = ctx;
	size_t before = f->nout;
	if (f->writes_left == 0)
		return false;
	if (f->writes_left > 0)
		f->writes_left--;
	assert_true(n <= FW_WIRE_MAX);
	assert_int_equal(p[n - 1], 0);
	fw_decoder_feed(&f->dec, p, n, fake_frame, NULL, f);
	assert_int_equal(f->nout, before + 1);
	return true;
}

static size_t fake_read(void *ctx, uint8_t *p, size_t cap)
{
	fake *f = ctx;
	size_t n = f->rx_n - f->rx_at;
	n = n > cap ? cap : n;
	memcpy(p, f->rx + f->rx_at, n);
	f->rx_at += n;
	return n;
}

static uint32_t fake_nv_load(void *ctx, uint8_t slot)
{
	assert_true(slot < 2);
	return ((fake *)ctx)->nv[slot];
}

static void fake_nv_store(void *ctx, uint8_t slot, uint32_t value)
{
	fake *f = ctx;
	assert_true(slot < 2);
	f->nv[slot] = value;
	f->nv_stores++;
}

static fw_hal hal_of(fake *f, bool with_read)
{
	fw_hal h = {f,
		    fake_millis,
		    fake_sample,
		    fake_write,
		    with_read ? fake_read : NULL,
		    fake_nv_load,
		    fake_nv_store};
	return h;
}

static fw_config config(void)
{
	fw_config c;
	memset(&c, 0, sizeof c);
	c.device_id = DEV;
	c.sensors[0] = (fw_sensor_cfg){FW_KIND_TEMPERATURE, PERIOD, -10000, 40000};
	c.nsensors = 1;
	c.window = WINDOW;
	c.resend_ms = RESEND_MS;
	return c;
}

/* The test's world: one fake and one device (large: static storage). */
static fake F;
static fw_device D;

static int setup(void **state)
{
	memset(&F, 0, sizeof F);
	memset(&D, 0xA5, sizeof D); /* RAM after power-on: anything */
	F.now = 1000;
	F.value[0] = 20000;
	F.writes_left = -1;
	fw_decoder_init(&F.dec);
	return 0;
}

static void boot_with(const fw_config *c, bool warm)
{
	fw_hal h = hal_of(&F, false);
	assert_true(fw_device_boot(&D, c, &h, warm));
}

static void boot(bool warm)
{
	fw_config c = config();
	boot_with(&c, warm);
}

static void take(void)
{
	F.nout = 0;
}

static void poll_at(uint32_t now)
{
	F.now = now;
	fw_device_poll(&D);
}

static void advance(uint32_t ms)
{
	poll_at(F.now + ms);
}

static size_t count_type(uint8_t type)
{
	size_t n = 0;
	for (size_t i = 0; i < F.nout; i++)
		n += F.out[i].type == type;
	return n;
}

/* The sequences of the RECORD frames written since take(), in order. */
static size_t record_seqs(uint32_t *seqs, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < F.nout; i++) {
		if (F.out[i].type != FW_RECORD)
			continue;
		assert_true(n < cap);
		assert_int_equal(F.out[i].device, DEV);
		seqs[n++] = F.out[i].seq;
	}
	return n;
}

static void expect_records(uint32_t first, size_t count)
{
	uint32_t seqs[OUT_MAX];
	assert_int_equal(record_seqs(seqs, OUT_MAX), count);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(seqs[i], first + (uint32_t)i);
}

static fw_record last_record(void)
{
	fw_record r = {0}; /* fail_msg() does not return, but gcc cannot always tell */
	for (size_t i = F.nout; i > 0; i--) {
		if (F.out[i - 1].type == FW_RECORD) {
			assert_true(fw_record_unpack(&F.out[i - 1], &r));
			return r;
		}
	}
	fail_msg("no record written");
	return r;
}

static uint8_t last_record_flags(void)
{
	return last_record().flags;
}

static void send_ack_to(uint32_t device, uint32_t seq, uint8_t flags)
{
	fw_frame f;
	fw_frame_init(&f, FW_ACK, device, seq);
	fw_ack_pack(&f, flags);
	fw_device_on_frame(&D, &f);
}

static void ack(uint32_t seq)
{
	send_ack_to(DEV, seq, 0);
}

static void send_time(uint32_t device, uint64_t unix_ms)
{
	fw_frame f;
	fw_frame_init(&f, FW_TIME, device, 0);
	fw_time_pack(&f, unix_ms);
	fw_device_on_frame(&D, &f);
}

/* Boots, answers the hello, and empties the output. */
static void boot_greeted(void)
{
	boot(false);
	poll_at(F.now);
	ack(D.first_seq - 1);
	take();
}

/* ---- tests ------------------------------------------------------------ */

static void hello_at_boot_and_until_answered(void **state)
{
	fw_hello h;
	F.nv[FW_NV_BOOT] = 4;
	boot(false);
	assert_int_equal(F.nv[FW_NV_BOOT], 5);
	poll_at(F.now);
	assert_int_equal(count_type(FW_HELLO), 1);
	assert_int_equal(F.out[0].type, FW_HELLO); /* before any record */
	assert_int_equal(F.out[0].seq, 1);
	assert_true(fw_hello_unpack(&F.out[0], &h));
	assert_int_equal(h.boot, 5);
	assert_int_equal(h.uptime_ms, 1000);
	assert_int_equal(h.next_seq, 2); /* the first reading came first */
	assert_int_equal(h.fw_major, FW_FW_MAJOR);
	assert_int_equal(h.kinds, 1u << (FW_KIND_TEMPERATURE - 1));
	take();
	advance(FW_HELLO_MS - 1);
	assert_int_equal(count_type(FW_HELLO), 0);
	advance(1);
	assert_int_equal(count_type(FW_HELLO), 1);
	advance(FW_HELLO_MS);
	assert_int_equal(count_type(FW_HELLO), 2);
	assert_int_equal(D.stats.hellos, 3);
	ack(0); /* the gateway's answer: it has nothing yet */
	take();
	for (int i = 0; i < 10; i++)
		advance(FW_HELLO_MS);
	assert_int_equal(count_type(FW_HELLO), 0);
}

/* A TIME to this device answers the hello too. */
static void time_answers_hello(void **state)
{
	boot(false);
	poll_at(F.now);
	send_time(DEV, 1700000000000ull);
	take();
	advance(FW_HELLO_MS * 3);
	assert_int_equal(count_type(FW_HELLO), 0);
}

static void records_in_order_within_window(void **state)
{
	boot_greeted(); /* the boot poll sent record 1, before the answer */
	for (int i = 0; i < 9; i++)
		advance(PERIOD);
	assert_int_equal(D.stats.sampled, 10);
	assert_int_equal(D.count, 10);
	expect_records(2, WINDOW - 1);
	ack(2);
	take();
	advance(1);
	expect_records(1 + WINDOW, 2);
	assert_int_equal(D.stats.sent, WINDOW + 2);
	assert_int_equal(D.stats.resent, 0);
}

static void ack_frees_the_ring(void **state)
{
	boot_greeted();
	for (int i = 0; i < 9; i++)
		advance(PERIOD);
	assert_int_equal(fw_device_pending(&D), 10);
	ack(3);
	assert_int_equal(fw_device_pending(&D), 7);
	assert_int_equal(D.first_seq, 4);
	assert_int_equal(D.stats.acked, 3);
	ack(2); /* behind: nothing more is freed */
	assert_int_equal(fw_device_pending(&D), 7);
	ack(1000); /* beyond what is held: frees what is held */
	assert_int_equal(fw_device_pending(&D), 0);
	assert_int_equal(D.first_seq, 11);
	assert_int_equal(D.stats.acked, 10);
	assert_int_equal(D.next_seq, 11);
}

static void resend_after_resend_ms(void **state)
{
	uint32_t seqs[16];
	boot_greeted();
	for (int i = 0; i < 3; i++)
		advance(PERIOD);
	take();
	/* 1..4 in flight since the boot poll at 1000; no ACK progress */
	poll_at(1000 + RESEND_MS - 1);
	assert_int_equal(record_seqs(seqs, 16), 0);
	poll_at(1000 + RESEND_MS);
	expect_records(1, WINDOW);
	assert_int_equal(D.stats.resent, WINDOW);
	take();
	advance(RESEND_MS - 1); /* the timer restarted with the resend */
	assert_int_equal(record_seqs(seqs, 16), 0);
	advance(1);
	expect_records(1, WINDOW);
	assert_int_equal(D.stats.resent, 2 * WINDOW);
}

static void go_back_once_on_non_progress_ack(void **state)
{
	boot_greeted();
	for (int i = 0; i < 4; i++)
		advance(PERIOD);
	ack(1); /* progress: 2..4 in flight, then 5 goes */
	take();
	advance(1);
	expect_records(5, 1);
	take();
	ack(1); /* a repeat: the gateway dropped something */
	advance(1);
	expect_records(2, WINDOW);
	take();
	ack(1); /* its answers to the rest of the first round */
	ack(1);
	advance(1);
	expect_records(0, 0);
	ack(2); /* progress re-arms it */
	ack(2);
	take();
	advance(1);
	expect_records(3, 3);
	assert_int_equal(D.stats.resent, WINDOW + 3);
}

static void ring_full_drops_new_readings(void **state)
{
	boot_greeted();
	for (uint32_t i = 0; i < FW_RING + 9; i++)
		advance(PERIOD);
	assert_int_equal(fw_device_pending(&D), FW_RING);
	assert_int_equal(D.stats.sampled, FW_RING);
	assert_int_equal(D.stats.dropped_full, 10);
	assert_int_equal(D.next_seq, FW_RING + 1);
	ack(FW_RING);
	advance(PERIOD);
	assert_int_equal(fw_device_pending(&D), 1);
	assert_int_equal(D.first_seq, FW_RING + 1); /* no sequence lost to the drops */
	assert_int_equal(D.stats.dropped_full, 10);
}

/* An alarm edge that falls on a dropped reading is carried by the next
 * record kept. */
static void ring_full_keeps_the_alarm_edge(void **state)
{
	boot_greeted();
	for (uint32_t i = 0; i < FW_RING - 1; i++)
		advance(PERIOD);
	F.value[0] = 99999;
	advance(PERIOD); /* dropped */
	assert_int_equal(D.stats.dropped_full, 1);
	ack(FW_RING);
	take();
	advance(PERIOD);
	fw_record r = last_record();
	assert_int_equal(r.flags & (FW_REC_ALARM | FW_REC_ALARM_EDGE),
			 FW_REC_ALARM | FW_REC_ALARM_EDGE);
}

static void warm_boot_keeps_the_ring(void **state)
{
	fw_hello h;
	boot_greeted();
	for (int i = 0; i < 9; i++)
		advance(PERIOD);
	ack(3);
	uint32_t reserved = F.nv[FW_NV_SEQ];
	F.now = 5; /* millis restarts */
	boot(true);
	assert_int_equal(fw_device_pending(&D), 7);
	assert_int_equal(D.first_seq, 4);
	assert_int_equal(F.nv[FW_NV_SEQ], reserved);
	take();
	poll_at(5);
	assert_int_equal(F.out[0].type, FW_HELLO);
	assert_int_equal(F.out[0].seq, 4);
	assert_true(fw_hello_unpack(&F.out[0], &h));
	assert_int_equal(h.next_seq, 12);
	assert_int_equal(h.boot, 2);
	expect_records(4, WINDOW); /* from the oldest held */
	ack(3);			   /* the answer to the hello: no go-back for it */
	take();
	advance(1);
	expect_records(0, 0);
	ack(11);
	advance(PERIOD);
	assert_int_equal(last_record().uptime_ms, 5 + 1 + PERIOD);
	expect_records(12, 1); /* sequences continue */
}

/* A damaged ring is not trusted: the boot is cold. */
static void warm_boot_with_damaged_ring_is_cold(void **state)
{
	boot_greeted();
	for (int i = 0; i < 9; i++)
		advance(PERIOD);
	D.ring[5].rec.value ^= 1;
	boot(true);
	assert_int_equal(fw_device_pending(&D), 0);
	assert_int_equal(D.next_seq, 1 + FW_SEQ_BLOCK);
	/* and RAM that never held a ring (setup fills it with 0xA5) */
	setup(NULL);
	boot(true);
	assert_int_equal(fw_device_pending(&D), 0);
	assert_int_equal(D.next_seq, 1);
}

static void cold_boot_never_reuses_a_sequence(void **state)
{
	boot_greeted();
	assert_int_equal(F.nv[FW_NV_SEQ], 1 + FW_SEQ_BLOCK);
	uint32_t stores = F.nv_stores;
	for (uint32_t i = 1; i < FW_SEQ_BLOCK + 10; i++) {
		advance(PERIOD);
		ack(D.next_seq - 1);
		/* nv is always ahead of every sequence used */
		assert_true(F.nv[FW_NV_SEQ] - D.next_seq <= FW_SEQ_BLOCK);
		assert_true(F.nv[FW_NV_SEQ] >= D.next_seq);
	}
	assert_int_equal(F.nv_stores, stores + 1); /* one write per block */
	uint32_t last = D.next_seq - 1;
	boot(false);
	assert_true(D.next_seq > last);
	assert_int_equal(D.next_seq, 1 + 2 * FW_SEQ_BLOCK);
	take();
	poll_at(F.now);
	assert_int_equal(F.out[0].seq, 1 + 2 * FW_SEQ_BLOCK); /* the gap the gateway sees */
	expect_records(1 + 2 * FW_SEQ_BLOCK, 1);
}

static void send_hello_flag(void **state)
{
	boot_greeted();
	for (int i = 0; i < 3; i++)
		advance(PERIOD);
	take();
	send_ack_to(DEV, 3, FW_ACK_SEND_HELLO); /* its seq means nothing */
	assert_int_equal(fw_device_pending(&D), 4);
	advance(1);
	assert_int_equal(F.out[0].type, FW_HELLO);
	assert_int_equal(F.out[0].seq, 1);
	expect_records(1, WINDOW);
	ack(0); /* the answer to the hello: no further go-back */
	take();
	advance(1);
	expect_records(0, 0);
	assert_int_equal(count_type(FW_HELLO), 0);
	/* broadcast: every device says hello */
	send_ack_to(0, 0, FW_ACK_SEND_HELLO);
	advance(1);
	assert_int_equal(count_type(FW_HELLO), 1);
}

static void time_sets_the_wall_clock(void **state)
{
	boot_greeted();
	send_time(DEV, 1700000000000ull); /* at uptime 1000 */
	assert_true(D.wall_valid);
	assert_int_equal(D.stats.time_syncs, 1);
	advance(PERIOD);
	fw_record r = last_record();
	assert_int_equal(r.flags, FW_REC_WALL);
	assert_int_equal(r.uptime_ms, 1100);
	assert_int_equal(r.wall_ms, 1700000000100ull);
	send_time(0, 1800000000000ull);	      /* broadcast */
	send_time(DEV + 1, 1900000000000ull); /* someone else's */
	assert_int_equal(D.stats.time_syncs, 2);
	advance(PERIOD);
	assert_int_equal(last_record().wall_ms, 1800000000100ull);
}

/* Millis wraps after 49 days: sampling and wall time run on. */
static void millis_wrap_wall_clock(void **state)
{
	F.now = 0xFFFFFF00u;
	boot_greeted();
	send_time(DEV, 1700000000000ull);
	for (uint32_t k = 1; k <= 6; k++) {
		advance(PERIOD);
		fw_record r = last_record();
		assert_int_equal(r.uptime_ms, 0xFFFFFF00u + k * PERIOD);
		assert_int_equal(r.wall_ms, 1700000000000ull + k * PERIOD);
		ack(D.next_seq - 1);
	}
	assert_int_equal(D.stats.sampled, 7);
}

/* ... and so does the resend timer. */
static void millis_wrap_resend(void **state)
{
	F.now = 0xFFFFFF00u;
	boot_greeted(); /* record 1 in flight since 0xFFFFFF00 */
	poll_at(0xFFFFFF00u + RESEND_MS - 1);
	expect_records(2, 1);
	take();
	poll_at(0xFFFFFF00u + RESEND_MS);
	expect_records(1, 2);
	assert_int_equal(D.stats.resent, 2);
}

static void alarm_flags(void **state)
{
	static const struct {
		int32_t value;
		uint8_t flags;
	} steps[] = {
		{50000, FW_REC_ALARM | FW_REC_ALARM_EDGE},
		{60000, FW_REC_ALARM},
		{0, FW_REC_ALARM_EDGE},
		{0, 0},
		{-10001, FW_REC_ALARM | FW_REC_ALARM_EDGE},
		{-10000, FW_REC_ALARM_EDGE}, /* the bounds are inside */
		{40000, 0},
		{40001, FW_REC_ALARM | FW_REC_ALARM_EDGE},
	};
	boot_greeted();
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		F.value[0] = steps[i].value;
		take();
		advance(PERIOD);
		assert_int_equal(last_record_flags(), steps[i].flags);
		assert_int_equal(last_record().value, steps[i].value);
		ack(D.next_seq - 1);
	}
	/* a first reading in alarm is an edge */
	F.value[0] = -20000;
	boot(false);
	take();
	poll_at(F.now);
	assert_int_equal(last_record_flags(), FW_REC_ALARM | FW_REC_ALARM_EDGE);
}

/* Two sensors keep their own schedule and alarm state. */
static void two_sensors(void **state)
{
	fw_config c = config();
	fw_hello h;
	c.sensors[1] = (fw_sensor_cfg){FW_KIND_DOOR, 3 * PERIOD, 0, 0};
	c.nsensors = 2;
	c.window = 64;
	F.value[1] = 1; /* open: an alarm */
	boot_with(&c, false);
	poll_at(F.now);
	assert_true(fw_hello_unpack(&F.out[0], &h));
	assert_int_equal(h.kinds, 0x09);
	for (int i = 0; i < 6; i++)
		advance(PERIOD);
	assert_int_equal(D.stats.sampled, 7 + 3);
	size_t doors = 0, edges = 0;
	for (size_t i = 0; i < F.nout; i++) {
		fw_record r;
		if (F.out[i].type != FW_RECORD || !fw_record_unpack(&F.out[i], &r))
			continue;
		doors += r.kind == FW_KIND_DOOR;
		edges += (r.flags & FW_REC_ALARM_EDGE) != 0;
	}
	assert_int_equal(doors, 3);
	assert_int_equal(edges, 1);
}

/* Sequences run on through 2^32: in order, acknowledged, kept by a warm
 * boot. */
static void sequence_wrap(void **state)
{
	F.nv[FW_NV_SEQ] = 0xFFFFFFF0u;
	boot_greeted();
	assert_int_equal(D.first_seq, 0xFFFFFFF0u);
	assert_int_equal(F.nv[FW_NV_SEQ], 0xFFFFFFF0u + FW_SEQ_BLOCK);
	for (int i = 0; i < 20; i++) {
		advance(PERIOD);
		ack(D.next_seq - 1);
	}
	expect_records(0xFFFFFFF1u, 20);
	assert_int_equal(D.stats.acked, 21);
	assert_int_equal(D.next_seq, 5);
	/* unacknowledged across the wrap, then a warm boot */
	F.nv[FW_NV_SEQ] = 0xFFFFFFF0u;
	boot(false);
	take();
	for (int i = 0; i < 30; i++)
		advance(PERIOD);
	expect_records(0xFFFFFFF0u, WINDOW);
	assert_int_equal(fw_device_pending(&D), 30);
	boot(true);
	assert_int_equal(fw_device_pending(&D), 30);
	assert_int_equal(D.first_seq, 0xFFFFFFF0u);
	ack(3); /* frees 0xFFFFFFF0 .. 3 */
	assert_int_equal(fw_device_pending(&D), 10);
	assert_int_equal(D.first_seq, 4);
	ack(0xFFFFFFFFu); /* behind: nothing */
	assert_int_equal(fw_device_pending(&D), 10);
}

static void write_refused_is_retried(void **state)
{
	boot(false);
	F.writes_left = 0;
	poll_at(F.now);
	assert_int_equal(F.nout, 0);
	assert_int_equal(D.stats.hellos, 0);
	assert_int_equal(D.stats.sent, 0);
	F.writes_left = 1;
	advance(1);
	assert_int_equal(F.nout, 1);
	assert_int_equal(F.out[0].type, FW_HELLO);
	assert_int_equal(D.stats.sent, 0);
	F.writes_left = 2;
	advance(1);
	expect_records(1, 1); /* 1 written, 2 not due yet: one write left over */
	assert_int_equal(D.stats.sent, 1);
	assert_int_equal(count_type(FW_HELLO), 1);
}

static void sample_failures_are_counted(void **state)
{
	boot_greeted();
	F.sample_fails = true;
	for (int i = 0; i < 5; i++)
		advance(PERIOD);
	assert_int_equal(D.stats.sample_fails, 5);
	assert_int_equal(D.stats.sampled, 1);
	assert_int_equal(D.next_seq, 2);
}

/* With hal.read the device decodes the link itself: garbage is skipped,
 * ACK and TIME for it are applied, others ignored. */
static void frames_through_hal_read(void **state)
{
	fw_config c = config();
	fw_hal h = hal_of(&F, true);
	fw_frame f;
	assert_true(fw_device_boot(&D, &c, &h, false));
	for (int i = 0; i < 3; i++)
		advance(PERIOD);
	size_t n = 0;
	F.rx[n++] = 0x55;
	F.rx[n++] = 0x00;
	fw_frame_init(&f, FW_ACK, DEV + 1, 100);
	fw_ack_pack(&f, 0);
	n += fw_frame_encode(&f, F.rx + n, sizeof F.rx - n);
	fw_frame_init(&f, FW_TIME, DEV, 0);
	fw_time_pack(&f, 1700000000000ull);
	n += fw_frame_encode(&f, F.rx + n, sizeof F.rx - n);
	fw_frame_init(&f, FW_ACK, DEV, 2);
	fw_ack_pack(&f, 0);
	n += fw_frame_encode(&f, F.rx + n, sizeof F.rx - n);
	F.rx_n = n;
	advance(1);
	assert_true(D.greeted);
	assert_true(D.wall_valid);
	assert_int_equal(fw_device_pending(&D), 1); /* 3 sampled, 2 acknowledged */
	assert_int_equal(D.dec.frames, 3);
	assert_int_equal(D.dec.faults[FW_FAULT_COBS], 1);
	assert_int_equal(D.stats.bad_frames, 0);
}

static void bad_frames_are_counted(void **state)
{
	fw_frame f;
	boot_greeted();
	fw_frame_init(&f, FW_ACK, DEV, 1);
	f.len = 2; /* an ACK payload is one byte */
	fw_device_on_frame(&D, &f);
	fw_frame_init(&f, FW_TIME, 0, 0);
	f.len = 3;
	fw_device_on_frame(&D, &f);
	fw_frame_init(&f, 9, DEV, 0);
	fw_device_on_frame(&D, &f);
	fw_frame_init(&f, FW_ACK, DEV, 1);
	fw_ack_pack(&f, 0);
	f.version = 2;
	fw_device_on_frame(&D, &f);
	assert_int_equal(D.stats.bad_frames, 4);
	fw_frame_init(&f, FW_RECORD, DEV, 1); /* a device's frame: not for us */
	fw_device_on_frame(&D, &f);
	fw_frame_init(&f, 9, DEV + 1, 0); /* someone else's */
	fw_device_on_frame(&D, &f);
	fw_device_on_frame(&D, NULL);
	fw_device_on_frame(NULL, &f);
	fw_device_poll(NULL);
	assert_int_equal(D.stats.bad_frames, 4);
	assert_int_equal(fw_device_pending(&D), 1);
}

static void bad_configs_are_refused(void **state)
{
	fw_hal h = hal_of(&F, false);
	fw_config c;
	for (int t = 0; t < 11; t++) {
		c = config();
		switch (t) {
		case 0:
			c.device_id = 0;
			break;
		case 1:
			c.nsensors = 0;
			break;
		case 2:
			c.nsensors = FW_SENSORS_MAX + 1;
			break;
		case 3:
			c.sensors[0].kind = 0;
			break;
		case 4:
			c.sensors[0].kind = FW_KIND_MAX_ + 1;
			break;
		case 5:
			c.window = 0;
			break;
		case 6:
			c.window = FW_RING + 1;
			break;
		case 7:
			c.sensors[0].period_ms = 0;
			break;
		case 8:
			c.resend_ms = 0;
			break;
		case 9:
			c.nsensors = 2;
			break; /* sensors[1] is all zero */
		default:
			h.write = NULL;
			break;
		}
		assert_false(fw_device_boot(&D, &c, &h, false));
	}
	c = config();
	h = hal_of(&F, false);
	assert_false(fw_device_boot(&D, NULL, &h, false));
	assert_false(fw_device_boot(&D, &c, NULL, false));
	assert_false(fw_device_boot(NULL, &c, &h, false));
	c.window = FW_RING;
	assert_true(fw_device_boot(&D, &c, &h, false));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(hello_at_boot_and_until_answered, setup),
		cmocka_unit_test_setup(time_answers_hello, setup),
		cmocka_unit_test_setup(records_in_order_within_window, setup),
		cmocka_unit_test_setup(ack_frees_the_ring, setup),
		cmocka_unit_test_setup(resend_after_resend_ms, setup),
		cmocka_unit_test_setup(go_back_once_on_non_progress_ack, setup),
		cmocka_unit_test_setup(ring_full_drops_new_readings, setup),
		cmocka_unit_test_setup(ring_full_keeps_the_alarm_edge, setup),
		cmocka_unit_test_setup(warm_boot_keeps_the_ring, setup),
		cmocka_unit_test_setup(warm_boot_with_damaged_ring_is_cold, setup),
		cmocka_unit_test_setup(cold_boot_never_reuses_a_sequence, setup),
		cmocka_unit_test_setup(send_hello_flag, setup),
		cmocka_unit_test_setup(time_sets_the_wall_clock, setup),
		cmocka_unit_test_setup(millis_wrap_wall_clock, setup),
		cmocka_unit_test_setup(millis_wrap_resend, setup),
		cmocka_unit_test_setup(alarm_flags, setup),
		cmocka_unit_test_setup(two_sensors, setup),
		cmocka_unit_test_setup(sequence_wrap, setup),
		cmocka_unit_test_setup(write_refused_is_retried, setup),
		cmocka_unit_test_setup(sample_failures_are_counted, setup),
		cmocka_unit_test_setup(frames_through_hal_read, setup),
		cmocka_unit_test_setup(bad_frames_are_counted, setup),
		cmocka_unit_test_setup(bad_configs_are_refused, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
