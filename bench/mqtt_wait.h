/* mqtt_wait.h - a paho MQTTAsync QoS 1 client for the baseline benchmarks:
 * connect, publish with a bounded window of unacknowledged messages, wait for
 * PUBACKs. Completions are counted under a mutex and signalled on a condvar
 * (never MQTTAsync_waitForCompletion, which sleeps in 100 ms steps).
 *
 * Lock `lock` guards every field below it.
 */
#ifndef BENCH_MQTT_WAIT_H
#define BENCH_MQTT_WAIT_H

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bench_mqtt {
	MQTTAsync client;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int inflight;
	uint64_t acked, failed;
	int state; /* 0 connecting, 1 up, -1 failed or lost, 2 disconnected */
} bench_mqtt;

/* Connects to uri (tcp://host:port) as client_id with room for window
 * unacknowledged publishes; waits up to timeout_s. 0 or -1 (printed). */
int bench_mqtt_open(bench_mqtt *m, const char *uri, const char *client_id, int window,
		    double timeout_s);

/* Publishes one QoS 1 message once fewer than window are unacknowledged.
 * 0, or -1 on a paho error, a lost connection or timeout_s without room. */
int bench_mqtt_publish(bench_mqtt *m, const char *topic, const void *payload, size_t len,
		       int window, double timeout_s);

/* Waits until every publish made is acknowledged. 0 or -1 (timeout, loss). */
int bench_mqtt_drain(bench_mqtt *m, double timeout_s);

/* Disconnects (if up) and destroys the client. */
void bench_mqtt_close(bench_mqtt *m);

#endif
