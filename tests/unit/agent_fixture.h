/* agent_fixture.h - what the unit tests of the agent's parts share: a real
 * journal on a temporary SQLite file with the loop thread's reader, and a
 * fake MQTT client behind the parts' ops table (pub_ops.h) that records
 * what was published and keeps a window the test controls. */
#ifndef AGENT_FIXTURE_H
#define AGENT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "pub_ops.h"
#include "topic.h"

#define FX_SENT_MAX 1024
#define FX_ROOT	    "edgespool"
#define FX_SITE	    "site-1"
#define FX_NODE	    "gw-7"

typedef struct fx_msg {
	char topic[ES_TOPIC_MAX];
	char *payload; /* NUL-terminated */
	size_t len;
	bool retain;
	uint64_t tag;
	char content_type[64]; /* its MQTT 5 content type; "" for none */
} fx_msg;

/* The fake client: publish fails with ES_ENOTCONN while !connected, with
 * ES_EBUSY while inflight == window, with `fail` when set; else it records
 * the message and counts it in flight. */
typedef struct fx_mqtt {
	bool connected;
	size_t window, inflight;
	es_err fail;
	fx_msg sent[FX_SENT_MAX];
	size_t nsent;
} fx_mqtt;

extern const agent_pub_ops fx_ops; /* ctx: an fx_mqtt */

typedef struct fx {
	char dir[64], path[128];
	es_journal *journal;
	es_journal_reader *reader;
	fx_mqtt mqtt;
	agent_names names;
} fx;

/* cmocka setup/teardown: a folder, a journal in it (acked events kept an
 * hour), a reader, a connected fake with a window of 10. */
int fx_setup(void **state);
int fx_teardown(void **state);

/* Closes the journal and opens it again with retain_ms (1: acked events
 * go at the next retention pass). */
void fx_reopen(fx *f, uint64_t retain_ms);
/* Journals n events of type (data {"i":k}); returns the last sequence. */
uint64_t fx_append(fx *f, size_t n, const char *type);
/* Acks [from, to] in the journal and waits until committed. */
void fx_ack(fx *f, uint64_t from, uint64_t to);
/* Waits (polling, 15 s at most) until the journal holds nothing below seq. */
bool fx_wait_oldest(fx *f, uint64_t seq);
/* Forgets what was sent (frees the payloads); inflight stays. */
void fx_clear(fx *f);
/* The sequence an event message carries ("sequence" in its body). */
uint64_t fx_sequence(const fx_msg *m);

/* One HTTP request to 127.0.0.1:port (ctype and body may be NULL); the
 * response's body into out (NUL-terminated, cut to cap). Returns its status. */
int fx_http(int port, const char *method, const char *path, const char *ctype, const char *body,
	    char *out, size_t cap);

#endif
