/* settings_link.h - the settings of one MQTT link, declared once for every
 * program that has one (edge-agent's mqtt.*, cloud-bridge's edge.* and
 * cloud.*, fleet-state's source.*, edgespool sub's mqtt.*), and the one
 * function that turns them into es_mqtt options.
 *
 * A program places the rows as a shared part (config.h) under its section:
 * ES_SHARED_EDITED("edge", offsetof(bridge_settings, edge), es_link_rows,
 * edits). The broker URL rows are each program's own (one URL or a list,
 * under a name of its own), and so is the client id's default: both differ
 * from one program to the next.
 */
#ifndef ES_SETTINGS_LINK_H
#define ES_SETTINGS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "mqtt.h"

enum { ES_LINK_V311 = 0, ES_LINK_V5 = 1 }; /* the version row's choices */

typedef struct es_link_settings {
	char *client_id; /* NULL: the program's default */
	int version;	 /* ES_LINK_V311 or ES_LINK_V5 */
	char *username, *password_file;
	char *ca, *cert, *key;
	bool tls_verify;
	int64_t keepalive_s, inflight, session_expiry_s, connect_timeout_s;
	int64_t backoff_base_ms, backoff_max_ms;
} es_link_settings;

/* The rows, keyed without a section, in this order: client_id, version,
 * username, password_file, ca, cert, key, tls_verify, keepalive_s,
 * inflight, session_expiry_s, connect_timeout_s, backoff_base_ms,
 * backoff_max_ms. A program edits client_id's help (its default id) and
 * hides the rows it does not offer (they keep their defaults). */
#define ES_LINK_ROWS 14
extern const es_setting es_link_rows[ES_LINK_ROWS];

/* Checks what the rows cannot: a client certificate comes with its key,
 * and the backoff's first ceiling is not above its largest. prefix is the
 * link's section, for the message written into err ("edge.cert: ..."). */
bool es_link_check(const es_link_settings *l, const char *prefix, char *err, size_t errcap);

/* Writes the link's options for es_mqtt_new into *out: the link's client
 * id, or client_id (the program's default) when it sets none; password
 * (read by the caller from password_file; NULL: none); the version, TLS
 * files and verification, keepalive, inflight window, session expiry,
 * connect timeout and backoff. Everything else is zero: the caller adds the
 * URL or URLs, the callbacks, a will, and clean. Strings are borrowed from
 * l and the arguments. */
void es_link_mqtt_opts(const es_link_settings *l, const char *client_id, const char *password,
		       es_mqtt_opts *out);

#endif
