/* mqtt_test.c - the paho adapter against a real mosquitto on a free loopback
 * port: connecting, QoS 1 publishes and their acknowledgements, the inflight
 * window, subscriptions, losing and regaining the broker, a clean stop, and
 * argument checks. The es_loop runs on the test thread; every wait polls a
 * condition with a deadline. Label: integration (it starts a broker). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tmpdir.h"
#include "clock.h"
#include "loop.h"
#include "mqtt.h"

#define MOSQUITTO "/usr/sbin/mosquitto"
#define WAIT_MS	  15000
#define MAX_TAGS  256
#define TOPIC	  "es/ut/data"

/* ---- the broker --------------------------------------------------------------- */

typedef struct broker {
	pid_t pid;
	int port;
	char dir[64];
	char conf[128];
	char log[128];
} broker;

static broker B;  /* one broker for the whole run; killed at exit in any case */
static broker B2; /* a second one, for the fail-over test only */

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

static bool port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static bool write_conf(broker *b)
{
	FILE *f = fopen(b->conf, "w");
	if (!f)
		return false;
	fprintf(f,
		"listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
		"log_dest stderr\nlog_type error\nlog_type warning\n",
		b->port);
	if (geteuid() == 0)
		fprintf(f, "user root\n");
	return fclose(f) == 0;
}

static void broker_kill(broker *b)
{
	if (b->pid <= 0)
		return;
	kill(b->pid, SIGKILL);
	waitpid(b->pid, NULL, 0);
	b->pid = 0;
}

/* Starts mosquitto and waits until it accepts connections (or dies). */
static bool broker_start(broker *b)
{
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(MOSQUITTO, "mosquitto", "-c", b->conf, (char *)NULL);
		_exit(127);
	}
	b->pid = pid;
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	while (es_clock_mono_ms() < deadline) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			b->pid = 0;
			return false;
		}
		if (port_open(b->port))
			return true;
		nap_ms(10);
	}
	broker_kill(b);
	return false;
}

static void at_exit(void)
{
	broker_kill(&B2);
	broker_kill(&B);
	if (B.dir[0])
		es_tmpdir_remove(B.dir);
	B.dir[0] = '\0';
}

static int group_setup(void **state)
{
	if (access(MOSQUITTO, X_OK) != 0) {
		fprintf(stderr, "no %s\n", MOSQUITTO);
		return -1;
	}
	atexit(at_exit);
	if (es_tmpdir_make(B.dir, sizeof B.dir, "mqtt-test"))
		return -1;
	snprintf(B.conf, sizeof B.conf, "%s/mosquitto.conf", B.dir);
	snprintf(B.log, sizeof B.log, "%s/mosquitto.log", B.dir);
	B.port = free_port();
	if (B.port <= 0 || !write_conf(&B) || !broker_start(&B))
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	at_exit();
	return 0;
}

/* ---- a client under test -------------------------------------------------------- */

typedef struct mq {
	es_loop *loop;
	es_mqtt *m;
	int connected, disconnected, stopped;
	int subscribed; /* subscribed() callbacks */
	bool session_present;
	char cause[192];
	uint64_t retry_ms, min_retry, max_retry;
	int acked[MAX_TAGS];
	int failed[MAX_TAGS];
	int acks, failures, refusals; /* failures: any error; refusals: ES_EPROTO */
	int received;
	int got[MAX_TAGS]; /* by the number in "m-<n>" payloads */
	char last_topic[128];
	char props[256]; /* message_props(): "<content type>|name=value|..." */
	int oversized;
	size_t oversized_len;
} mq;

static void on_connected(void *ctx, bool session_present)
{
	mq *q = ctx;
	q->connected++;
	q->session_present = session_present;
}

static void on_subscribed(void *ctx)
{
	mq *q = ctx;
	q->subscribed++;
}

static void on_disconnected(void *ctx, const char *cause, uint64_t retry_ms)
{
	mq *q = ctx;
	assert_non_null(cause);
	q->disconnected++;
	snprintf(q->cause, sizeof q->cause, "%s", cause);
	q->retry_ms = retry_ms;
	if (strcmp(cause, "stopped") == 0) {
		q->stopped++;
		return;
	}
	if (retry_ms < q->min_retry)
		q->min_retry = retry_ms;
	if (retry_ms > q->max_retry)
		q->max_retry = retry_ms;
}

static void on_published(void *ctx, uint64_t tag, es_err err)
{
	mq *q = ctx;
	assert_true(tag < MAX_TAGS);
	if (err == ES_OK) {
		q->acked[tag]++;
		q->acks++;
	} else {
		q->failed[tag]++;
		q->failures++;
		q->refusals += err == ES_EPROTO;
		assert_true(err == ES_EPROTO || err == ES_ENOTCONN);
	}
}

static void on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
	mq *q = ctx;
	unsigned n;
	char text[64];
	q->received++;
	snprintf(q->last_topic, sizeof q->last_topic, "%s", topic);
	snprintf(text, sizeof text, "%.*s", (int)(len < 63 ? len : 63), (const char *)payload);
	if (sscanf(text, "m-%u", &n) == 1 && n < MAX_TAGS)
		q->got[n]++;
}

