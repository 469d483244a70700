/* link_test.c - the device link's wire format: COBS, CRC-32, payloads,
 * frames and the stream decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "link.h"

#define MAX_FRAMES 64

/* What a decoder handed out. */
typedef struct sink {
	fw_frame frames[MAX_FRAMES];
	size_t nframes;
	uint32_t faults[FW_FAULT_COUNT_];
	uint32_t nfaults;
} sink;

static void sink_frame(void *ctx, const fw_frame *f)
{
	sink *s = ctx;
	if (s->nframes < MAX_FRAMES)
		s->frames[s->nframes] = *f;
	s->nframes++;
}

static void sink_fault(void *ctx, enum fw_fault why)
{
	sink *s = ctx;
	assert_in_range(why, 0, FW_FAULT_COUNT_ - 1);
	s->faults[why]++;
	s->nfaults++;
}

/* A small deterministic generator (xorshift32): the same bytes every run. */
static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void feed_all(fw_decoder *d, sink *s, const uint8_t *p, size_t n)
{
	fw_decoder_feed(d, p, n, sink_frame, sink_fault, s);
}

/* Decodes p[0..n) in one piece with a fresh decoder into s. */
static void decode(sink *s, const uint8_t *p, size_t n)
{
	fw_decoder d;
	memset(s, 0, sizeof *s);
	fw_decoder_init(&d);
	feed_all(&d, s, p, n);
	assert_int_equal(d.frames, s->nframes);
	for (int i = 0; i < FW_FAULT_COUNT_; i++)
		assert_int_equal(d.faults[i], s->faults[i]);
}

static void assert_frame_equal(const fw_frame *a, const fw_frame *b)
{
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->device, b->device);
	assert_int_equal(a->seq, b->seq);
	assert_int_equal(a->len, b->len);
	assert_memory_equal(a->payload, b->payload, a->len);
}

/* ---- COBS ------------------------------------------------------------- */

/* in encodes to out (which ends with the 0x00 delimiter, as the examples
 * are published), and the bytes before the delimiter decode back to in. */
static void expect_cobs(const uint8_t *in, size_t n, const uint8_t *out, size_t m)
{
	uint8_t enc[600], dec[600];
	size_t k = fw_cobs_encode(in, n, enc, sizeof enc);
	assert_int_equal(k, m - 1);
	assert_memory_equal(enc, out, m - 1);
	assert_int_equal(out[m - 1], 0);
	assert_true(k <= n + n / 254 + 1);
	for (size_t i = 0; i < k; i++)
		assert_int_not_equal(enc[i], 0);
	assert_int_equal(fw_cobs_decode(out, m - 1, dec, sizeof dec), (long)n);
	if (n > 0)
		assert_memory_equal(dec, in, n);
}

#define EXPECT(in, out) expect_cobs(in, sizeof in, out, sizeof out)

static void cobs_short_examples(void **state)
{
	static const uint8_t i1[] = {0x00}, o1[] = {0x01, 0x01, 0x00};
	static const uint8_t i2[] = {0x00, 0x00}, o2[] = {0x01, 0x01, 0x01, 0x00};
	static const uint8_t i3[] = {0x00, 0x11, 0x00}, o3[] = {0x01, 0x02, 0x11, 0x01, 0x00};
	static const uint8_t i4[] = {0x11, 0x22, 0x00, 0x33},
			     o4[] = {0x03, 0x11, 0x22, 0x02, 0x33, 0x00};
	static const uint8_t i5[] = {0x11, 0x22, 0x33, 0x44},
			     o5[] = {0x05, 0x11, 0x22, 0x33, 0x44, 0x00};
	static const uint8_t i6[] = {0x11, 0x00, 0x00, 0x00},
			     o6[] = {0x02, 0x11, 0x01, 0x01, 0x01, 0x00};
	static const uint8_t o0[] = {0x01, 0x00};
	EXPECT(i1, o1);
	EXPECT(i2, o2);
	EXPECT(i3, o3);
	EXPECT(i4, o4);
	EXPECT(i5, o5);
	EXPECT(i6, o6);
	expect_cobs(NULL, 0, o0, sizeof o0);
}

