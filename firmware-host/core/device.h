/* device.h - the firmware core: samples sensors, keeps records until the
 * gateway acknowledges them, speaks the link.
 *
 * Portable C99 for a microcontroller: no heap (the caller owns the
 * fw_device, typically a static), no OS calls, no libc beyond the
 * freestanding headers. Everything that touches hardware goes through
 * fw_hal. Single-threaded: call fw_device_poll from the main loop.
 *
 * Delivery: every reading becomes a record with the next sequence number
 * and waits in a ring of FW_RING records until an ACK covers it. Records go
 * out in sequence order, at most cfg.window beyond the last ACK; when no ACK
 * makes progress for cfg.resend_ms (or an ACK repeats without progress), the
 * device goes back to the oldest unacknowledged record and sends again. The
 * gateway accepts only the next sequence it expects, re-acks duplicates and
 * drops what comes early, so a gateway restart or a corrupted frame costs a
 * resend, never a record. When the ring is full, new readings are dropped
 * and counted (never an unacknowledged record).
 *
 * Resets: the ring lives in the fw_device, which firmware places in RAM
 * that survives a warm reset (.noinit); fw_device_boot(warm = true) keeps
 * it when its check word is intact. Sequence numbers survive any reset
 * through a persistent counter (hal.nv_*): the device reserves blocks of
 * FW_SEQ_BLOCK sequences, so flash is written once per block, and a cold
 * boot starts after the last reserved block (the gateway sees a gap it can
 * report, never a reused sequence).
 */
#ifndef FW_DEVICE_H
#define FW_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "link.h"

#define FW_RING	       64u /* records kept until acknowledged */
#define FW_SENSORS_MAX 4u
#define FW_SEQ_BLOCK   256u  /* sequences reserved per persistent write */
#define FW_HELLO_MS    1000u /* hello repeated this often until the gateway answers */
#define FW_FW_MAJOR    1u
#define FW_FW_MINOR    0u

enum fw_nv_slot { FW_NV_BOOT = 0, FW_NV_SEQ = 1 };

/* The hardware. Every function gets ctx. */
typedef struct fw_hal {
	void *ctx;
	/* Milliseconds since boot (wraps after 49 days; the core copes). */
	uint32_t (*millis)(void *ctx);
	/* Reads sensor `index` of the config; false if the read failed (counted,
	 * no record). */
	bool (*sample)(void *ctx, uint8_t index, uint8_t kind, int32_t *value);
	/* Writes a whole encoded frame to the link; returns false if it could not
	 * go now (the core tries again later). */
	bool (*write)(void *ctx, const uint8_t *p, size_t n);
	/* Non-blocking read from the link into p; returns the bytes read (0 if
	 * none). NULL when the host decodes the link itself and hands frames in
	 * with fw_device_on_frame (several devices on one line). */
	size_t (*read)(void *ctx, uint8_t *p, size_t cap);
	/* Persistent 32-bit counters (flash, EEPROM, FRAM), slots fw_nv_slot. */
	uint32_t (*nv_load)(void *ctx, uint8_t slot);
	void (*nv_store)(void *ctx, uint8_t slot, uint32_t value);
} fw_hal;

typedef struct fw_sensor_cfg {
	uint8_t kind;		       /* enum fw_kind */
	uint32_t period_ms;	       /* one reading every period_ms */
	int32_t alarm_low, alarm_high; /* alarm outside [low, high] */
} fw_sensor_cfg;

typedef struct fw_config {
	uint32_t device_id; /* nonzero */
	fw_sensor_cfg sensors[FW_SENSORS_MAX];
	uint8_t nsensors;
	uint8_t window;	    /* records in flight beyond the last ACK, 1..FW_RING */
	uint32_t resend_ms; /* go back after this long without ACK progress */
} fw_config;

typedef struct fw_stats {
	uint32_t sampled;      /* readings that became records */
	uint32_t sample_fails; /* sensor reads that failed */
	uint32_t dropped_full; /* readings dropped: the ring was full */
	uint32_t sent;	       /* record frames written, first time */
	uint32_t resent;       /* record frames written again */
	uint32_t acked;	       /* records acknowledged */
	uint32_t hellos;       /* hello frames written */
	uint32_t time_syncs;   /* time frames applied */
	uint32_t bad_frames;   /* frames for us that made no sense */
} fw_stats;

struct fw_slot {
	uint32_t seq;
	fw_record rec;
};

typedef struct fw_device {
	fw_config cfg;
	fw_hal hal;
	fw_stats stats;
	/* the ring: records [tail, tail + count) by sequence; survives warm resets */
	uint32_t check; /* a check word over the ring's header, for warm boots */
	struct fw_slot ring[FW_RING];
	uint32_t first_seq; /* sequence of the oldest record held */
	uint32_t count;	    /* records held */
	uint32_t next_seq;  /* the next new record's sequence */
	uint32_t reserved;  /* sequences below this are reserved in nv */
	/* volatile state, reset on every boot */
	uint32_t boot;
	uint32_t send_seq;    /* the next record to write */
	uint32_t last_ack;    /* the last ACK's sequence */
	uint32_t progress_ms; /* when an ACK last made progress (or a send began) */
	bool went_back;	      /* went back since the last progress */
	bool greeted;	      /* the gateway has answered since boot */
	uint32_t hello_ms;    /* when the last hello went out */
	uint32_t next_sample_ms[FW_SENSORS_MAX];
	bool in_alarm[FW_SENSORS_MAX];
	uint32_t now_ms;	/* millis when last read: a smaller one means it wrapped */
	int64_t wall_offset_ms; /* wall = uptime + offset, once synced */
	bool wall_valid;
	fw_decoder dec;
} fw_device;

/* Boots the device: counts the boot in nv, keeps the ring on a warm boot if
 * it is intact (else starts empty after the last reserved sequence), and
 * sends a hello on the first poll. cfg and hal are copied. Returns false
 * for a config it cannot run (device id 0, no sensor, a bad kind or
 * window, too many sensors). */
bool fw_device_boot(fw_device *d, const fw_config *cfg, const fw_hal *hal, bool warm);

/* Does what is due: reads the link (if hal.read), samples sensors whose
 * time has come, writes hellos, records and resends. Call it often. */
void fw_device_poll(fw_device *d);

/* Hands in a frame the host decoded from a shared line: ACK and TIME for
 * this device or for every device (device 0); others are ignored. */
void fw_device_on_frame(fw_device *d, const fw_frame *f);

/* Records held, not yet acknowledged. */
static inline uint32_t fw_device_pending(const fw_device *d)
{
	return d->count;
}

#endif
