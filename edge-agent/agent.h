/* agent.h - the edge agent: ingest over HTTP, journal, publish over MQTT.
 *
 * Runs on the caller's loop: agent_new() wires the journal, the MQTT client
 * and the HTTP server; agent_start() opens for business; agent_shutdown()
 * drains (no new events, PUBACKs of what is in flight awaited up to
 * shutdown.drain_ms, an offline status published, a clean disconnect) and
 * then stops the loop; agent_free() closes the journal.
 */
#ifndef AGENT_H
#define AGENT_H

#include "err.h"
#include "loop.h"
#include "settings.h"

typedef struct agent agent;

/* s and loop must outlive the agent. Errors are logged with their cause. */
es_err agent_new(const agent_settings *s, es_loop *loop, agent **out);
es_err agent_start(agent *a);
/* Loop thread. Idempotent. */
void agent_shutdown(agent *a);
void agent_free(agent *a);
int agent_http_port(const agent *a);

#include "journal.h"
/* The agent's journal, for in-process benchmarks and tests: appends from any
 * thread go through the same group commit and publisher as HTTP ingest. */
es_journal *agent_journal(agent *a);

#endif
