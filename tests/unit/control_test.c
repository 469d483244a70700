/* control_test.c - the status, re-send request and re-send reply codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control.h"

#define SEQ_MAX 9007199254740991ULL
#define BOOT	"0190f3a4-5b6c-4d7e-8f90-a1b2c3d4e5f6"
#define JOURNAL "0190F3A4-0000-7000-8000-00000000ABCD"
/* 2026-11-27T10:00:00.123Z */
#define T_MS 1795773600123ULL

static es_status_msg sample_status(void)
{
	es_status_msg m = {
		.online = true,
		.latest_seq = SEQ_MAX,
		.boot_seq = 5000,
		.acked_seq = 1000,
		.oldest_seq = 1,
		.pending = 7,
		.clock_synced = true,
		.time_ms = T_MS,
	};
	memcpy(m.boot_id, BOOT, sizeof BOOT);
	memcpy(m.journal_id, JOURNAL, sizeof JOURNAL);
	return m;
}

static void status_round_trip(void **state)
{
	es_status_msg m = sample_status(), back;
	for (int i = 0; i < 2; i++) {
		char *json = NULL;
		size_t len = 0;
		assert_int_equal(es_status_encode(&m, &json, &len), ES_OK);
		assert_int_equal(strlen(json), len);
		assert_non_null(strstr(json, i ? "\"state\":\"offline\"" : "\"state\":\"online\""));
		assert_non_null(
			strstr(json, i ? "\"latest_seq\":0," : "\"latest_seq\":9007199254740991,"));
		assert_non_null(strstr(json, i ? "\"time\":\"1970-01-01T00:00:00.000Z\""
					       : "\"time\":\"2026-11-27T10:00:00.123Z\""));
		const char *names[] = {"boot_id",    "journal_id", "acked_seq",
				       "oldest_seq", "pending",	   "clock_synced"};
		for (size_t j = 0; j < sizeof names / sizeof names[0] && i == 0; j++)
			assert_non_null(strstr(json, names[j]));
		char why[64] = "";
		memset(&back, 0, sizeof back);
		assert_int_equal(es_status_decode(json, len, &back, why, sizeof why), ES_OK);
		assert_int_equal(back.online, m.online);
		assert_string_equal(back.boot_id, m.boot_id);
		assert_string_equal(back.journal_id, m.journal_id);
		assert_int_equal(back.latest_seq, m.latest_seq);
		assert_int_equal(back.boot_seq, m.boot_seq);
		assert_int_equal(back.acked_seq, m.acked_seq);
		assert_int_equal(back.oldest_seq, m.oldest_seq);
		assert_int_equal(back.pending, m.pending);
		assert_int_equal(back.clock_synced, m.clock_synced);
		assert_int_equal(back.time_ms, m.time_ms);
		free(json);
		/* The other way round: offline, unsynchronised, empty journal. */
		m.online = false;
		m.clock_synced = false;
		m.latest_seq = m.boot_seq = m.acked_seq = m.oldest_seq = m.pending = m.time_ms = 0;
	}
	assert_int_equal(back.time_ms, 0);
	assert_false(back.online);
	/* A node from before boot_seq: its latest_seq, the rule it had. */
	const char *old = "{\"state\":\"online\",\"boot_id\":\"" BOOT "\",\"journal_id\":\"" JOURNAL
			  "\",\"latest_seq\":70,\"acked_seq\":60,\"oldest_seq\":1,\"pending\":10,"
			  "\"clock_synced\":true,\"time\":\"2026-11-27T10:00:00.123Z\"}";
	assert_int_equal(es_status_decode(old, strlen(old), &back, NULL, 0), ES_OK);
	assert_int_equal(back.boot_seq, 70);
}

