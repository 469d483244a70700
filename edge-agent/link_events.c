/* link_events.c - what a device sent, as a CloudEvent (docs/link-protocol.md
 * says which event each frame becomes, and its data). */
#include <cJSON.h>
#include <stdio.h>

#include "clock.h"
#include "links_int.h"
#include "log.h"

void link_subject(uint32_t device, char *buf, size_t cap)
{
	snprintf(buf, cap, "dev-%08x", device);
}

void link_add_value(cJSON *o, const fw_record *r)
{
	if (r->kind == FW_KIND_DOOR) {
		cJSON_AddBoolToObject(o, "open", r->value != 0);
		return;
	}
	cJSON_AddNumberToObject(o, "value", (double)r->value / 1000.0);
	cJSON_AddStringToObject(o, "unit", fw_kind_unit(r->kind));
}

void link_add_time(cJSON *o, const char *name, uint64_t ms)
{
	char buf[ES_TIME_STR];
	es_time_format(ms, buf);
	cJSON_AddStringToObject(o, name, buf);
}

/* The event of this type with data (consumed); NULL when out of memory
 * (logged). */
static es_event *make(const char *type, uint32_t device, cJSON *data)
{
	char subject[16], *json = cJSON_PrintUnformatted(data);
	es_event *ev = NULL;
	es_verr v;
	link_subject(device, subject, sizeof subject);
	if (!json || es_event_new(type, subject, json, &ev, &v) != ES_OK) {
		es_error(TAG, "cannot make a %s event for %s: %s", type, subject,
			 json ? v.reason : "out of memory");
		ev = NULL;
	}
	cJSON_free(json);
	cJSON_Delete(data);
	return ev;
}

/* The data every event of a device has: which device, on which link. */
static cJSON *data_of(uint32_t device, const char *link)
{
	char subject[16];
	cJSON *o = cJSON_CreateObject();
	link_subject(device, subject, sizeof subject);
	cJSON_AddStringToObject(o, "device", subject);
	cJSON_AddStringToObject(o, "link", link);
	return o;
}

static const char *record_type(const fw_record *r)
{
	if (r->flags & FW_REC_ALARM_EDGE)
		return r->flags & FW_REC_ALARM ? "alarm.raised" : "alarm.cleared";
	return "sensor.reading";
}

#define Y2000_MS 946684800000ull
#define DAY_MS	 86400000ull

bool link_time_plausible(uint64_t wall_ms, uint64_t now_ms)
{
	return wall_ms >= Y2000_MS && wall_ms - DAY_MS <= now_ms;
}

es_event *link_record_event(uint32_t device, const char *link, uint32_t seq, const fw_record *r)
{
	cJSON *o = data_of(device, link);
	cJSON_AddNumberToObject(o, "seq", seq);
	cJSON_AddStringToObject(o, "kind", fw_kind_name(r->kind));
	link_add_value(o, r);
	cJSON_AddBoolToObject(o, "alarm", (r->flags & FW_REC_ALARM) != 0);
	cJSON_AddNumberToObject(o, "uptime_ms", r->uptime_ms);
	if (r->flags & FW_REC_WALL)
		link_add_time(o, "device_time", r->wall_ms);
	return make(record_type(r), device, o);
}

es_event *link_hello_event(uint32_t device, const char *link, const fw_hello *h,
			   const dev_hello *what)
{
	cJSON *o = data_of(device, link), *kinds = cJSON_AddArrayToObject(o, "sensors");
	char fw[16];
	snprintf(fw, sizeof fw, "%u.%u", h->fw_major, h->fw_minor);
	cJSON_AddStringToObject(o, "firmware", fw);
	cJSON_AddNumberToObject(o, "boot", h->boot);
	cJSON_AddNumberToObject(o, "uptime_ms", h->uptime_ms);
	for (uint8_t k = 1; k <= FW_KIND_MAX_; k++)
		if (h->kinds & (1u << (k - 1)))
			cJSON_AddItemToArray(kinds, cJSON_CreateString(fw_kind_name(k)));
	if (what->lost)
		cJSON_AddNumberToObject(o, "records_lost", what->lost);
	if (what->restarted)
		cJSON_AddBoolToObject(o, "sequence_restarted", true);
	return make(what->registered ? "device.registered" : "device.seen", device, o);
}