/* message_props(): the message as on_message, and its properties as text. */
static void on_message_props(void *ctx, const es_mqtt_msg *msg)
{
	mq *q = ctx;
	const es_mqtt_props *p = &msg->props;
	int n = snprintf(q->props, sizeof q->props, "%s", p->content_type ? p->content_type : "-");
	for (size_t i = 0; i < p->nuser && n > 0 && (size_t)n < sizeof q->props; i++)
		n += snprintf(q->props + n, sizeof q->props - (size_t)n, "|%s=%s", p->user[i].name,
			      p->user[i].value);
	on_message(ctx, msg->topic, msg->payload, msg->len);
}

static void on_oversized(void *ctx, const char *topic, size_t len)
{
	mq *q = ctx;
	q->oversized++;
	q->oversized_len = len;
	snprintf(q->last_topic, sizeof q->last_topic, "%s", topic);
}

static es_mqtt_opts opts_for(mq *q, int version, const char *client_id)
{
	static char url[64];
	snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", B.port);
	return (es_mqtt_opts){
		.url = url,
		.client_id = client_id,
		.version = version,
		.keepalive_s = 5,
		.connect_timeout_s = 5,
		.backoff_base_ms = 100,
		.backoff_max_ms = 400,
		.cbs = {.connected = on_connected,
			.disconnected = on_disconnected,
			.published = on_published,
			.message = on_message,
			.subscribed = on_subscribed},
		.ctx = q,
	};
}

/* Set by the fault-injection test: see writev() below. */
static _Atomic bool fail_socket_writes;

/* Clients of the running test; its teardown frees what a failure left. */
static mq *live[8];

static void live_swap(mq *q, mq *old)
{
	for (size_t i = 0; i < 8; i++)
		if (live[i] == old) {
			live[i] = q;
			return;
		}
}

static mq *mq_new(void)
{
	mq *q = calloc(1, sizeof *q);
	assert_non_null(q);
	q->min_retry = UINT64_MAX;
	assert_int_equal(es_loop_new(&q->loop), ES_OK);
	live_swap(q, NULL);
	return q;
}

static const char *unique_id(char buf[64])
{
	static int serial;
	snprintf(buf, 64, "es-ut-%d-%d", (int)getpid(), ++serial);
	return buf;
}

/* Makes the client (not started) with o, or with the defaults and a unique
 * client id. */
static void mq_make(mq *q, int version, const es_mqtt_opts *o)
{
	char id[64];
	es_mqtt_opts d = opts_for(q, version, unique_id(id));
	assert_int_equal(es_mqtt_new(q->loop, o ? o : &d, &q->m), ES_OK);
	assert_non_null(q->m);
}

static void mq_free(mq *q)
{
	live_swap(NULL, q);
	es_mqtt_free(q->m);
	es_loop_free(q->loop);
	free(q);
}

/* After each test: free the clients a failure left, and make sure the
 * broker runs (a test may have stopped or killed it). */
static int cleanup(void **state)
{
	atomic_store(&fail_socket_writes, false);
	for (size_t i = 0; i < 8; i++)
		if (live[i])
			mq_free(live[i]);
	if (B.pid > 0)
		kill(B.pid, SIGCONT);
	else if (!broker_start(&B))
		return -1;
	return 0;
}

/* ---- waiting on the loop ------------------------------------------------------------ */

typedef bool (*pred_fn)(const mq *q, int want);

typedef struct waiter {
	mq *q;
	pred_fn pred;
	int want;
	uint64_t deadline;
	bool ok;
} waiter;

static void check(void *arg)
{
	waiter *w = arg;
	if (w->pred(w->q, w->want)) {
		w->ok = true;
		es_loop_stop(w->q->loop);
	} else if (es_clock_mono_ms() > w->deadline) {
		es_loop_stop(w->q->loop);
	} else {
		es_loop_timer(w->q->loop, 2, check, w, NULL);
	}
}

/* Runs the loop until pred(q, want) holds; false if ms passed first. */
static bool run_until(mq *q, pred_fn pred, int want, uint64_t ms)
{
	waiter w = {.q = q, .pred = pred, .want = want, .deadline = es_clock_mono_ms() + ms};
	assert_int_equal(es_loop_timer(q->loop, 0, check, &w, NULL), ES_OK);
	assert_int_equal(es_loop_run(q->loop), ES_OK);
	return w.ok;
}

static bool connected_n(const mq *q, int want)
{
	return q->connected >= want;
}

static bool subscribed_n(const mq *q, int want)
{
	return q->subscribed >= want;
}

static bool disconnected_n(const mq *q, int want)
{
	return q->disconnected >= want;
}

static bool stopped_n(const mq *q, int want)
{
	return q->stopped >= want;
}

static bool acks_n(const mq *q, int want)
{
	return q->acks >= want;
}

static bool received_n(const mq *q, int want)
{
	return q->received >= want;
}

static bool acks_and_received_n(const mq *q, int want)
{
	return q->acks >= want && q->received >= want;
}

static bool never(const mq *q, int want)
{
	return false;
}

#define WAIT(q, pred, want) assert_true(run_until(q, pred, want, WAIT_MS))