/* in[i] = first + i for n bytes (0x100 wraps to 0x00). */
static void ramp(uint8_t *p, size_t n, unsigned first)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(first + i);
}

/* The long Wikipedia examples: 254 and 255 bytes around a full block. */
static void cobs_long_examples(void **state)
{
	uint8_t in[255], out[258];

	ramp(in, 254, 0x01); /* 01..FE -> FF 01..FE 00 */
	out[0] = 0xFF;
	ramp(out + 1, 254, 0x01);
	out[255] = 0x00;
	expect_cobs(in, 254, out, 256);

	in[0] = 0x00; /* 00 01..FE -> 01 FF 01..FE 00 */
	ramp(in + 1, 254, 0x01);
	out[0] = 0x01;
	out[1] = 0xFF;
	ramp(out + 2, 254, 0x01);
	out[256] = 0x00;
	expect_cobs(in, 255, out, 257);

	ramp(in, 255, 0x01); /* 01..FF -> FF 01..FE 02 FF 00 */
	out[0] = 0xFF;
	ramp(out + 1, 254, 0x01);
	out[255] = 0x02;
	out[256] = 0xFF;
	out[257] = 0x00;
	expect_cobs(in, 255, out, 258);

	ramp(in, 255, 0x02); /* 02..FF 00 -> FF 02..FF 01 01 00 */
	out[0] = 0xFF;
	ramp(out + 1, 254, 0x02);
	out[255] = 0x01;
	out[256] = 0x01;
	out[257] = 0x00;
	expect_cobs(in, 255, out, 258);

	ramp(in, 255, 0x03); /* 03..FF 00 01 -> FE 03..FF 02 01 00 */
	out[0] = 0xFE;
	ramp(out + 1, 253, 0x03);
	out[254] = 0x02;
	out[255] = 0x01;
	out[256] = 0x00;
	expect_cobs(in, 255, out, 257);
}

/* Every cap short of the encoded length fails without writing past cap. */
static void cobs_encode_respects_cap(void **state)
{
	uint8_t in[300], out[320];
	uint32_t seed = 7;
	for (size_t i = 0; i < sizeof in; i++)
		in[i] = (uint8_t)(rnd(&seed) % 4 == 0 ? 0 : rnd(&seed));
	size_t full = fw_cobs_encode(in, sizeof in, out, sizeof out);
	assert_true(full > sizeof in);
	for (size_t cap = 0; cap < full; cap++) {
		memset(out, 0xAA, sizeof out);
		assert_int_equal(fw_cobs_encode(in, sizeof in, out, cap), 0);
		for (size_t i = cap; i < sizeof out; i++)
			assert_int_equal(out[i], 0xAA);
	}
	assert_int_equal(fw_cobs_encode(in, sizeof in, out, full), full);
	assert_int_equal(fw_cobs_encode(NULL, 3, out, sizeof out), 0);
	assert_int_equal(fw_cobs_encode(in, 3, NULL, 10), 0);
}

static void cobs_decode_rejects_bad_input(void **state)
{
	static const uint8_t past_end[] = {0x03, 0x11};
	static const uint8_t zero_inside[] = {0x03, 0x11, 0x00};
	static const uint8_t zero_code[] = {0x02, 0x11, 0x00, 0x22};
	static const uint8_t good[] = {0x03, 0x11, 0x22, 0x02, 0x33};
	uint8_t out[8];

	assert_int_equal(fw_cobs_decode(past_end, sizeof past_end, out, sizeof out), -1);
	assert_int_equal(fw_cobs_decode(zero_inside, sizeof zero_inside, out, sizeof out), -1);
	assert_int_equal(fw_cobs_decode(zero_code, sizeof zero_code, out, sizeof out), -1);
	assert_int_equal(fw_cobs_decode(good, sizeof good, out, sizeof out), 4);
	for (size_t cap = 0; cap < 4; cap++)
		assert_int_equal(fw_cobs_decode(good, sizeof good, out, cap), -1);
	assert_int_equal(fw_cobs_decode(NULL, 2, out, sizeof out), -1);
	assert_int_equal(fw_cobs_decode(good, 0, out, sizeof out), 0);
}

