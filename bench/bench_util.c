#include "bench_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* A stamp as the journal makes it: a UUIDv7-length id, a 7-digit sequence. */
#define SAMPLE_ID      "01900000-0000-7000-8000-000000000000"
#define SAMPLE_SEQ     1000000u
#define SAMPLE_TIME_MS 1700000000123u

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_mono_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

double bench_wall_s(void)
{
	return clock_s(CLOCK_REALTIME);
}

double bench_cpu_s(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void bench_pause_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

bool bench_parse_count(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return false;
	if (*end == 'k' || *end == 'K')
		v *= 1000, end++;
	else if (*end == 'M')
		v *= 1000000, end++;
	if (*end || v == 0)
		return false;
	*out = v;
	return true;
}

void bench_die(const char *prog, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

void bench_raw_payload(char *buf, size_t len, uint64_t i)
{
	int n = snprintf(buf, len + 1, "{\"n\":%" PRIu64 ",\"pad\":\"", i);
	size_t at = n > 0 ? (size_t)n : 0;
	if (at > len)
		at = len;
	memset(buf + at, 'x', len - at);
	if (len >= 2) {
		buf[len - 2] = '"';
		buf[len - 1] = '}';
	}
	buf[len] = '\0';
}

size_t bench_event_data(char *buf, size_t cap, uint64_t i, size_t pad)
{
	int n = snprintf(buf, cap, "{\"n\":%" PRIu64 ",\"temp_c\":21.5,\"pad\":\"", i);
	if (n < 0 || (size_t)n + pad + 3 > cap)
		return 0;
	size_t at = (size_t)n;
	memset(buf + at, 'x', pad);
	at += pad;
	memcpy(buf + at, "\"}", 3);
	return at + 2;
}

es_err bench_event_make(uint64_t i, size_t pad, es_event **out)
{
	char data[4096], subject[32];
	if (!bench_event_data(data, sizeof data, i, pad))
		return ES_ETOOBIG;
	snprintf(subject, sizeof subject, "dev-%04" PRIu64, i % 1000);
	return es_event_new(BENCH_TYPE, subject, data, out, NULL);
}

/* The size of event i's stored encoding with the given filler. */
static es_err encoded_size(size_t pad, size_t *size)
{
	es_event *ev;
	char *json;
	es_err err = bench_event_make(SAMPLE_SEQ, pad, &ev);
	if (err)
		return err;
	err = es_event_stamp(ev, SAMPLE_ID, BENCH_SOURCE, SAMPLE_TIME_MS, SAMPLE_SEQ);
	if (!err)
		err = es_event_encode(ev, 0, &json, size);
	if (!err)
		free(json);
	es_event_free(ev);
	return err;
}

es_err bench_event_pad(size_t target, size_t *pad, size_t *encoded)
{
	size_t base;
	es_err err = encoded_size(0, &base);
	if (err)
		return err;
	size_t p = target > base ? target - base : 0;
	if ((err = encoded_size(p, encoded)))
		return err;
	*pad = p;
	return ES_OK;
}
