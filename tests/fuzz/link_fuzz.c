/* link_fuzz.c - libFuzzer target for the device link's decoder.
 *
 * The input is fed to a stream decoder in pieces whose sizes come from the
 * input itself (its first byte seeds them). Every frame decoded must survive
 * a round trip: encoded again and decoded, it is the same frame. The raw
 * input also goes to fw_cobs_decode, and every frame's payload to the
 * unpackers of its type. Any difference abort()s; the sanitizers catch the
 * rest. Built by tests/fuzz/run_fuzz.sh. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_frame(const fw_frame *a, const fw_frame *b)
{
	return a->version == b->version && a->type == b->type && a->device == b->device &&
	       a->seq == b->seq && a->len == b->len && memcmp(a->payload, b->payload, a->len) == 0;
}

static void copy_frame(void *ctx, const fw_frame *f)
{
	fw_frame *out = ctx;
	*out = *f;
}

static void unpack_all(const fw_frame *f)
{
	fw_record r;
	fw_hello h;
	uint8_t flags;
	uint64_t ms;

	if (fw_record_unpack(f, &r) && f->type != FW_RECORD)
		abort();
	if (fw_hello_unpack(f, &h) && f->type != FW_HELLO)
		abort();
	if (fw_ack_unpack(f, &flags) && (f->type != FW_ACK || flags > FW_ACK_SEND_HELLO))
		abort();
	if (fw_time_unpack(f, &ms) && f->type != FW_TIME)
		abort();
	if (f->type == FW_RECORD && fw_record_unpack(f, &r) && fw_kind_name(r.kind) == NULL)
		abort();
}

/* A frame from the decoder encodes, decodes to itself, alone. */
static void on_frame(void *ctx, const fw_frame *f)
{
	uint8_t wire[FW_WIRE_MAX];
	fw_frame again;
	fw_decoder d;
	size_t n = fw_frame_encode(f, wire, sizeof wire);

	if (n == 0 || wire[n - 1] != 0 || memchr(wire, 0, n - 1) != NULL)
		abort();
	memset(&again, 0, sizeof again);
	fw_decoder_init(&d);
	fw_decoder_feed(&d, wire, n, copy_frame, NULL, &again);
	if (d.frames != 1 || !same_frame(f, &again))
		abort();
	unpack_all(f);
	(*(uint32_t *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[4096];
	uint32_t frames = 0;
	uint32_t piece = size > 0 ? data[0] : 1;
	fw_decoder d;

	fw_decoder_init(&d);
	for (size_t at = 0; at < size;) {
		size_t k = 1 + piece % 97;
		if (k > size - at)
			k = size - at;
		fw_decoder_feed(&d, data + at, k, on_frame, NULL, &frames);
		piece = piece * 31u + data[at];
		at += k;
	}
	if (d.frames != frames || d.n > FW_WIRE_MAX)
		abort();
	long m = fw_cobs_decode(data, size, out, sizeof out);
	if (m > (long)size || m > (long)sizeof out)
		abort();
	return 0;
}
