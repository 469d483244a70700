/* es-bench-cloud-sub: the cloud-side subscriber of bench/bridge.sh.
 *
 * A plain paho MQTTAsync client (QoS 1, clean session) subscribes to FILTER
 * on the cloud broker and counts the events that arrive: every message, and
 * the distinct CloudEvent ids among them (the "id" is taken out of the
 * payload and kept in a hash set). It stops when N distinct ids have
 * arrived and prints the wall-clock time of that moment, so the script can
 * time a run from the first POST at the agent to the last event in the cloud.
 *
 * Readiness: with --probe URL it also connects to the edge broker and
 * publishes a probe event there (QoS 1, a new node name each time, sequence
 * 1, its node's status a round before, so a bridge forwards it like any
 * event) every 100 ms until one comes
 * out on the cloud side. That proves the whole path (edge subscription,
 * bridge, cloud connection, this subscription) before the load starts. It
 * then prints "ready ..." on stdout. Probes are not counted.
 *
 * Output on stdout: "ready probes=K ms=T", then one result line
 * "cloud_sub n=N msgs=M distinct=D dups=X noid=I overflow=O qos0=Q first_wall=S
 * done_wall=S cpu_us=U" (noid: messages without an id; qos0: messages that
 * arrived at QoS 0, which a QoS 1 path never delivers).
 * Exit status 1 on a timeout or a lost connection (the line then says how
 * far it got), 2 on bad usage.
 */
#include <MQTTAsync.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define PROG	     "es-bench-cloud-sub"
#define ID_SLOT	     64 /* bytes per id in the set, NUL included */
#define PROBE_PREFIX "probe-"
#define PROBE_EVERY  0.1

struct opts {
	char uri[256], probe_uri[256];
	const char *filter;
	uint64_t n;
	double timeout_s;
};

/* One MQTT connection; `state` is guarded by the shared lock. */
struct link {
	MQTTAsync client;
	int state; /* 0 connecting, 1 up, 2 subscribed, -1 failed or lost */
	const char *name;
};

static struct {
	pthread_mutex_t lock; /* guards everything below and the links' state */
	pthread_cond_t cond;
	struct link sub, probe;
	uint64_t n, msgs, distinct, noid, overflow, probes, qos0;
	double first_wall, done_wall;
	char *set; /* open addressing, linear probing, ID_SLOT bytes a slot */
	size_t cap;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void usage(void)
{
	fprintf(stderr, "usage: " PROG " --url mqtt://127.0.0.1:PORT -n EVENTS [--filter F] "
			"[--probe mqtt://EDGE:PORT] [--timeout S]\n");
	exit(2);
}

/* "mqtt://h:p" -> "tcp://h:p"; anything else is taken as paho's form. */
static void set_uri(char *dst, size_t cap, const char *url)
{
	if (strncmp(url, "mqtt://", 7) == 0)
		snprintf(dst, cap, "tcp://%s", url + 7);
	else
		snprintf(dst, cap, "%s", url);
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{"url", required_argument, NULL, 'u'},	   {"events", required_argument, NULL, 'n'},
		{"filter", required_argument, NULL, 'f'},  {"probe", required_argument, NULL, 'p'},
		{"timeout", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0}};
	*o = (struct opts){.filter = "edgespool/+/+/ev/#", .timeout_s = 600};
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "u:n:f:p:", longs, NULL)) != -1) {
		if (c == 'u')
			set_uri(o->uri, sizeof o->uri, optarg);
		else if (c == 'p')
			set_uri(o->probe_uri, sizeof o->probe_uri, optarg);
		else if (c == 'f')
			o->filter = optarg;
		else if (c == 'n' && bench_parse_count(optarg, &o->n))
			continue;
		else if (c == 'T' && (o->timeout_s = strtod(optarg, &end)) > 0 && !*end)
			continue;
		else
			usage();
	}
	if (!o->uri[0] || !o->n)
		usage();
}

