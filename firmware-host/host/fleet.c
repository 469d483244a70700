/* fleet.c - the simulated devices and their host HAL; see fleet.h. */
#include "fleet.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "state.h"

#define BURST_READS 20u
/* Far enough ahead that a stopped sensor is never due (about 24 days). */
#define NEVER_MS 0x7ff00000u

struct unit {
	fw_device dev;
	fw_config cfg; /* kept here: fw_device_boot copies from it */
	fw_hal hal;
	struct sim sim;
	struct fleet *fleet;
	struct state_nv *nv;
	uint64_t base_ms; /* millis = now - base */
	fw_stats carried; /* stats from before resets, if boot clears them */
	uint32_t logged;  /* --records: the next sequence to write out */
	bool stopped;	  /* count reached: samples no more */
};

struct fleet {
	fleet_cfg cfg;
	struct unit *units;
	struct state_nv *nv;
	linkio *link;
	fw_decoder dec;
	struct sim_rng dice; /* faults; apart from the sensors' streams */
	uint64_t now, next_second;
	uint32_t injected[FAULT_KINDS_];
	bool nv_dirty;
};

/* ---- the HAL -------------------------------------------------------- */

static uint32_t unit_millis(const struct unit *u)
{
	return (uint32_t)(u->fleet->now - u->base_ms);
}

static uint32_t hal_millis(void *ctx)
{
	return unit_millis(ctx);
}

static uint64_t unit_sampled(const struct unit *u)
{
	return (uint64_t)u->carried.sampled + u->dev.stats.sampled;
}

static bool hal_sample(void *ctx, uint8_t index, uint8_t kind, int32_t *value)
{
	struct unit *u = ctx;

	/* Several sensors may fall due in one poll; the count is exact. */
	if (u->stopped || (u->fleet->cfg.count && unit_sampled(u) >= u->fleet->cfg.count))
		return false;
	if (index >= u->cfg.nsensors || u->cfg.sensors[index].kind != kind)
		return false;
	return sim_sample(&u->sim, &u->cfg.sensors[index], index, value);
}

static bool hal_write(void *ctx, const uint8_t *p, size_t n)
{
	struct unit *u = ctx;
	struct fleet *f = u->fleet;
	uint8_t buf[FAULT_OUT_MAX(FW_WIRE_MAX)];
	uint32_t counts[FAULT_KINDS_] = {0};
	size_t m;

	if (!f->link || !linkio_up(f->link) || n == 0 || n > FW_WIRE_MAX)
		return false;
	m = fault_mangle(&f->cfg.faults, &f->dice, p, n, buf, sizeof buf, counts);
	if (!linkio_send(f->link, buf, m))
		return false;
	for (int k = 0; k < (int)FAULT_KINDS_; k++)
		f->injected[k] += counts[k];
	return true;
}

static uint32_t hal_nv_load(void *ctx, uint8_t slot)
{
	const struct unit *u = ctx;

	return slot < STATE_SLOTS ? u->nv->v[slot] : 0;
}

static void hal_nv_store(void *ctx, uint8_t slot, uint32_t value)
{
	struct unit *u = ctx;

	if (slot < STATE_SLOTS && u->nv->v[slot] != value) {
		u->nv->v[slot] = value;
		u->fleet->nv_dirty = true;
	}
}

/* ---- one device ------------------------------------------------------ */

static void stop_sensors(struct unit *u)
{
	uint32_t now = unit_millis(u);

	for (uint8_t i = 0; i < u->cfg.nsensors; i++)
		u->dev.next_sample_ms[i] = now + NEVER_MS;
}

/* With --count: once the device has made its records, it samples no more. */
/* --records: every record the core made since the last look, as a JSON
 * line (what tests compare the gateway's events with). A new record is in
 * the ring until acknowledged, and no ACK is read between its sampling and
 * this look, so none is missed. */
static void log_records(struct unit *u)
{
	FILE *out = u->fleet->cfg.records;
	const fw_device *d = &u->dev;
	if (!out)
		return;
	if (u->logged == 0) /* sequences start at 1: the first look */
		u->logged = d->first_seq;
	for (; (int32_t)(u->logged - d->next_seq) < 0; u->logged++) {
		const struct fw_slot *s = &d->ring[u->logged % FW_RING];
		if (s->seq != u->logged)
			continue;
		fprintf(out,
			"{\"device\":%u,\"seq\":%u,\"kind\":%u,\"value\":%d,\"flags\":%u,"
			"\"uptime_ms\":%u}\n",
			d->cfg.device_id, s->seq, s->rec.kind, s->rec.value,
			s->rec.flags & (FW_REC_ALARM | FW_REC_ALARM_EDGE | FW_REC_WALL),
			s->rec.uptime_ms);
	}
}

static void check_count(struct unit *u)
{
	uint32_t count = u->fleet->cfg.count;

	if (count && !u->stopped && unit_sampled(u) >= count)
		u->stopped = true;
	if (u->stopped)
		stop_sensors(u);
}

