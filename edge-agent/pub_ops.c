/* pub_ops.c - the publishing parts' ops table over the MQTT client
 * (pub_ops.h): QoS 1, the client's window. Loop thread. */
#include "pub_ops.h"

#include "mqtt.h"

static es_err mqtt_publish(void *ctx, const char *topic, const void *payload, size_t len,
			   bool retain, uint64_t tag, const es_mqtt_props *props)
{
	return es_mqtt_publish_props(*(es_mqtt **)ctx, topic, payload, len, 1, retain, tag, props);
}

static bool mqtt_connected(void *ctx)
{
	return es_mqtt_is_connected(*(es_mqtt **)ctx);
}

static size_t mqtt_inflight(void *ctx)
{
	return es_mqtt_inflight(*(es_mqtt **)ctx);
}

static size_t mqtt_window(void *ctx)
{
	return es_mqtt_window(*(es_mqtt **)ctx);
}

const agent_pub_ops agent_mqtt_ops = {.publish = mqtt_publish,
				      .connected = mqtt_connected,
				      .inflight = mqtt_inflight,
				      .window = mqtt_window};