static void req_round_trip(void **state)
{
	es_resend_req r = {.from = 1, .to = SEQ_MAX}, back;
	memset(r.request_id, 'r', ES_REQUEST_ID_MAX - 1); /* the longest allowed */
	for (int i = 0; i < 2; i++) {
		char *json = NULL;
		size_t len = 0;
		assert_int_equal(es_resend_req_encode(&r, &json, &len), ES_OK);
		memset(&back, 0x55, sizeof back);
		assert_int_equal(es_resend_req_decode(json, len, &back, NULL, 0), ES_OK);
		assert_int_equal(back.from, r.from);
		assert_int_equal(back.to, r.to);
		assert_string_equal(back.request_id, r.request_id);
		free(json);
		r = (es_resend_req){.from = 42, .to = 42}; /* one sequence, no id */
	}
	/* request_id may be absent altogether. */
	const char *json = "{\"to\":9,\"from\":3}";
	assert_int_equal(es_resend_req_decode(json, strlen(json), &back, NULL, 0), ES_OK);
	assert_int_equal(back.from, 3);
	assert_int_equal(back.to, 9);
	assert_string_equal(back.request_id, "");
}

static void reply_round_trip(void **state)
{
	for (int s = ES_RESEND_OK; s <= ES_RESEND_INVALID; s++) {
		es_resend_reply r = {.from = 10, .to = 50, .status = (es_resend_status)s}, back;
		strcpy(r.request_id, "req-1");
		if (s == ES_RESEND_PARTIAL) {
			r.sent_from = 20, r.sent_to = 50, r.gone_from = 10, r.gone_to = 19;
			memset(r.reason, 'z', sizeof r.reason - 1); /* the longest allowed */
		}
		if (s == ES_RESEND_INVALID)
			r.from = r.to = 0;
		r.latest_seq = SEQ_MAX;
		if (s != ES_RESEND_OK)
			r.latest_seq = (uint64_t)s;
		char *json = NULL;
		size_t len = 0;
		assert_int_equal(es_resend_reply_encode(&r, &json, &len), ES_OK);
		char want[32];
		snprintf(want, sizeof want, "\"status\":\"%s\"", es_resend_status_name(r.status));
		assert_non_null(strstr(json, want));
		char why[64] = "";
		assert_int_equal(es_resend_reply_decode(json, len, &back, why, sizeof why), ES_OK);
		assert_int_equal(back.status, r.status);
		assert_string_equal(back.request_id, r.request_id);
		assert_int_equal(back.from, r.from);
		assert_int_equal(back.to, r.to);
		assert_int_equal(back.sent_from, r.sent_from);
		assert_int_equal(back.sent_to, r.sent_to);
		assert_int_equal(back.gone_from, r.gone_from);
		assert_int_equal(back.gone_to, r.gone_to);
		assert_string_equal(back.reason, r.reason);
		assert_int_equal(back.latest_seq, r.latest_seq);
		free(json);
	}
	/* A node from before latest_seq: 0, not said. */
	const char *old = "{\"from\":1,\"to\":2,\"status\":\"ok\"}";
	es_resend_reply back;
	assert_int_equal(es_resend_reply_decode(old, strlen(old), &back, NULL, 0), ES_OK);
	assert_int_equal(back.latest_seq, 0);
}

static void status_names(void **state)
{
	assert_string_equal(es_resend_status_name(ES_RESEND_OK), "ok");
	assert_string_equal(es_resend_status_name(ES_RESEND_PARTIAL), "partial");
	assert_string_equal(es_resend_status_name(ES_RESEND_GONE), "gone");
	assert_string_equal(es_resend_status_name(ES_RESEND_BUSY), "busy");
	assert_string_equal(es_resend_status_name(ES_RESEND_INVALID), "invalid");
	assert_string_equal(es_resend_status_name((es_resend_status)99), "unknown");
}

/* ---- rejections, table driven ---- */

typedef struct kv {
	const char *k, *v;
} kv;

static const kv status_base[] = {
	{"state", "\"online\""},
	{"boot_id", "\"" BOOT "\""},
	{"journal_id", "\"" JOURNAL "\""},
	{"latest_seq", "100"},
	{"boot_seq", "80"},
	{"acked_seq", "90"},
	{"oldest_seq", "5"},
	{"pending", "10"},
	{"clock_synced", "true"},
	{"time", "\"2026-11-27T10:00:00.123Z\""},
};

