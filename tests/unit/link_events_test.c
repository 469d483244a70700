/* link_events_test.c - what the agent journals for a device's frames: the
 * CloudEvent of a record (reading, alarm raised or cleared) and of a hello
 * (registered or seen), read back from the encoded event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "links_int.h"

#define LINK "serial:/dev/ttyS0"

/* The event's type into type, and its data (the caller frees the root,
 * returned in *root). */
static cJSON *decoded(es_event *ev, char *type, size_t cap, cJSON **root)
{
	char *json;
	size_t len;
	assert_non_null(ev);
	assert_int_equal(es_event_encode(ev, 0, &json, &len), ES_OK);
	*root = cJSON_ParseWithLength(json, len);
	free(json);
	assert_non_null(*root);
	snprintf(type, cap, "%s", es_event_type(ev));
	es_event_free(ev);
	cJSON *data = cJSON_GetObjectItemCaseSensitive(*root, "data");
	assert_true(cJSON_IsObject(data));
	return data;
}

static cJSON *field(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const char *str(const cJSON *o, const char *name)
{
	const char *s = cJSON_GetStringValue(field(o, name));
	assert_non_null(s);
	return s;
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *v = field(o, name);
	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static void reading(void **state)
{
	fw_record r = {.uptime_ms = 1234, .kind = FW_KIND_TEMPERATURE, .value = -21500};
	char type[32];
	cJSON *root, *d = decoded(link_record_event(42, LINK, 7, &r), type, sizeof type, &root);
	assert_string_equal(type, "sensor.reading");
	assert_string_equal(str(root, "subject"), "dev-0000002a");
	assert_string_equal(str(d, "device"), "dev-0000002a");
	assert_string_equal(str(d, "link"), LINK);
	assert_int_equal(num(d, "seq"), 7);
	assert_string_equal(str(d, "kind"), "temperature");
	assert_true(num(d, "value") == -21.5); /* milli-units to units */
	assert_string_equal(str(d, "unit"), "°C");
	assert_true(cJSON_IsFalse(field(d, "alarm")));
	assert_int_equal(num(d, "uptime_ms"), 1234);
	assert_null(field(d, "device_time")); /* no time sync yet */
	assert_null(field(d, "open"));
	cJSON_Delete(root);
}

static void door_and_device_time(void **state)
{
	fw_record r = {.kind = FW_KIND_DOOR, .value = 1, .flags = FW_REC_WALL};
	char type[32];
	r.wall_ms = UINT64_C(1767225600123); /* 2026-01-01 */
	cJSON *root, *d = decoded(link_record_event(1, LINK, 1, &r), type, sizeof type, &root);
	assert_string_equal(type, "sensor.reading");
	assert_true(cJSON_IsTrue(field(d, "open")));
	assert_null(field(d, "value"));
	assert_null(field(d, "unit"));
	assert_string_equal(str(d, "device_time"), "2026-01-01T00:00:00.123Z");
	cJSON_Delete(root);
	r.value = 0;
	d = decoded(link_record_event(1, LINK, 2, &r), type, sizeof type, &root);
	assert_true(cJSON_IsFalse(field(d, "open")));
	cJSON_Delete(root);
}

/* The alarm edge makes the type; the alarm flag the "alarm" field. */
static void alarms(void **state)
{
	static const struct {
		uint8_t flags;
		const char *type;
		bool alarm;
	} cases[] = {
		{FW_REC_ALARM | FW_REC_ALARM_EDGE, "alarm.raised", true},
		{FW_REC_ALARM_EDGE, "alarm.cleared", false},
		{FW_REC_ALARM, "sensor.reading", true},
		{0, "sensor.reading", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		fw_record r = {.kind = FW_KIND_VIBRATION, .value = 2500, .flags = cases[i].flags};
		char type[32];
		cJSON *root,
			*d = decoded(link_record_event(9, LINK, 3, &r), type, sizeof type, &root);
		assert_string_equal(type, cases[i].type);
		assert_int_equal(cJSON_IsTrue(field(d, "alarm")), cases[i].alarm);
		assert_string_equal(str(d, "unit"), "g");
		assert_true(num(d, "value") == 2.5);
		cJSON_Delete(root);
	}
}

static void hellos(void **state)
{
	fw_hello h = {.boot = 3,
		      .uptime_ms = 50,
		      .next_seq = 10,
		      .fw_major = 1,
		      .fw_minor = 4,
		      .kinds = 1u << (FW_KIND_TEMPERATURE - 1) | 1u << (FW_KIND_DOOR - 1)};
	char type[32];
	cJSON *root, *d = decoded(link_hello_event(0xdeadbeef, LINK, &h,
						   &(dev_hello){.registered = true, .news = true}),
				  type, sizeof type, &root);
	assert_string_equal(type, "device.registered");
	assert_string_equal(str(root, "subject"), "dev-deadbeef");
	assert_string_equal(str(d, "firmware"), "1.4");
	assert_int_equal(num(d, "boot"), 3);
	assert_int_equal(num(d, "uptime_ms"), 50);
	cJSON *sensors = field(d, "sensors");
	assert_int_equal(cJSON_GetArraySize(sensors), 2);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(sensors, 0)), "temperature");
	assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(sensors, 1)), "door");
	assert_null(field(d, "records_lost"));
	assert_null(field(d, "sequence_restarted"));
	cJSON_Delete(root);
	h.kinds = 0;
	d = decoded(link_hello_event(5, LINK, &h, &(dev_hello){.lost = 17, .news = true}), type,
		    sizeof type, &root);
	assert_string_equal(type, "device.seen");
	assert_int_equal(num(d, "records_lost"), 17);
	assert_int_equal(cJSON_GetArraySize(field(d, "sensors")), 0);
	assert_null(field(d, "sequence_restarted"));
	cJSON_Delete(root);
	d = decoded(link_hello_event(5, LINK, &h, &(dev_hello){.restarted = true, .news = true}),
		    type, sizeof type, &root);
	assert_string_equal(type, "device.seen");
	assert_true(cJSON_IsTrue(field(d, "sequence_restarted")));
	assert_null(field(d, "records_lost"));
	cJSON_Delete(root);
}

/* From 2000 to a day past the gateway's clock: a wall time of 2^64 - 1
 * would read as the year 9999. */
static void device_times(void **state)
{
	const uint64_t now = 1795752306566ull; /* 2026-11-27 */
	assert_true(link_time_plausible(now, now));
	assert_true(link_time_plausible(946684800000ull, now));
	assert_true(link_time_plausible(now + 86400000ull, now));
	assert_false(link_time_plausible(now + 86400001ull, now));
	assert_false(link_time_plausible(946684799999ull, now));
	assert_false(link_time_plausible(0, now));
	assert_false(link_time_plausible(UINT64_MAX, now));
	assert_false(link_time_plausible(UINT64_MAX - 86400000ull, now));
}

static void subjects(void **state)
{
	char s[16];
	link_subject(0xdeadbeef, s, sizeof s);
	assert_string_equal(s, "dev-deadbeef");
	link_subject(1, s, sizeof s);
	assert_string_equal(s, "dev-00000001");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reading),  cmocka_unit_test(door_and_device_time),
		cmocka_unit_test(alarms),   cmocka_unit_test(hellos),
		cmocka_unit_test(subjects), cmocka_unit_test(device_times),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