static void add_stats(fw_stats *to, const fw_stats *a, const fw_stats *b)
{
	to->sampled += a->sampled - b->sampled;
	to->dropped_full += a->dropped_full - b->dropped_full;
	to->sent += a->sent - b->sent;
	to->resent += a->resent - b->resent;
	to->acked += a->acked - b->acked;
	to->hellos += a->hellos - b->hellos;
	to->time_syncs += a->time_syncs - b->time_syncs;
}

/* Spreads the sensors' first readings over their periods, so devices and
 * sensors do not all read at the same instant. The fault dice choose, so
 * the sensors' own streams stay as the seed made them. */
static void stagger(struct unit *u)
{
	uint32_t now = unit_millis(u);

	for (uint8_t i = 0; i < u->cfg.nsensors; i++)
		u->dev.next_sample_ms[i] =
			now + sim_rng_below(&u->fleet->dice, u->cfg.sensors[i].period_ms);
}

/* A warm reboot: uptime starts again from 0, the ring stays. Whatever the
 * core does with its stats on a boot, the totals keep counting. */
static void unit_reboot(struct unit *u, bool warm)
{
	fw_stats before = u->dev.stats;

	u->base_ms = u->fleet->now;
	(void)fw_device_boot(&u->dev, &u->cfg, &u->hal, warm);
	add_stats(&u->carried, &before, &u->dev.stats);
	stagger(u);
	log_records(u);
	check_count(u);
}

/* Every sensor read BURST_READS times at once, by making them all due. */
static void unit_burst(struct unit *u)
{
	for (unsigned r = 0; r < BURST_READS && !u->stopped; r++) {
		uint32_t now = unit_millis(u);

		for (uint8_t i = 0; i < u->cfg.nsensors; i++)
			u->dev.next_sample_ms[i] = now;
		fw_device_poll(&u->dev);
		log_records(u);
		check_count(u);
	}
}

/* Time until device time t (ms), ignoring what is already overdue after a
 * poll: that waits for the link (POLLOUT wakes us), not for the clock. */
static int64_t until(uint32_t t, uint32_t now)
{
	int32_t d = (int32_t)(t - now);

	return d > 0 ? d : INT64_MAX;
}

static int64_t unit_due(const struct unit *u)
{
	const fw_device *d = &u->dev;
	uint32_t now = unit_millis(u);
	int64_t due = INT64_MAX, t;

	for (uint8_t i = 0; i < u->cfg.nsensors && !u->stopped; i++) {
		/* A late sensor is polled at once: it never waits on the link. */
		int32_t late = (int32_t)(d->next_sample_ms[i] - now);

		t = late > 0 ? late : 1;
		due = t < due ? t : due;
	}
	if (!d->greeted && (t = until(d->hello_ms + FW_HELLO_MS, now)) < due)
		due = t;
	if (d->count > 0 && (t = until(d->progress_ms + d->cfg.resend_ms, now)) < due)
		due = t;
	return due;
}

static void unit_init(fleet *f, struct unit *u, uint32_t i)
{
	const fleet_cfg *c = &f->cfg;

	u->fleet = f;
	u->nv = &f->nv[i];
	u->cfg.device_id = c->first_id + i;
	(void)sim_config(&u->cfg, c->rate);
	u->cfg.window = c->window;
	u->cfg.resend_ms = c->resend_ms;
	sim_init(&u->sim, c->seed, u->cfg.device_id, &u->cfg);
	u->hal = (fw_hal){.ctx = u,
			  .millis = hal_millis,
			  .sample = hal_sample,
			  .write = hal_write,
			  .nv_load = hal_nv_load,
			  .nv_store = hal_nv_store};
	/* Up for up to a day already, so uptimes differ (the dice are the
	 * sensor's own stream, so this is deterministic too). */
	u->base_ms = f->now - sim_rng_below(&u->sim.rng, 86400000u);
}

/* ---- the link in -------------------------------------------------------- */

static void on_frame(void *ctx, const fw_frame *fr)
{
	fleet *f = ctx;

	if (fr->device == 0) {
		for (uint32_t i = 0; i < f->cfg.devices; i++)
			fw_device_on_frame(&f->units[i].dev, fr);
	} else if (fr->device >= f->cfg.first_id && fr->device - f->cfg.first_id < f->cfg.devices) {
		fw_device_on_frame(&f->units[fr->device - f->cfg.first_id].dev, fr);
	}
}

void fleet_rx(void *ctx, const uint8_t *p, size_t n)
{
	fleet *f = ctx;

	fw_decoder_feed(&f->dec, p, n, on_frame, NULL, f);
}

/* ---- the fleet ---------------------------------------------------------- */

