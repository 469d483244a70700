/* devices.c - the device table (see devices.h): an open-addressing hash by
 * device id, the receiver's verdicts, and the staged x.dev.<id> values. */
#include "devices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "log.h"

#define TAG "links"

struct devices {
	dev *devs; /* open addressing by id, cap a power of 2 */
	size_t n, cap, max;
	dev **staged; /* the devices the batch being built changed */
	size_t nstaged, capstaged;
	uint64_t refused, lost, restarts, implausible;
};

es_err devices_new(size_t max, devices **out)
{
	devices *t = calloc(1, sizeof *t);
	if (!t)
		return ES_ENOMEM;
	t->max = max;
	*out = t;
	return ES_OK;
}

void devices_free(devices *t)
{
	if (!t)
		return;
	free(t->devs);
	free(t->staged);
	free(t);
}

/* ---- the hash ------------------------------------------------------------ */

static size_t slot(const devices *t, uint32_t id)
{
	size_t mask = t->cap - 1, i = (size_t)(id * 2654435761u) & mask;
	while (t->devs[i].id && t->devs[i].id != id)
		i = (i + 1) & mask;
	return i;
}

dev *devices_find(devices *t, uint32_t id)
{
	if (!t->cap)
		return NULL;
	dev *d = &t->devs[slot(t, id)];
	return d->id ? d : NULL;
}

static bool grow(devices *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64, oldcap = t->cap;
	dev *old = t->devs, *grown = calloc(cap, sizeof *grown);
	if (!grown)
		return false;
	t->devs = grown;
	t->cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].id)
			t->devs[slot(t, old[i].id)] = old[i];
	free(old);
	return true;
}

/* A slot for a new device (the caller fills it), or NULL when out of
 * memory. The staged list points at devices: the table grows only while
 * nothing is staged. */
static dev *insert(devices *t, uint32_t id)
{
	if ((t->n + 1) * 2 > t->cap && (t->nstaged || !grow(t)))
		return NULL;
	t->n++;
	return &t->devs[slot(t, id)];
}

/* ---- loading ------------------------------------------------------------- */

struct load {
	devices *t;
	bool oom;
};

static int load_one(void *ctx, const char *key, const void *value, size_t len)
{
	struct load *ld = ctx;
	char text[80], *end;
	unsigned boot, last;
	unsigned long long records;
	snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text ? len : sizeof text - 1),
		 (const char *)value);
	unsigned long id = strtoul(key + strlen(DEVICES_KEY_PREFIX), &end, 10);
	if (*end || id == 0 || id > UINT32_MAX ||
	    sscanf(text, "%u %u %llu", &boot, &last, &records) != 3) {
		es_warn(TAG, "journal key %s: '%s' is not a device's state; ignored", key, text);
		return 0;
	}
	dev *d = insert(ld->t, (uint32_t)id);
	if (!d) {
		ld->oom = true;
		return 1;
	}
	*d = (dev){.id = (uint32_t)id,
		   .boot = boot,
		   .last = last,
		   .expected = last + 1,
		   .known = true,
		   .greeted = true,
		   .records = records};
	return 0;
}

es_err devices_load(devices *t, es_journal *j)
{
	es_journal_reader *r = NULL;
	struct load ld = {t, false};
	es_err err = es_journal_reader_new(j, &r);
	if (!err)
		err = es_journal_scan(r, DEVICES_KEY_PREFIX, load_one, &ld);
	es_journal_reader_free(r);
	if (!err && ld.oom)
		err = ES_ENOMEM;
	if (err)
		es_error(TAG, "cannot read the devices' state from the journal: %s",
			 es_strerror(err));
	else if (t->n)
		es_info(TAG, "%zu devices known from the journal", t->n);
	return err;
}

/* ---- verdicts ------------------------------------------------------------ */

static bool seq_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static bool stage(devices *t, dev *d)
{
	if (d->dirty)
		return true;
	dev **grown = es_grow(t->staged, &t->capstaged, t->nstaged + 1, sizeof *grown, 64);
	if (!grown)
		return false;
	t->staged = grown;
	d->dirty = true;
	t->staged[t->nstaged++] = d;
	return true;
}

/* A device in step sends from its oldest held record (at most DEVICES_HELD
 * below the expected one, as it held what was taken) to at most
 * DEVICES_HELD - 1 past it: anything else is out of step. */
dev_verdict devices_record(devices *t, uint32_t id, uint32_t seq, dev **out)
{
	dev *d = devices_find(t, id);
	*out = d && d->greeted ? d : NULL;
	if (!*out)
		return DEV_UNKNOWN;
	int32_t diff = (int32_t)(seq - d->expected);
	if (diff >= (int32_t)DEVICES_HELD || diff < -(int32_t)DEVICES_HELD)
		return DEV_OUT_OF_STEP;
	if (diff < 0)
		return DEV_DUPLICATE;
	return diff == 0 ? DEV_TAKE : DEV_EARLY;
}

bool devices_take(devices *t, dev *d)
{
	if (!stage(t, d))
		return false;
	d->expected++;
	d->records++;
	d->odd_since_ms = 0; /* alive where the table expects it */
	return true;
}

/* A device not yet in the table, or NULL: the table is full (counted), or
 * out of memory. */
static dev *add(devices *t, uint32_t id)
{
	if (t->n >= t->max) {
		t->refused++;
		return NULL;
	}
	dev *d = insert(t, id);
	if (d)
		*d = (dev){.id = id};
	return d;
}