/* Random data of every length up to 600 round-trips, zero-heavy or not. */
static void cobs_random_round_trips(void **state)
{
	uint8_t in[600], enc[610], dec[600];
	uint32_t seed = 12345;
	for (size_t n = 0; n <= sizeof in; n++) {
		unsigned zeros = (unsigned)(n % 3 == 0 ? 2 : 200);
		for (size_t i = 0; i < n; i++)
			in[i] = (uint8_t)(rnd(&seed) % zeros == 0 ? 0 : 1 + rnd(&seed) % 255);
		size_t k = fw_cobs_encode(in, n, enc, sizeof enc);
		assert_true(k >= 1 && k <= n + n / 254 + 1);
		assert_null(memchr(enc, 0, k));
		assert_int_equal(fw_cobs_decode(enc, k, dec, sizeof dec), (long)n);
		assert_memory_equal(dec, in, n);
	}
}

/* ---- CRC-32 ----------------------------------------------------------- */

static void crc_check_value(void **state)
{
	const uint8_t *s = (const uint8_t *)"123456789";
	assert_int_equal(fw_crc32(s, 9), 0xCBF43926u);
	assert_int_equal(fw_crc32(s, 0), 0);
	assert_int_equal(fw_crc32((const uint8_t *)"a", 1), 0xE8B7BE43u);
	for (size_t cut = 0; cut <= 9; cut++)
		assert_int_equal(fw_crc32_update(fw_crc32_update(0, s, cut), s + cut, 9 - cut),
				 0xCBF43926u);
}

static void crc_incremental_equals_one_shot(void **state)
{
	uint8_t buf[1000];
	uint32_t seed = 99;
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)rnd(&seed);
	uint32_t whole = fw_crc32(buf, sizeof buf);
	for (int t = 0; t < 200; t++) {
		uint32_t crc = 0;
		size_t at = 0;
		while (at < sizeof buf) {
			size_t n = rnd(&seed) % 40;
			if (n > sizeof buf - at)
				n = sizeof buf - at;
			crc = fw_crc32_update(crc, buf + at, n);
			at += n;
		}
		assert_int_equal(crc, whole);
	}
}

/* ---- payloads --------------------------------------------------------- */

static void record_round_trip(const fw_record *r)
{
	fw_frame f;
	fw_record back;
	fw_frame_init(&f, FW_RECORD, 9, 77);
	fw_record_pack(&f, r);
	assert_int_equal(f.type, FW_RECORD);
	assert_int_equal(f.len, (r->flags & FW_REC_WALL) ? 18 : 10);
	memset(&back, 0x5A, sizeof back);
	assert_true(fw_record_unpack(&f, &back));
	assert_int_equal(back.uptime_ms, r->uptime_ms);
	assert_int_equal(back.kind, r->kind);
	assert_int_equal(back.flags, r->flags);
	assert_int_equal(back.value, r->value);
	assert_int_equal(back.wall_ms, (r->flags & FW_REC_WALL) ? r->wall_ms : 0);
}

static void payload_round_trips(void **state)
{
	static const fw_record records[] = {
		{0, FW_KIND_TEMPERATURE, 0, 0, 0},
		{60000, FW_KIND_TEMPERATURE, FW_REC_WALL, 21500, 1764204252763ull},
		{0xFFFFFFFFu, FW_KIND_HUMIDITY, FW_REC_ALARM | FW_REC_ALARM_EDGE, INT32_MIN, 0},
		{1, FW_KIND_VIBRATION, FW_REC_ALARM | FW_REC_WALL, INT32_MAX, UINT64_MAX},
		{2, FW_KIND_DOOR, FW_REC_ALARM_EDGE, -1, 0},
	};
	for (size_t i = 0; i < sizeof records / sizeof records[0]; i++)
		record_round_trip(&records[i]);

	fw_frame f;
	fw_hello h = {3, 0xDEADBEEFu, 0x80000001u, 1, 2, 0x0F}, hb;
	fw_frame_init(&f, FW_HELLO, 9, 1);
	fw_hello_pack(&f, &h);
	assert_int_equal(f.len, 15);
	assert_true(fw_hello_unpack(&f, &hb));
	assert_int_equal(hb.boot, h.boot);
	assert_int_equal(hb.uptime_ms, h.uptime_ms);
	assert_int_equal(hb.next_seq, h.next_seq);
	assert_int_equal(hb.fw_major, h.fw_major);
	assert_int_equal(hb.fw_minor, h.fw_minor);
	assert_int_equal(hb.kinds, h.kinds);

	uint8_t flags = 0;
	fw_frame_init(&f, FW_ACK, 9, 1);
	fw_ack_pack(&f, FW_ACK_SEND_HELLO);
	assert_true(fw_ack_unpack(&f, &flags));
	assert_int_equal(flags, FW_ACK_SEND_HELLO);

	uint64_t ms = 0;
	fw_frame_init(&f, FW_TIME, 0, 0);
	fw_time_pack(&f, 0x0123456789ABCDEFull);
	assert_true(fw_time_unpack(&f, &ms));
	assert_int_equal(ms, 0x0123456789ABCDEFull);
}