fleet *fleet_new(const fleet_cfg *cfg, uint64_t now_ms, char *err, size_t errlen)
{
	fleet *f = calloc(1, sizeof *f);
	fw_config probe = {0};

	if (!f || !(f->units = calloc(cfg->devices, sizeof *f->units)) ||
	    !(f->nv = calloc(cfg->devices, sizeof *f->nv))) {
		snprintf(err, errlen, "out of memory for %u devices", (unsigned)cfg->devices);
		goto fail;
	}
	if (!sim_config(&probe, cfg->rate)) {
		snprintf(err, errlen, "rate %g: a sensor period would exceed a day", cfg->rate);
		goto fail;
	}
	f->cfg = *cfg;
	f->now = now_ms;
	f->next_second = now_ms + 1000;
	fw_decoder_init(&f->dec);
	sim_rng_seed(&f->dice, cfg->seed ^ 0x6a09e667f3bcc908u);
	if (cfg->state_path &&
	    !state_load(cfg->state_path, cfg->first_id, cfg->devices, f->nv, err, errlen))
		goto fail;
	for (uint32_t i = 0; i < cfg->devices; i++) {
		unit_init(f, &f->units[i], i);
		if (!fw_device_boot(&f->units[i].dev, &f->units[i].cfg, &f->units[i].hal, false)) {
			snprintf(err, errlen, "device %u: the core refused its config",
				 (unsigned)f->units[i].cfg.device_id);
			goto fail;
		}
		stagger(&f->units[i]);
	}
	f->nv_dirty = true;
	return f;
fail:
	fleet_free(f);
	return NULL;
}

void fleet_free(fleet *f)
{
	if (!f)
		return;
	free(f->units);
	free(f->nv);
	free(f);
}

void fleet_attach(fleet *f, linkio *link)
{
	f->link = link;
}

/* Once a second: each device may be reset or burst, as --fault says. */
static void second_faults(fleet *f)
{
	const double *p = f->cfg.faults.p;

	for (uint32_t i = 0; i < f->cfg.devices; i++) {
		struct unit *u = &f->units[i];

		if (sim_rng_chance(&f->dice, p[FAULT_RESET])) {
			f->injected[FAULT_RESET]++;
			unit_reboot(u, true);
		}
		if (!u->stopped && sim_rng_chance(&f->dice, p[FAULT_BURST])) {
			f->injected[FAULT_BURST]++;
			unit_burst(u);
		}
	}
}

bool fleet_step(fleet *f, uint64_t now_ms, char *err, size_t errlen)
{
	f->now = now_ms;
	if (now_ms >= f->next_second) {
		/* Late by more than a second (a stopped process): skip, not catch up. */
		f->next_second =
			now_ms - f->next_second >= 1000 ? now_ms + 1000 : f->next_second + 1000;
		second_faults(f);
	}
	for (uint32_t i = 0; i < f->cfg.devices; i++) {
		fw_device_poll(&f->units[i].dev);
		log_records(&f->units[i]);
		check_count(&f->units[i]);
	}
	if (f->nv_dirty && f->cfg.state_path) {
		if (!state_save(f->cfg.state_path, f->cfg.first_id, f->cfg.devices, f->nv, err,
				errlen))
			return false;
	}
	f->nv_dirty = false;
	return true;
}

int fleet_timeout_ms(const fleet *f, uint64_t now_ms)
{
	int64_t due = INT64_MAX;
	const double *p = f->cfg.faults.p;

	if (p[FAULT_RESET] > 0 || p[FAULT_BURST] > 0)
		due = f->next_second > now_ms ? (int64_t)(f->next_second - now_ms) : 0;
	for (uint32_t i = 0; i < f->cfg.devices; i++) {
		int64_t t = unit_due(&f->units[i]);

		due = t < due ? t : due;
	}
	return due == INT64_MAX ? -1 : due > INT_MAX ? INT_MAX : (int)due;
}

bool fleet_sampling_over(const fleet *f)
{
	if (!f->cfg.count)
		return false;
	for (uint32_t i = 0; i < f->cfg.devices; i++)
		if (!f->units[i].stopped)
			return false;
	return true;
}

bool fleet_done(const fleet *f)
{
	if (!fleet_sampling_over(f))
		return false;
	for (uint32_t i = 0; i < f->cfg.devices; i++)
		if (fw_device_pending(&f->units[i].dev) > 0)
			return false;
	return true;
}

void fleet_totals_get(const fleet *f, fleet_totals *t)
{
	memset(t, 0, sizeof *t);
	t->devices = f->cfg.devices;
	for (uint32_t i = 0; i < f->cfg.devices; i++) {
		const struct unit *u = &f->units[i];
		fw_stats s = u->carried;

		add_stats(&s, &u->dev.stats, &(fw_stats){0});
		t->sampled += s.sampled;
		t->sent += s.sent;
		t->resent += s.resent;
		t->acked += s.acked;
		t->dropped_full += s.dropped_full;
		t->hellos += s.hellos;
		t->time_syncs += s.time_syncs;
		t->pending += fw_device_pending(&u->dev);
	}
	t->frames_in = f->dec.frames;
	for (int k = 0; k < (int)FW_FAULT_COUNT_; k++)
		t->link_faults += f->dec.faults[k];
	t->reconnects = f->link ? linkio_reconnects(f->link) : 0;
	for (int k = 0; k < (int)FAULT_KINDS_; k++)
		t->injected[k] = f->injected[k];
}