static const kv req_base[] = {{"from", "3"}, {"to", "9"}, {"request_id", "\"abc\""}};

static const kv reply_base[] = {
	{"request_id", "\"abc\""}, {"from", "10"},	{"to", "20"},
	{"status", "\"partial\""}, {"sent_from", "15"}, {"sent_to", "20"},
	{"gone_from", "10"},	   {"gone_to", "14"},	{"reason", "\"evicted\""},
};

enum msg { STATUS, REQ, REPLY };

/* base with key's value replaced by val (NULL: left out; a key not in base
 * is added; val starting with '+': the key appears twice). */
static void build(enum msg m, const char *key, const char *val, char *out, size_t cap)
{
	const kv *b = m == STATUS ? status_base : m == REQ ? req_base : reply_base;
	size_t n = m == STATUS ? sizeof status_base / sizeof *status_base
		   : m == REQ  ? sizeof req_base / sizeof *req_base
			       : sizeof reply_base / sizeof *reply_base;
	bool done = false;
	size_t at = (size_t)snprintf(out, cap, "{");
	for (size_t i = 0; i < n; i++) {
		const char *v = b[i].v;
		if (key && strcmp(b[i].k, key) == 0) {
			done = true;
			if (!val)
				continue;
			if (val[0] == '+')
				at += (size_t)snprintf(out + at, cap - at, "\"%s\":%s,", b[i].k, v);
			v = val[0] == '+' ? val + 1 : val;
		}
		at += (size_t)snprintf(out + at, cap - at, "\"%s\":%s,", b[i].k, v);
	}
	if (key && !done)
		at += (size_t)snprintf(out + at, cap - at, "\"%s\":%s,", key, val);
	snprintf(out + at - 1, cap - at + 1, "}");
}

static es_err decode(enum msg m, const char *json, size_t len, char *why, size_t cap)
{
	es_status_msg s;
	es_resend_req q;
	es_resend_reply r;
	memset(&s, 0x5a, sizeof s);
	memset(&q, 0x5a, sizeof q);
	memset(&r, 0x5a, sizeof r);
	es_err err = m == STATUS ? es_status_decode(json, len, &s, why, cap)
		     : m == REQ	 ? es_resend_req_decode(json, len, &q, why, cap)
				 : es_resend_reply_decode(json, len, &r, why, cap);
	if (err) { /* out untouched on failure */
		unsigned char *p = m == STATUS ? (unsigned char *)&s
				   : m == REQ  ? (unsigned char *)&q
					       : (unsigned char *)&r;
		size_t size = m == STATUS ? sizeof s : m == REQ ? sizeof q : sizeof r;
		for (size_t i = 0; i < size; i++)
			assert_int_equal(p[i], 0x5a);
	}
	return err;
}

typedef struct bad_case {
	enum msg m;
	const char *key, *val; /* see build() */
	const char *why;       /* the start of the explanation */
} bad_case;

#define LONG64 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""

