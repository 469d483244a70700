/* links_int.h - the device links' private parts, shared by their files; not
 * for use outside them (links.h is the API).
 *
 *   links.c         the thread: the poll loop over every connection, timers,
 *                   and the composition (links_new .. links_free)
 *   link_serial.c   the serial transport: "PATH[:BAUD]", termios raw mode
 *   link_socket.c   the socket transport: tcp and unix listeners, clients
 *   link_ingest.c   frames in -> the device table -> one journal append per
 *                   round -> acks out
 *   link_events.c   a record or a hello -> its CloudEvent
 *   links_status.c  totals, /api/status's links and /api/devices
 *   devices.c       the device table (devices.h)
 *
 * Threads: the links thread owns every conn and the device table. l->lock
 * guards the counters (struct link_stats, the table's counts and
 * l->journal_refused) and the table's contents, so that the status
 * functions can read them from an HTTP thread; the links thread holds it
 * while it decodes a chunk of input, never across the journal's commit or a
 * poll.
 */
#ifndef AGENT_LINKS_INT_H
#define AGENT_LINKS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "devices.h"
#include "event.h"
#include "link.h"
#include "links.h"

#define TAG	     "links"
#define OUT_MAX	     8192
#define BATCH_MAX    2048 /* events per append at most */
#define FAULT_LOG_MS 10000

struct cJSON;

enum conn_kind { C_SERIAL, C_LISTENER, C_CLIENT };

/* What one link saw; a listener's clients count into the listener's. */
struct link_stats {
	uint64_t opens, bytes_in, frames, records, duplicates, early, unknown_device;
	uint64_t bad_payload, wrong_direction, acks, out_dropped, clients_refused;
	uint64_t out_of_step;	     /* records the table could not place: hello asked */
	uint64_t hellos_implausible; /* implausible hellos (devices.h) */
	uint64_t bad_time;	     /* records whose device time was implausible: dropped */
	uint64_t faults[FW_FAULT_COUNT_];
};

struct conn {
	enum conn_kind kind;
	int fd; /* -1 while closed */
	char name[200];
	struct link_stats own, *st;
	/* C_SERIAL */
	char *path;
	speed_t speed;
	uint64_t retry_at;
	/* C_LISTENER */
	char *unix_path; /* to unlink at the end */
	size_t clients;
	struct conn *listener; /* C_CLIENT: whose client */
	fw_decoder dec;
	uint8_t out[OUT_MAX];
	size_t nout;
	uint64_t time_at, fault_log_at, odd_log_at;
	bool warned; /* C_SERIAL: said that it cannot open, since the last open */
};

/* The events of one round, journaled in one append with the staged
 * devices' state. */
struct batch {
	es_event *evs[BATCH_MAX];
	size_t n;
};

struct links {
	links_opts o;
	struct conn **conns;
	size_t nconns, capconns;
	devices *devs;
	struct batch batch;
	int wake_fd;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t lock;
	uint64_t journal_refused;
	uint64_t refused_log_at;
};

/* ---- links.c ---------------------------------------------------------- */

/* A closed connection of this kind, named name (cut to fit); NULL when out
 * of memory. */
struct conn *link_conn_new(enum conn_kind kind, const char *name);
/* Frees a connection (closing it, and removing a unix socket's file). */
void link_conn_free(struct conn *c);
/* Closes c (if open), logs why, and forgets it as devices' connection. */
void link_conn_close(struct links *l, struct conn *c, const char *why);

/* ---- link_serial.c ---------------------------------------------------- */

/* A closed serial line for "PATH[:BAUD]" (checked by links_check_serial);
 * NULL when the spec is not valid or out of memory. */
struct conn *link_serial_new(const char *spec);
/* Opens c's line in raw mode; when it cannot, logs that once (until it
 * opens) and sets c->retry_at to now + reopen_ms. */
void link_serial_open(struct conn *c, uint64_t now, uint64_t reopen_ms);

/* ---- link_socket.c ---------------------------------------------------- */

/* A listening socket for "tcp:HOST:PORT" or "unix:PATH" (checked by
 * links_check_listen) into *out. ES_EINVAL when it cannot listen (logged),
 * ES_ENOMEM. */
es_err link_listen(const char *spec, struct conn **out);
/* Accepts a client of listener ls, or NULL: none waiting, or refused (no
 * room: at link.max_clients or the links' list cannot grow; or out of
 * memory: counted, logged). */
struct conn *link_accept(struct conn *ls, bool room, uint64_t now);

/* ---- link_ingest.c ---------------------------------------------------- */

/* Decodes n bytes read from c and takes every frame in them. l->lock held. */
void link_ingest(struct links *l, struct conn *c, const uint8_t *buf, size_t n);
/* A TIME frame to device (0: every device on the line) queued on c. */
void link_send_time(struct conn *c, uint32_t device);
/* Journals the round's events and the staged devices' state in one append
 * (waits for the commit; call without l->lock), then acknowledges, or
 * forgets what was taken so the devices resend it. */
void link_batch_flush(struct links *l);
/* Drops the round's events and what was staged (at the end). */
void link_batch_drop(struct links *l);

/* ---- link_events.c ---------------------------------------------------- */

/* "dev-%08x": a device's CloudEvents subject. */
void link_subject(uint32_t device, char *buf, size_t cap);
/* The event of record seq of device d heard on link: sensor.reading,
 * alarm.raised or alarm.cleared. NULL when out of memory (logged). */
es_event *link_record_event(uint32_t device, const char *link, uint32_t seq, const fw_record *r);
/* The event of a hello: device.registered (what->registered) or
 * device.seen, with records_lost when what->lost and sequence_restarted
 * when what->restarted. NULL when out of memory (logged). */
es_event *link_hello_event(uint32_t device, const char *link, const fw_hello *h,
			   const dev_hello *what);
/* True when a device's wall time (ms) can be one: from 2000 on, at most a
 * day past now_ms (the gateway's wall clock, which set the device's). */
bool link_time_plausible(uint64_t wall_ms, uint64_t now_ms);
/* Adds a reading's value to a JSON object: "open" for a door, else "value"
 * and "unit". */
void link_add_value(struct cJSON *o, const fw_record *r);
/* Adds a wall time (ms) as an RFC 3339 string. */
void link_add_time(struct cJSON *o, const char *name, uint64_t ms);

#endif
