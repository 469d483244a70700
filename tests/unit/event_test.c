/* event_test.c - the CloudEvents envelope: decode, validate, stamp, encode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "event.h"

#define MAX_BYTES ES_EVENT_MAX_BYTES_DEFAULT
#define MAX_COUNT 100
#define T0	  1795773600123ull /* 2026-11-27T10:00:00.123Z */
#define ID0	  "0193a0b2-7c3e-7d21-9a4b-2f1e3d5c6b7a"

#define FULL_EVENT                                                                                 \
	"{\"specversion\":\"1.0\",\"id\":\"ev-1\",\"source\":\"/site-1/gw-7\","                    \
	"\"type\":\"sensor.reading\",\"subject\":\"dev-1\","                                       \
	"\"time\":\"2026-11-27T10:00:00.123Z\",\"datacontenttype\":\"application/json\","          \
	"\"data\":{\"t\":21.5},\"myext\":\"x\",\"num\":5,\"flag\":true}"
#define SHORT_EVENT "{\"type\":\"sensor.reading\",\"subject\":\"dev-1\",\"data\":{\"t\":1}}"

static es_event **const BAD_EVS = (es_event **)(uintptr_t)0x1234;
static es_event *const BAD_EV = (es_event *)(uintptr_t)0x5678;

/* ---- helpers ---- */

/* Decodes body as ingest input; asserts success and one-event-ness is the
 * caller's business. */
static es_err decode_input(const char *body, size_t max_bytes, size_t max_count, es_event ***evs,
			   size_t *n, es_verr *verr)
{
	return es_event_decode_input(body, strlen(body), max_bytes, max_count, evs, n, verr);
}

/* Decodes body expecting one valid event. */
static es_event *decode_one(const char *body)
{
	es_event **evs = NULL;
	size_t n = 0;
	es_verr v;
	es_err err = decode_input(body, MAX_BYTES, MAX_COUNT, &evs, &n, &v);
	if (err)
		fail_msg("rejected %s: %s: %s", body, v.field, v.reason);
	assert_int_equal(n, 1);
	es_event *ev = evs[0];
	free(evs);
	return ev;
}

/* Asserts that body is rejected with err, field and a reason containing
 * reason_part, and that no out-parameter was written. */
static void expect_reject_sized(const char *body, size_t max_bytes, size_t max_count, es_err want,
				const char *field, const char *reason_part)
{
	es_event **evs = BAD_EVS;
	size_t n = 77;
	es_verr v;
	memset(&v, 0, sizeof v);
	es_err err = decode_input(body, max_bytes, max_count, &evs, &n, &v);
	if (err != want)
		fail_msg("%s: got error %d (%s: %s), want %d", body, err, v.field, v.reason, want);
	assert_ptr_equal(evs, BAD_EVS);
	assert_int_equal(n, 77);
	if (strcmp(v.field, field) != 0 || !strstr(v.reason, reason_part))
		fail_msg("%s: got %s: \"%s\", want %s: \"...%s...\"", body, v.field, v.reason,
			 field, reason_part);
}

static void expect_reject(const char *body, const char *field, const char *reason_part)
{
	expect_reject_sized(body, MAX_BYTES, MAX_COUNT, ES_EINVAL, field, reason_part);
}

/* A full event with one attribute replaced: attr is inserted as raw JSON
 * text ("\"type\":\"x\"") after the required ones. */
static void full_with(char *buf, size_t cap, const char *type, const char *extra)
{
	snprintf(buf, cap,
		 "{\"specversion\":\"1.0\",\"id\":\"ev-1\",\"source\":\"/s/g\",\"type\":%s%s%s}",
		 type, extra[0] ? "," : "", extra);
}

static char *encode(const es_event *ev)
{
	char *json = NULL;
	size_t len = 0;
	assert_int_equal(es_event_encode(ev, 0, &json, &len), ES_OK);
	assert_int_equal(strlen(json), len);
	return json;
}

/* ---- valid input ---- */