/* The gap past the expected record that a hello's boots can explain: each
 * boot since the one the table knows skips at most DEVICES_BOOT_SKIP (one
 * if the boot count did not move on), and never more than DEVICES_GAP_MAX. */
static uint32_t gap_allowed(const dev *d, uint32_t boot)
{
	uint64_t boots = boot > d->boot ? (uint64_t)(boot - d->boot) : 1;
	uint64_t gap = boots * DEVICES_BOOT_SKIP;
	return gap < DEVICES_GAP_MAX ? (uint32_t)gap : DEVICES_GAP_MAX;
}

/* An implausible hello is taken once the device has kept saying it (the
 * same boot and sequence) for DEVICES_INSIST_MS with no record taken from
 * it meanwhile: a device really there says hello every second until it is
 * answered, while a live device where the table expects it keeps a forged
 * hello from ever being taken. */
static bool insisted(dev *d, const dev_greeting *g)
{
	uint64_t now = g->now_ms ? g->now_ms : 1;
	if (!d->odd_since_ms || d->odd_seq != g->seq || d->odd_boot != g->boot) {
		d->odd_boot = g->boot;
		d->odd_seq = g->seq;
		d->odd_since_ms = now;
		return false;
	}
	return now - d->odd_since_ms >= DEVICES_INSIST_MS;
}

/* Where a known device's hello puts it: the same sequence, a gap (records
 * lost at the device), a sequence begun again, or refused. */
static void hello_known(devices *t, dev *d, const dev_greeting *g, dev_hello *h)
{
	uint32_t ahead = seq_before(d->expected, g->seq) ? g->seq - d->expected : 0;
	/* it never made the record expected next, or its boot count went back:
	 * another life, whose records are all new */
	bool again = seq_before(g->next_seq, d->expected) || g->boot < d->boot;
	if (ahead > gap_allowed(d, g->boot) && !insisted(d, g)) {
		h->refused = true;
		t->implausible++;
		return;
	}
	d->odd_since_ms = 0;
	if (again || ahead > gap_allowed(d, g->boot)) {
		h->restarted = true;
		t->restarts++;
	} else if (ahead) { /* a cold boot lost records the device never sent us */
		h->lost = ahead;
		t->lost += ahead;
	}
	if (h->restarted || h->lost) {
		d->expected = g->seq;
		d->last = g->seq - 1;
	}
}

dev *devices_hello(devices *t, uint32_t id, const dev_greeting *g, dev_hello *h)
{
	dev *d = devices_find(t, id);
	*h = (dev_hello){.registered = !d || !d->known};
	/* it cannot hold records past its next one, nor more than a ring */
	if (seq_before(g->next_seq, g->seq) || g->next_seq - g->seq > DEVICES_HELD) {
		h->refused = true;
		t->implausible++;
		return NULL;
	}
	if (!d && !(d = add(t, id)))
		return NULL;
	if (h->registered && (!d->greeted || seq_before(d->expected, g->seq))) {
		d->expected = g->seq; /* a new device starts where it is */
		d->last = g->seq - 1;
	} else if (!h->registered) {
		hello_known(t, d, g, h);
		if (h->refused)
			return NULL;
	}
	d->greeted = true;
	/* A registration already in this batch is not made twice. */
	h->news = (h->registered && !d->dirty) || g->boot != d->boot || h->lost || h->restarted;
	return d;
}

bool devices_stage_hello(devices *t, dev *d, uint32_t boot)
{
	if (!stage(t, d))
		return false;
	d->boot = boot;
	return true;
}

/* ---- the batch ----------------------------------------------------------- */

size_t devices_staged(const devices *t)
{
	return t->nstaged;
}

void devices_staged_kv(devices *t, es_journal_kv *kv)
{
	for (size_t i = 0; i < t->nstaged; i++) {
		dev *d = t->staged[i];
		snprintf(d->key, sizeof d->key, DEVICES_KEY_PREFIX "%u", d->id);
		snprintf(d->value, sizeof d->value, "%u %u %llu", d->boot, d->expected - 1,
			 (unsigned long long)d->records);
		kv[i] = (es_journal_kv){d->key, d->value, strlen(d->value)};
	}
}

void devices_done(devices *t, bool ok, void (*ack)(void *ctx, dev *d), void *ctx)
{
	for (size_t i = 0; i < t->nstaged; i++) {
		dev *d = t->staged[i];
		d->dirty = false;
		if (ok) {
			d->last = d->expected - 1;
			d->known = true;
			if (ack)
				ack(ctx, d);
		} else {
			d->expected = d->last + 1;
			d->greeted = d->known; /* an unjournaled hello must come again */
		}
	}
	t->nstaged = 0;
}

/* ---- the rest ------------------------------------------------------------ */

void devices_forget_conn(devices *t, const struct conn *conn)
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->devs[i].conn == conn)
			t->devs[i].conn = NULL;
}

void devices_seen(devices *t, uint32_t id, const char *link, uint64_t now_ms)
{
	dev *d = devices_find(t, id);
	if (!d)
		return;
	d->last_seen_ms = now_ms;
	snprintf(d->link, sizeof d->link, "%.95s", link);
}

void devices_counts_get(const devices *t, devices_counts *out)
{
	*out = (devices_counts){.devices = t->n,
				.refused = t->refused,
				.lost = t->lost,
				.restarts = t->restarts,
				.implausible = t->implausible};
}

size_t devices_list(const devices *t, const dev **out)
{
	size_t n = 0;
	for (size_t i = 0; i < t->cap; i++)
		if (t->devs[i].id)
			out[n++] = &t->devs[i];
	return n;
}
