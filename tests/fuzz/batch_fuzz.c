/* batch_fuzz.c - libFuzzer target for the uplink's batch decoder
 * (common/batch.c): what a cloud-side reader does with a received batch.
 *
 * The input's first byte picks the coding (identity, deflate, zstd, each
 * compressed one with and without dictionary d1); the rest is the payload.
 * es_batch_decode runs on it with small limits (64 KiB decompressed, 200
 * events), then es_batch_event_decode on each element. Invariants:
 *  - a decoded batch has at least one element, each non-empty and as long
 *    as its text;
 *  - its elements, encoded again with the same coding, decode to the same
 *    texts (what the cloud role would republish is what came);
 *  - a failure always says why.
 * Any difference abort()s; the sanitizers catch the rest (a zip bomb that
 * is inflated whole shows as ASan's allocation limit). Built by
 * tests/fuzz/run_fuzz.sh, and with replay_main.c by CMake. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const codings[] = {"identity", "deflate", "zstd", "deflate,d1", "zstd,d1"};

static const es_batch_limits lim = {.max_bytes = 64 * 1024, .max_events = 200};

/* The elements of b, encoded again with c and decoded: the same texts. */
static void again(const es_batch *b, const es_batch_coding *c)
{
	es_batch_enc_opts o = {.coding = *c, .max_events = 200, .max_bytes = 256 * 1024};
	es_batch_enc *e;
	if (es_batch_enc_new(&o, &e))
		abort();
	for (size_t i = 0; i < es_batch_count(b); i++) {
		size_t len;
		const char *json = es_batch_json(b, i, &len);
		if (es_batch_enc_add(e, json, len))
			abort();
	}
	const void *p;
	size_t len;
	es_batch *b2;
	char why[256] = "";
	if (es_batch_enc_finish(e, &p, &len) ||
	    es_batch_decode(p, len, c, &lim, &b2, why, sizeof why))
		abort();
	if (es_batch_count(b2) != es_batch_count(b))
		abort();
	for (size_t i = 0; i < es_batch_count(b); i++) {
		size_t l1, l2;
		const char *j1 = es_batch_json(b, i, &l1), *j2 = es_batch_json(b2, i, &l2);
		if (l1 != l2 || memcmp(j1, j2, l1) != 0)
			abort();
	}
	es_batch_free(b2);
	es_batch_enc_free(e);
}

static void check_elements(const es_batch *b)
{
	if (es_batch_count(b) == 0)
		abort();
	for (size_t i = 0; i < es_batch_count(b); i++) {
		size_t len;
		const char *json = es_batch_json(b, i, &len);
		if (!json || len == 0 || strlen(json) > len)
			abort();
		es_event *ev = NULL;
		es_verr v;
		if (es_batch_event_decode(b, i, &ev, &v) == ES_OK)
			es_event_free(ev);
		else if (!v.field[0] || v.field[0] != '[')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	es_batch_coding c;
	const char *what;
	if (es_batch_coding_parse(codings[data[0] % 5], &c, &what))
		abort();
	es_batch *b = NULL;
	char why[256] = "";
	es_err err = es_batch_decode(data + 1, size - 1, &c, &lim, &b, why, sizeof why);
	if (err) {
		if (b || (err != ES_ENOMEM && !why[0]))
			abort();
		return 0;
	}
	check_elements(b);
	again(b, &c);
	es_batch_free(b);
	return 0;
}