/* A packed record changed one way, expected to be rejected. */
static void record_rejected(uint8_t kind, uint8_t flags, uint8_t len)
{
	fw_record r = {1, FW_KIND_TEMPERATURE, 0, 5, 0};
	fw_frame f;
	fw_frame_init(&f, FW_RECORD, 1, 1);
	fw_record_pack(&f, &r);
	f.payload[4] = kind;
	f.payload[5] = flags;
	f.len = len;
	assert_false(fw_record_unpack(&f, &r));
}

static void payload_rejections(void **state)
{
	fw_frame f;
	fw_record r;
	fw_hello h = {1, 2, 3, 1, 0, 1};
	uint8_t flags;
	uint64_t ms;

	record_rejected(0, 0, 10);
	record_rejected(5, 0, 10);
	record_rejected(1, 0x08, 10);
	record_rejected(1, 0x80, 10);
	record_rejected(1, FW_REC_WALL, 10);
	record_rejected(1, 0, 18);
	record_rejected(1, 0, 9);
	record_rejected(1, 0, 11);
	fw_frame_init(&f, FW_HELLO, 1, 1);
	fw_hello_pack(&f, &h);
	assert_false(fw_record_unpack(&f, &r)); /* wrong type */
	f.payload[14] = 0x10;			/* a kind that does not exist */
	assert_false(fw_hello_unpack(&f, &h));
	f.payload[14] = 0x01;
	f.len = 14;
	assert_false(fw_hello_unpack(&f, &h));
	fw_frame_init(&f, FW_ACK, 1, 1);
	fw_ack_pack(&f, 0x02);
	assert_false(fw_ack_unpack(&f, &flags));
	fw_ack_pack(&f, 0);
	f.len = 2;
	assert_false(fw_ack_unpack(&f, &flags));
	fw_frame_init(&f, FW_TIME, 1, 0);
	fw_time_pack(&f, 1);
	f.len = 7;
	assert_false(fw_time_unpack(&f, &ms));
	assert_false(fw_time_unpack(NULL, &ms));
}

static void names(void **state)
{
	assert_string_equal(fw_fault_name(FW_FAULT_COBS), "cobs");
	assert_string_equal(fw_fault_name(FW_FAULT_SHORT), "short");
	assert_string_equal(fw_fault_name(FW_FAULT_OVERSIZE), "oversize");
	assert_string_equal(fw_fault_name(FW_FAULT_LENGTH), "length");
	assert_string_equal(fw_fault_name(FW_FAULT_CRC), "crc");
	assert_string_equal(fw_fault_name(FW_FAULT_VERSION), "version");
	assert_string_equal(fw_fault_name(FW_FAULT_TYPE), "type");
	assert_string_equal(fw_fault_name(FW_FAULT_COUNT_), "unknown");
	assert_string_equal(fw_kind_name(FW_KIND_TEMPERATURE), "temperature");
	assert_string_equal(fw_kind_name(FW_KIND_DOOR), "door");
	assert_null(fw_kind_name(0));
	assert_null(fw_kind_name(5));
	assert_string_equal(fw_kind_unit(FW_KIND_TEMPERATURE), "\xC2\xB0"
							       "C");
	assert_string_equal(fw_kind_unit(FW_KIND_HUMIDITY), "%RH");
	assert_null(fw_kind_unit(9));
}

