/* link.c - the device link's wire format: CRC-32, COBS, frames, payloads and
 * the stream decoder (see link.h and docs/link-protocol.md).
 *
 * Freestanding C99: no libc, no heap. Every integer is packed by hand in
 * little-endian order, every length is checked before a byte is touched. */
#include "link.h"

/* ---- little-endian packing ------------------------------------------- */

void fw_put_le32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void fw_put_le64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ---- CRC-32 ----------------------------------------------------------- */

/* The reflected polynomial 0xEDB88320 a nibble at a time: 64 bytes of table
 * instead of 1 KiB, two lookups a byte. */
static const uint32_t crc_nibble[16] = {
	0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
	0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
	0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

/* The running value is kept complemented between calls (as zlib's crc32()
 * does), so 0 starts and the result of one call feeds the next. */
uint32_t fw_crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
	if (p == NULL)
		return crc;
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
		crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
	}
	return ~crc;
}

uint32_t fw_crc32(const uint8_t *p, size_t n)
{
	return fw_crc32_update(0, p, n);
}

/* ---- COBS ------------------------------------------------------------- */

/* Each block is a code byte (1 + the data bytes that follow it) and up to
 * 254 data bytes; a block shorter than 255 stands for its bytes and a zero,
 * except the last, whose zero is implied by the delimiter. A full block
 * (code 0xFF) implies no zero, and the encoder opens a new one only if more
 * bytes follow, so 254 non-zero bytes encode as FF + 254 bytes. */
size_t fw_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
	size_t code_at = 0, out = 1;
	uint8_t code = 1;

	if (dst == NULL || cap == 0 || (src == NULL && n > 0))
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (src[i] != 0) {
			if (out >= cap)
				return 0;
			dst[out++] = src[i];
			if (++code < 0xFF || i + 1 == n)
				continue;
		}
		dst[code_at] = code;
		if (out >= cap)
			return 0;
		code_at = out++;
		code = 1;
	}
	dst[code_at] = code;
	return out;
}

/* Copies one block's data bytes (code - 1 of them, known to be in src) to
 * dst at *out; false on a 0x00 inside or when dst is full. */
static bool cobs_block(const uint8_t *src, uint8_t code, uint8_t *dst, size_t cap, size_t *out)
{
	for (uint8_t k = 1; k < code; k++) {
		if (src[k - 1] == 0 || *out >= cap)
			return false;
		dst[(*out)++] = src[k - 1];
	}
	return true;
}

long fw_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
	size_t i = 0, out = 0;

	if ((src == NULL && n > 0) || (dst == NULL && cap > 0))
		return -1;
	while (i < n) {
		uint8_t code = src[i++];
		if (code == 0 || (size_t)(code - 1) > n - i)
			return -1;
		if (!cobs_block(src + i, code, dst, cap, &out))
			return -1;
		i += (size_t)(code - 1);
		if (code == 0xFF || i == n)
			continue;
		if (out >= cap)
			return -1;
		dst[out++] = 0;
	}
	return (long)out;
}

/* ---- frames ----------------------------------------------------------- */

void fw_frame_init(fw_frame *f, uint8_t type, uint32_t device, uint32_t seq)
{
	if (f == NULL)
		return;
	f->version = FW_LINK_VERSION;
	f->type = type;
	f->device = device;
	f->seq = seq;
	f->len = 0;
	for (size_t i = 0; i < FW_PAYLOAD_MAX; i++)
		f->payload[i] = 0;
}

/* The unframed bytes of f (header, payload, CRC) into raw; returns their
 * length. f->len is known to be <= FW_PAYLOAD_MAX. */
static size_t frame_bytes(const fw_frame *f, uint8_t raw[FW_FRAME_MAX])
{
	size_t n = FW_HEADER_LEN + f->len;

	raw[0] = f->version;
	raw[1] = f->type;
	fw_put_le32(raw + 2, f->device);
	fw_put_le32(raw + 6, f->seq);
	raw[10] = f->len;
	for (size_t i = 0; i < f->len; i++)
		raw[FW_HEADER_LEN + i] = f->payload[i];
	fw_put_le32(raw + n, fw_crc32(raw, n));
	return n + FW_CRC_LEN;
}

size_t fw_frame_encode(const fw_frame *f, uint8_t *wire, size_t cap)
{
	uint8_t raw[FW_FRAME_MAX];
	size_t n;

	if (f == NULL || wire == NULL || f->len > FW_PAYLOAD_MAX)
		return 0;
	n = fw_cobs_encode(raw, frame_bytes(f, raw), wire, cap);
	if (n == 0 || n >= cap)
		return 0;
	wire[n] = 0;
	return n + 1;
}