static void publish_n(mq *q, unsigned first, unsigned n, int qos)
{
	for (unsigned i = first; i < first + n; i++) {
		char payload[32];
		int len = snprintf(payload, sizeof payload, "m-%u", i);
		assert_int_equal(es_mqtt_publish(q->m, TOPIC, payload, (size_t)len, qos, false, i),
				 ES_OK);
	}
}

static mq *connected_client(int version, int inflight)
{
	mq *q = mq_new();
	char id[64];
	es_mqtt_opts o = opts_for(q, version, unique_id(id));
	o.inflight = inflight;
	mq_make(q, version, &o);
	assert_int_equal(es_mqtt_subscribe(q->m, "es/ut/#", 1), ES_OK);
	assert_int_equal(es_mqtt_start(q->m), ES_OK);
	WAIT(q, connected_n, 1);
	assert_true(es_mqtt_is_connected(q->m));
	return q;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void check_url_cases(void **state)
{
	assert_null(es_mqtt_check_url("mqtt://localhost"));
	assert_null(es_mqtt_check_url("mqtt://127.0.0.1:1883"));
	assert_null(es_mqtt_check_url("mqtts://broker.example.com"));
	assert_null(es_mqtt_check_url("mqtts://broker.example.com:8883"));
	const char *bad[] = {
		"",
		"http://h",
		"tcp://h:1883",
		"mqtt://",
		"mqtt://:1883",
		"mqtt:///x",
		"mqtt://h:0",
		"mqtt://h:65536",
		"mqtt://h:x",
		"mqtt://h:",
		"mqtt://h/path",
		"mqtt://user@h",
		"mqtt://user:pw@h:1883",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (!es_mqtt_check_url(bad[i]))
			fail_msg("'%s' accepted", bad[i]);
	assert_non_null(es_mqtt_check_url(NULL));
	/* host[:port] may be 1024 characters, not more. */
	char url[7 + 1025 + 1] = "mqtt://";
	memset(url + 7, 'h', 1024);
	url[7 + 1024] = '\0';
	assert_null(es_mqtt_check_url(url));
	url[7 + 1024] = 'h';
	url[7 + 1025] = '\0';
	assert_string_equal(es_mqtt_check_url(url), "has a host:port longer than 1024 characters");
}

static void bad_options_are_refused(void **state)
{
	mq *q = mq_new();
	es_mqtt *m = (es_mqtt *)(uintptr_t)0x1;
	es_mqtt_opts o = opts_for(q, 4, "ok");
	o.url = "http://x";
	assert_int_equal(es_mqtt_new(q->loop, &o, &m), ES_EINVAL);
	o = opts_for(q, 4, "");
	assert_int_equal(es_mqtt_new(q->loop, &o, &m), ES_EINVAL);
	o = opts_for(q, 3, "ok");
	assert_int_equal(es_mqtt_new(q->loop, &o, &m), ES_EINVAL);
	o = opts_for(q, 4, "ok");
	o.inflight = -1;
	assert_int_equal(es_mqtt_new(q->loop, &o, &m), ES_EINVAL);
	assert_int_equal(es_mqtt_new(NULL, &o, &m), ES_EINVAL);
	assert_ptr_equal(m, (es_mqtt *)(uintptr_t)0x1);
	es_mqtt_free(NULL);
	mq_free(q);
}

/* Not connected yet: publishing is refused with ES_ENOTCONN, before start
 * and while the first attempt is still under way. */
static void publish_before_connected(void **state)
{
	mq *q = mq_new();
	mq_make(q, 4, NULL);
	assert_false(es_mqtt_is_connected(q->m));
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, "x", 1, 1, false, 1), ES_ENOTCONN);
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, "x", 1, 0, false, 1), ES_ENOTCONN);
	assert_int_equal(es_mqtt_start(q->m), ES_OK);
	assert_int_equal(es_mqtt_start(q->m), ES_EINVAL); /* once */
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, "x", 1, 1, false, 1), ES_ENOTCONN);
	assert_int_equal(es_mqtt_inflight(q->m), 0);
	WAIT(q, connected_n, 1);
	assert_int_equal(q->acks + q->failures, 0);
	mq_free(q);
}

static void publish_and_receive(void **state)
{
	int version = *(int *)*state;
	mq *q = connected_client(version, 0);
	assert_int_equal(q->disconnected, 0);
	assert_int_equal(es_mqtt_window(q->m), 100);
	publish_n(q, 1, 40, 1);
	assert_int_equal(es_mqtt_inflight(q->m), 40); /* acks come through the loop */
	WAIT(q, acks_and_received_n, 40);
	for (unsigned i = 1; i <= 40; i++) {
		assert_int_equal(q->acked[i], 1);
		assert_int_equal(q->failed[i], 0);
		assert_int_equal(q->got[i], 1);
	}
	assert_int_equal(q->acks, 40);
	assert_string_equal(q->last_topic, TOPIC);
	assert_int_equal(es_mqtt_inflight(q->m), 0);

	/* QoS 0: no completion, no window room needed, still delivered. */
	publish_n(q, 100, 5, 0);
	assert_int_equal(es_mqtt_inflight(q->m), 0);
	WAIT(q, received_n, 45);
	assert_int_equal(q->acks, 40);
	for (unsigned i = 100; i < 105; i++)
		assert_int_equal(q->got[i], 1);

	es_mqtt_stats s;
	es_mqtt_stats_get(q->m, &s);
	assert_true(s.connected);
	assert_int_equal(s.connects, 1);
	assert_int_equal(s.failures, 0);
	assert_int_equal(s.published, 45);
	assert_int_equal(s.acked, 40);
	assert_int_equal(s.refused, 0);
	assert_int_equal(s.received, 45);
	assert_true(s.connected_since_ms > 0 && s.connected_since_ms <= es_clock_wall_ms());
	mq_free(q);
}