/* ---- frames ----------------------------------------------------------- */

/* A frame of the given type with a payload of len bytes from seed. */
static fw_frame make_frame(uint8_t type, uint8_t len, uint32_t seed)
{
	fw_frame f;
	fw_frame_init(&f, type, rnd(&seed), rnd(&seed));
	for (uint8_t i = 0; i < len; i++)
		f.payload[i] = (uint8_t)(seed % 3 == 0 ? 0 : rnd(&seed));
	f.len = len;
	return f;
}

static size_t encode(const fw_frame *f, uint8_t *wire)
{
	size_t n = fw_frame_encode(f, wire, FW_WIRE_MAX);
	assert_true(n > FW_HEADER_LEN + FW_CRC_LEN && n <= FW_WIRE_MAX);
	assert_int_equal(wire[n - 1], 0);
	assert_null(memchr(wire, 0, n - 1));
	return n;
}

static void frame_round_trips(void **state)
{
	uint8_t wire[FW_WIRE_MAX];
	sink s;
	for (uint32_t t = 1; t <= 4000; t++) {
		fw_frame f =
			make_frame((uint8_t)(1 + t % 4), (uint8_t)(t % (FW_PAYLOAD_MAX + 1)), t);
		size_t n = encode(&f, wire);
		decode(&s, wire, n);
		assert_int_equal(s.nframes, 1);
		assert_int_equal(s.nfaults, 0);
		assert_frame_equal(&s.frames[0], &f);
	}
}

/* The largest frames: a full payload of zeros (the most COBS blocks) and of
 * 0xFF (none), both within FW_WIRE_MAX. */
static void frame_max_payload(void **state)
{
	uint8_t wire[FW_WIRE_MAX + 8];
	fw_frame f;
	sink s;
	for (int fill = 0; fill < 256; fill += 255) {
		fw_frame_init(&f, FW_RECORD, 0xFFFFFFFFu, 0xFFFFFFFFu);
		memset(f.payload, fill, FW_PAYLOAD_MAX);
		f.len = FW_PAYLOAD_MAX;
		size_t n = encode(&f, wire);
		decode(&s, wire, n);
		assert_int_equal(s.nframes, 1);
		assert_frame_equal(&s.frames[0], &f);
		for (size_t cap = 0; cap < n; cap++)
			assert_int_equal(fw_frame_encode(&f, wire, cap), 0);
	}
	f.len = FW_PAYLOAD_MAX + 1;
	assert_int_equal(fw_frame_encode(&f, wire, sizeof wire), 0);
	assert_int_equal(fw_frame_encode(NULL, wire, sizeof wire), 0);
	assert_int_equal(FW_FRAME_MAX, 79);
	assert_int_equal(FW_WIRE_MAX, 81);
}

/* A stream of frames; returns its length, fills frames[0..count). */
static size_t make_stream(uint8_t *p, fw_frame *frames, size_t count, uint32_t seed)
{
	size_t n = 0;
	for (size_t i = 0; i < count; i++) {
		frames[i] = make_frame((uint8_t)(1 + rnd(&seed) % 4),
				       (uint8_t)(rnd(&seed) % (FW_PAYLOAD_MAX + 1)), rnd(&seed));
		n += encode(&frames[i], p + n);
	}
	return n;
}

static void decoder_in_pieces(void **state)
{
	static uint8_t stream[MAX_FRAMES * FW_WIRE_MAX];
	static fw_frame frames[MAX_FRAMES];
	uint32_t seed = 4242;
	size_t n = make_stream(stream, frames, MAX_FRAMES, seed);
	for (int t = 0; t < 100; t++) {
		fw_decoder d;
		sink s;
		memset(&s, 0, sizeof s);
		fw_decoder_init(&d);
		for (size_t at = 0; at < n;) {
			size_t k = t == 0 ? 1 : rnd(&seed) % 100; /* 0-byte pieces too */
			if (k > n - at)
				k = n - at;
			feed_all(&d, &s, stream + at, k);
			at += k;
		}
		assert_int_equal(s.nframes, MAX_FRAMES);
		assert_int_equal(s.nfaults, 0);
		for (size_t i = 0; i < MAX_FRAMES; i++)
			assert_frame_equal(&s.frames[i], &frames[i]);
	}
}