static const bad_case bad_cases[] = {
	{REQ, "from", NULL, "from: missing"},
	{REQ, "to", NULL, "to: missing"},
	{REQ, "from", "\"3\"", "from: not a number"},
	{REQ, "from", "null", "from: not a number"},
	{REQ, "to", "true", "to: not a number"},
	{REQ, "to", "[9]", "to: not a number"},
	{REQ, "from", "1.5", "from: not an integer"},
	{REQ, "to", "9.000001", "to: not an integer"},
	{REQ, "from", "-1", "from: negative"},
	{REQ, "to", "-0.5", "to: negative"},
	{REQ, "to", "9007199254740992", "to: above 2^53-1"},
	{REQ, "to", "1e300", "to: above 2^53-1"},
	{REQ, "from", "0", "from: must be at least 1"},
	{REQ, "from", "10", "from: greater than to"},
	{REQ, "request_id", LONG64, "request_id: longer than 63"},
	{REQ, "request_id", "7", "request_id: not a string"},
	{REQ, "from", "+4", "from: appears more than once"},
	{STATUS, "state", NULL, "state: missing"},
	{STATUS, "state", "\"maybe\"", "state: neither"},
	{STATUS, "state", "true", "state: not a string"},
	{STATUS, "boot_id", NULL, "boot_id: missing"},
	{STATUS, "boot_id", "\"0190f3a4-5b6c-4d7e-8f90-a1b2c3d4e5f\"", "boot_id: not a 36"},
	{STATUS, "boot_id", "\"0190f3a4-5b6c-4d7e-8f90-a1b2c3d4e5f66\"", "boot_id: longer than 36"},
	{STATUS, "boot_id", "\"0190f3a4-5b6c-4d7e-8f90-a1b2c3d4e5fg\"", "boot_id: not a 36"},
	{STATUS, "boot_id", "\"0190f3a4-5b6c-4d7e-8f90a-1b2c3d4e5f6\"", "boot_id: not a 36"},
	{STATUS, "boot_id", "\"0190f3a405b6c04d7e08f900a1b2c3d4e5f6\"", "boot_id: not a 36"},
	{STATUS, "journal_id", NULL, "journal_id: missing"},
	{STATUS, "journal_id", "\"\"", "journal_id: not a 36"},
	{STATUS, "journal_id", "42", "journal_id: not a string"},
	{STATUS, "latest_seq", NULL, "latest_seq: missing"},
	{STATUS, "latest_seq", "-5", "latest_seq: negative"},
	{STATUS, "boot_seq", "101", "boot_seq: greater than latest_seq"},
	{STATUS, "boot_seq", "1.5", "boot_seq: not an integer"},
	{STATUS, "acked_seq", NULL, "acked_seq: missing"},
	{STATUS, "acked_seq", "101", "acked_seq: greater than latest_seq"},
	{STATUS, "oldest_seq", NULL, "oldest_seq: missing"},
	{STATUS, "oldest_seq", "101", "oldest_seq: greater than latest_seq"},
	{STATUS, "pending", NULL, "pending: missing"},
	{STATUS, "pending", "2.5", "pending: not an integer"},
	{STATUS, "clock_synced", NULL, "clock_synced: missing"},
	{STATUS, "clock_synced", "\"true\"", "clock_synced: not true or false"},
	{STATUS, "clock_synced", "1", "clock_synced: not true or false"},
	{STATUS, "time", NULL, "time: missing"},
	{STATUS, "time", "\"2026-02-30T00:00:00Z\"", "time: not an RFC 3339"},
	{STATUS, "time", "\"yesterday\"", "time: not an RFC 3339"},
	{STATUS, "time", "1795773600123", "time: not a string"},
	{STATUS, "journal_id", "+\"" BOOT "\"", "journal_id: appears more than once"},
	{REPLY, "status", NULL, "status: missing"},
	{REPLY, "status", "\"done\"", "status: not one of"},
	{REPLY, "status", "2", "status: not a string"},
	{REPLY, "from", NULL, "from: missing"},
	{REPLY, "to", NULL, "to: missing"},
	{REPLY, "from", "0", "from: must be at least 1"},
	{REPLY, "to", "9", "from: greater than to"},
	{REPLY, "sent_from", "16.5", "sent_from: not an integer"},
	{REPLY, "sent_from", "21", "sent_from: greater than to"},
	{REPLY, "sent_to", "21", "sent_from: range outside from..to"},
	{REPLY, "gone_from", "0", "gone_from: must be at least 1"},
	{REPLY, "gone_from", "9", "gone_from: range outside from..to"},
	{REPLY, "gone_to", "-1", "gone_to: negative"},
	{REPLY, "request_id", LONG64, "request_id: longer than 63"},
	{REPLY, "reason", "{}", "reason: not a string"},
};

