/* link.h - the device link's wire format: frames, COBS, CRC-32, a decoder.
 *
 * Shared by the firmware core (the device side) and edge-agent (the gateway
 * side). Portable C99 for a microcontroller: no heap, no OS, no libc beyond
 * the freestanding headers; every buffer is fixed and every length checked.
 * docs/link-protocol.md describes the bytes; this header is its code.
 *
 * A frame before framing (all integers little-endian):
 *
 *   off  size  field
 *   0    1     version (FW_LINK_VERSION)
 *   1    1     type (enum fw_frame_type)
 *   2    4     device id (nonzero; 0 in a gateway frame = every device)
 *   6    4     sequence (its meaning depends on the type)
 *   10   1     payload length L, 0..FW_PAYLOAD_MAX
 *   11   L     payload
 *   11+L 4     CRC-32 (IEEE 802.3) of bytes 0 .. 10+L
 *
 * On the wire the frame is COBS-encoded (no 0x00 inside) and followed by one
 * 0x00 delimiter, so a receiver finds the next frame after any garbage.
 */
#ifndef FW_LINK_H
#define FW_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FW_LINK_VERSION 1u
#define FW_HEADER_LEN	11u
#define FW_CRC_LEN	4u
#define FW_PAYLOAD_MAX	64u
#define FW_FRAME_MAX	(FW_HEADER_LEN + FW_PAYLOAD_MAX + FW_CRC_LEN) /* 79 */
/* COBS adds one byte per 254 (and one at the start); then the delimiter. */
#define FW_WIRE_MAX (FW_FRAME_MAX + FW_FRAME_MAX / 254u + 1u + 1u) /* 81 */

enum fw_frame_type {
	FW_HELLO = 1,  /* device -> gateway: I (re)started; seq = oldest record held */
	FW_RECORD = 2, /* device -> gateway: one reading; seq = the record's sequence */
	FW_ACK = 3,    /* gateway -> device: seq = every record <= seq is journaled */
	FW_TIME = 4,   /* gateway -> device: wall-clock time; seq = 0 */
};

typedef struct fw_frame {
	uint8_t version, type;
	uint32_t device, seq;
	uint8_t len;
	uint8_t payload[FW_PAYLOAD_MAX];
} fw_frame;

/* ---- payloads --------------------------------------------------------- */

enum fw_kind {
	FW_KIND_TEMPERATURE = 1, /* value in milli-degrees Celsius */
	FW_KIND_HUMIDITY = 2,	 /* value in milli-percent relative humidity */
	FW_KIND_VIBRATION = 3,	 /* value in milli-g (RMS acceleration) */
	FW_KIND_DOOR = 4,	 /* value 1 = open, 0 = closed */
	FW_KIND_MAX_ = 4,
};

enum fw_record_flags {
	FW_REC_ALARM = 1u << 0,	     /* the value is beyond the sensor's alarm threshold */
	FW_REC_ALARM_EDGE = 1u << 1, /* ... and it was not (or was) on the previous reading */
	FW_REC_WALL = 1u << 2,	     /* wall_ms is valid (the device had a time sync) */
};

/* RECORD payload: u32 uptime_ms, u8 kind, u8 flags, i32 value, then u64
 * wall_ms when FW_REC_WALL is set: 10 or 18 bytes. */
typedef struct fw_record {
	uint32_t uptime_ms;
	uint8_t kind, flags;
	int32_t value;
	uint64_t wall_ms;
} fw_record;

/* HELLO payload: u32 boot (the device's boot count), u32 uptime_ms, u32
 * next_seq (the sequence its next new record gets), u8 fw_major, u8
 * fw_minor, u8 kinds (bit k-1 set = it has a sensor of kind k): 15 bytes. */
typedef struct fw_hello {
	uint32_t boot, uptime_ms, next_seq;
	uint8_t fw_major, fw_minor, kinds;
} fw_hello;

enum fw_ack_flags {
	FW_ACK_SEND_HELLO = 1u << 0, /* the gateway knows nothing of you: say hello */
};

/* ACK payload: u8 flags. TIME payload: u64 unix time in milliseconds. */

/* Packs into f->payload and sets f->type and f->len (the caller sets the
 * header's version, device and seq, or uses fw_frame_init). */
