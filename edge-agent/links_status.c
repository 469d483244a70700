/* links_status.c - what the device links tell the rest of the agent, from
 * any thread under l->lock: the totals for /metrics, the links for
 * /api/status, and the device list for /api/devices. */
#include <cJSON.h>
#include <stddef.h>
#include <stdlib.h>

#include "links_int.h"

static const char *const kind_names[] = {"serial", "listen", "client"};

/* ---- totals --------------------------------------------------------------- */

static void sum_stats(links_totals *t, const struct link_stats *s)
{
	t->frames += s->frames;
	t->records += s->records;
	t->duplicates += s->duplicates;
	t->early += s->early;
	t->unknown_device += s->unknown_device;
	t->bad_payload += s->bad_payload;
	t->wrong_direction += s->wrong_direction;
	t->acks_sent += s->acks;
	t->bytes_in += s->bytes_in;
	for (int k = 0; k < FW_FAULT_COUNT_; k++)
		t->faults[k] += s->faults[k];
}

void links_totals_get(links *l, links_totals *out)
{
	_Static_assert(FW_FAULT_COUNT_ <= 8, "links_totals.faults is too small");
	devices_counts dc;
	*out = (links_totals){.nfaults = FW_FAULT_COUNT_};
	for (int k = 0; k < FW_FAULT_COUNT_; k++)
		out->fault_names[k] = fw_fault_name((enum fw_fault)k);
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->nconns; i++) {
		const struct conn *c = l->conns[i];
		if (c->kind == C_CLIENT)
			continue; /* counted in its listener's */
		sum_stats(out, c->st);
		out->links++;
		out->links_open += c->fd >= 0;
	}
	devices_counts_get(l->devs, &dc);
	out->devices = dc.devices;
	out->devices_refused = dc.refused;
	out->records_lost_at_devices = dc.lost;
	out->journal_refused = l->journal_refused;
	pthread_mutex_unlock(&l->lock);
}

/* ---- GET /api/devices ----------------------------------------------------- */

static cJSON *device_json(const dev *d)
{
	char subject[16];
	cJSON *e = cJSON_CreateObject();
	link_subject(d->id, subject, sizeof subject);
	cJSON_AddStringToObject(e, "id", subject);
	cJSON_AddNumberToObject(e, "device", d->id);
	cJSON_AddNumberToObject(e, "boot", d->boot);
	cJSON_AddNumberToObject(e, "records", (double)d->records);
	cJSON_AddNumberToObject(e, "last_seq", d->last);
	cJSON_AddBoolToObject(e, "connected", d->conn != NULL);
	if (d->last_seen_ms) {
		cJSON_AddStringToObject(e, "link", d->link);
		cJSON_AddNumberToObject(e, "last_seen_ms", (double)d->last_seen_ms);
		link_add_time(e, "last_seen", d->last_seen_ms);
	}
	if (d->has_reading) {
		cJSON *r = cJSON_AddObjectToObject(e, "last_reading");
		cJSON_AddStringToObject(r, "kind", fw_kind_name(d->reading.kind));
		link_add_value(r, &d->reading);
		cJSON_AddBoolToObject(r, "alarm", (d->reading.flags & FW_REC_ALARM) != 0);
	}
	return e;
}

static int by_last_seen(const void *a, const void *b)
{
	const dev *x = *(const dev *const *)a, *y = *(const dev *const *)b;
	return x->last_seen_ms < y->last_seen_ms ? 1 : x->last_seen_ms > y->last_seen_ms ? -1 : 0;
}

char *links_devices_json(links *l)
{
	cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "devices");
	devices_counts dc;
	pthread_mutex_lock(&l->lock);
	devices_counts_get(l->devs, &dc);
	const dev **order = calloc(dc.devices ? dc.devices : 1, sizeof *order);
	size_t n = order ? devices_list(l->devs, order) : 0;
	if (order)
		qsort(order, n, sizeof *order, by_last_seen);
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(list, device_json(order[i]));
	pthread_mutex_unlock(&l->lock);
	free(order);
	char *text = order ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return text;
}

/* ---- the links for /api/status -------------------------------------------- */

static void add_counts(cJSON *o, const struct link_stats *s)
{
#define COUNT(field, name)                                                                         \
	{                                                                                          \
		name, offsetof(struct link_stats, field)                                           \
	}
	static const struct {
		const char *name;
		size_t off;
	} counts[] = {
		COUNT(opens, "opens"),
		COUNT(bytes_in, "bytes_in"),
		COUNT(frames, "frames"),
		COUNT(records, "records"),
		COUNT(duplicates, "duplicates"),
		COUNT(early, "early"),
		COUNT(unknown_device, "unknown_device"),
		COUNT(bad_payload, "bad_payload"),
		COUNT(wrong_direction, "wrong_direction"),
		COUNT(acks, "acks_sent"),
		COUNT(out_dropped, "out_dropped"),
		COUNT(clients_refused, "clients_refused"),
		COUNT(out_of_step, "out_of_step"),
		COUNT(hellos_implausible, "hellos_implausible"),
		COUNT(bad_time, "bad_time"),
	};
#undef COUNT
	cJSON *f = cJSON_CreateObject();
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		const uint64_t *v =
			(const uint64_t *)(const void *)((const char *)s + counts[i].off);
		cJSON_AddNumberToObject(o, counts[i].name, (double)*v);
	}
	for (int k = 0; k < FW_FAULT_COUNT_; k++)
		cJSON_AddNumberToObject(f, fw_fault_name((enum fw_fault)k), (double)s->faults[k]);
	cJSON_AddItemToObject(o, "faults", f);
}

static cJSON *link_json(const struct conn *c)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "name", c->name);
	cJSON_AddStringToObject(e, "kind", kind_names[c->kind]);
	cJSON_AddBoolToObject(e, "open", c->fd >= 0);
	if (c->kind == C_LISTENER)
		cJSON_AddNumberToObject(e, "clients", (double)c->clients);
	add_counts(e, c->st);
	return e;
}

char *links_status_json(links *l)
{
	cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "links");
	devices_counts dc;
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->nconns; i++)
		if (l->conns[i]->kind != C_CLIENT)
			cJSON_AddItemToArray(list, link_json(l->conns[i]));
	devices_counts_get(l->devs, &dc);
	cJSON_AddNumberToObject(o, "devices", (double)dc.devices);
	cJSON_AddNumberToObject(o, "devices_refused", (double)dc.refused);
	cJSON_AddNumberToObject(o, "records_lost_at_devices", (double)dc.lost);
	cJSON_AddNumberToObject(o, "sequence_restarts", (double)dc.restarts);
	cJSON_AddNumberToObject(o, "hellos_implausible", (double)dc.implausible);
	cJSON_AddNumberToObject(o, "journal_refused", (double)l->journal_refused);
	pthread_mutex_unlock(&l->lock);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}