/* ---- the set of ids ------------------------------------------------------------ */

static uint64_t fnv1a(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	return h;
}

/* Room for twice n ids (the load stays under one half). */
static int set_init(uint64_t n)
{
	size_t cap = 1024;
	while (cap < 2 * n)
		cap *= 2;
	g.set = calloc(cap, ID_SLOT);
	g.cap = cap;
	return g.set ? 0 : -1;
}

/* Caller holds the lock. 1 when id is new, 0 when seen, -1 when full. */
static int set_add(const char *id, size_t len)
{
	if (g.distinct + g.probes >= g.cap / 2)
		return -1;
	size_t i = (size_t)fnv1a(id, len) & (g.cap - 1);
	for (;; i = (i + 1) & (g.cap - 1)) {
		char *slot = g.set + i * ID_SLOT;
		if (!slot[0]) {
			memcpy(slot, id, len);
			slot[len] = '\0';
			return 1;
		}
		if (strncmp(slot, id, len) == 0 && slot[len] == '\0')
			return 0;
	}
}

/* The value of the first "id" member of a CloudEvent's JSON; NULL if none. */
static const char *find_id(const char *p, size_t len, size_t *idlen)
{
	const char *end = p + len, *at = memmem(p, len, "\"id\"", 4);
	if (!at)
		return NULL;
	at += 4;
	while (at < end && (*at == ' ' || *at == ':'))
		at++;
	if (at >= end || *at != '"')
		return NULL;
	at++;
	const char *q = memchr(at, '"', (size_t)(end - at));
	if (!q || q == at || (size_t)(q - at) >= ID_SLOT)
		return NULL;
	*idlen = (size_t)(q - at);
	return at;
}

/* ---- paho callbacks (paho's threads) ------------------------------------------- */

static void set_state(struct link *l, int state)
{
	pthread_mutex_lock(&g.lock);
	if (l->state != -1 || state == -1)
		l->state = state;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
}

static void on_lost(void *ctx, char *cause)
{
	struct link *l = ctx;
	fprintf(stderr, PROG ": %s: connection lost: %s\n", l->name, cause ? cause : "?");
	set_state(l, -1);
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, idlen = 0;
	const char *id = find_id(msg->payload, len, &idlen);
	double now = bench_wall_s();
	pthread_mutex_lock(&g.lock);
	if (msg->qos < 1)
		g.qos0++; /* delivered at QoS 0 somewhere on the way: counted, reported */
	if (!id) {
		g.noid++;
	} else if (idlen >= sizeof PROBE_PREFIX &&
		   memcmp(id, PROBE_PREFIX, sizeof PROBE_PREFIX - 1) == 0) {
		g.probes++;
		pthread_cond_broadcast(&g.cond);
	} else {
		if (!g.msgs++)
			g.first_wall = now;
		int fresh = set_add(id, idlen);
		if (fresh < 0)
			g.overflow++;
		else if (fresh && ++g.distinct == g.n) {
			g.done_wall = now;
			pthread_cond_broadcast(&g.cond);
		}
	}
	pthread_mutex_unlock(&g.lock);
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void on_subscribed(void *ctx, MQTTAsync_successData *d)
{
	set_state(ctx, 2);
}

static void on_sub_failed(void *ctx, MQTTAsync_failureData *d)
{
	fprintf(stderr, PROG ": subscription refused (code %d)\n", d ? d->code : -1);
	set_state(ctx, -1);
}

static void on_connected(void *ctx, MQTTAsync_successData *d)
{
	set_state(ctx, 1);
}

static void on_connect_failed(void *ctx, MQTTAsync_failureData *d)
{
	struct link *l = ctx;
	fprintf(stderr, PROG ": %s: connect failed (code %d)\n", l->name, d ? d->code : -1);
	set_state(l, -1);
}

/* ---- waiting ---------------------------------------------------------------------- */

static struct timespec deadline(double timeout_s)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	long long ns = (long long)ts.tv_nsec + (long long)(timeout_s * 1e9);
	ts.tv_sec += (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	return ts;
}

/* Waits until l->state is at least want; 0, or -1 on failure or timeout. */
static int wait_state(struct link *l, int want, double timeout_s)
{
	struct timespec dl = deadline(timeout_s);
	int rc = 0;
	pthread_mutex_lock(&g.lock);
	while (l->state >= 0 && l->state < want && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&g.cond, &g.lock, &dl);
	int ok = l->state >= want;
	pthread_mutex_unlock(&g.lock);
	return ok ? 0 : -1;
}

/* ---- the two connections ---------------------------------------------------------- */

static int open_link(struct link *l, const char *uri, const char *name, int window)
{
	char id[64];
	snprintf(id, sizeof id, "es-bench-%s-%ld", name, (long)getpid());
	l->name = name;
	int rc = MQTTAsync_create(&l->client, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setCallbacks(l->client, l, on_lost, on_message, NULL);
	if (rc == MQTTASYNC_SUCCESS) {
		MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
		co.keepAliveInterval = 30;
		co.cleansession = 1;
		co.maxInflight = window;
		co.onSuccess = on_connected;
		co.onFailure = on_connect_failed;
		co.context = l;
		rc = MQTTAsync_connect(l->client, &co);
	}
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, PROG ": %s: paho %d (%s)\n", uri, rc, MQTTAsync_strerror(rc));
		return -1;
	}
	return wait_state(l, 1, 10.0);
}