void fw_frame_init(fw_frame *f, uint8_t type, uint32_t device, uint32_t seq);
void fw_record_pack(fw_frame *f, const fw_record *r);
void fw_hello_pack(fw_frame *f, const fw_hello *h);
void fw_ack_pack(fw_frame *f, uint8_t flags);
void fw_time_pack(fw_frame *f, uint64_t unix_ms);

/* Unpack a frame of the right type; false if the payload has the wrong
 * length or a field is out of range (an unknown kind, a flag not defined). */
bool fw_record_unpack(const fw_frame *f, fw_record *out);
bool fw_hello_unpack(const fw_frame *f, fw_hello *out);
bool fw_ack_unpack(const fw_frame *f, uint8_t *flags);
bool fw_time_unpack(const fw_frame *f, uint64_t *unix_ms);

/* ---- bytes ------------------------------------------------------------ */

/* Little-endian stores, the byte order of every field on the link. */
void fw_put_le32(uint8_t *p, uint32_t v);
void fw_put_le64(uint8_t *p, uint64_t v);

/* CRC-32/ISO-HDLC (the zlib and Ethernet CRC): "123456789" -> 0xCBF43926.
 * fw_crc32_update(0, ...) starts; feed more with the previous result. */
uint32_t fw_crc32_update(uint32_t crc, const uint8_t *p, size_t n);
uint32_t fw_crc32(const uint8_t *p, size_t n);

/* COBS (Cheshire and Baker, 1999). Encode writes at most n + n/254 + 1
 * bytes, none of them 0x00; returns the length, or 0 if cap is too small.
 * Decode takes the bytes between two delimiters and returns the decoded
 * length, or -1 if they are not valid COBS (a 0x00 inside, a code byte
 * pointing past the end) or the result would exceed cap. */
size_t fw_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);
long fw_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

/* Serialises f: header, payload, CRC, COBS, and the 0x00 delimiter, into
 * wire (cap >= FW_WIRE_MAX always suffices). Returns the bytes written, or
 * 0 if f->len > FW_PAYLOAD_MAX or cap is too small. */
size_t fw_frame_encode(const fw_frame *f, uint8_t *wire, size_t cap);

/* ---- the decoder ------------------------------------------------------ */

/* What was wrong with a run of bytes between delimiters. */
enum fw_fault {
	FW_FAULT_COBS,	   /* not valid COBS */
	FW_FAULT_SHORT,	   /* fewer bytes than a header and a CRC */
	FW_FAULT_OVERSIZE, /* more than FW_WIRE_MAX bytes before a delimiter */
	FW_FAULT_LENGTH,   /* the length field disagrees with the bytes received */
	FW_FAULT_CRC,	   /* the CRC does not match */
	FW_FAULT_VERSION,  /* a protocol version this code does not speak */
	FW_FAULT_TYPE,	   /* an unknown frame type */
	FW_FAULT_COUNT_
};

/* A stream decoder: feed it whatever bytes arrive, in any pieces. Empty
 * runs (two delimiters in a row) are not faults: a sender may start with a
 * delimiter to flush a half frame on the line. */
typedef struct fw_decoder {
	uint8_t buf[FW_WIRE_MAX];
	size_t n;
	bool overflow; /* the current run is too long: skip to the delimiter */
	uint32_t frames;
	uint32_t faults[FW_FAULT_COUNT_];
} fw_decoder;

typedef void (*fw_frame_fn)(void *ctx, const fw_frame *f);
typedef void (*fw_fault_fn)(void *ctx, enum fw_fault why);

void fw_decoder_init(fw_decoder *d);
/* Consumes p[0..n): calls on_frame for every valid frame and on_fault (may
 * be NULL) for every bad run, in order; counts both. Never reads or writes
 * outside p and d. */
void fw_decoder_feed(fw_decoder *d, const uint8_t *p, size_t n, fw_frame_fn on_frame,
		     fw_fault_fn on_fault, void *ctx);
/* "cobs", "short", ... (stable: used in logs and metric labels). */
const char *fw_fault_name(enum fw_fault why);
/* "temperature", ...; NULL for an unknown kind. And its unit, "°C", ... */
const char *fw_kind_name(uint8_t kind);
const char *fw_kind_unit(uint8_t kind);

#endif
