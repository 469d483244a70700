/* settings_shared.h - settings several programs share, each declared once
 * as rows keyed without a section, for a program to place as a shared part
 * (config.h) under the section it names:
 *   the journal  (edge-agent, cloud-bridge)             usually "journal"
 *   HTTP         (edge-agent, cloud-bridge, fleet-state) usually "http"
 *   logging      (every program)                        usually "log"
 *   re-sends     (cloud-bridge, edgespool sub)          usually "gap"
 * The MQTT link has a module of its own (settings_link.h). The defaults and
 * help are edge-agent's; a program edits the rows that differ for it.
 */
#ifndef ES_SETTINGS_SHARED_H
#define ES_SETTINGS_SHARED_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* The journal's SQLite file and its limits. */
enum { ES_JOURNAL_SYNC_FULL = 0, ES_JOURNAL_SYNC_NORMAL = 1 };
enum { ES_JOURNAL_REFUSE = 0, ES_JOURNAL_EVICT = 1 }; /* on_full */

typedef struct es_journal_settings {
	char *path;
	int sync; /* ES_JOURNAL_SYNC_* */
	uint64_t max_bytes;
	int64_t retain_s;
	int on_full; /* ES_JOURNAL_REFUSE or ES_JOURNAL_EVICT */
	int64_t linger_ms, ack_flush_ms;
} es_journal_settings;

/* Rows: path, sync, max_bytes, retain_s, on_full, linger_ms, ack_flush_ms. */
#define ES_JOURNAL_ROWS 7
extern const es_setting es_journal_rows[ES_JOURNAL_ROWS];

/* The HTTP server: where it listens, who is let in, how many workers. */
typedef struct es_http_settings {
	char *listen, *auth_file, *token_file;
	bool metrics_open;
	int64_t threads;
} es_http_settings;

/* Rows: listen, auth_file, token_file, metrics_open, threads. */
#define ES_HTTP_ROWS 5
extern const es_setting es_http_rows[ES_HTTP_ROWS];

/* Logging: es_log_setup's threshold and syslog. */
typedef struct es_log_settings {
	int level; /* an es_log_level */
	bool syslog;
} es_log_settings;

/* Rows: level, syslog. */
#define ES_LOG_ROWS 2
extern const es_setting es_log_rows[ES_LOG_ROWS];

/* Re-send requests for holes in a node's sequence (es_gap_opts). */
typedef struct es_gap_settings {
	int64_t grace_ms, retry_ms, max_span;
} es_gap_settings;

/* Rows: grace_ms, retry_ms, max_span. */
#define ES_GAP_ROWS 3
extern const es_setting es_gap_rows[ES_GAP_ROWS];

#endif
