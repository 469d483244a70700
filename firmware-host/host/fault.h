/* fault.h - the faults firmware-host injects (--fault SPEC).
 *
 * On the link, per outgoing frame: corrupt (flip one bit, never the final
 * delimiter), truncate (cut the frame short and end it with 0x00), garbage
 * (1..40 random nonzero bytes and a 0x00 before the frame). On the device,
 * per device per second: reset (a warm reboot) and burst (every sensor read
 * 20 times at once); fleet.c rolls those.
 */
#ifndef FAULT_H
#define FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim.h"

enum fault_kind {
	FAULT_CORRUPT,
	FAULT_TRUNCATE,
	FAULT_GARBAGE,
	FAULT_RESET,
	FAULT_BURST,
	FAULT_KINDS_
};

#define FAULT_GARBAGE_MAX 40u
/* The most fault_mangle writes for a frame of n bytes. */
#define FAULT_OUT_MAX(n) ((n) + FAULT_GARBAGE_MAX + 1u)

struct fault_cfg {
	double p[FAULT_KINDS_]; /* probability of each kind, 0..1 */
};

/* "corrupt", ... (stable: summary keys are "injected_" and this). */
const char *fault_name(enum fault_kind k);

/* Parses "kind=P,kind=P" into *out (kinds not named stay 0). On error
 * returns false and says which item is wrong in err. */
bool fault_parse(const char *spec, struct fault_cfg *out, char *err, size_t errlen);

/* Copies the encoded frame p[0..n) (its last byte the 0x00 delimiter) to out
 * with the link faults the dice choose, adds each injected one to
 * counts[kind], and returns the bytes written. cap >= FAULT_OUT_MAX(n). */
size_t fault_mangle(const struct fault_cfg *c, struct sim_rng *r, const uint8_t *p, size_t n,
		    uint8_t *out, size_t cap, uint32_t counts[FAULT_KINDS_]);

#endif