/* Garbage before the first frame and between frames costs faults, never
 * the frames behind the next delimiter. Empty runs are no fault. */
static void decoder_resynchronises(void **state)
{
	static uint8_t stream[8192];
	fw_frame frames[8];
	uint32_t seed = 31337;
	size_t n = 0;
	for (size_t i = 0; i < 8; i++) {
		size_t junk = 1 + rnd(&seed) % 200;
		for (size_t j = 0; j < junk; j++)
			stream[n++] = (uint8_t)(rnd(&seed) % 16 == 0 ? 0 : rnd(&seed));
		stream[n++] = 0;
		stream[n++] = 0;
		frames[i] = make_frame(FW_RECORD, (uint8_t)(i * 8), rnd(&seed));
		n += encode(&frames[i], stream + n);
	}
	sink s;
	decode(&s, stream, n);
	assert_int_equal(s.nframes, 8);
	assert_true(s.nfaults >= 8);
	for (size_t i = 0; i < 8; i++)
		assert_frame_equal(&s.frames[i], &frames[i]);
}

/* Every truncation of a frame, ended by a delimiter, is a fault and not a
 * frame; the frame after it decodes. */
static void truncated_frames_are_faults(void **state)
{
	uint8_t wire[FW_WIRE_MAX], buf[2 * FW_WIRE_MAX];
	fw_frame f = make_frame(FW_RECORD, 18, 5);
	size_t n = encode(&f, wire);
	for (size_t k = 1; k < n - 1; k++) {
		sink s;
		memcpy(buf, wire, k);
		buf[k] = 0;
		memcpy(buf + k + 1, wire, n);
		decode(&s, buf, k + 1 + n);
		assert_int_equal(s.nframes, 1);
		assert_int_equal(s.nfaults, 1);
		assert_frame_equal(&s.frames[0], &f);
	}
}

/* Every single-bit flip anywhere in an encoded frame (its delimiter too)
 * yields no frame, only faults. */
static void bit_flips_are_faults(void **state)
{
	uint8_t wire[FW_WIRE_MAX], buf[FW_WIRE_MAX + 1];
	for (uint32_t t = 0; t < 8; t++) {
		fw_frame f = make_frame((uint8_t)(1 + t % 4), (uint8_t)(t * 9), 100 + t);
		size_t n = encode(&f, wire);
		for (size_t bit = 0; bit < n * 8; bit++) {
			sink s;
			memcpy(buf, wire, n);
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			buf[n] = 0;
			decode(&s, buf, n + 1);
			assert_int_equal(s.nframes, 0);
			assert_true(s.nfaults >= 1);
		}
	}
}

/* A run longer than FW_WIRE_MAX is one oversize fault at its delimiter,
 * however long; a run of exactly FW_WIRE_MAX is judged on its bytes. */
static void oversized_runs(void **state)
{
	static uint8_t buf[20000];
	uint8_t wire[FW_WIRE_MAX];
	fw_frame f = make_frame(FW_HELLO, 15, 3);
	size_t lens[] = {FW_WIRE_MAX + 1, FW_WIRE_MAX + 2, 500, 19000};
	for (size_t i = 0; i < 4; i++) {
		sink s;
		memset(buf, 0x11, lens[i]);
		buf[lens[i]] = 0;
		size_t n = encode(&f, wire);
		memcpy(buf + lens[i] + 1, wire, n);
		decode(&s, buf, lens[i] + 1 + n);
		assert_int_equal(s.faults[FW_FAULT_OVERSIZE], 1);
		assert_int_equal(s.nfaults, 1);
		assert_int_equal(s.nframes, 1);
	}
	sink s;
	memset(buf, 0x11, FW_WIRE_MAX);
	buf[FW_WIRE_MAX] = 0;
	decode(&s, buf, FW_WIRE_MAX + 1);
	assert_int_equal(s.faults[FW_FAULT_OVERSIZE], 0);
	assert_int_equal(s.nfaults, 1);
}

/* Raw (unframed) bytes with their CRC (xor bad) appended, COBS and a
 * delimiter. */
