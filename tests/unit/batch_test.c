/* batch_test.c - the uplink's batch codec (common/batch.c): codings, topics
 * and properties, round trips for every coding with and without a
 * dictionary, the encoder's caps, and what a reader refuses (with a reason)
 * and what it keeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "batch.h"
#include "event.h"

#define WHY 256

/* A valid event, the n-th of a sensor's readings (about 300 bytes). */
static size_t event_json(unsigned n, char *buf, size_t cap)
{
	int len = snprintf(buf, cap,
			   "{\"specversion\":\"1.0\",\"id\":\"0193a0b2-7c3e-7d21-9a4b-%012x\","
			   "\"source\":\"/site-1/gw-7\",\"type\":\"sensor.reading\","
			   "\"subject\":\"dev-%u\",\"time\":\"2026-11-27T10:00:%02u.123Z\","
			   "\"datacontenttype\":\"application/json\",\"seq\":%u,"
			   "\"data\":{\"kind\":\"temperature\",\"value\":%u.5,\"unit\":\"C\"}}",
			   n, n % 8, n % 60, n + 1, 18 + n % 7);
	assert_true(len > 0 && (size_t)len < cap);
	return (size_t)len;
}

static es_batch_coding coding_of(const char *text)
{
	es_batch_coding c;
	const char *why = NULL;
	assert_int_equal(es_batch_coding_parse(text, &c, &why), ES_OK);
	return c;
}

static es_batch_enc *encoder(const char *coding, size_t max_events, size_t max_bytes)
{
	es_batch_enc_opts o = {
		.coding = coding_of(coding), .max_events = max_events, .max_bytes = max_bytes};
	es_batch_enc *e = NULL;
	assert_int_equal(es_batch_enc_new(&o, &e), ES_OK);
	return e;
}

/* n events through an encoder of coding, decoded back: each text as given
 * and each a valid event. Returns the compressed size. */
static size_t round_trip(const char *coding, unsigned n)
{
	es_batch_enc *e = encoder(coding, 0, 0);
	char json[512], why[WHY] = "";
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(es_batch_enc_add(e, json, event_json(i, json, sizeof json)),
				 ES_OK);
	assert_int_equal(es_batch_enc_count(e), n);
	const void *payload;
	size_t len;
	assert_int_equal(es_batch_enc_finish(e, &payload, &len), ES_OK);
	es_batch *b = NULL;
	es_batch_coding c = coding_of(coding);
	assert_int_equal(es_batch_decode(payload, len, &c, NULL, &b, why, sizeof why), ES_OK);
	assert_int_equal(es_batch_count(b), n);
	for (unsigned i = 0; i < n; i++) {
		size_t jl, got;
		const char *text = es_batch_json(b, i, &got);
		jl = event_json(i, json, sizeof json);
		assert_int_equal(got, jl);
		assert_memory_equal(text, json, jl);
		es_event *ev = NULL;
		es_verr v;
		assert_int_equal(es_batch_event_decode(b, i, &ev, &v), ES_OK);
		assert_string_equal(es_event_type(ev), "sensor.reading");
		es_event_free(ev);
	}
	es_batch_free(b);
	es_batch_enc_free(e);
	return len;
}

static void round_trips_every_coding(void **state)
{
	(void)state;
	size_t identity = round_trip("identity", 100);
	size_t deflate = round_trip("deflate", 100);
	size_t zstd = round_trip("zstd", 100);
	size_t deflate_d = round_trip("deflate,d1", 100);
	size_t zstd_d = round_trip("zstd,d1", 100);
	/* Compression compresses; a single event too (the dictionary's case). */
	assert_true(deflate < identity / 4 && zstd < identity / 4);
	assert_true(deflate_d < identity / 4 && zstd_d < identity / 4);
	assert_true(round_trip("zstd,d1", 1) < round_trip("identity", 1));
	assert_true(round_trip("deflate,d1", 1) <= round_trip("deflate", 1));
}