/* MQTT 5: the content type and user properties (in order, a name twice
 * kept twice, an empty value kept) reach the subscriber; MQTT 3.1.1 has
 * none, and the payload arrives all the same. */
static void properties_round_trip(void **state)
{
	int version = *(int *)*state;
	mq *q = mq_new();
	char id[64];
	es_mqtt_opts o = opts_for(q, version, unique_id(id));
	o.cbs.message_props = on_message_props;
	mq_make(q, version, &o);
	assert_int_equal(es_mqtt_subscribe(q->m, "es/ut/#", 1), ES_OK);
	assert_int_equal(es_mqtt_start(q->m), ES_OK);
	WAIT(q, connected_n, 1);
	const es_mqtt_prop user[] = {
		{"content-encoding", "zstd"}, {"dictionary", "d1"}, {"dictionary", ""}};
	es_mqtt_props props = {"application/cloudevents-batch+json", user, 3};
	assert_int_equal(es_mqtt_publish_props(q->m, TOPIC, "m-7", 3, 1, false, 7, &props), ES_OK);
	WAIT(q, acks_and_received_n, 1);
	assert_int_equal(q->got[7], 1);
	assert_string_equal(q->last_topic, TOPIC);
	assert_string_equal(q->props, version == 5
					      ? "application/cloudevents-batch+json"
						"|content-encoding=zstd|dictionary=d1|dictionary="
					      : "-");
	/* Without properties: none, also under MQTT 5. */
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, "m-8", 3, 1, false, 8), ES_OK);
	WAIT(q, acks_and_received_n, 2);
	assert_string_equal(q->props, "-");
	mq_free(q);
}

static bool oversized_n(const mq *q, int want)
{
	return q->oversized >= want;
}

/* A message over max_message is not handed over: oversized() says its
 * topic and size; smaller ones come as usual. */
static void large_messages_are_let_go(void **state)
{
	mq *q = mq_new();
	char id[64];
	es_mqtt_opts o = opts_for(q, 4, unique_id(id));
	o.max_message = 100;
	o.cbs.oversized = on_oversized;
	mq_make(q, 4, &o);
	assert_int_equal(es_mqtt_subscribe(q->m, "es/ut/#", 1), ES_OK);
	assert_int_equal(es_mqtt_start(q->m), ES_OK);
	WAIT(q, connected_n, 1);
	char big[500];
	memset(big, 'x', sizeof big);
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, big, sizeof big, 1, false, 1), ES_OK);
	publish_n(q, 2, 1, 1);
	WAIT(q, oversized_n, 1);
	WAIT(q, received_n, 1);
	assert_int_equal(q->oversized_len, 500);
	assert_int_equal(q->got[2], 1);
	es_mqtt_stats s;
	es_mqtt_stats_get(q->m, &s);
	assert_int_equal(s.oversized, 1);
	assert_int_equal(s.received, 2);
	mq_free(q);
}

static void window_limits_inflight(void **state)
{
	int version = *(int *)*state;
	mq *q = connected_client(version, 4);
	assert_int_equal(es_mqtt_window(q->m), 4);
	publish_n(q, 1, 4, 1);
	assert_int_equal(es_mqtt_inflight(q->m), 4);
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, "m-5", 3, 1, false, 5), ES_EBUSY);
	assert_int_equal(es_mqtt_inflight(q->m), 4);
	publish_n(q, 200, 1, 0); /* QoS 0 needs no room */
	WAIT(q, acks_n, 4);
	assert_int_equal(es_mqtt_inflight(q->m), 0);
	assert_int_equal(q->acked[5], 0);
	publish_n(q, 5, 4, 1); /* room again */
	assert_int_equal(es_mqtt_inflight(q->m), 4);
	WAIT(q, acks_n, 8);
	assert_int_equal(es_mqtt_inflight(q->m), 0);
	es_mqtt_stats s;
	es_mqtt_stats_get(q->m, &s);
	assert_int_equal(s.published, 9);
	assert_int_equal(s.acked, 8);
	mq_free(q);
}

