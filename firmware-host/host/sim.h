/* sim.h - simulated sensors for firmware-host: a small PRNG and, per device,
 * temperature, humidity, vibration and a door switch with noise, slow drift
 * and occasional excursions beyond the alarm thresholds.
 *
 * Deterministic: the same seed, device id and sensor periods give the same
 * readings in the same order. Excursions are scheduled per reading from the
 * sensor's nominal period (not the wall clock), so about SIM_EXCURSION_GAP_MS
 * of simulated time passes between two excursions of one sensor whatever the
 * rate, and each lasts 3 to 15 s.
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "device.h"

#define SIM_EXCURSION_GAP_MS 90000u /* mean time between excursions, per sensor */

/* splitmix64: tiny, fast, good enough for noise and fault dice. */
struct sim_rng {
	uint64_t s;
};

void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, n); n > 0. */
uint32_t sim_rng_below(struct sim_rng *r, uint32_t n);
/* Uniform in [0, 1). */
double sim_rng_unit(struct sim_rng *r);
/* True with probability p (p <= 0: never, without drawing). */
bool sim_rng_chance(struct sim_rng *r, double p);

struct sim_sensor {
	double base;	      /* the device's own resting value */
	double drift;	      /* a slow random walk around base */
	uint32_t excursion;   /* readings left in the current excursion */
	int32_t excursion_to; /* the value the excursion holds (door: 1) */
};

struct sim {
	struct sim_rng rng;
	struct sim_sensor s[FW_SENSORS_MAX];
};

/* Fills cfg's sensors (one of each kind) so that together they make `rate`
 * readings per second, with their alarm thresholds. Returns false if the
 * rate is out of (0, 1000] or makes a period longer than a day. */
bool sim_config(fw_config *cfg, double rate);

/* Seeds s for device `id` and draws each sensor's resting value. */
void sim_init(struct sim *s, uint64_t seed, uint32_t id, const fw_config *cfg);

/* One reading of sensor `index` (of kind `kind`, period `period_ms`) into
 * *value; false for an index or kind it does not simulate. */
bool sim_sample(struct sim *s, const fw_sensor_cfg *sc, uint8_t index, int32_t *value);

#endif
