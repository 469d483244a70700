/* settings_shared.c - the rows of the settings several programs share:
 * journal, HTTP, logging, re-sends; see settings_shared.h. */
#include "settings_shared.h"

#include <stddef.h>

#define J(field) offsetof(es_journal_settings, field)
#define H(field) offsetof(es_http_settings, field)
#define G(field) offsetof(es_gap_settings, field)

static const char *const sync_modes[] = {"full", "normal", NULL};
static const char *const full_policies[] = {"refuse", "evict-oldest-acked", NULL};
/* In es_log_level order. */
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

const es_setting es_journal_rows[ES_JOURNAL_ROWS] = {
	{"path", ES_CFG_STR, J(path), "/var/lib/edgespool/agent.db", 0, 0, NULL, ES_CFG_PATH,
	 "the SQLite journal file"},
	{"sync", ES_CFG_ENUM, J(sync), "full", 0, 0, sync_modes, 0,
	 "full: fsync each commit (survives power loss); normal: survives crashes only"},
	{"max_bytes", ES_CFG_SIZE, J(max_bytes), "1GiB", 65536, 1LL << 50, NULL, 0,
	 "cap on the journal's size"},
	{"retain_s", ES_CFG_SECONDS, J(retain_s), "7d", 0, 3650LL * 86400, NULL, 0,
	 "keep acknowledged events this long (for re-sends and replay)"},
	{"on_full", ES_CFG_ENUM, J(on_full), "refuse", 0, 0, full_policies, 0,
	 "at the cap: refuse new events, or evict the oldest acknowledged ones"},
	{"linger_ms", ES_CFG_MS, J(linger_ms), "250", 0, 10000, NULL, 0,
	 "at low rates a commit waits up to this long for more events: fewer, fuller commits "
	 "write less to flash; each event's acknowledgement waits as long (0: commit at once)"},
	{"ack_flush_ms", ES_CFG_MS, J(ack_flush_ms), "5s", 0, 3600000, NULL, 0,
	 "write what the broker acknowledged to the file at most this often; after a crash what "
	 "was acknowledged since is published again (duplicates, never a loss)"},
};

const es_setting es_http_rows[ES_HTTP_ROWS] = {
	{"listen", ES_CFG_STR, H(listen), "127.0.0.1:8080", 0, 0, NULL, 0,
	 "HTTP address; port 0 picks a free port (logged)"},
	{"auth_file", ES_CFG_STR, H(auth_file), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "users allowed in: user:crypt-hash lines (edgespool passwd FILE USER adds one)"},
	{"token_file", ES_CFG_STR, H(token_file), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "a bearer token (first line) also allowed in, for scripts"},
	{"metrics_open", ES_CFG_BOOL, H(metrics_open), "false", 0, 0, NULL, 0,
	 "serve /metrics without credentials (for a scraper on a trusted network)"},
	{"threads", ES_CFG_INT, H(threads), "256", 1, 1024, NULL, 0,
	 "HTTP worker threads: each connection holds one while it lasts"},
};

const es_setting es_log_rows[ES_LOG_ROWS] = {
	{"level", ES_CFG_ENUM, offsetof(es_log_settings, level), "info", 0, 0, log_levels, 0,
	 "log threshold"},
	{"syslog", ES_CFG_BOOL, offsetof(es_log_settings, syslog), "false", 0, 0, NULL, 0,
	 "also log to syslog"},
};

const es_setting es_gap_rows[ES_GAP_ROWS] = {
	{"grace_ms", ES_CFG_MS, G(grace_ms), "500", 1, 3600000, NULL, 0,
	 "a hole waits this long before it is asked for"},
	{"retry_ms", ES_CFG_MS, G(retry_ms), "5s", 1, 3600000, NULL, 0,
	 "ask again after this long while a hole stays open"},
	{"max_span", ES_CFG_INT, G(max_span), "10000", 1, 100000000, NULL, 0,
	 "largest range in one re-send request"},
};