static size_t frame_raw(uint8_t *raw, size_t n, uint8_t *wire, uint32_t bad)
{
	uint32_t crc = fw_crc32(raw, n) ^ bad;
	for (int i = 0; i < 4; i++)
		raw[n + (size_t)i] = (uint8_t)(crc >> (8 * i));
	size_t k = fw_cobs_encode(raw, n + 4, wire, 200);
	wire[k] = 0;
	return k + 1;
}

static void expect_fault(const uint8_t *wire, size_t n, enum fw_fault why)
{
	sink s;
	decode(&s, wire, n);
	assert_int_equal(s.nframes, 0);
	assert_int_equal(s.nfaults, 1);
	assert_int_equal(s.faults[why], 1);
}

/* Each fault for the reason it names, in the order the decoder checks. */
static void each_fault(void **state)
{
	uint8_t raw[200], wire[200];
	fw_frame f = make_frame(FW_ACK, 1, 8);

	f.version = 2;
	expect_fault(wire, fw_frame_encode(&f, wire, sizeof wire), FW_FAULT_VERSION);
	f.version = FW_LINK_VERSION;
	f.type = 0;
	expect_fault(wire, fw_frame_encode(&f, wire, sizeof wire), FW_FAULT_TYPE);
	f.type = 5;
	expect_fault(wire, fw_frame_encode(&f, wire, sizeof wire), FW_FAULT_TYPE);

	memset(raw, 1, sizeof raw);
	raw[10] = 2;
	expect_fault(wire, frame_raw(raw, FW_HEADER_LEN + 2, wire, 1u << 31), FW_FAULT_CRC);
	raw[0] = 9; /* a bad CRC is reported before a bad version */
	expect_fault(wire, frame_raw(raw, FW_HEADER_LEN + 2, wire, 1), FW_FAULT_CRC);
	raw[0] = 1;
	raw[10] = 3; /* says 3 payload bytes, has 2 */
	expect_fault(wire, frame_raw(raw, FW_HEADER_LEN + 2, wire, 0), FW_FAULT_LENGTH);
	raw[10] = FW_PAYLOAD_MAX + 1; /* more than a payload may be, and has it */
	expect_fault(wire, frame_raw(raw, FW_HEADER_LEN + FW_PAYLOAD_MAX + 1, wire, 0),
		     FW_FAULT_LENGTH);
	expect_fault(wire, frame_raw(raw, FW_HEADER_LEN - 1, wire, 0), FW_FAULT_SHORT);
	raw[10] = 2;
	sink s;
	decode(&s, wire, frame_raw(raw, FW_HEADER_LEN + 2, wire, 0)); /* the control */
	assert_int_equal(s.nframes, 1);
	static const uint8_t bad_cobs[] = {0x05, 0x11, 0x00};
	expect_fault(bad_cobs, sizeof bad_cobs, FW_FAULT_COBS);
}

/* Random bytes: no crash, and every non-empty run ends in exactly one frame
 * or one fault. Zero-heavy and zero-light streams, in random pieces. */
static void random_bytes(void **state)
{
	enum { N = 1000000 };
	static uint8_t buf[N];
	uint32_t seed = 2024;
	for (int pass = 0; pass < 2; pass++) {
		uint32_t runs = 0, len = 0;
		for (size_t i = 0; i < N; i++) {
			buf[i] = (uint8_t)(rnd(&seed) % (pass ? 256 : 24) == 0 ? 0 : rnd(&seed));
			if (buf[i] == 0 && len > 0)
				runs++;
			len = buf[i] == 0 ? 0 : len + 1;
		}
		fw_decoder d;
		sink s;
		memset(&s, 0, sizeof s);
		fw_decoder_init(&d);
		for (size_t at = 0; at < N;) {
			size_t k = rnd(&seed) % 300;
			k = k > N - at ? N - at : k;
			feed_all(&d, &s, buf + at, k);
			at += k;
		}
		uint32_t sum = d.frames;
		for (int i = 0; i < FW_FAULT_COUNT_; i++)
			sum += d.faults[i];
		assert_int_equal(sum, runs);
		assert_int_equal(s.nfaults + s.nframes, runs);
		assert_true(d.faults[FW_FAULT_CRC] + d.faults[FW_FAULT_LENGTH] > 0);
		assert_true(d.n <= FW_WIRE_MAX);
	}
}