static void invalid_topics_and_filters(void **state)
{
	mq *q = connected_client(4, 0);
	const char *bad[] = {"es/+/x", "es/#", "#", "", "+"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(es_mqtt_publish(q->m, bad[i], "x", 1, 1, false, 1), ES_EINVAL);
	assert_int_equal(es_mqtt_publish(q->m, NULL, "x", 1, 1, false, 1), ES_EINVAL);
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, "x", 1, 2, false, 1), ES_EINVAL);
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, "x", 1, -1, false, 1), ES_EINVAL);
	assert_int_equal(es_mqtt_inflight(q->m), 0);
	assert_int_equal(es_mqtt_subscribe(q->m, "es/#/x", 1), ES_EINVAL);
	assert_int_equal(es_mqtt_subscribe(q->m, "es/ok", 2), ES_EINVAL);
	assert_int_equal(es_mqtt_subscribe(q->m, NULL, 1), ES_EINVAL);
	es_mqtt_stats s;
	es_mqtt_stats_get(q->m, &s);
	assert_int_equal(s.published, 0);
	mq_free(q);
}

/* Ready means subscribed: es_mqtt_is_subscribed() and subscribed() only
 * once the broker acknowledged every subscription of the connection; a
 * subscription added while connected makes it false until its SUBACK; a
 * reconnection starts over. Without subscriptions, subscribed at connect. */
static void subscribed_after_every_suback(void **state)
{
	int version = *(int *)*state;
	mq *q = mq_new();
	mq_make(q, version, NULL);
	assert_int_equal(es_mqtt_subscribe(q->m, "es/ut/a/#", 1), ES_OK);
	assert_int_equal(es_mqtt_subscribe(q->m, "es/ut/b/#", 0), ES_OK);
	assert_false(es_mqtt_is_subscribed(q->m));
	assert_int_equal(es_mqtt_start(q->m), ES_OK);
	WAIT(q, subscribed_n, 1);
	assert_int_equal(q->connected, 1);
	assert_true(es_mqtt_is_subscribed(q->m));
	es_mqtt_stats s;
	es_mqtt_stats_get(q->m, &s);
	assert_true(s.subscribed);

	assert_int_equal(es_mqtt_subscribe(q->m, "es/ut/c/#", 1), ES_OK);
	assert_false(es_mqtt_is_subscribed(q->m)); /* until its SUBACK */
	WAIT(q, subscribed_n, 2);
	assert_true(es_mqtt_is_subscribed(q->m));

	broker_kill(&B);
	WAIT(q, disconnected_n, 1);
	assert_false(es_mqtt_is_subscribed(q->m));
	es_mqtt_stats_get(q->m, &s);
	assert_false(s.subscribed);
	assert_true(broker_start(&B));
	WAIT(q, subscribed_n, 3);
	assert_int_equal(q->connected, 2);
	assert_true(es_mqtt_is_subscribed(q->m));
	mq_free(q);

	q = mq_new(); /* nothing to subscribe to: subscribed once connected */
	mq_make(q, version, NULL);
	assert_int_equal(es_mqtt_start(q->m), ES_OK);
	WAIT(q, subscribed_n, 1);
	assert_int_equal(q->connected, 1);
	assert_true(es_mqtt_is_subscribed(q->m));
	mq_free(q);
}

/* Losing the broker: disconnected() with a retry delay, retries with backoff
 * while it is down, and connected() again once it is back on the same port;
 * subscriptions are made again. */
static void reconnects_after_broker_restart(void **state)
{
	int version = *(int *)*state;
	mq *q = connected_client(version, 0);
	publish_n(q, 1, 3, 1);
	WAIT(q, acks_n, 3);
	broker_kill(&B);
	WAIT(q, disconnected_n, 1);
	print_message("lost: \"%s\", retry in %" PRIu64 " ms\n", q->cause, q->retry_ms);
	assert_true(q->cause[0] != '\0');
	assert_in_range(q->retry_ms, 100 / 4, 400);
	assert_false(es_mqtt_is_connected(q->m));
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, "x", 1, 1, false, 9), ES_ENOTCONN);

	/* Down: each failed attempt is reported with its delay. */
	WAIT(q, disconnected_n, 3);
	assert_int_equal(q->connected, 1);
	assert_true(q->min_retry >= 100 / 4);
	assert_true(q->max_retry <= 400);

	assert_true(broker_start(&B));
	WAIT(q, connected_n, 2);
	assert_true(es_mqtt_is_connected(q->m));
	es_mqtt_stats s;
	es_mqtt_stats_get(q->m, &s);
	assert_int_equal(s.connects, 2);
	assert_true(s.failures >= 3);
	assert_true(s.connected);
	int before = q->received;
	publish_n(q, 50, 3, 1);
	WAIT(q, received_n, before + 3);
	for (unsigned i = 50; i < 53; i++)
		assert_int_equal(q->got[i], 1);
	assert_int_equal(q->failures, 0);
	mq_free(q);
}

/* ---- several URLs: fail-over --------------------------------------------------- */

static bool start_second_broker(void)
{
	snprintf(B2.dir, sizeof B2.dir, "%s", B.dir);
	snprintf(B2.conf, sizeof B2.conf, "%s/second.conf", B.dir);
	snprintf(B2.log, sizeof B2.log, "%s/second.log", B.dir);
	B2.port = free_port();
	return B2.port > 0 && write_conf(&B2) && broker_start(&B2);
}

