/* es-bench-raw: the baseline. A plain paho MQTTAsync QoS 1 publisher: N
 * messages of SIZE bytes, at most WINDOW unacknowledged, as fast as the
 * broker acknowledges them. Prints events/s from the first publish to the
 * last PUBACK (after a warm-up that is not counted). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "mqtt_wait.h"

#define PROG	  "es-bench-raw"
#define TIMEOUT_S 60.0

struct opts {
	char uri[256];
	uint64_t n, warmup;
	int window;
	size_t size;
};

static void usage(void)
{
	fprintf(stderr, "usage: " PROG " --url mqtt://127.0.0.1:PORT [-n EVENTS] [-w WINDOW] "
			"[-s BYTES] [--warmup EVENTS]\n");
	exit(2);
}

/* "mqtt://h:p" -> "tcp://h:p"; anything else is taken as paho's form. */
static void set_uri(struct opts *o, const char *url)
{
	if (strncmp(url, "mqtt://", 7) == 0)
		snprintf(o->uri, sizeof o->uri, "tcp://%s", url + 7);
	else
		snprintf(o->uri, sizeof o->uri, "%s", url);
}

/* Stores a numeric option; false for an unknown one or out of range. */
static bool set_count(struct opts *o, int c, uint64_t v)
{
	switch (c) {
	case 'n':
		o->n = v;
		return true;
	case 'w':
		o->window = (int)v;
		return v <= 65535;
	case 's':
		o->size = (size_t)v;
		return v >= 16 && v <= 1000000;
	case 'W':
		o->warmup = v;
		return true;
	default:
		return false;
	}
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{"url", required_argument, NULL, 'u'},	  {"events", required_argument, NULL, 'n'},
		{"window", required_argument, NULL, 'w'}, {"size", required_argument, NULL, 's'},
		{"warmup", required_argument, NULL, 'W'}, {NULL, 0, NULL, 0}};
	*o = (struct opts){.n = 100000, .warmup = 1000, .window = 100, .size = 300};
	uint64_t v;
	int c;
	while ((c = getopt_long(argc, argv, "u:n:w:s:W:", longs, NULL)) != -1) {
		if (c == 'u')
			set_uri(o, optarg);
		else if (c == '?' || !bench_parse_count(optarg, &v) || !set_count(o, c, v))
			usage();
	}
	if (!o->uri[0])
		usage();
}

/* Publishes n messages numbered from first and waits for every PUBACK. */
static int run(bench_mqtt *m, const struct opts *o, char *payload, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++) {
		bench_raw_payload(payload, o->size, i);
		if (bench_mqtt_publish(m, BENCH_TOPIC, payload, o->size, o->window, TIMEOUT_S))
			return -1;
	}
	return bench_mqtt_drain(m, TIMEOUT_S);
}

int main(int argc, char **argv)
{
	struct opts o;
	bench_mqtt m;
	parse(argc, argv, &o);
	char *payload = malloc(o.size + 1);
	if (!payload)
		bench_die(PROG, "out of memory");
	if (bench_mqtt_open(&m, o.uri, "es-bench-raw", o.window, 10.0))
		bench_die(PROG, "cannot connect to %s", o.uri);
	int rc = run(&m, &o, payload, 0, o.warmup);
	double t0 = bench_mono_s(), cpu0 = bench_cpu_s();
	if (!rc)
		rc = run(&m, &o, payload, o.warmup, o.n);
	double secs = bench_mono_s() - t0, cpu = bench_cpu_s() - cpu0;
	bench_mqtt_close(&m);
	free(payload);
	if (rc)
		bench_die(PROG, "publishing failed or timed out");
	printf("raw n=%" PRIu64 " bytes=%zu window=%d s=%.3f rate=%.0f cpu_us=%.1f\n", o.n, o.size,
	       o.window, secs, (double)o.n / secs, cpu * 1e6 / (double)o.n);
	return 0;
}