/* ---- payloads --------------------------------------------------------- */

#define RECORD_LEN	10u
#define RECORD_WALL_LEN 18u
#define HELLO_LEN	15u
#define RECORD_FLAGS	(FW_REC_ALARM | FW_REC_ALARM_EDGE | FW_REC_WALL)
#define KINDS_MASK	((1u << FW_KIND_MAX_) - 1u)

void fw_record_pack(fw_frame *f, const fw_record *r)
{
	if (f == NULL || r == NULL)
		return;
	f->type = FW_RECORD;
	fw_put_le32(f->payload, r->uptime_ms);
	f->payload[4] = r->kind;
	f->payload[5] = r->flags;
	fw_put_le32(f->payload + 6, (uint32_t)r->value);
	f->len = RECORD_LEN;
	if (r->flags & FW_REC_WALL) {
		fw_put_le64(f->payload + RECORD_LEN, r->wall_ms);
		f->len = RECORD_WALL_LEN;
	}
}

void fw_hello_pack(fw_frame *f, const fw_hello *h)
{
	if (f == NULL || h == NULL)
		return;
	f->type = FW_HELLO;
	fw_put_le32(f->payload, h->boot);
	fw_put_le32(f->payload + 4, h->uptime_ms);
	fw_put_le32(f->payload + 8, h->next_seq);
	f->payload[12] = h->fw_major;
	f->payload[13] = h->fw_minor;
	f->payload[14] = h->kinds;
	f->len = HELLO_LEN;
}

void fw_ack_pack(fw_frame *f, uint8_t flags)
{
	if (f == NULL)
		return;
	f->type = FW_ACK;
	f->payload[0] = flags;
	f->len = 1;
}

void fw_time_pack(fw_frame *f, uint64_t unix_ms)
{
	if (f == NULL)
		return;
	f->type = FW_TIME;
	fw_put_le64(f->payload, unix_ms);
	f->len = 8;
}

/* Two's complement by hand: the conversion of a large uint32_t to int32_t
 * is implementation-defined, this is not. */
static int32_t to_i32(uint32_t v)
{
	if (v <= 0x7FFFFFFFu)
		return (int32_t)v;
	return -(int32_t)(~v) - 1;
}

/* The record length must match the WALL flag exactly, the kind be known
 * and no undefined flag be set. */
bool fw_record_unpack(const fw_frame *f, fw_record *out)
{
	uint8_t kind, flags;

	if (f == NULL || out == NULL || f->type != FW_RECORD || f->len < RECORD_LEN)
		return false;
	kind = f->payload[4];
	flags = f->payload[5];
	if (kind < 1 || kind > FW_KIND_MAX_ || (flags & ~RECORD_FLAGS) != 0)
		return false;
	if (f->len != ((flags & FW_REC_WALL) ? RECORD_WALL_LEN : RECORD_LEN))
		return false;
	out->uptime_ms = get_u32(f->payload);
	out->kind = kind;
	out->flags = flags;
	out->value = to_i32(get_u32(f->payload + 6));
	out->wall_ms = (flags & FW_REC_WALL) ? get_u64(f->payload + RECORD_LEN) : 0;
	return true;
}

bool fw_hello_unpack(const fw_frame *f, fw_hello *out)
{
	if (f == NULL || out == NULL || f->type != FW_HELLO || f->len != HELLO_LEN)
		return false;
	if ((f->payload[14] & ~KINDS_MASK) != 0)
		return false;
	out->boot = get_u32(f->payload);
	out->uptime_ms = get_u32(f->payload + 4);
	out->next_seq = get_u32(f->payload + 8);
	out->fw_major = f->payload[12];
	out->fw_minor = f->payload[13];
	out->kinds = f->payload[14];
	return true;
}

bool fw_ack_unpack(const fw_frame *f, uint8_t *flags)
{
	if (f == NULL || flags == NULL || f->type != FW_ACK || f->len != 1)
		return false;
	if ((f->payload[0] & ~FW_ACK_SEND_HELLO) != 0)
		return false;
	*flags = f->payload[0];
	return true;
}

bool fw_time_unpack(const fw_frame *f, uint64_t *unix_ms)
{
	if (f == NULL || unix_ms == NULL || f->type != FW_TIME || f->len != 8)
		return false;
	*unix_ms = get_u64(f->payload);
	return true;
}

/* ---- the decoder ------------------------------------------------------ */

void fw_decoder_init(fw_decoder *d)
{
	if (d == NULL)
		return;
	d->n = 0;
	d->overflow = false;
	d->frames = 0;
	for (size_t i = 0; i < FW_FAULT_COUNT_; i++)
		d->faults[i] = 0;
}