static void test_full_form(void **state)
{
	(void)state;
	es_event *ev = decode_one(FULL_EVENT);
	assert_true(es_event_is_full(ev));
	assert_string_equal(es_event_id(ev), "ev-1");
	assert_string_equal(es_event_type(ev), "sensor.reading");
	assert_string_equal(es_event_source(ev), "/site-1/gw-7");
	assert_string_equal(es_event_subject(ev), "dev-1");
	assert_string_equal(es_event_time(ev), "2026-11-27T10:00:00.123Z");
	assert_int_equal(es_event_seq(ev), 0);
	es_event_free(ev);
}

static void test_full_form_any_data(void **state)
{
	(void)state;
	static const char *const datas[] = {"[1,2,3]", "42", "\"text\"", "null", "true"};
	for (size_t i = 0; i < sizeof datas / sizeof datas[0]; i++) {
		char body[256], extra[64];
		snprintf(extra, sizeof extra, "\"data\":%s", datas[i]);
		full_with(body, sizeof body, "\"a.b\"", extra);
		es_event_free(decode_one(body));
	}
	/* the minimal full event: no subject, time or data */
	char body[256];
	full_with(body, sizeof body, "\"a\"", "");
	es_event *ev = decode_one(body);
	assert_null(es_event_subject(ev));
	assert_null(es_event_time(ev));
	es_event_free(ev);
}

static void test_short_form(void **state)
{
	(void)state;
	es_event *ev = decode_one(SHORT_EVENT);
	assert_false(es_event_is_full(ev));
	assert_string_equal(es_event_type(ev), "sensor.reading");
	assert_string_equal(es_event_subject(ev), "dev-1");
	assert_null(es_event_id(ev));
	assert_null(es_event_source(ev));
	assert_null(es_event_time(ev));
	es_event_free(ev);

	ev = decode_one("{\"type\":\"t\",\"subject\":\"d\",\"data\":{},"
			"\"id\":\"my-id\",\"time\":\"2026-11-27T12:00:00+02:00\"}");
	assert_string_equal(es_event_id(ev), "my-id");
	assert_string_equal(es_event_time(ev), "2026-11-27T12:00:00+02:00");
	es_event_free(ev);
}