static int subscribe(const struct opts *o)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.onSuccess = on_subscribed;
	ro.onFailure = on_sub_failed;
	ro.context = &g.sub;
	int rc = MQTTAsync_subscribe(g.sub.client, o->filter, 1, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, PROG ": subscribe: paho %d\n", rc);
		return -1;
	}
	return wait_state(&g.sub, 2, 10.0);
}

static int publish(const char *topic, const char *body, int len)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	msg.payload = (void *)body;
	msg.payloadlen = len;
	msg.qos = 1;
	return MQTTAsync_sendMessage(g.probe.client, topic, &msg, &ro) == MQTTASYNC_SUCCESS ? 0
											    : -1;
}

/* Probe node k's status: a bridge forwards only the events of a node that
 * announced itself; its newest sequence is the probe's, 1; its ids are
 * UUIDs made of the pid and k. */
static int send_probe_status(unsigned k)
{
	char topic[128], body[320];
	long pid = (long)getpid();
	snprintf(topic, sizeof topic, "edgespool/" BENCH_SITE "/probe-%ld-%u/status", pid, k);
	int len =
		snprintf(body, sizeof body,
			 "{\"state\":\"online\",\"boot_id\":\"%08lx-%04x-7000-8000-000000000001\","
			 "\"journal_id\":\"%08lx-%04x-7000-8000-000000000002\",\"latest_seq\":1,"
			 "\"boot_seq\":1,"
			 "\"acked_seq\":0,\"oldest_seq\":1,\"pending\":1,\"clock_synced\":true,"
			 "\"time\":\"2026-01-01T00:00:00.000Z\"}",
			 (unsigned long)pid, k & 0xffffu, (unsigned long)pid, k & 0xffffu);
	return publish(topic, body, len);
}

/* Probe k: a CloudEvent of its own node (so a bridge sees sequence 1 of a
 * new node, never a hole), on the events' topic tree. Its node's status
 * went a round earlier (send_probe_status), so a bridge has it first. */
static int send_probe(unsigned k)
{
	char topic[128], body[256];
	long pid = (long)getpid();
	snprintf(topic, sizeof topic, "edgespool/" BENCH_SITE "/probe-%ld-%u/ev/bench.probe", pid,
		 k);
	int len = snprintf(body, sizeof body,
			   "{\"specversion\":\"1.0\",\"id\":\"" PROBE_PREFIX "%ld-%u\","
			   "\"source\":\"/" BENCH_SITE "/probe-%ld-%u\",\"type\":\"bench.probe\","
			   "\"data\":{},\"sequence\":\"1\"}",
			   pid, k, pid, k);
	return publish(topic, body, len);
}