/* Checks the unframed bytes raw[0..n) in the order that makes each fault
 * say something: the size first (nothing else can be read without it), the
 * CRC before version and type (so line noise counts as CRC faults, and a
 * version fault means a real sender speaking another version). Returns
 * FW_FAULT_COUNT_ when raw is a good frame. */
static enum fw_fault check_frame(const uint8_t *raw, size_t n)
{
	size_t len;

	if (n < FW_HEADER_LEN + FW_CRC_LEN)
		return FW_FAULT_SHORT;
	len = raw[10];
	if (len > FW_PAYLOAD_MAX || n != FW_HEADER_LEN + len + FW_CRC_LEN)
		return FW_FAULT_LENGTH;
	if (get_u32(raw + FW_HEADER_LEN + len) != fw_crc32(raw, FW_HEADER_LEN + len))
		return FW_FAULT_CRC;
	if (raw[0] != FW_LINK_VERSION)
		return FW_FAULT_VERSION;
	if (raw[1] < FW_HELLO || raw[1] > FW_TIME)
		return FW_FAULT_TYPE;
	return FW_FAULT_COUNT_;
}

static void frame_from_bytes(const uint8_t *raw, fw_frame *f)
{
	f->version = raw[0];
	f->type = raw[1];
	f->device = get_u32(raw + 2);
	f->seq = get_u32(raw + 6);
	f->len = raw[10];
	for (size_t i = 0; i < FW_PAYLOAD_MAX; i++)
		f->payload[i] = i < f->len ? raw[FW_HEADER_LEN + i] : 0;
}

/* Decodes one run (the bytes before a delimiter, at most FW_WIRE_MAX of
 * them) into f; returns FW_FAULT_COUNT_ on success, else the fault. The
 * scratch buffer is as large as the run, so a run that decodes to more
 * than a frame is a length fault, not a COBS one. */
static enum fw_fault parse_run(const uint8_t *run, size_t n, fw_frame *f)
{
	uint8_t raw[FW_WIRE_MAX];
	long m = fw_cobs_decode(run, n, raw, sizeof raw);
	enum fw_fault why;

	if (m < 0)
		return FW_FAULT_COBS;
	why = check_frame(raw, (size_t)m);
	if (why == FW_FAULT_COUNT_)
		frame_from_bytes(raw, f);
	return why;
}

/* A delimiter arrived: report the run it ends (if any) and start afresh.
 * The run is cleared before a callback runs. */
static void end_run(fw_decoder *d, fw_frame_fn on_frame, fw_fault_fn on_fault, void *ctx)
{
	enum fw_fault why = FW_FAULT_OVERSIZE;
	fw_frame f;
	size_t n = d->n;
	bool overflow = d->overflow;

	d->n = 0;
	d->overflow = false;
	if (n == 0 && !overflow)
		return;
	if (!overflow)
		why = parse_run(d->buf, n, &f);
	if (why == FW_FAULT_COUNT_) {
		d->frames++;
		if (on_frame != NULL)
			on_frame(ctx, &f);
		return;
	}
	d->faults[why]++;
	if (on_fault != NULL)
		on_fault(ctx, why);
}

void fw_decoder_feed(fw_decoder *d, const uint8_t *p, size_t n, fw_frame_fn on_frame,
		     fw_fault_fn on_fault, void *ctx)
{
	if (d == NULL || p == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == 0)
			end_run(d, on_frame, on_fault, ctx);
		else if (d->n < FW_WIRE_MAX)
			d->buf[d->n++] = p[i];
		else
			d->overflow = true;
	}
}

/* ---- names ------------------------------------------------------------ */

const char *fw_fault_name(enum fw_fault why)
{
	static const char *const names[FW_FAULT_COUNT_] = {
		"cobs", "short", "oversize", "length", "crc", "version", "type",
	};
	if ((unsigned)why >= FW_FAULT_COUNT_)
		return "unknown";
	return names[why];
}

const char *fw_kind_name(uint8_t kind)
{
	static const char *const names[FW_KIND_MAX_] = {
		"temperature",
		"humidity",
		"vibration",
		"door",
	};
	if (kind < 1 || kind > FW_KIND_MAX_)
		return NULL;
	return names[kind - 1];
}

/* The unit of value / 1000 ("°C" for temperature); a door has none (its
 * value is a state, 1 = open), so "". NULL for an unknown kind. */
const char *fw_kind_unit(uint8_t kind)
{
	static const char *const units[FW_KIND_MAX_] = {"°C", "%RH", "g", ""};
	if (kind < 1 || kind > FW_KIND_MAX_)
		return NULL;
	return units[kind - 1];
}