static void check_node(const mq *q, size_t node, const char *url, uint64_t failovers)
{
	es_mqtt_stats s;
	es_mqtt_stats_get(q->m, &s);
	assert_true(s.connected);
	assert_int_equal(s.node, node);
	assert_string_equal(s.url, url);
	assert_int_equal(s.failovers, failovers);
}

/* urls = {nothing listening, B, B2}: the first attempt fails and the next
 * URL is tried after the backoff's first, short step (no growing delay
 * inside a round); the first connection (to B) is no fail-over. B dies: the
 * client moves on to B2, one fail-over, and publishes there. */
static void fails_over_across_urls(void **state)
{
	char id[64], dead[64], one[64], two[64];
	assert_true(start_second_broker());
	snprintf(dead, sizeof dead, "mqtt://127.0.0.1:%d", free_port());
	snprintf(one, sizeof one, "mqtt://127.0.0.1:%d", B.port);
	snprintf(two, sizeof two, "mqtt://127.0.0.1:%d", B2.port);
	const char *urls[] = {dead, one, two};
	mq *q = mq_new();
	es_mqtt_opts o = opts_for(q, 4, unique_id(id));
	o.url = NULL;
	o.urls = urls;
	o.nurls = 3;
	mq_make(q, 4, &o);
	assert_int_equal(es_mqtt_start(q->m), ES_OK);
	WAIT(q, connected_n, 1);
	assert_int_equal(q->disconnected, 1);
	assert_in_range(q->retry_ms, 100 / 4, 100);
	check_node(q, 1, one, 0);
	publish_n(q, 1, 3, 1);
	WAIT(q, acks_n, 3);

	broker_kill(&B);
	WAIT(q, connected_n, 2);
	check_node(q, 2, two, 1);
	publish_n(q, 10, 3, 1);
	WAIT(q, acks_n, 6);
	mq_free(q);
	broker_kill(&B2);
}

/* ---- fault injection: socket writes that fail --------------------------------- */

/* While set, writev(2) on a socket fails with ECONNRESET, as when the peer
 * reset the connection; paho writes its packets with writev, and this
 * definition interposes on libc's for the whole process. Reads are left
 * alone, so paho's receiving side notices nothing by itself. */
ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	static ssize_t (*real)(int, const struct iovec *, int);
	struct stat sb;
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "writev");
	if (atomic_load(&fail_socket_writes) && fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
		errno = ECONNRESET;
		return -1;
	}
	return real(fd, iov, iovcnt);
}

/* A publish whose write meets a reset connection: the connection is lost,
 * and the publish is reported lost (ES_ENOTCONN), never refused (ES_EPROTO
 * is for a broker's MQTT 5 refusal only; mqtt.h). */
static void inflight_lost_with_connection_not_reported(void **state)
{
	int version = *(int *)*state;
	mq *q = connected_client(version, 0);
	publish_n(q, 100, 1, 1); /* settled: subscribed, nothing left to write */
	WAIT(q, acks_and_received_n, 1);
	atomic_store(&fail_socket_writes, true);
	publish_n(q, 1, 1, 1);
	assert_int_equal(es_mqtt_inflight(q->m), 1);
	bool lost = run_until(q, disconnected_n, 1, WAIT_MS);
	atomic_store(&fail_socket_writes, false);
	assert_true(lost);
	print_message("lost: \"%s\"; publishes reported lost (ES_ENOTCONN): %d, refused: %d\n",
		      q->cause, q->failures, q->refusals);
	/* Lost with the connection is not a refusal (mqtt.h). */
	assert_int_equal(q->refusals, 0);
	assert_true(q->failures <= 1);
	assert_int_equal(es_mqtt_inflight(q->m), 0);
	es_mqtt_stats s;
	es_mqtt_stats_get(q->m, &s);
	assert_int_equal(s.refused, 0);
	assert_int_equal(s.acked, 1);
	/* And it comes back by itself. */
	WAIT(q, connected_n, 2);
	mq_free(q);
}

/* The same at a clean stop whose wait for acks times out. */
static void inflight_at_stop_not_reported(void **state)
{
	int version = *(int *)*state;
	mq *q = connected_client(version, 0);
	assert_int_equal(kill(B.pid, SIGSTOP), 0);
	publish_n(q, 1, 3, 1);
	assert_int_equal(es_mqtt_disconnect(q->m, 200), ES_OK);
	WAIT(q, stopped_n, 1);
	print_message("refused before disconnected(\"stopped\"): %d\n", q->failures);
	assert_int_equal(q->failures, 0);
	assert_int_equal(q->acks, 0);
	assert_int_equal(es_mqtt_inflight(q->m), 0);
	mq_free(q);
}

/* A full window of QoS 1 publishes that the broker does not read leaves
 * room for QoS 0 ones, and every publish within the window is taken: paho's
 * own limit on publishes waiting to be written (100 by default, QoS 0 and 1
 * alike) refused them with -12 once its socket buffers were full. */