/* The encoder is reused: a second batch after reset holds only its own. */
static void encoder_reuse_and_caps(void **state)
{
	(void)state;
	char json[512];
	size_t jl = event_json(1, json, sizeof json);
	es_batch_enc *e = encoder("zstd", 3, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(es_batch_enc_add(e, json, jl), ES_OK);
	assert_int_equal(es_batch_enc_add(e, json, jl), ES_EFULL);
	es_batch_enc_reset(e);
	assert_int_equal(es_batch_enc_count(e), 0);
	assert_int_equal(es_batch_enc_add(e, json, jl), ES_OK);
	const void *p;
	size_t len;
	assert_int_equal(es_batch_enc_finish(e, &p, &len), ES_OK);
	es_batch *b = NULL;
	es_batch_coding c = coding_of("zstd");
	assert_int_equal(es_batch_decode(p, len, &c, NULL, &b, NULL, 0), ES_OK);
	assert_int_equal(es_batch_count(b), 1);
	es_batch_free(b);
	es_batch_enc_free(e);

	/* The byte cap: two events fit in 2.5 events' bytes, not three; one
	 * event larger than the cap alone is too big. */
	e = encoder("deflate", 0, jl * 5 / 2);
	assert_int_equal(es_batch_enc_add(e, json, jl), ES_OK);
	assert_int_equal(es_batch_enc_add(e, json, jl), ES_OK);
	assert_int_equal(es_batch_enc_add(e, json, jl), ES_EFULL);
	assert_true(es_batch_enc_json_bytes(e) <= jl * 5 / 2);
	es_batch_enc_free(e);
	e = encoder("identity", 0, 64);
	assert_int_equal(es_batch_enc_add(e, json, jl), ES_ETOOBIG);
	assert_int_equal(es_batch_enc_finish(e, &p, &len), ES_EINVAL); /* empty */
	es_batch_enc_free(e);
	es_batch_enc_free(NULL);
	es_batch_free(NULL);
}

static void codings_and_topics(void **state)
{
	(void)state;
	es_batch_coding c;
	const char *why = NULL;
	char buf[128];
	c = coding_of("zstd,d1");
	assert_int_equal(c.codec, ES_BATCH_ZSTD);
	assert_string_equal(c.dict, "d1");
	assert_int_equal(es_batch_topic(buf, sizeof buf, "edgespool", "site-1", "gw-7", &c), ES_OK);
	assert_string_equal(buf, "edgespool/site-1/gw-7/batch/ce=zstd,d1");
	c = coding_of("identity");
	assert_int_equal(es_batch_token(&c, buf, sizeof buf), ES_OK);
	assert_string_equal(buf, "ce=identity");
	assert_int_equal(es_batch_token(&c, buf, 5), ES_ETOOBIG);
	assert_int_equal(es_batch_coding_parse("gzip", &c, &why), ES_EINVAL);
	assert_non_null(strstr(why, "unknown codec"));
	assert_int_equal(es_batch_coding_parse("zstd,d99", &c, &why), ES_EINVAL);
	assert_non_null(strstr(why, "does not have"));
	assert_int_equal(es_batch_coding_parse("zstd,D1", &c, &why), ES_EINVAL);
	assert_int_equal(es_batch_coding_parse("identity,d1", &c, &why), ES_EINVAL);
	assert_int_equal(es_batch_coding_parse("zstd,", &c, &why), ES_EINVAL);

	es_mqtt_prop pairs[2];
	es_mqtt_props props;
	c = coding_of("deflate,d1");
	es_batch_props(&c, pairs, &props);
	assert_string_equal(props.content_type, ES_BATCH_CONTENT_TYPE);
	assert_int_equal(props.nuser, 2);
	assert_string_equal(props.user[0].name, "content-encoding");
	assert_string_equal(props.user[0].value, "deflate");
	assert_string_equal(props.user[1].value, "d1");
	es_batch_meta meta;
	es_batch_meta_from_props(&props, &meta);
	assert_string_equal(meta.encoding, "deflate");
	assert_string_equal(meta.dict, "d1");
}

static es_err classify(const char *where, char sep, const es_batch_meta *meta, bool *is_batch,
		       es_batch_coding *c, char *why)
{
	*is_batch = false;
	return es_batch_classify(where, sep, meta, is_batch, c, why, WHY);
}

static void classify_by_topic_and_properties(void **state)
{
	(void)state;
	bool is;
	es_batch_coding c;
	char why[WHY] = "";
	es_batch_meta agree = {ES_BATCH_CONTENT_TYPE, "zstd", "d1"};
	assert_int_equal(classify("r/s/n/batch/ce=zstd,d1", '/', &agree, &is, &c, why), ES_OK);
	assert_true(is);
	assert_int_equal(c.codec, ES_BATCH_ZSTD);
	assert_string_equal(c.dict, "d1");
	/* Without properties (MQTT 3.1.1), the topic alone; AMQP's keys too. */
	assert_int_equal(classify("r/s/n/batch/ce=deflate", '/', NULL, &is, &c, why), ES_OK);
	assert_true(is && c.codec == ES_BATCH_DEFLATE && !c.dict[0]);
	assert_int_equal(classify("r.s.n.batch.ce=identity", '.', NULL, &is, &c, why), ES_OK);
	assert_true(is && c.codec == ES_BATCH_IDENTITY);
	/* An event is not a batch, with or without properties. */
	es_batch_meta json = {"application/cloudevents+json", NULL, NULL};
	assert_int_equal(classify("r/s/n/ev/sensor.reading", '/', &json, &is, &c, why), ES_OK);
	assert_false(is);

	/* Disagreements are refused, with a reason. */
	es_batch_meta enc = {ES_BATCH_CONTENT_TYPE, "deflate", "d1"};
	assert_int_equal(classify("r/s/n/batch/ce=zstd,d1", '/', &enc, &is, &c, why), ES_EINVAL);
	assert_non_null(strstr(why, "the properties say 'deflate'"));
	es_batch_meta dict = {ES_BATCH_CONTENT_TYPE, "zstd", "d2"};
	assert_int_equal(classify("r/s/n/batch/ce=zstd,d1", '/', &dict, &is, &c, why), ES_EINVAL);
	assert_non_null(strstr(why, "dictionary 'd2'"));
	es_batch_meta nodict = {ES_BATCH_CONTENT_TYPE, "zstd", "d1"};
	assert_int_equal(classify("r/s/n/batch/ce=zstd", '/', &nodict, &is, &c, why), ES_EINVAL);
	assert_int_equal(classify("r/s/n/batch/ce=zstd", '/', &json, &is, &c, why), ES_EINVAL);
	assert_non_null(strstr(why, "content type"));
	assert_int_equal(classify("r/s/n/ev/x", '/', &agree, &is, &c, why), ES_EINVAL);
	assert_non_null(strstr(why, "not a batch topic"));
	assert_int_equal(classify("r/s/n/batch/ce=brotli", '/', NULL, &is, &c, why), ES_EINVAL);
	assert_non_null(strstr(why, "unknown codec"));
	assert_int_equal(classify("r/s/n/batch/ce=zstd,d7", '/', NULL, &is, &c, why), ES_EINVAL);
	assert_false(is);
}

static es_err decode_text(const char *text, const char *coding, es_batch **b, char *why)
{
	es_batch_coding c = coding_of(coding);
	return es_batch_decode(text, strlen(text), &c, NULL, b, why, WHY);
}

/* Structure errors refuse the whole batch, with where. */
static void malformed_arrays_refused(void **state)
{
	(void)state;
	static const struct {
		const char *text, *reason;
	} bad[] = {
		{"{\"specversion\":\"1.0\"}", "not a JSON array"},
		{"", "not a JSON array"},
		{"[]", "an empty batch"},
		{"[{\"a\":1},]", "an empty element"},
		{"[{\"a\":1},,{}]", "an empty element"},
		{"[{\"a\":1}", "truncated"},
		{"[{\"a\":\"x}]", "truncated: a string"},
		{"[{\"a\":1}] x", "data after the array"},
		{"[{\"a\":1]]", "does not match"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		es_batch *b = NULL;
		char why[WHY] = "";
		assert_int_equal(decode_text(bad[i].text, "identity", &b, why), ES_EINVAL);
		assert_null(b);
		if (!strstr(why, bad[i].reason))
			fail_msg("'%s': reason '%s', wanted '%s'", bad[i].text, why, bad[i].reason);
	}
}

/* One bad event costs only itself: the others decode, and the bad one
 * says which element and what. */
static void bad_event_alone_refused(void **state)
{
	(void)state;
	char good0[512], good2[512], text[2048];
	event_json(0, good0, sizeof good0);
	event_json(2, good2, sizeof good2);
	snprintf(text, sizeof text,
		 "[%s, {\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"/s\"} ,%s,42]", good0,
		 good2);
	es_batch *b = NULL;
	char why[WHY] = "";
	assert_int_equal(decode_text(text, "identity", &b, why), ES_OK);
	assert_int_equal(es_batch_count(b), 4);
	es_event *ev = NULL;
	es_verr v;
	assert_int_equal(es_batch_event_decode(b, 0, &ev, &v), ES_OK);
	es_event_free(ev);
	ev = NULL;
	assert_int_equal(es_batch_event_decode(b, 1, &ev, &v), ES_EINVAL);
	assert_null(ev);
	assert_string_equal(v.field, "[1].type");
	assert_true(v.reason[0] != '\0');
	assert_int_equal(es_batch_event_decode(b, 2, &ev, &v), ES_OK);
	assert_string_equal(es_event_subject(ev), "dev-2");
	es_event_free(ev);
	ev = NULL;
	assert_int_equal(es_batch_event_decode(b, 3, &ev, &v), ES_EINVAL);
	assert_int_equal(strncmp(v.field, "[3]", 3), 0);
	es_batch_free(b);
}

/* 8 MiB of JSON white space (twice the limit) in a tiny payload: refused,
 * never inflated whole. */
static void zip_bomb_refused(void **state)
{
	(void)state;
	size_t n = 8u << 20;
	unsigned char *big = malloc(n);
	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '[';
	memcpy(big + n - 3, "{}]", 3);
	uLongf zlen = compressBound((uLong)n);
	unsigned char *z = malloc(zlen);
	size_t zcap = ZSTD_compressBound(n);
	unsigned char *zs = malloc(zcap);
	assert_true(z && zs);
	assert_int_equal(compress2(z, &zlen, big, (uLong)n, 9), Z_OK);
	size_t zslen = ZSTD_compress(zs, zcap, big, n, 3);
	assert_false(ZSTD_isError(zslen));
	assert_true(zlen < 64 * 1024 && zslen < 64 * 1024);

	es_batch *b = NULL;
	char why[WHY] = "";
	es_batch_coding c = coding_of("deflate");
	assert_int_equal(es_batch_decode(z, zlen, &c, NULL, &b, why, sizeof why), ES_ETOOBIG);
	assert_non_null(strstr(why, "larger than"));
	assert_null(b);
	c = coding_of("zstd");
	why[0] = '\0';
	assert_int_equal(es_batch_decode(zs, zslen, &c, NULL, &b, why, sizeof why), ES_ETOOBIG);
	assert_non_null(strstr(why, "larger than"));
	/* A small limit refuses what an encoder made within its own caps. */
	es_batch_limits lim = {.max_bytes = 1024};
	es_batch_enc *e = encoder("zstd,d1", 0, 0);
	char json[512];
	for (unsigned i = 0; i < 20; i++)
		assert_int_equal(es_batch_enc_add(e, json, event_json(i, json, sizeof json)),
				 ES_OK);
	const void *p;
	size_t len;
	assert_int_equal(es_batch_enc_finish(e, &p, &len), ES_OK);
	c = coding_of("zstd,d1");
	assert_int_equal(es_batch_decode(p, len, &c, &lim, &b, why, sizeof why), ES_ETOOBIG);
	lim = (es_batch_limits){.max_events = 10};
	assert_int_equal(es_batch_decode(p, len, &c, &lim, &b, why, sizeof why), ES_ETOOBIG);
	assert_non_null(strstr(why, "more events"));
	es_batch_enc_free(e);
	free(big);
	free(z);
	free(zs);
}

/* Damaged compressed data: refused, with a reason, whatever the damage. */
static void bad_compression_refused(void **state)
{
	(void)state;
	const char *codings[] = {"deflate", "zstd", "deflate,d1", "zstd,d1"};
	for (size_t k = 0; k < 4; k++) {
		es_batch_enc *e = encoder(codings[k], 0, 0);
		char json[512], why[WHY];
		for (unsigned i = 0; i < 10; i++)
			assert_int_equal(
				es_batch_enc_add(e, json, event_json(i, json, sizeof json)), ES_OK);
		const void *p;
		size_t len;
		assert_int_equal(es_batch_enc_finish(e, &p, &len), ES_OK);
		es_batch_coding c = coding_of(codings[k]);
		es_batch *b = NULL;
		/* Truncated. */
		why[0] = '\0';
		assert_int_equal(es_batch_decode(p, len / 2, &c, NULL, &b, why, WHY), ES_EINVAL);
		assert_true(why[0] != '\0');
		/* Trailing bytes. */
		unsigned char *more = malloc(len + 4);
		assert_non_null(more);
		memcpy(more, p, len);
		memcpy(more + len, "junk", 4);
		why[0] = '\0';
		assert_int_equal(es_batch_decode(more, len + 4, &c, NULL, &b, why, WHY), ES_EINVAL);
		assert_non_null(strstr(why, "after the end"));
		/* Corrupt: not compressed at all. */
		why[0] = '\0';
		assert_int_equal(es_batch_decode("[{\"a\":1}]", 9, &c, NULL, &b, why, WHY),
				 ES_EINVAL);
		assert_true(why[0] != '\0');
		/* Made with a dictionary, read without: refused, not garbled. */
		es_batch_coding other = c;
		other.dict[0] = '\0';
		why[0] = '\0';
		if (c.dict[0]) {
			assert_int_equal(es_batch_decode(p, len, &other, NULL, &b, why, WHY),
					 ES_EINVAL);
			assert_non_null(strstr(why, "dictionary"));
		}
		assert_null(b);
		free(more);
		es_batch_enc_free(e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trips_every_coding),
		cmocka_unit_test(encoder_reuse_and_caps),
		cmocka_unit_test(codings_and_topics),
		cmocka_unit_test(classify_by_topic_and_properties),
		cmocka_unit_test(malformed_arrays_refused),
		cmocka_unit_test(bad_event_alone_refused),
		cmocka_unit_test(zip_bomb_refused),
		cmocka_unit_test(bad_compression_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