static void rejects_bad_fields(void **state)
{
	char json[2048], why[128];
	for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const bad_case *c = &bad_cases[i];
		build(c->m, c->key, c->val, json, sizeof json);
		why[0] = '\0';
		es_err err = decode(c->m, json, strlen(json), why, sizeof why);
		if (err != ES_EINVAL || strncmp(why, c->why, strlen(c->why)) != 0)
			fail_msg("case %zu: %s\n  gave %d \"%s\", want \"%s\"", i, json, err, why,
				 c->why);
	}
}

static void base_messages_are_valid(void **state)
{
	/* So that every rejection above is down to its one change. */
	char json[2048];
	for (int m = STATUS; m <= REPLY; m++) {
		build((enum msg)m, NULL, NULL, json, sizeof json);
		assert_int_equal(decode((enum msg)m, json, strlen(json), NULL, 0), ES_OK);
	}
}

static void rejects_long_reason(void **state)
{
	char json[2048], why[64], reason[160];
	memset(reason, 'x', sizeof reason);
	snprintf(reason + 128, sizeof reason - 128, "\"");
	reason[0] = '"';
	build(REPLY, "reason", reason, json, sizeof json); /* 127 x: allowed */
	assert_int_equal(decode(REPLY, json, strlen(json), why, sizeof why), ES_OK);
	snprintf(reason + 129, sizeof reason - 129, "\""); /* 128 x */
	reason[128] = 'x';
	build(REPLY, "reason", reason, json, sizeof json);
	assert_int_equal(decode(REPLY, json, strlen(json), why, sizeof why), ES_EINVAL);
	assert_string_equal(why, "reason: longer than 127 characters");
}

static void rejects_bad_json(void **state)
{
	const char *bad[] = {"",
			     "{",
			     "{\"from\":1,\"to\":2",
			     "[]",
			     "42",
			     "\"x\"",
			     "null",
			     "{\"from\":1,\"to\":2} x",
			     "{\"from\":1,\"to\":2}{}",
			     "{\"from\":1 \"to\":2}"};
	char why[64];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = '\0';
		assert_int_equal(decode(REQ, bad[i], strlen(bad[i]), why, sizeof why), ES_EINVAL);
		assert_memory_equal(why, "json: ", 6);
	}
	assert_int_equal(decode(REQ, "{\"from\":1,\"to\":2}\0", 18, why, sizeof why), ES_EINVAL);
	es_resend_req r;
	assert_int_equal(es_resend_req_decode(NULL, 0, &r, why, sizeof why), ES_EINVAL);
	assert_int_equal(es_resend_req_decode("{}", 2, NULL, why, sizeof why), ES_EINVAL);
}

static void accepts_what_json_allows(void **state)
{
	es_resend_req r;
	/* Not NUL-terminated: only len bytes are read. */
	const char buf[] = {'{', '"', 'f', 'r', 'o', 'm', '"', ':', '2', ',',
			    '"', 't', 'o', '"', ':', '3', '}', '9', '9'};
	assert_int_equal(es_resend_req_decode(buf, 17, &r, NULL, 0), ES_OK);
	assert_int_equal(r.to, 3);
	/* Whitespace around, integers written as floats, unknown members. */
	const char *json = " \n{\"from\":1e3, \"to\":2000.0, \"extra\":{\"a\":[1,2,{}]},"
			   " \"priority\":\"high\", \"FROM\":\"x\"}\r\n\t";
	assert_int_equal(es_resend_req_decode(json, strlen(json), &r, NULL, 0), ES_OK);
	assert_int_equal(r.from, 1000);
	assert_int_equal(r.to, 2000);
	/* An offset is folded into UTC. */
	char text[2048];
	build(STATUS, "time", "\"2026-11-27T11:00:00.123+01:00\"", text, sizeof text);
	es_status_msg m;
	assert_int_equal(es_status_decode(text, strlen(text), &m, NULL, 0), ES_OK);
	assert_int_equal(m.time_ms, T_MS);
	/* A reply to a request that made no sense has no range. */
	json = "{\"status\":\"invalid\",\"from\":0,\"to\":0,\"reason\":\"bad json\"}";
	es_resend_reply y;
	assert_int_equal(es_resend_reply_decode(json, strlen(json), &y, NULL, 0), ES_OK);
	assert_int_equal(y.status, ES_RESEND_INVALID);
	assert_string_equal(y.request_id, "");
	assert_int_equal(y.sent_from + y.sent_to + y.gone_from + y.gone_to, 0);
	/* ... but only then. */
	json = "{\"status\":\"gone\",\"from\":0,\"to\":0}";
	assert_int_equal(es_resend_reply_decode(json, strlen(json), &y, NULL, 0), ES_EINVAL);
}