static void qos0_has_room_beside_a_full_window(void **state)
{
	enum { WINDOW = 150, BIG = 256 * 1024 };
	int version = *(int *)*state;
	mq *q = connected_client(version, WINDOW);
	char *big = malloc(BIG);
	assert_non_null(big);
	memset(big, 'x', BIG);
	assert_int_equal(kill(B.pid, SIGSTOP), 0); /* reads nothing: 37 MiB wait */
	for (unsigned i = 1; i <= WINDOW; i++)
		assert_int_equal(es_mqtt_publish(q->m, "es/big", big, BIG, 1, false, i), ES_OK);
	assert_int_equal(es_mqtt_publish(q->m, "es/big", big, BIG, 1, false, 0), ES_EBUSY);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(es_mqtt_publish(q->m, "es/big", big, BIG, 0, false, 0), ES_OK);
	assert_int_equal(kill(B.pid, SIGCONT), 0);
	WAIT(q, acks_n, WINDOW);
	assert_int_equal(q->failures, 0);
	free(big);
	mq_free(q);
}

/* A clean stop: disconnected(ctx, "stopped", 0), no reconnection after. */
static void disconnect_stops(void **state)
{
	int version = *(int *)*state;
	mq *q = connected_client(version, 0);
	publish_n(q, 1, 2, 1);
	assert_int_equal(es_mqtt_disconnect(q->m, 2000), ES_OK);
	assert_int_equal(es_mqtt_publish(q->m, TOPIC, "x", 1, 1, false, 3), ES_ENOTCONN);
	WAIT(q, stopped_n, 1);
	assert_string_equal(q->cause, "stopped");
	assert_int_equal(q->retry_ms, 0);
	assert_int_equal(q->disconnected, 1);
	assert_false(es_mqtt_is_connected(q->m));
	/* The stop holds: no attempt follows (well past the longest backoff). */
	assert_false(run_until(q, never, 0, 1000));
	assert_int_equal(q->connected, 1);
	assert_int_equal(q->disconnected, 1);
	es_mqtt_stats s;
	es_mqtt_stats_get(q->m, &s);
	assert_false(s.connected);
	mq_free(q);
}

/* Stopping while the broker is away: "stopped" at once, and the pending retry
 * is cancelled. */
static void disconnect_while_waiting(void **state)
{
	mq *q = mq_new();
	char id[64];
	es_mqtt_opts o = opts_for(q, 4, unique_id(id));
	static char dead[64];
	snprintf(dead, sizeof dead, "mqtt://127.0.0.1:%d", free_port()); /* nobody there */
	o.url = dead;
	mq_make(q, 4, &o);
	assert_int_equal(es_mqtt_start(q->m), ES_OK);
	WAIT(q, disconnected_n, 1);
	assert_int_equal(q->stopped, 0);
	assert_true(strstr(q->cause, "connect") != NULL);
	assert_int_equal(es_mqtt_disconnect(q->m, 100), ES_OK);
	assert_int_equal(q->stopped, 1);
	assert_int_equal(q->retry_ms, 0);
	int seen = q->disconnected;
	assert_false(run_until(q, never, 0, 600));
	assert_int_equal(q->disconnected, seen);
	assert_int_equal(q->connected, 0);
	mq_free(q);
}

/* ---- the will child: this binary re-run as a client that dies uncleanly ---- */

static void child_connected(void *ctx, bool session_present)
{
	if (write(1, "c", 1) != 1)
		_exit(3);
}

/* `mqtt_test --will-child PORT VERSION`: connects with a last will, says
 * so on stdout, then waits to be killed. */
static int will_child(int port, int version)
{
	es_loop *loop;
	es_mqtt *m;
	char url[64], id[64];
	snprintf(url, sizeof url, "mqtt://127.0.0.1:%d", port);
	snprintf(id, sizeof id, "es-ut-child-%d", (int)getpid());
	es_mqtt_opts o = {.url = url,
			  .client_id = id,
			  .version = version,
			  .will_topic = "es/ut/will",
			  .will_payload = "m-77",
			  .cbs = {.connected = child_connected}};
	if (es_loop_new(&loop) || es_mqtt_new(loop, &o, &m) || es_mqtt_start(m))
		return 2;
	es_loop_run(loop);
	return 0;
}

/* Runs this test program again as `--will-child PORT VERSION` (in the
 * forked child; does not return). Under $ES_TEST_WRAP (a cross build's
 * qemu-user, words split on spaces) through the wrapper: the kernel cannot
 * run the target's binary by itself, and /proc/self/exe is qemu there. */
static void exec_will_child(const char *port, const char *ver)
{
	char exe[4096], wrap[1024], *argv[24];
	int n = 0;
	ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
	const char *w = getenv("ES_TEST_WRAP");
	if (len <= 0)
		_exit(127);
	exe[len] = '\0';
	if (w != NULL && strlen(w) < sizeof wrap) {
		strcpy(wrap, w);
		for (char *t = strtok(wrap, " "); t != NULL && n < 18; t = strtok(NULL, " "))
			argv[n++] = t;
	}
	argv[n++] = exe;
	argv[n++] = "--will-child";
	argv[n++] = (char *)port;
	argv[n++] = (char *)ver;
	argv[n] = NULL;
	execv(argv[0], argv);
	_exit(127);
}