static void test_type_alphabet_and_lengths(void **state)
{
	(void)state;
	char type[ES_EVENT_TYPE_MAX + 1], body[512];
	memset(type, 'a', ES_EVENT_TYPE_MAX);
	type[ES_EVENT_TYPE_MAX] = '\0';
	snprintf(body, sizeof body, "{\"type\":\"%s\"}", type);
	es_event_free(decode_one(body));
	es_event_free(decode_one("{\"type\":\"Az09._:-\"}"));
	assert_null(es_event_check_type("sensor.reading"));
	assert_null(es_event_check_type(type));
	assert_non_null(es_event_check_type(NULL));
	assert_non_null(es_event_check_type(""));
	assert_non_null(es_event_check_type("a/b"));
	assert_non_null(es_event_check_type("a+"));
	assert_non_null(es_event_check_type("#"));
	assert_non_null(es_event_check_type("a b"));
	char longer[ES_EVENT_TYPE_MAX + 2];
	memset(longer, 'a', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	assert_non_null(es_event_check_type(longer));
}

static void test_text_lengths_in_characters(void **state)
{
	(void)state;
	/* 256 two-byte characters: 512 bytes, but within the 256-character limit */
	char subj[ES_EVENT_SUBJECT_MAX * 2 + 1], body[1024];
	for (int i = 0; i < ES_EVENT_SUBJECT_MAX; i++)
		memcpy(subj + 2 * i, "\xC3\xA9", 2);
	subj[sizeof subj - 1] = '\0';
	snprintf(body, sizeof body, "{\"type\":\"t\",\"subject\":\"%s\"}", subj);
	es_event_free(decode_one(body));
	snprintf(body, sizeof body, "{\"type\":\"t\",\"subject\":\"%sx\"}", subj);
	expect_reject(body, "subject", "longer than 256 characters");
}

static void test_batch(void **state)
{
	(void)state;
	es_event **evs = NULL;
	size_t n = 0;
	es_verr v;
	const char *body = "[" SHORT_EVENT "," FULL_EVENT ",{\"type\":\"third\"}]";
	assert_int_equal(decode_input(body, MAX_BYTES, MAX_COUNT, &evs, &n, &v), ES_OK);
	assert_int_equal(n, 3);
	assert_false(es_event_is_full(evs[0]));
	assert_true(es_event_is_full(evs[1]));
	assert_string_equal(es_event_type(evs[2]), "third");
	es_event_free_array(evs, n);
	/* exactly max_count is fine */
	assert_int_equal(
		decode_input("[{\"type\":\"a\"},{\"type\":\"b\"}]", MAX_BYTES, 2, &evs, &n, &v),
		ES_OK);
	assert_int_equal(n, 2);
	es_event_free_array(evs, n);
	es_event_free_array(NULL, 0);
	es_event_free(NULL);
}

/* ---- invalid input: one case per rule ---- */

static void test_reject_type(void **state)
{
	(void)state;
	expect_reject("{\"subject\":\"d\",\"data\":{}}", "type", "missing");
	expect_reject("{\"type\":\"sensor/x\"}", "type",
		      "contains '/' at position 6; allowed: letters, digits, . _ : -");
	expect_reject("{\"type\":\"a+\"}", "type", "contains '+' at position 1");
	expect_reject("{\"type\":\"#\"}", "type", "contains '#' at position 0");
	expect_reject("{\"type\":\"a b\"}", "type", "contains a space at position 1");
	expect_reject("{\"type\":\"a\\tb\"}", "type", "contains byte 0x09 at position 1");
	expect_reject("{\"type\":\"caf\xC3\xA9\"}", "type", "contains byte 0xc3 at position 3");
	expect_reject("{\"type\":\"\"}", "type", "empty");
	expect_reject("{\"type\":7}", "type", "must be a string");
	char type[ES_EVENT_TYPE_MAX + 2], body[512];
	memset(type, 'a', sizeof type - 1);
	type[sizeof type - 1] = '\0';
	snprintf(body, sizeof body, "{\"type\":\"%s\"}", type);
	expect_reject(body, "type", "longer than 128");
}

static void test_reject_short_form(void **state)
{
	(void)state;
	expect_reject("{\"type\":\"t\",\"data\":[1]}", "data", "must be a JSON object");
	expect_reject("{\"type\":\"t\",\"data\":\"x\"}", "data", "must be a JSON object");
	expect_reject("{\"type\":\"t\",\"data\":null}", "data", "must be a JSON object");
	expect_reject("{\"type\":\"t\",\"colour\":\"red\"}", "colour",
		      "unknown attribute in the short form; send a full CloudEvent to carry "
		      "extensions");
	expect_reject("{\"type\":\"t\",\"source\":\"/x\"}", "source", "unknown attribute");
	expect_reject("{\"type\":\"t\",\"time\":\"yesterday\"}", "time", "RFC 3339");
	expect_reject("{\"type\":\"t\",\"time\":\"2026-02-30T00:00:00Z\"}", "time", "RFC 3339");
	expect_reject("{\"type\":\"t\",\"id\":\"\"}", "id", "empty");
	expect_reject("{\"type\":\"t\",\"subject\":\"\"}", "subject", "empty");
	expect_reject("{\"type\":\"t\",\"subject\":\"a\\nb\"}", "subject", "control character");
	expect_reject("{\"type\":\"t\",\"subject\":\"a\\u0085b\"}", "subject", "control");
}

static void test_reject_full_form(void **state)
{
	(void)state;
	char body[1024];
	expect_reject("{\"specversion\":\"0.3\",\"id\":\"i\",\"source\":\"s\",\"type\":\"t\"}",
		      "specversion", "must be \"1.0\"");
	expect_reject("{\"specversion\":1.0,\"id\":\"i\",\"source\":\"s\",\"type\":\"t\"}",
		      "specversion", "must be \"1.0\"");
	expect_reject("{\"specversion\":\"1.0\",\"source\":\"s\",\"type\":\"t\"}", "id", "missing");
	expect_reject("{\"specversion\":\"1.0\",\"id\":\"i\",\"type\":\"t\"}", "source", "missing");
	expect_reject("{\"specversion\":\"1.0\",\"id\":\"i\",\"source\":\"s\"}", "type", "missing");
	full_with(body, sizeof body, "\"t\"", "\"data_base64\":\"AAEC\"");
	expect_reject(body, "data_base64", "not accepted");
	full_with(body, sizeof body, "\"t\"", "\"datacontenttype\":\"text/plain\"");
	expect_reject(body, "datacontenttype", "application/json");
	full_with(body, sizeof body, "\"t/x\"", "");
	expect_reject(body, "type", "contains '/' at position 1");
	full_with(body, sizeof body, "\"t\"", "\"source2\":{\"a\":1}");
	expect_reject(body, "source2", "must be a string, a number or a boolean");
	full_with(body, sizeof body, "\"t\"", "\"myext\":null");
	expect_reject(body, "myext", "must be a string, a number or a boolean");
	full_with(body, sizeof body, "\"t\"", "\"type\":\"u\"");
	expect_reject(body, "type", "duplicate attribute");
	full_with(body, sizeof body, "\"t\"", "\"source\":\"\\u0001\"");
	expect_reject(body, "source", "control character");
}

static void test_reject_extension_names(void **state)
{
	(void)state;
	static const char *const bad[] = {"myExt", "my_ext",	 "my-ext", "abcdefghijklmnopqrstu",
					  "Type",  "caf\xC3\xA9"};
	char body[512], extra[128];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(extra, sizeof extra, "\"%s\":\"v\"", bad[i]);
		full_with(body, sizeof body, "\"t\"", extra);
		expect_reject(body, bad[i], "extension attribute name");
	}
	expect_reject("{\"specversion\":\"1.0\",\"id\":\"i\",\"source\":\"s\",\"type\":\"t\","
		      "\"\":1}",
		      "", "extension attribute name");
	/* 20 characters and digits are fine, and so is a dataschema */
	full_with(body, sizeof body, "\"t\"",
		  "\"abcdefghijklmnopqrst\":\"v\",\"x9\":1,\"dataschema\":\"https://x/s\"");
	es_event_free(decode_one(body));
}

