/* batch_codings.c - es-bench-batch: what a batch coding makes of real
 * events. Reads events (one JSON line each, e.g. bench/demo-events.sh's),
 * cuts them into consecutive batches of each size asked for, encodes every
 * batch with es_batch_enc (common/batch.c) and, when the coding's
 * dictionary is one of this build's (or none), decodes it again with
 * es_batch_decode and checks that every event comes back as it was.
 * Prints, for each size, one line:
 *   batch label=L coding=C level=N size=S events=E batches=B payload=P
 *         per_event=X mqtt311_per_event=Y enc_us=U dec_us=V
 * payload: the batches' bytes; mqtt311_per_event adds an MQTT 3.1.1
 * PUBLISH's framing (fixed header, the batch topic of site "demo", node
 * "gw-1", packet id) and its PUBACK; enc_us, dec_us: CPU microseconds per
 * event. bench/batch-codings.sh runs it over the codings compared in
 * docs/decisions.md.
 *
 *   es-bench-batch --events FILE [--coding C] [--level N] [--dict FILE]
 *                  [--sizes 1,2,5,10,100] [--label L] [--max N]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "bench_util.h"
#include "topic.h"

#define PROG "es-bench-batch"

struct opts {
	const char *events, *dict_file, *label, *sizes;
	es_batch_coding coding;
	int level;
	size_t max;
};

struct corpus {
	char **ev;
	size_t *len;
	size_t n;
	char *dict;
	size_t dict_len;
};

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		bench_die(PROG, "%s: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1);
	size_t got;
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap)
			buf = realloc(buf, (cap *= 2) + 1);
	}
	fclose(f);
	if (!buf)
		bench_die(PROG, "out of memory reading %s", path);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Splits the events file into lines (kept in place). */
static void load(const struct opts *o, struct corpus *c)
{
	size_t len, cap = 1024;
	char *text = slurp(o->events, &len);
	c->ev = malloc(cap * sizeof *c->ev);
	c->len = malloc(cap * sizeof *c->len);
	for (char *line = text; line && *line && c->n < o->max;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (*line) {
			if (c->n == cap) {
				cap *= 2;
				c->ev = realloc(c->ev, cap * sizeof *c->ev);
				c->len = realloc(c->len, cap * sizeof *c->len);
			}
			if (!c->ev || !c->len)
				bench_die(PROG, "out of memory");
			c->ev[c->n] = line;
			c->len[c->n++] = strlen(line);
		}
		line = nl ? nl + 1 : NULL;
	}
	if (c->n == 0)
		bench_die(PROG, "%s has no events", o->events);
	if (o->dict_file)
		c->dict = slurp(o->dict_file, &c->dict_len);
}

/* MQTT 3.1.1 framing around a payload of len bytes on topic: the fixed
 * header (1 + the remaining length's bytes), the topic, the packet id; and
 * the PUBACK (4 bytes). */
static size_t mqtt311(size_t len, size_t topic_len)
{
	size_t rem = 2 + topic_len + 2 + len, vbi = 1;
	for (size_t r = rem; r > 127; r /= 128)
		vbi++;
	return 1 + vbi + rem + 4;
}

struct tally {
	size_t batches, events, payload, framed;
	double enc_s, dec_s;
	bool decoded;
};

static void check_round_trip(const struct corpus *c, size_t first, size_t n, const void *p,
			     size_t len, const es_batch_coding *coding, struct tally *t)
{
	es_batch *b;
	char why[160];
	double t0 = bench_cpu_s();
	if (es_batch_decode(p, len, coding, NULL, &b, why, sizeof why))
		bench_die(PROG, "a batch did not decode: %s", why);
	t->dec_s += bench_cpu_s() - t0;
	if (es_batch_count(b) != n)
		bench_die(PROG, "a batch of %zu decoded to %zu events", n, es_batch_count(b));
	for (size_t i = 0; i < n; i++) {
		size_t l;
		const char *j = es_batch_json(b, i, &l);
		if (l != c->len[first + i] || memcmp(j, c->ev[first + i], l) != 0)
			bench_die(PROG, "event %zu of a batch came back different", i);
	}
	es_batch_free(b);
	t->decoded = true;
}