/* Starts the will child and waits until it is connected. */
static pid_t start_will_child(int version)
{
	int fds[2];
	char port[16], ver[16];
	snprintf(port, sizeof port, "%d", B.port);
	snprintf(ver, sizeof ver, "%d", version);
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		exec_will_child(port, ver);
	}
	close(fds[1]);
	struct pollfd p = {.fd = fds[0], .events = POLLIN};
	char c = 0;
	bool up = poll(&p, 1, WAIT_MS) == 1 && read(fds[0], &c, 1) == 1 && c == 'c';
	close(fds[0]);
	if (!up) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("the will child did not connect");
	}
	return pid;
}

/* Publishes marker n from the watcher and waits for it and `more` other
 * messages: a will, if one was sent, arrives before the marker or with it. */
static void mark(mq *watcher, unsigned n, int more)
{
	int before = watcher->received;
	publish_n(watcher, n, 1, 1);
	WAIT(watcher, received_n, before + 1 + more);
	assert_int_equal(watcher->got[n], 1);
}

/* The last will is for connections that end without a clean stop only. */
static void will_only_on_unclean_end(void **state)
{
	int version = *(int *)*state;
	mq *watcher = connected_client(version, 0); /* subscribed to es/ut/# */

	/* Unclean: a client process killed while connected. */
	pid_t child = start_will_child(version);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	mark(watcher, 79, 1);
	assert_int_equal(watcher->got[77], 1);

	/* Clean: es_mqtt_disconnect, then no will. */
	mq *q = mq_new();
	char id[64];
	es_mqtt_opts o = opts_for(q, version, unique_id(id));
	o.will_topic = "es/ut/will";
	o.will_payload = "m-77";
	mq_make(q, version, &o);
	assert_int_equal(es_mqtt_start(q->m), ES_OK);
	WAIT(q, connected_n, 1);
	assert_int_equal(es_mqtt_disconnect(q->m, 2000), ES_OK);
	WAIT(q, stopped_n, 1);
	mq_free(q);
	mark(watcher, 78, 0);
	assert_int_equal(watcher->got[77], 1);
	mq_free(watcher);
}

static int v4 = 4, v5 = 5;

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--will-child") == 0)
		return will_child(atoi(argv[2]), atoi(argv[3]));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(check_url_cases, cleanup),
		cmocka_unit_test_teardown(bad_options_are_refused, cleanup),
		cmocka_unit_test_teardown(publish_before_connected, cleanup),
		cmocka_unit_test_prestate_setup_teardown(publish_and_receive, NULL, cleanup, &v4),
		cmocka_unit_test_prestate_setup_teardown(publish_and_receive, NULL, cleanup, &v5),
		cmocka_unit_test_prestate_setup_teardown(properties_round_trip, NULL, cleanup, &v4),
		cmocka_unit_test_prestate_setup_teardown(properties_round_trip, NULL, cleanup, &v5),
		cmocka_unit_test_prestate_setup_teardown(window_limits_inflight, NULL, cleanup,
							 &v4),
		cmocka_unit_test_prestate_setup_teardown(window_limits_inflight, NULL, cleanup,
							 &v5),
		cmocka_unit_test_teardown(invalid_topics_and_filters, cleanup),
		cmocka_unit_test_teardown(large_messages_are_let_go, cleanup),
		cmocka_unit_test_prestate_setup_teardown(disconnect_stops, NULL, cleanup, &v4),
		cmocka_unit_test_prestate_setup_teardown(disconnect_stops, NULL, cleanup, &v5),
		cmocka_unit_test_teardown(disconnect_while_waiting, cleanup),
		cmocka_unit_test_prestate_setup_teardown(will_only_on_unclean_end, NULL, cleanup,
							 &v4),
		cmocka_unit_test_prestate_setup_teardown(will_only_on_unclean_end, NULL, cleanup,
							 &v5),
		cmocka_unit_test_prestate_setup_teardown(inflight_lost_with_connection_not_reported,
							 NULL, cleanup, &v4),
		cmocka_unit_test_prestate_setup_teardown(inflight_lost_with_connection_not_reported,
							 NULL, cleanup, &v5),
		cmocka_unit_test_prestate_setup_teardown(inflight_at_stop_not_reported, NULL,
							 cleanup, &v4),
		cmocka_unit_test_prestate_setup_teardown(inflight_at_stop_not_reported, NULL,
							 cleanup, &v5),
		cmocka_unit_test_teardown(fails_over_across_urls, cleanup),
		cmocka_unit_test_prestate_setup_teardown(qos0_has_room_beside_a_full_window, NULL,
							 cleanup, &v4),
		cmocka_unit_test_prestate_setup_teardown(qos0_has_room_beside_a_full_window, NULL,
							 cleanup, &v5),
		cmocka_unit_test_prestate_setup_teardown(subscribed_after_every_suback, NULL,
							 cleanup, &v4),
		cmocka_unit_test_prestate_setup_teardown(subscribed_after_every_suback, NULL,
							 cleanup, &v5),
		cmocka_unit_test_prestate_setup_teardown(reconnects_after_broker_restart, NULL,
							 cleanup, &v4),
		cmocka_unit_test_prestate_setup_teardown(reconnects_after_broker_restart, NULL,
							 cleanup, &v5),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
