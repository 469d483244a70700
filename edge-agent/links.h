/* links.h - the device links: serial lines and sockets carrying frames from
 * devices (docs/link-protocol.md; the codec is firmware-host/core/link.h).
 *
 * Every record a device sends becomes one CloudEvent in the journal; the
 * device gets its ACK only after that event committed. The links run on a
 * thread of their own because es_journal_append_kv waits for the commit:
 * the thread reads whatever every link has, journals it as one append, then
 * acknowledges, so one commit (one fsync) covers many records.
 *
 * What the gateway remembers of each device (its boot count and the last
 * record journaled) is stored under "x.dev.<id>" in the same transaction as
 * the device's events, so after a crash the two always agree: a record is
 * journaled once, and a resent one is re-acked, not journaled again.
 */
#ifndef AGENT_LINKS_H
#define AGENT_LINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "journal.h"

typedef struct links links;

typedef struct links_opts {
	const es_strlist *serial; /* "PATH[:BAUD]" */
	const es_strlist *listen; /* "tcp:HOST:PORT", "unix:PATH" */
	size_t max_devices, max_clients;
	uint64_t time_sync_ms; /* 0: only after a hello */
	uint64_t reopen_ms;
	es_journal *journal;
} links_opts;

/* Checks one link.serial or link.listen value; NULL if good, else why not. */
const char *links_check_serial(const char *spec);
const char *links_check_listen(const char *spec);

/* Loads the devices' state from the journal and opens the listeners (a
 * listener that cannot bind is an error: ES_EINVAL, logged). Serial lines
 * that are absent are retried every reopen_ms once started. */
es_err links_new(const links_opts *o, links **out);
/* Starts the thread. */
es_err links_start(links *l);
/* Stops the thread: no more records are taken (a shutdown). The links stay
 * open and their state readable until links_free. */
void links_stop(links *l);
/* Stops the thread, closes every link. The journal must still be open. */
void links_free(links *l);

/* Totals over every link, for metrics. Any thread. */
typedef struct links_totals {
	uint64_t frames, records, duplicates, early, unknown_device, bad_payload;
	uint64_t wrong_direction, acks_sent, bytes_in;
	uint64_t faults[8]; /* by enum fw_fault; fault_names[k] says which */
	const char *fault_names[8];
	size_t nfaults;
	uint64_t devices, devices_refused, records_lost_at_devices, journal_refused;
	size_t links, links_open;
} links_totals;
void links_totals_get(links *l, links_totals *out);

/* GET /api/devices: every device known, most recently heard first, as JSON
 * text (malloc'd; NULL when out of memory). Any thread. */
char *links_devices_json(links *l);

/* The links' state for /api/status, as JSON text (malloc'd). Any thread. */
char *links_status_json(links *l);

#endif