static void one_batch(es_batch_enc *e, const struct corpus *c, size_t first, size_t n,
		      const es_batch_coding *coding, bool verify, struct tally *t)
{
	const void *p;
	size_t len;
	double t0 = bench_cpu_s();
	es_batch_enc_reset(e);
	for (size_t i = first; i < first + n; i++)
		if (es_batch_enc_add(e, c->ev[i], c->len[i]))
			bench_die(PROG, "event %zu does not fit a batch", i);
	if (es_batch_enc_finish(e, &p, &len))
		bench_die(PROG, "a batch did not compress");
	t->enc_s += bench_cpu_s() - t0;
	char topic[ES_TOPIC_MAX];
	es_batch_topic(topic, sizeof topic, "edgespool", "demo", "gw-1", coding);
	t->batches++;
	t->events += n;
	t->payload += len;
	t->framed += mqtt311(len, strlen(topic));
	if (verify)
		check_round_trip(c, first, n, p, len, coding, t);
}

static void measure(const struct opts *o, const struct corpus *c, size_t size)
{
	es_batch_enc_opts eo = {.coding = o->coding,
				.level = o->level,
				.max_events = size,
				.max_bytes = ES_BATCH_MAX_BYTES_DEFAULT,
				.dict_bytes = c->dict,
				.dict_len = c->dict_len};
	es_batch_enc *e;
	if (es_batch_enc_new(&eo, &e))
		bench_die(PROG, "cannot make an encoder for this coding and level");
	bool verify = !c->dict;
	struct tally t = {0};
	for (size_t first = 0; first + size <= c->n; first += size)
		one_batch(e, c, first, size, &o->coding, verify, &t);
	es_batch_enc_free(e);
	char dec[32] = "-";
	if (t.decoded)
		snprintf(dec, sizeof dec, "%.2f", t.dec_s * 1e6 / (double)t.events);
	printf("batch label=%s coding=%s%s%s level=%d size=%zu events=%zu batches=%zu payload=%zu "
	       "per_event=%.1f mqtt311_per_event=%.1f enc_us=%.2f dec_us=%s\n",
	       o->label, es_batch_codec_name(o->coding.codec), o->coding.dict[0] ? "," : "",
	       o->coding.dict, o->level, size, t.events, t.batches, t.payload,
	       (double)t.payload / (double)t.events, (double)t.framed / (double)t.events,
	       t.enc_s * 1e6 / (double)t.events, dec);
}

static void usage(void)
{
	fprintf(stderr, "usage: " PROG " --events FILE [--coding C] [--level N] [--dict FILE]\n"
			"                      [--sizes 1,2,5,10,100] [--label L] [--max N]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	const char *why;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			usage();
		if (strcmp(a, "--events") == 0)
			o->events = v;
		else if (strcmp(a, "--coding") == 0 && es_batch_coding_parse(v, &o->coding, &why))
			bench_die(PROG, "--coding %s %s", v, why);
		else if (strcmp(a, "--level") == 0)
			o->level = atoi(v);
		else if (strcmp(a, "--dict") == 0)
			o->dict_file = v;
		else if (strcmp(a, "--sizes") == 0)
			o->sizes = v;
		else if (strcmp(a, "--label") == 0)
			o->label = v;
		else if (strcmp(a, "--max") == 0)
			o->max = (size_t)strtoull(v, NULL, 10);
		else if (strcmp(a, "--coding") != 0)
			usage();
		i++;
	}
	if (!o->events)
		usage();
}

int main(int argc, char **argv)
{
	struct opts o = {.label = "-", .sizes = "1,2,5,10,100", .max = SIZE_MAX};
	struct corpus c = {0};
	parse(argc, argv, &o);
	load(&o, &c);
	if (o.dict_file && !o.coding.dict[0])
		snprintf(o.coding.dict, sizeof o.coding.dict, "file");
	for (const char *s = o.sizes; *s;) {
		char *end;
		unsigned long long size = strtoull(s, &end, 10);
		if (size == 0 || (*end && *end != ','))
			usage();
		measure(&o, &c, (size_t)size);
		s = *end ? end + 1 : end;
	}
	return 0;
}