static void test_reject_id(void **state)
{
	(void)state;
	char body[512], id[ES_EVENT_ID_MAX + 2], extra[256];
	memset(id, 'i', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	snprintf(body, sizeof body, "{\"type\":\"t\",\"id\":\"%s\"}", id);
	expect_reject(body, "id", "longer than 128");
	id[ES_EVENT_ID_MAX] = '\0'; /* 128: fine, and so is a space */
	id[3] = ' ';
	snprintf(extra, sizeof extra, "\"id\":\"%s\"", id);
	snprintf(body, sizeof body, "{\"type\":\"t\",%s}", extra);
	es_event_free(decode_one(body));
	expect_reject("{\"type\":\"t\",\"id\":\"caf\xC3\xA9\"}", "id", "0xc3 at position 3");
	expect_reject("{\"type\":\"t\",\"id\":\"a\\u007fb\"}", "id", "0x7f at position 1");
}

static void test_reject_structure(void **state)
{
	(void)state;
	expect_reject("\"just a string\"", "", "must be a JSON object");
	expect_reject("42", "", "must be a JSON object");
	expect_reject("", "", "invalid JSON at byte 0");
	expect_reject("{\"type\":\"a\",}", "", "invalid JSON at byte 12");
	expect_reject("{\"type\" \"a\"}", "", "invalid JSON at byte 8");
	expect_reject("{\"type\":\"a\"} x", "", "invalid JSON at byte 12");
	expect_reject("{\"type\":\"a\"}{}", "", "data after the value");
	expect_reject("{\"type\":\"caf\xC3\"}", "", "invalid UTF-8 at byte 12");
	expect_reject("{\"type\":\"\xED\xA0\x80\"}", "", "invalid UTF-8 at byte 9");
	expect_reject("{\"type\":\"a\",\"data\":{\"k\":\"\xC0\x80\"}}", "",
		      "invalid UTF-8 at byte 25");
	/* whitespace around the value is fine */
	es_event_free(decode_one(" \r\n\t{\"type\":\"a\"} \n"));
}

static void test_reject_nul_byte(void **state)
{
	(void)state;
	static const char body[] = "{\"type\":\"a\0b\"}";
	es_event **evs = BAD_EVS;
	size_t n = 77;
	es_verr v;
	assert_int_equal(
		es_event_decode_input(body, sizeof body - 1, MAX_BYTES, MAX_COUNT, &evs, &n, &v),
		ES_EINVAL);
	assert_string_equal(v.field, "");
	assert_string_equal(v.reason, "NUL byte at byte 10");
	assert_ptr_equal(evs, BAD_EVS);
}

static void test_reject_arrays(void **state)
{
	(void)state;
	expect_reject("[]", "", "empty array");
	expect_reject_sized("[{\"type\":\"a\"},{\"type\":\"b\"},{\"type\":\"c\"}]", MAX_BYTES, 2,
			    ES_ETOOBIG, "", "limit of 2");
	expect_reject("[" SHORT_EVENT ",{\"type\":\"a/b\"}," SHORT_EVENT "]", "[1].type",
		      "contains '/' at position 1");
	expect_reject("[" SHORT_EVENT "," SHORT_EVENT "," SHORT_EVENT ",{\"data\":{}}]", "[3].type",
		      "missing");
	expect_reject("[" SHORT_EVENT ",[]]", "[1]", "must be a JSON object");
	expect_reject("[{\"type\":\"a\",\"x\":1}]", "[0].x", "unknown attribute");
	expect_reject("[" SHORT_EVENT ",{\"specversion\":\"2.0\"}]", "[1].specversion",
		      "must be \"1.0\"");
}

static void test_oversize(void **state)
{
	(void)state;
	char data[400], body[600];
	memset(data, 'x', sizeof data - 1);
	data[sizeof data - 1] = '\0';
	snprintf(body, sizeof body, "{\"type\":\"t\",\"data\":{\"k\":\"%s\"}}", data);
	expect_reject_sized(body, 300, MAX_COUNT, ES_ETOOBIG, "", "limit of 300 bytes");
	/* in a batch the index says which */
	snprintf(body, sizeof body, "[{\"type\":\"t\"},{\"type\":\"t\",\"data\":{\"k\":\"%s\"}}]",
		 data);
	expect_reject_sized(body, 300, MAX_COUNT, ES_ETOOBIG, "[1]", "limit of 300 bytes");

	/* the limit is on the encoded size: exactly max_bytes passes */
	es_event *ev = decode_one(FULL_EVENT);
	char *json = encode(ev);
	size_t len = strlen(json);
	es_event_free(ev);
	es_event **evs = NULL;
	size_t n;
	es_verr v;
	assert_int_equal(decode_input(FULL_EVENT, len, 1, &evs, &n, &v), ES_OK);
	es_event_free_array(evs, n);
	expect_reject_sized(FULL_EVENT, len - 1, 1, ES_ETOOBIG, "", "limit");
	free(json);
}

/* Raw control characters are legal to cJSON but print as \u00XX: an input
 * well under the limit can encode over it, and must still be refused. */
static void test_oversize_after_escaping(void **state)
{
	(void)state;
	char ctl[41], body[128];
	memset(ctl, 0x01, sizeof ctl - 1);
	ctl[sizeof ctl - 1] = '\0';
	snprintf(body, sizeof body, "{\"type\":\"t\",\"data\":{\"k\":\"%s\"}}", ctl);
	assert_true(strlen(body) < 100);
	expect_reject_sized(body, 200, MAX_COUNT, ES_ETOOBIG, "", "limit of 200 bytes");
}

static void test_null_verr_and_args(void **state)
{
	(void)state;
	es_event **evs = BAD_EVS;
	size_t n = 77;
	assert_int_equal(es_event_decode_input("{\"type\":\"a/b\"}", 14, MAX_BYTES, MAX_COUNT, &evs,
					       &n, NULL),
			 ES_EINVAL);
	assert_ptr_equal(evs, BAD_EVS);
	assert_int_equal(es_event_decode_input(NULL, 5, MAX_BYTES, MAX_COUNT, &evs, &n, NULL),
			 ES_EINVAL);
	assert_int_equal(es_event_decode_input("{}", 2, MAX_BYTES, MAX_COUNT, NULL, &n, NULL),
			 ES_EINVAL);
	es_event *ev = BAD_EV;
	assert_int_equal(es_event_decode(NULL, 3, MAX_BYTES, &ev, NULL), ES_EINVAL);
	assert_ptr_equal(ev, BAD_EV);
	assert_int_equal(es_event_encode(NULL, 0, NULL, NULL), ES_EINVAL);
	assert_null(es_event_type(NULL));
	assert_int_equal(es_event_seq(NULL), 0);
	assert_false(es_event_is_full(NULL));
}

/* ---- es_event_decode (strict, full form only) ---- */

static void test_decode_strict(void **state)
{
	(void)state;
	es_event *ev = BAD_EV;
	es_verr v;
	assert_int_equal(es_event_decode(FULL_EVENT, strlen(FULL_EVENT), MAX_BYTES, &ev, &v),
			 ES_OK);
	assert_true(es_event_is_full(ev));
	assert_string_equal(es_event_id(ev), "ev-1");
	es_event_free(ev);

	ev = BAD_EV;
	assert_int_equal(es_event_decode(SHORT_EVENT, strlen(SHORT_EVENT), MAX_BYTES, &ev, &v),
			 ES_EINVAL);
	assert_string_equal(v.field, "specversion");
	assert_ptr_equal(ev, BAD_EV);

	const char *arr = "[" FULL_EVENT "]";
	assert_int_equal(es_event_decode(arr, strlen(arr), MAX_BYTES, &ev, &v), ES_EINVAL);
	assert_string_equal(v.reason, "an event must be a JSON object");
	assert_int_equal(es_event_decode(FULL_EVENT, strlen(FULL_EVENT), 50, &ev, &v), ES_ETOOBIG);
	assert_int_equal(es_event_decode("{\"a\":", 5, MAX_BYTES, &ev, &v), ES_EINVAL);
	assert_string_equal(v.reason, "invalid JSON at byte 4");
	assert_ptr_equal(ev, BAD_EV);
}

/* ---- es_event_new ---- */

static void test_new(void **state)
{
	(void)state;
	es_event *ev = BAD_EV;
	es_verr v;
	assert_int_equal(es_event_new("sensor.reading", "dev-1", "{\"t\":1}", &ev, &v), ES_OK);
	assert_false(es_event_is_full(ev));
	assert_string_equal(es_event_type(ev), "sensor.reading");
	assert_string_equal(es_event_subject(ev), "dev-1");
	char *json = encode(ev);
	assert_string_equal(json, "{\"type\":\"sensor.reading\",\"subject\":\"dev-1\","
				  "\"data\":{\"t\":1}}");
	free(json);
	es_event_free(ev);

	assert_int_equal(es_event_new("t", NULL, NULL, &ev, &v), ES_OK);
	assert_null(es_event_subject(ev));
	es_event_free(ev);
}

static void expect_new_reject(const char *type, const char *subject, const char *data,
			      const char *field, const char *reason_part)
{
	es_event *ev = BAD_EV;
	es_verr v;
	assert_int_equal(es_event_new(type, subject, data, &ev, &v), ES_EINVAL);
	assert_ptr_equal(ev, BAD_EV);
	assert_string_equal(v.field, field);
	if (!strstr(v.reason, reason_part))
		fail_msg("reason \"%s\" lacks \"%s\"", v.reason, reason_part);
}

static void test_new_rejects(void **state)
{
	(void)state;
	expect_new_reject(NULL, "d", NULL, "type", "missing");
	expect_new_reject("a#b", "d", NULL, "type", "contains '#' at position 1");
	expect_new_reject("t", "d", "[1,2]", "data", "must be a JSON object");
	expect_new_reject("t", "d", "{\"a\":", "data", "invalid JSON at byte 4");
	expect_new_reject("t", "d", "{} {}", "data", "data after the value");
	expect_new_reject("t", "d", "{\"a\":\"\xFF\"}", "data", "invalid UTF-8 at byte 6");
	expect_new_reject("t", "\xC3(", NULL, "subject", "invalid UTF-8 at byte 0");
	expect_new_reject("t", "a\tb", NULL, "subject", "control character at byte 1");
	expect_new_reject("t", "", NULL, "subject", "empty");
	es_event *ev = BAD_EV;
	assert_int_equal(es_event_new("t", "d", NULL, NULL, NULL), ES_EINVAL);
	assert_int_equal(es_event_new("a/b", "d", NULL, &ev, NULL), ES_EINVAL);
	assert_ptr_equal(ev, BAD_EV);
}

/* ---- stamp, encode, decode ---- */

static void test_stamp_short_form(void **state)
{
	(void)state;
	es_event *ev = decode_one(SHORT_EVENT);
	assert_int_equal(es_event_stamp(ev, ID0, "/site-1/gw-7", T0, 42), ES_OK);
	assert_string_equal(es_event_id(ev), ID0);
	assert_string_equal(es_event_source(ev), "/site-1/gw-7");
	char t[ES_TIME_STR];
	es_time_format(T0, t);
	assert_string_equal(es_event_time(ev), t);
	assert_int_equal(es_event_seq(ev), 42);

	char *json = encode(ev);
	assert_non_null(strstr(json, "\"specversion\":\"1.0\""));
	assert_non_null(strstr(json, "\"datacontenttype\":\"application/json\""));
	assert_non_null(strstr(json, "\"sequence\":\"42\""));
	/* what the journal publishes is a strict, full CloudEvent */
	es_event *back = BAD_EV;
	es_verr v;
	assert_int_equal(es_event_decode(json, strlen(json), MAX_BYTES, &back, &v), ES_OK);
	assert_true(es_event_is_full(back));
	assert_string_equal(es_event_id(back), ID0);
	assert_string_equal(es_event_type(back), "sensor.reading");
	assert_string_equal(es_event_subject(back), "dev-1");
	assert_string_equal(es_event_time(back), t);
	assert_int_equal(es_event_seq(back), 42);
	char *again = encode(back);
	assert_string_equal(again, json);
	free(again);
	free(json);
	es_event_free(back);
	es_event_free(ev);
}

static void test_stamp_full_form_keeps_own(void **state)
{
	(void)state;
	es_event *ev = decode_one(FULL_EVENT);
	assert_int_equal(es_event_stamp(ev, ID0, "/other", T0 + 999, 7), ES_OK);
	assert_string_equal(es_event_id(ev), "ev-1");
	assert_string_equal(es_event_source(ev), "/site-1/gw-7");
	assert_string_equal(es_event_time(ev), "2026-11-27T10:00:00.123Z");
	assert_int_equal(es_event_seq(ev), 7);

	char *json = encode(ev);
	/* unknown extensions survive, with their JSON types */
	assert_non_null(strstr(json, "\"myext\":\"x\""));
	assert_non_null(strstr(json, "\"num\":5"));
	assert_non_null(strstr(json, "\"flag\":true"));
	assert_non_null(strstr(json, "\"data\":{\"t\":21.5}"));
	es_event *back = decode_one(json);
	char *again = encode(back);
	assert_string_equal(again, json);
	free(again);
	free(json);
	es_event_free(back);
	es_event_free(ev);
}

static void test_stamp_twice_replaces_sequence(void **state)
{
	(void)state;
	es_event *ev = decode_one(SHORT_EVENT);
	assert_int_equal(es_event_stamp(ev, ID0, "/s", T0, 1), ES_OK);
	assert_int_equal(es_event_stamp(ev, "other", "/t", T0 + 1, UINT64_MAX), ES_OK);
	assert_int_equal(es_event_seq(ev), UINT64_MAX);
	assert_string_equal(es_event_id(ev), ID0);
	char *json = encode(ev);
	assert_non_null(strstr(json, "\"sequence\":\"18446744073709551615\""));
	/* one of each attribute: a strict decode would refuse a duplicate */
	es_event *back = BAD_EV;
	es_verr v;
	assert_int_equal(es_event_decode(json, strlen(json), MAX_BYTES, &back, &v), ES_OK);
	assert_int_equal(es_event_seq(back), UINT64_MAX);
	es_event_free(back);
	free(json);
	es_event_free(ev);
}

static void test_stamp_rejects_bad_fill(void **state)
{
	(void)state;
	es_event *ev = decode_one(SHORT_EVENT);
	char *before = encode(ev);
	assert_int_equal(es_event_stamp(ev, "", "/s", T0, 1), ES_EINVAL);
	assert_int_equal(es_event_stamp(ev, ID0, "bad\nsource", T0, 1), ES_EINVAL);
	assert_int_equal(es_event_stamp(ev, NULL, "/s", T0, 1), ES_EINVAL);
	assert_int_equal(es_event_stamp(NULL, ID0, "/s", T0, 1), ES_EINVAL);
	char *after = encode(ev);
	assert_string_equal(before, after); /* unchanged by the failures */
	free(before);
	free(after);
	es_event_free(ev);
}

static void test_sequence_parsing(void **state)
{
	(void)state;
	static const struct {
		const char *ext;
		uint64_t want;
	} cases[] = {
		{"\"sequence\":\"123\"", 123},
		{"\"sequence\":\"0\"", 0},
		{"\"sequence\":\"18446744073709551615\"", UINT64_MAX},
		{"\"sequence\":\"18446744073709551616\"", 0},
		{"\"sequence\":\"12a\"", 0},
		{"\"sequence\":\"-1\"", 0},
		{"\"sequence\":\"\"", 0},
		{"\"sequence\":5", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char body[256];
		full_with(body, sizeof body, "\"t\"", cases[i].ext);
		es_event *ev = decode_one(body);
		assert_int_equal(es_event_seq(ev), cases[i].want);
		es_event_free(ev);
	}
}

static void test_encode_limit(void **state)
{
	(void)state;
	es_event *ev = decode_one(FULL_EVENT);
	char *json = (char *)(uintptr_t)0x99;
	size_t len = 77;
	assert_int_equal(es_event_encode(ev, 20, &json, &len), ES_ETOOBIG);
	assert_ptr_equal(json, (char *)(uintptr_t)0x99);
	assert_int_equal(len, 77);
	char *full = encode(ev);
	size_t n = strlen(full);
	assert_int_equal(es_event_encode(ev, n, &json, &len), ES_OK);
	assert_int_equal(len, n);
	free(json);
	assert_int_equal(es_event_encode(ev, n - 1, &json, &len), ES_ETOOBIG);
	free(full);
	es_event_free(ev);
}

/* Many attributes take the sorting path of the duplicate check. */
static void test_many_extensions(void **state)
{
	(void)state;
	char extra[4096], body[4352];
	size_t pos = 0;
	for (int i = 0; i < 200; i++)
		pos += (size_t)snprintf(extra + pos, sizeof extra - pos, "%s\"e%d\":%d",
					i ? "," : "", i, i);
	full_with(body, sizeof body, "\"t\"", extra);
	es_event_free(decode_one(body));
	snprintf(extra + pos, sizeof extra - pos, ",\"e17\":0");
	full_with(body, sizeof body, "\"t\"", extra);
	expect_reject(body, "e17", "duplicate attribute");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_form),
		cmocka_unit_test(test_full_form_any_data),
		cmocka_unit_test(test_short_form),
		cmocka_unit_test(test_type_alphabet_and_lengths),
		cmocka_unit_test(test_text_lengths_in_characters),
		cmocka_unit_test(test_batch),
		cmocka_unit_test(test_reject_type),
		cmocka_unit_test(test_reject_short_form),
		cmocka_unit_test(test_reject_full_form),
		cmocka_unit_test(test_reject_extension_names),
		cmocka_unit_test(test_reject_id),
		cmocka_unit_test(test_reject_structure),
		cmocka_unit_test(test_reject_nul_byte),
		cmocka_unit_test(test_reject_arrays),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_oversize_after_escaping),
		cmocka_unit_test(test_null_verr_and_args),
		cmocka_unit_test(test_decode_strict),
		cmocka_unit_test(test_new),
		cmocka_unit_test(test_new_rejects),
		cmocka_unit_test(test_stamp_short_form),
		cmocka_unit_test(test_stamp_full_form_keeps_own),
		cmocka_unit_test(test_stamp_twice_replaces_sequence),
		cmocka_unit_test(test_stamp_rejects_bad_fill),
		cmocka_unit_test(test_sequence_parsing),
		cmocka_unit_test(test_encode_limit),
		cmocka_unit_test(test_many_extensions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