static void bad_arguments(void **state)
{
	fw_decoder d;
	uint8_t b = 0;
	fw_decoder_init(&d);
	fw_decoder_feed(NULL, &b, 1, NULL, NULL, NULL);
	fw_decoder_feed(&d, NULL, 5, NULL, NULL, NULL);
	fw_decoder_init(NULL);
	fw_frame_init(NULL, FW_ACK, 1, 1);
	fw_record_pack(NULL, NULL);
	assert_int_equal(fw_crc32(NULL, 5), 0);
	/* no callbacks at all: still counted */
	uint8_t wire[FW_WIRE_MAX];
	fw_frame f = make_frame(FW_TIME, 8, 1);
	size_t n = encode(&f, wire);
	fw_decoder_feed(&d, wire, n, NULL, NULL, NULL);
	fw_decoder_feed(&d, (const uint8_t *)"\x01\x01", 3, NULL, NULL, NULL);
	assert_int_equal(d.frames, 1);
	assert_int_equal(d.faults[FW_FAULT_SHORT], 1);
}

/* The example in docs/link-protocol.md, byte for byte: keep them in step. */
static void documented_example(void **state)
{
	static const uint8_t raw[] = {
		0x01, 0x02, 0x07, 0x00, 0x00, 0x00, 0x2A, 0x00, 0x00, 0x00, 0x12,
		0x60, 0xEA, 0x00, 0x00, 0x01, 0x04, 0xFC, 0x53, 0x00, 0x00, 0x5B,
		0x8E, 0xC4, 0xC2, 0x9A, 0x01, 0x00, 0x00, 0x7C, 0xEB, 0xC4, 0xCA,
	};
	static const uint8_t wire[] = {
		0x04, 0x01, 0x02, 0x07, 0x01, 0x01, 0x02, 0x2A, 0x01, 0x01, 0x04, 0x12,
		0x60, 0xEA, 0x01, 0x05, 0x01, 0x04, 0xFC, 0x53, 0x01, 0x07, 0x5B, 0x8E,
		0xC4, 0xC2, 0x9A, 0x01, 0x01, 0x05, 0x7C, 0xEB, 0xC4, 0xCA, 0x00,
	};
	fw_record r = {60000, FW_KIND_TEMPERATURE, FW_REC_WALL, 21500, 1764204252763ull};
	fw_frame f;
	uint8_t out[FW_WIRE_MAX], dec[FW_WIRE_MAX];

	fw_frame_init(&f, FW_RECORD, 7, 42);
	fw_record_pack(&f, &r);
	assert_int_equal(fw_frame_encode(&f, out, sizeof out), sizeof wire);
	assert_memory_equal(out, wire, sizeof wire);
	assert_int_equal(fw_cobs_decode(wire, sizeof wire - 1, dec, sizeof dec), sizeof raw);
	assert_memory_equal(dec, raw, sizeof raw);
	assert_int_equal(fw_crc32(raw, sizeof raw - 4), 0xCAC4EB7Cu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cobs_short_examples),
		cmocka_unit_test(cobs_long_examples),
		cmocka_unit_test(cobs_encode_respects_cap),
		cmocka_unit_test(cobs_decode_rejects_bad_input),
		cmocka_unit_test(cobs_random_round_trips),
		cmocka_unit_test(crc_check_value),
		cmocka_unit_test(crc_incremental_equals_one_shot),
		cmocka_unit_test(payload_round_trips),
		cmocka_unit_test(payload_rejections),
		cmocka_unit_test(names),
		cmocka_unit_test(frame_round_trips),
		cmocka_unit_test(frame_max_payload),
		cmocka_unit_test(decoder_in_pieces),
		cmocka_unit_test(decoder_resynchronises),
		cmocka_unit_test(truncated_frames_are_faults),
		cmocka_unit_test(bit_flips_are_faults),
		cmocka_unit_test(oversized_runs),
		cmocka_unit_test(each_fault),
		cmocka_unit_test(random_bytes),
		cmocka_unit_test(bad_arguments),
		cmocka_unit_test(documented_example),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
