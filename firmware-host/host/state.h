/* state.h - the devices' persistent counters (hal.nv_*) in a file, for
 * --state FILE, so boot counts and reserved sequences survive a restart of
 * firmware-host as flash survives a power cycle.
 *
 * The file is text, one line per device: "ID BOOT SEQ". It is rewritten
 * whole (a temporary file renamed over it) and not fsync'ed: it survives a
 * killed process, not a host crash. Devices outside the fleet's id range are
 * not kept.
 */
#ifndef STATE_H
#define STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_SLOTS 2u /* fw_nv_slot: FW_NV_BOOT, FW_NV_SEQ */

struct state_nv {
	uint32_t v[STATE_SLOTS];
};

/* Reads path into nv[0..n) for ids first_id..first_id+n-1 (others are left
 * as they are). A missing file is not an error. On error (unreadable, a bad
 * line) returns false and says what and where in err. */
bool state_load(const char *path, uint32_t first_id, uint32_t n, struct state_nv *nv, char *err,
		size_t errlen);

/* Writes nv[0..n) to path atomically; false with a message on error. */
bool state_save(const char *path, uint32_t first_id, uint32_t n, const struct state_nv *nv,
		char *err, size_t errlen);

#endif