static void why_is_bounded(void **state)
{
	const char *json = "{\"from\":5,\"to\":4}";
	es_resend_req r;
	char why[8];
	memset(why, '#', sizeof why);
	assert_int_equal(es_resend_req_decode(json, strlen(json), &r, why, 5), ES_EINVAL);
	assert_string_equal(why, "from");
	assert_int_equal(why[5], '#');
	assert_int_equal(es_resend_req_decode(json, strlen(json), &r, NULL, 0), ES_EINVAL);
	assert_int_equal(es_resend_req_decode(json, strlen(json), &r, why, 0), ES_EINVAL);
}

static void encoders_refuse_what_decoders_reject(void **state)
{
	char *json = (char *)"untouched";
	size_t len = 99;
	es_resend_req q = {.from = 0, .to = 1};
	assert_int_equal(es_resend_req_encode(&q, &json, &len), ES_EINVAL);
	q = (es_resend_req){.from = 5, .to = 4};
	assert_int_equal(es_resend_req_encode(&q, &json, &len), ES_EINVAL);
	q = (es_resend_req){.from = 1, .to = SEQ_MAX + 1};
	assert_int_equal(es_resend_req_encode(&q, &json, &len), ES_EINVAL);
	q = (es_resend_req){.from = 1, .to = 1};
	memset(q.request_id, 'a', sizeof q.request_id); /* not terminated */
	assert_int_equal(es_resend_req_encode(&q, &json, &len), ES_EINVAL);
	assert_int_equal(es_resend_req_encode(NULL, &json, &len), ES_EINVAL);

	es_status_msg m = sample_status();
	m.boot_id[3] = 'x';
	assert_int_equal(es_status_encode(&m, &json, &len), ES_EINVAL);
	m = sample_status();
	m.acked_seq = 5, m.latest_seq = 4;
	assert_int_equal(es_status_encode(&m, &json, &len), ES_EINVAL);
	m = sample_status();
	m.pending = UINT64_MAX;
	assert_int_equal(es_status_encode(&m, &json, &len), ES_EINVAL);

	es_resend_reply r = {.from = 1, .to = 5, .status = (es_resend_status)17};
	assert_int_equal(es_resend_reply_encode(&r, &json, &len), ES_EINVAL);
	r.status = ES_RESEND_PARTIAL;
	r.sent_from = 4, r.sent_to = 6;
	assert_int_equal(es_resend_reply_encode(&r, &json, &len), ES_EINVAL);
	r.sent_to = 5;
	assert_int_equal(es_resend_reply_encode(&r, &json, &len), ES_OK);
	free(json);
	assert_int_equal(es_resend_reply_encode(&r, NULL, &len), ES_EINVAL);
}

static void outputs_untouched_on_failure(void **state)
{
	char *json = (char *)"untouched";
	size_t len = 99;
	es_resend_req q = {.from = 0, .to = 1};
	assert_int_equal(es_resend_req_encode(&q, &json, &len), ES_EINVAL);
	assert_string_equal(json, "untouched");
	assert_int_equal(len, 99);
}

/* A control message larger than the cap is refused unread; one that is not
 * UTF-8 before it is parsed. */
