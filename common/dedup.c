#include "dedup.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct key {
	uint64_t a, b; /* b == 0 marks an empty slot (b is forced non-zero) */
} key;

struct es_dedup {
	size_t capacity;
	key *ring;	/* insertion order, capacity entries */
	size_t head, n; /* oldest entry, count */
	key *table;	/* open addressing, linear probing */
	size_t mask;
};

/* FNV-1a, then a finaliser (splitmix64) so nearby ids spread. */
static uint64_t hash(const char *s, uint64_t seed)
{
	uint64_t h = 1469598103934665603u ^ seed;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211u;
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9u;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebu;
	return h ^ (h >> 31);
}

static key make_key(const char *id)
{
	key k = {hash(id, 0), hash(id, 0x9e3779b97f4a7c15u)};
	if (k.b == 0)
		k.b = 1;
	return k;
}

es_err es_dedup_new(size_t capacity, es_dedup **out)
{
	if (!out || capacity == 0 || capacity > ((size_t)1 << 28))
		return ES_EINVAL;
	es_dedup *d = calloc(1, sizeof *d);
	size_t slots = 1;
	while (slots < capacity * 2)
		slots <<= 1;
	if (d) {
		d->capacity = capacity;
		d->mask = slots - 1;
		d->ring = malloc(capacity * sizeof *d->ring);
		d->table = calloc(slots, sizeof *d->table);
	}
	if (!d || !d->ring || !d->table) {
		es_dedup_free(d);
		return ES_ENOMEM;
	}
	*out = d;
	return ES_OK;
}

void es_dedup_free(es_dedup *d)
{
	if (!d)
		return;
	free(d->ring);
	free(d->table);
	free(d);
}

static size_t find(const es_dedup *d, key k)
{
	size_t i = (size_t)k.a & d->mask;
	while (d->table[i].b && (d->table[i].a != k.a || d->table[i].b != k.b))
		i = (i + 1) & d->mask;
	return i;
}

/* Removes the entry at slot i, shifting later entries of its run back so
 * every lookup still finds them (deletion without tombstones). */
static void erase(es_dedup *d, size_t i)
{
	size_t j = i;
	for (;;) {
		d->table[i].b = 0;
		do {
			j = (j + 1) & d->mask;
			if (!d->table[j].b)
				return;
			size_t home = (size_t)d->table[j].a & d->mask;
			/* move j back to i unless its home lies cyclically in (i, j] */
			bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
			if (!stays)
				break;
		} while (1);
		d->table[i] = d->table[j];
		i = j;
	}
}

bool es_dedup_seen(es_dedup *d, const char *id)
{
	key k = make_key(id);
	size_t i = find(d, k);
	if (d->table[i].b)
		return true;
	if (d->n == d->capacity) {
		erase(d, find(d, d->ring[d->head]));
		d->head = (d->head + 1) % d->capacity;
		d->n--;
		i = find(d, k); /* the erase may have moved things */
	}
	d->table[i] = k;
	d->ring[(d->head + d->n) % d->capacity] = k;
	d->n++;
	return false;
}

size_t es_dedup_size(const es_dedup *d)
{
	return d->n;
}
