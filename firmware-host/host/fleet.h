/* fleet.h - N simulated devices (fw_device each) sharing one link.
 *
 * Each device gets a host HAL: millis from the caller's monotonic clock
 * minus a per-device base (so uptimes differ; a reset starts it from 0),
 * sensors from sim.c, writes into the link's output buffer (through the
 * injected link faults), and nv counters in memory (and in --state FILE).
 * One decoder demultiplexes the incoming bytes to the device with the
 * frame's id, or to every device for id 0.
 *
 * Single-threaded: the caller's loop calls fleet_step, feeds incoming bytes
 * through fleet_rx, and sleeps at most fleet_timeout_ms.
 */
#ifndef FLEET_H
#define FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fault.h"
#include "linkio.h"

typedef struct fleet fleet;

typedef struct fleet_cfg {
	uint32_t devices;  /* 1.. */
	uint32_t first_id; /* ids first_id .. first_id + devices - 1 */
	double rate;	   /* readings per second per device */
	uint64_t seed;
	uint32_t count; /* 0, or readings per device after which it stops sampling */
	uint8_t window;
	uint32_t resend_ms;
	struct fault_cfg faults;
	const char *state_path; /* NULL: nv counters in memory only */
	FILE *records;		/* NULL, or every record made goes here as a JSON line */
} fleet_cfg;

typedef struct fleet_totals {
	uint64_t devices, sampled, sent, resent, acked, pending, dropped_full, hellos, time_syncs,
		frames_in, link_faults, reconnects;
	uint64_t injected[FAULT_KINDS_];
} fleet_totals;

/* Makes and boots the devices (cold boot), with now_ms the monotonic clock.
 * The link is attached later (fleet_attach) because it calls fleet_rx.
 * Returns NULL with a message in err for a bad config, an unreadable state
 * file, or no memory. */
fleet *fleet_new(const fleet_cfg *cfg, uint64_t now_ms, char *err, size_t errlen);
void fleet_free(fleet *f);
void fleet_attach(fleet *f, linkio *link);

/* Does what is due at now_ms: the per-second faults, then every device's
 * poll. Then writes the state file if a counter changed (before the caller
 * flushes the link, so no sequence leaves before it is reserved on disk);
 * false (with err) if that failed. */
bool fleet_step(fleet *f, uint64_t now_ms, char *err, size_t errlen);
/* linkio_rx_fn: bytes from the link, for the decoder. */
void fleet_rx(void *ctx, const uint8_t *p, size_t n);
/* Milliseconds until something is due (a reading, a hello, a resend, the
 * per-second faults), or -1 if nothing is. */
int fleet_timeout_ms(const fleet *f, uint64_t now_ms);

/* With count: every device has stopped sampling. */
bool fleet_sampling_over(const fleet *f);
/* With count: sampling is over and nothing is pending. */
bool fleet_done(const fleet *f);
void fleet_totals_get(const fleet *f, fleet_totals *t);

#endif
