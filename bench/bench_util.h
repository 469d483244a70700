/* bench_util.h - small helpers shared by the benchmark programs: clocks,
 * number parsing, the ~300 B payloads and a result line the scripts parse.
 *
 * Every program prints its figures as one line "<name> key=value ..." on
 * stdout (bench/run.sh reads the keys); everything else goes to stderr.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "event.h"

/* The node every benchmark agent runs as, and the event type it sends. */
#define BENCH_SITE   "lab"
#define BENCH_NODE   "bench"
#define BENCH_SOURCE "/" BENCH_SITE "/" BENCH_NODE
#define BENCH_TYPE   "sensor.reading"
#define BENCH_TOPIC  "edgespool/" BENCH_SITE "/" BENCH_NODE "/ev/" BENCH_TYPE

/* Monotonic and wall clocks, in seconds. */
double bench_mono_s(void);
double bench_wall_s(void);

/* CPU time (user + system) this process has used, in seconds. */
double bench_cpu_s(void);

/* Sleeps ms milliseconds: only for the pacing of polling loops. */
void bench_pause_ms(unsigned ms);

/* Parses a decimal count ("100000", "100k", "1M"); false if invalid or 0. */
bool bench_parse_count(const char *s, uint64_t *out);

/* Prints "<prog>: <message>" to stderr and exits with status 1. */
_Noreturn void bench_die(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Writes exactly len bytes of JSON-looking text (for the raw publishers) into
 * buf[0..len), numbered i; buf needs len + 1 bytes (a NUL is added). */
void bench_raw_payload(char *buf, size_t len, uint64_t i);

/* The `data` object of short-form event i, padded with pad filler bytes,
 * into buf. Returns the length, or 0 if it does not fit. */
size_t bench_event_data(char *buf, size_t cap, uint64_t i, size_t pad);

/* The filler that makes the CloudEvent the journal stores for a short-form
 * event (type, subject, data; stamped with id, source, time, sequence) come
 * to about target bytes. *encoded gets the size it measured. */
es_err bench_event_pad(size_t target, size_t *pad, size_t *encoded);

/* Makes short-form event i the way HTTP ingest would after parsing. */
es_err bench_event_make(uint64_t i, size_t pad, es_event **out);

#endif
