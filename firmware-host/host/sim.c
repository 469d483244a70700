/* sim.c - simulated sensors; see sim.h. */
#include "sim.h"

#include <math.h>
#include <stddef.h>

/* How one kind behaves: resting value and its spread across devices, noise
 * per reading, how far drift may wander, the alarm band, and the physical
 * range readings are clamped to. Units as in link.h (milli-units). */
struct model {
	uint8_t kind;
	double base, spread, noise, drift_max;
	int32_t alarm_low, alarm_high;
	int32_t min, max;
	bool low_excursions;
};

static const struct model models[] = {
	{FW_KIND_TEMPERATURE, 21000, 3000, 120, 4000, 5000, 35000, -40000, 85000, true},
	{FW_KIND_HUMIDITY, 45000, 6000, 400, 8000, 20000, 80000, 0, 100000, true},
	{FW_KIND_VIBRATION, 30, 10, 6, 15, 0, 500, 0, 16000, false},
	{FW_KIND_DOOR, 0, 0, 0, 0, 0, 0, 0, 1, false},
};

#define NMODELS (sizeof models / sizeof models[0])

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
	r->s = seed;
}

uint64_t sim_rng_next(struct sim_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

uint32_t sim_rng_below(struct sim_rng *r, uint32_t n)
{
	return (uint32_t)(((sim_rng_next(r) >> 32) * n) >> 32);
}

double sim_rng_unit(struct sim_rng *r)
{
	return (double)(sim_rng_next(r) >> 11) * 0x1p-53;
}

bool sim_rng_chance(struct sim_rng *r, double p)
{
	return p > 0 && sim_rng_unit(r) < p;
}

/* Roughly normal, mean 0, standard deviation 1 (Irwin-Hall of 4). */
static double gauss(struct sim_rng *r)
{
	double sum = 0;

	for (int i = 0; i < 4; i++)
		sum += sim_rng_unit(r);
	return (sum - 2.0) * 1.7320508;
}

static const struct model *model_of(uint8_t kind)
{
	for (size_t i = 0; i < NMODELS; i++)
		if (models[i].kind == kind)
			return &models[i];
	return NULL;
}

bool sim_config(fw_config *cfg, double rate)
{
	/* Every sensor gets the same period, so the device makes `rate`
	 * readings per second in all. */
	double period = 1000.0 * NMODELS / rate;

	if (!(rate > 0 && rate <= 1000) || period > 86400000.0)
		return false;
	for (size_t i = 0; i < NMODELS; i++) {
		cfg->sensors[i].kind = models[i].kind;
		cfg->sensors[i].period_ms = (uint32_t)lround(period);
		cfg->sensors[i].alarm_low = models[i].alarm_low;
		cfg->sensors[i].alarm_high = models[i].alarm_high;
	}
	cfg->nsensors = (uint8_t)NMODELS;
	return true;
}

void sim_init(struct sim *s, uint64_t seed, uint32_t id, const fw_config *cfg)
{
	struct sim_rng mix;

	/* Mix the id in so neighbouring devices get unrelated streams. */
	sim_rng_seed(&mix, seed ^ ((uint64_t)id * 0xd1b54a32d192ed03u));
	sim_rng_seed(&s->rng, sim_rng_next(&mix));
	for (uint8_t i = 0; i < cfg->nsensors && i < FW_SENSORS_MAX; i++) {
		const struct model *m = model_of(cfg->sensors[i].kind);
		struct sim_sensor *ss = &s->s[i];

		ss->base = m ? m->base + m->spread * (2 * sim_rng_unit(&s->rng) - 1) : 0;
		ss->drift = 0;
		ss->excursion = 0;
		ss->excursion_to = 0;
	}
}

/* Maybe starts an excursion: its length in readings, and where it goes
 * (a little beyond one of the alarm thresholds). */
static void maybe_excursion(struct sim *s, struct sim_sensor *ss, const struct model *m,
			    uint32_t period_ms)
{
	double p = (double)period_ms / SIM_EXCURSION_GAP_MS;
	uint32_t len_ms, beyond;

	if (ss->excursion > 0 || !sim_rng_chance(&s->rng, p))
		return;
	len_ms = 3000 + sim_rng_below(&s->rng, 12000);
	ss->excursion = len_ms / period_ms + 1;
	/* Far enough beyond the threshold that noise rarely pulls it back. */
	beyond = (uint32_t)(4 * m->noise) + 1 +
		 sim_rng_below(&s->rng, (uint32_t)(m->alarm_high - m->alarm_low) / 4 + 1);
	if (m->kind == FW_KIND_DOOR)
		ss->excursion_to = 1;
	else if (m->low_excursions && sim_rng_below(&s->rng, 2) == 0)
		ss->excursion_to = m->alarm_low - (int32_t)beyond;
	else
		ss->excursion_to = m->alarm_high + (int32_t)beyond;
}

static int32_t clamp(double v, const struct model *m)
{
	if (v < m->min)
		return m->min;
	if (v > m->max)
		return m->max;
	return (int32_t)lround(v);
}

bool sim_sample(struct sim *s, const fw_sensor_cfg *sc, uint8_t index, int32_t *value)
{
	const struct model *m = model_of(sc->kind);
	struct sim_sensor *ss;
	double v;

	if (!m || index >= FW_SENSORS_MAX)
		return false;
	ss = &s->s[index];
	maybe_excursion(s, ss, m, sc->period_ms);
	/* The drift is a random walk pulled back towards zero, so it wanders
	 * within about drift_max over minutes, not readings. */
	ss->drift += m->drift_max * (0.02 * gauss(&s->rng) - 0.01 * ss->drift / (m->drift_max + 1));
	v = ss->base + ss->drift + m->noise * gauss(&s->rng);
	if (ss->excursion > 0) {
		ss->excursion--;
		v = ss->excursion_to + m->noise * gauss(&s->rng);
	}
	*value = m->kind == FW_KIND_DOOR ? v >= 0.5 : clamp(v, m);
	return true;
}
