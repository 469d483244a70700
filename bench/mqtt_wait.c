#include "mqtt_wait.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void set_state(bench_mqtt *m, int state)
{
	pthread_mutex_lock(&m->lock);
	m->state = state;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *d)
{
	set_state(ctx, 1);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *d)
{
	fprintf(stderr, "mqtt: connect failed (code %d)\n", d ? d->code : -1);
	set_state(ctx, -1);
}

static void on_lost(void *ctx, char *cause)
{
	fprintf(stderr, "mqtt: connection lost: %s\n", cause ? cause : "?");
	set_state(ctx, -1);
}

static void on_disconnected(void *ctx, MQTTAsync_successData *d)
{
	set_state(ctx, 2);
}

static int on_message(void *ctx, char *topic, int len, MQTTAsync_message *msg)
{
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *d)
{
	bench_mqtt *m = ctx;
	pthread_mutex_lock(&m->lock);
	m->inflight--;
	m->acked++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *d)
{
	bench_mqtt *m = ctx;
	pthread_mutex_lock(&m->lock);
	m->inflight--;
	m->failed++;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static struct timespec deadline(double timeout_s)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	long long ns = (long long)ts.tv_nsec + (long long)(timeout_s * 1e9);
	ts.tv_sec += (time_t)(ns / 1000000000LL);
	ts.tv_nsec = (long)(ns % 1000000000LL);
	return ts;
}

/* Caller holds the lock. Waits for a signal; false when the deadline passed
 * or the connection is gone (the caller then re-checks its condition). */
static bool wait_until(bench_mqtt *m, const struct timespec *dl)
{
	if (m->state == -1)
		return false;
	return pthread_cond_timedwait(&m->cond, &m->lock, dl) != ETIMEDOUT;
}

static int start_connect(bench_mqtt *m, int window)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.maxInflight = window;
	co.onSuccess = on_connect_ok;
	co.onFailure = on_connect_fail;
	co.context = m;
	return MQTTAsync_connect(m->client, &co);
}

int bench_mqtt_open(bench_mqtt *m, const char *uri, const char *client_id, int window,
		    double timeout_s)
{
	memset(m, 0, sizeof *m);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	int rc = MQTTAsync_create(&m->client, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setCallbacks(m->client, m, on_lost, on_message, NULL);
	if (rc == MQTTASYNC_SUCCESS)
		rc = start_connect(m, window);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "mqtt: %s: paho %d (%s)\n", uri, rc, MQTTAsync_strerror(rc));
		return -1;
	}
	struct timespec dl = deadline(timeout_s);
	pthread_mutex_lock(&m->lock);
	while (m->state == 0 && wait_until(m, &dl))
		;
	int state = m->state;
	pthread_mutex_unlock(&m->lock);
	return state == 1 ? 0 : -1;
}

int bench_mqtt_publish(bench_mqtt *m, const char *topic, const void *payload, size_t len,
		       int window, double timeout_s)
{
	struct timespec dl = deadline(timeout_s);
	pthread_mutex_lock(&m->lock);
	while (m->inflight >= window && wait_until(m, &dl))
		;
	bool ok = m->inflight < window && m->state == 1;
	if (ok)
		m->inflight++;
	pthread_mutex_unlock(&m->lock);
	if (!ok)
		return -1;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = 1;
	ro.onSuccess = on_pub_ok;
	ro.onFailure = on_pub_fail;
	ro.context = m;
	int rc = MQTTAsync_sendMessage(m->client, topic, &msg, &ro);
	if (rc == MQTTASYNC_SUCCESS)
		return 0;
	fprintf(stderr, "mqtt: publish: paho %d (%s)\n", rc, MQTTAsync_strerror(rc));
	return -1;
}

int bench_mqtt_drain(bench_mqtt *m, double timeout_s)
{
	struct timespec dl = deadline(timeout_s);
	pthread_mutex_lock(&m->lock);
	while (m->inflight > 0 && wait_until(m, &dl))
		;
	bool clean = m->inflight == 0 && m->failed == 0;
	pthread_mutex_unlock(&m->lock);
	return clean ? 0 : -1;
}

void bench_mqtt_close(bench_mqtt *m)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
	d.timeout = 1000;
	d.onSuccess = on_disconnected;
	d.context = m;
	if (m->client && m->state == 1 &&
	    MQTTAsync_disconnect(m->client, &d) == MQTTASYNC_SUCCESS) {
		struct timespec dl = deadline(2.0);
		pthread_mutex_lock(&m->lock);
		while (m->state == 1 && pthread_cond_timedwait(&m->cond, &m->lock, &dl) == 0)
			;
		pthread_mutex_unlock(&m->lock);
	}
	if (m->client)
		MQTTAsync_destroy(&m->client);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
}