/* Publishes probes at the edge until one arrives here. The number sent, or
 * -1 on failure or timeout. */
static long probe_until_seen(const struct opts *o)
{
	if (open_link(&g.probe, o->probe_uri, "probe", 10))
		return -1;
	double until = bench_mono_s() + o->timeout_s;
	unsigned k = 0;
	pthread_mutex_lock(&g.lock);
	while (!g.probes && g.sub.state == 2 && g.probe.state == 1 && bench_mono_s() < until) {
		pthread_mutex_unlock(&g.lock);
		int rc = send_probe_status(++k);
		if (!rc && k > 1)
			rc = send_probe(k - 1);
		pthread_mutex_lock(&g.lock);
		if (rc)
			break;
		struct timespec dl = deadline(PROBE_EVERY);
		while (!g.probes && g.sub.state == 2 &&
		       pthread_cond_timedwait(&g.cond, &g.lock, &dl) != ETIMEDOUT)
			;
	}
	bool seen = g.probes > 0;
	pthread_mutex_unlock(&g.lock);
	return seen ? (long)k : -1;
}

static void close_link(struct link *l)
{
	if (!l->client)
		return;
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = 100;
	MQTTAsync_disconnect(l->client, &d);
	MQTTAsync_destroy(&l->client);
}

/* Waits for n distinct ids; 0, or -1 on a lost connection or timeout. */
static int wait_all(const struct opts *o)
{
	struct timespec dl = deadline(o->timeout_s);
	int rc = 0;
	pthread_mutex_lock(&g.lock);
	while (g.distinct < g.n && g.sub.state == 2 && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&g.cond, &g.lock, &dl);
	int ok = g.distinct >= g.n ? 0 : -1;
	pthread_mutex_unlock(&g.lock);
	return ok;
}

int main(int argc, char **argv)
{
	struct opts o;
	parse(argc, argv, &o);
	g.n = o.n;
	if (set_init(o.n))
		bench_die(PROG, "out of memory");
	double t0 = bench_mono_s();
	if (open_link(&g.sub, o.uri, "sub", 10) || subscribe(&o))
		bench_die(PROG, "cannot subscribe to %s at %s", o.filter, o.uri);
	long probes = 0;
	if (o.probe_uri[0] && (probes = probe_until_seen(&o)) < 0)
		bench_die(PROG, "no probe came through from %s within %.0f s", o.probe_uri,
			  o.timeout_s);
	close_link(&g.probe);
	printf("ready probes=%ld ms=%.0f\n", probes, (bench_mono_s() - t0) * 1000.0);
	fflush(stdout);
	double cpu0 = bench_cpu_s();
	int rc = wait_all(&o);
	double cpu = bench_cpu_s() - cpu0;
	pthread_mutex_lock(&g.lock);
	printf("cloud_sub n=%" PRIu64 " msgs=%" PRIu64 " distinct=%" PRIu64 " dups=%" PRIu64
	       " noid=%" PRIu64 " overflow=%" PRIu64 " qos0=%" PRIu64
	       " first_wall=%.6f done_wall=%.6f "
	       "cpu_us=%.2f\n",
	       g.n, g.msgs, g.distinct, g.msgs - g.distinct - g.overflow, g.noid, g.overflow,
	       g.qos0, g.first_wall, g.done_wall, cpu * 1e6 / (double)g.n);
	pthread_mutex_unlock(&g.lock);
	fflush(stdout);
	close_link(&g.sub);
	free(g.set);
	if (rc)
		fprintf(stderr, PROG ": timed out or lost the connection\n");
	return rc ? 1 : 0;
}
