/* bridge.h - the cloud bridge: edge broker(s) -> SQLite inbox -> cloud broker.
 *
 * Subscribes (QoS 1, persistent session) to every agent's events on one or
 * more edge brokers, journals each event verbatim in its own inbox (unique
 * by id: a second copy is counted and dropped), and forwards from the inbox
 * to the cloud broker over QoS 1, per source node in sequence order, marking
 * each forwarded on PUBACK. A gap tracker fed with what the inbox committed
 * (and with the agents' status messages) finds what the edge broker or the
 * bridge itself lost and asks the agents to re-send it.
 */
#ifndef BRIDGE_H
#define BRIDGE_H

#include "err.h"
#include "loop.h"
#include "settings.h"

typedef struct bridge bridge;

es_err bridge_new(const bridge_settings *s, es_loop *loop, bridge **out);
es_err bridge_start(bridge *b);
/* Loop thread. Idempotent. Stops the loop when done. */
void bridge_shutdown(bridge *b);
void bridge_free(bridge *b);
int bridge_http_port(const bridge *b);

#endif