static void refuses_large_and_non_utf8_messages(void **state)
{
	size_t big = ES_CONTROL_MAX_BYTES + 1;
	char *text = malloc(big);
	assert_non_null(text);
	memset(text, ' ', big);
	memcpy(text, "{\"from\":1,\"to\":2}", 17);
	es_resend_req r;
	es_status_msg m;
	es_resend_reply rep;
	char why[96] = "";
	assert_int_equal(es_resend_req_decode(text, big, &r, why, sizeof why), ES_ETOOBIG);
	assert_string_equal(why, "json: message of 4097 bytes; the limit is 4096");
	assert_int_equal(es_status_decode(text, big, &m, NULL, 0), ES_ETOOBIG);
	assert_int_equal(es_resend_reply_decode(text, big, &rep, NULL, 0), ES_ETOOBIG);
	assert_int_equal(es_resend_req_decode(text, big - 1, &r, why, sizeof why), ES_OK);
	free(text);

	const char bad[] = "{\"from\":1,\"to\":2,\"request_id\":\"a\xff\xfe\"}";
	assert_int_equal(es_resend_req_decode(bad, sizeof bad - 1, &r, why, sizeof why), ES_EINVAL);
	assert_string_equal(why, "json: not valid UTF-8 (at byte 32)");
	const char ctl[] = "{\"from\":1,\"to\":2,\"request_id\":\"a\\u0001\"}";
	assert_int_equal(es_resend_req_decode(ctl, sizeof ctl - 1, &r, why, sizeof why), ES_EINVAL);
	assert_string_equal(why, "request_id: contains a control character");
	es_resend_req out = {.from = 1, .to = 1};
	strcpy(out.request_id, "a\xff");
	char *json;
	size_t len;
	assert_int_equal(es_resend_req_encode(&out, &json, &len), ES_EINVAL);
	es_resend_reply o2 = {.from = 1, .to = 1, .status = ES_RESEND_OK};
	strcpy(o2.request_id, "\x01");
	assert_int_equal(es_resend_reply_encode(&o2, &json, &len), ES_EINVAL);
}

/* The id of a refused request, as far as it can be read, valid to echo. */
static void reads_the_id_of_a_refused_request(void **state)
{
	char id[ES_REQUEST_ID_MAX];
	const char a[] = "{\"from\":0,\"to\":3,\"request_id\":\"q-1\"}";
	assert_true(es_resend_req_id(a, sizeof a - 1, id));
	assert_string_equal(id, "q-1");
	const char b[] = "{\"request_id\":\"ok\xff\xfe!\\u0007\"}";
	assert_true(es_resend_req_id(b, sizeof b - 1, id));
	assert_string_equal(id, "ok\xef\xbf\xbd\xef\xbf\xbd!\xef\xbf\xbd");
	char c[200];
	int n = snprintf(
		c, sizeof c, "{\"request_id\":\"%s\"}",
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	assert_true(es_resend_req_id(c, (size_t)n, id));
	assert_int_equal(strlen(id), 62); /* 31 characters of 2 bytes: no half one */
	assert_false(es_resend_req_id("{\"request_id\":5}", 16, id));
	assert_string_equal(id, "");
	assert_false(es_resend_req_id("not json", 8, id));
	assert_false(es_resend_req_id("[1]", 3, id));
	assert_false(es_resend_req_id(NULL, 0, id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_round_trip),
		cmocka_unit_test(req_round_trip),
		cmocka_unit_test(reply_round_trip),
		cmocka_unit_test(status_names),
		cmocka_unit_test(base_messages_are_valid),
		cmocka_unit_test(rejects_bad_fields),
		cmocka_unit_test(rejects_long_reason),
		cmocka_unit_test(rejects_bad_json),
		cmocka_unit_test(accepts_what_json_allows),
		cmocka_unit_test(why_is_bounded),
		cmocka_unit_test(encoders_refuse_what_decoders_reject),
		cmocka_unit_test(outputs_untouched_on_failure),
		cmocka_unit_test(refuses_large_and_non_utf8_messages),
		cmocka_unit_test(reads_the_id_of_a_refused_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
