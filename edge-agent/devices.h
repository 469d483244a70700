/* devices.h - the device table: what the gateway knows of each device, and
 * the go-back-N receiver's decisions (docs/link-protocol.md, decision 20).
 *
 * The table takes only the next record it expects from a device, calls an
 * earlier one a duplicate (re-ack it) and a later one early (one before it
 * was lost on the way: re-ack, the device resends). A record further from
 * the expected one than a device in step can send is out of step: the
 * device is asked to say hello. A hello greets a device: a new one starts
 * where it says, a known one may report a new boot, that records were lost
 * at the device (a cold boot dropped what it never sent), or that its
 * sequence began again (its memory was wiped, or it was replaced): then
 * what it holds is new, never taken for what was journaled before. A hello
 * that skips more than its boots can explain is refused and counted, until
 * the device has said it for DEVICES_INSIST_MS with no record taken.
 *
 * What a device's state becomes is staged with the events of a batch and
 * made final only when the batch committed (devices_done): the value stored
 * under "x.dev.<id>" in the same transaction is what a restart loads, so
 * the journal and the table always agree.
 *
 * No I/O and no lock: one thread (the links') owns the table; readers on
 * other threads hold the links' lock. The links make the events and send
 * the acks that the verdicts call for.
 */
#ifndef AGENT_DEVICES_H
#define AGENT_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "journal.h"
#include "link.h"

#define DEVICES_KEY_PREFIX "x.dev."

/* The protocol's limits (docs/link-protocol.md): a device holds at most
 * DEVICES_HELD records and sends none further than that past its oldest
 * held; a boot skips at most DEVICES_BOOT_SKIP sequences (the block it had
 * reserved and the records it held unsent). */
#define DEVICES_HELD	  64u
#define DEVICES_BOOT_SKIP (256u + DEVICES_HELD)
#define DEVICES_GAP_MAX	  65536u /* whatever the boots, a gap beyond is refused */
#define DEVICES_INSIST_MS 30000u /* ... until the hello has come this long */

struct conn; /* the links' connection; the table only keeps the pointer */

/* One device. The links set conn, last_seen_ms, link, reading and
 * hello_asked_ms; the sequence fields belong to the table. */
typedef struct dev {
	uint32_t id; /* 0: an empty slot */
	uint32_t boot;
	uint32_t last;	   /* the last record journaled: what an ACK says */
	uint32_t expected; /* the record to take next */
	bool known;	   /* the journal knows it (x.dev.<id> committed) */
	bool greeted;	   /* expected is meaningful: a hello, or known */
	bool dirty;	   /* changed by the batch being built */
	uint64_t records;
	uint64_t last_seen_ms; /* wall clock; 0: not heard since this start */
	fw_record reading;     /* its newest reading, when has_reading */
	bool has_reading;
	char link[96];		 /* the name of the link it was last heard on (cut) */
	struct conn *conn;	 /* where it was last heard from */
	uint64_t hello_asked_ms; /* when a hello was last asked for (monotonic) */
	char value[80];		 /* its x.dev.<id> value, while staged */
	char key[24];
	/* the last hello refused as implausible: its boot, its sequence, and
	 * since when it has come (0: none since a record was taken) */
	uint32_t odd_boot, odd_seq;
	uint64_t odd_since_ms;
} dev;

typedef struct devices devices;

/* An empty table for at most max devices (0: none is taken). ES_ENOMEM. */
es_err devices_new(size_t max, devices **out);
/* NULL ok. */
void devices_free(devices *t);

/* Adds every device stored under "x.dev.<id>" in the journal (a value that
 * is not a device's state is logged and skipped). ES_ENOMEM, or the
 * journal's error (logged). */
es_err devices_load(devices *t, es_journal *j);

/* The device with this id, or NULL. */
dev *devices_find(devices *t, uint32_t id);

/* What devices_record says of a record. */
typedef enum dev_verdict {
	DEV_TAKE,      /* the next one expected: journal it (devices_take) */
	DEV_DUPLICATE, /* journaled already, or in this batch: re-ack */
	DEV_EARLY,     /* one before it was lost on the way: re-ack */
	DEV_UNKNOWN,   /* no hello yet: ask the device for one */
	/* DEVICES_HELD or more from the expected one, either way: the device
	 * and the table disagree (a wiped device, a forged hello): never ack
	 * it, ask the device for a hello */
	DEV_OUT_OF_STEP,
} dev_verdict;

/* Classifies record seq of device id; *d is the device (NULL when
 * DEV_UNKNOWN). Changes nothing. */
dev_verdict devices_record(devices *t, uint32_t id, uint32_t seq, dev **d);
/* Stages the record devices_record called DEV_TAKE. False (nothing
 * changed) when out of memory: the device resends it. */
bool devices_take(devices *t, dev *d);

/* What a hello says, and when it came. */
typedef struct dev_greeting {
	uint32_t seq;	   /* the oldest record the device holds */
	uint32_t next_seq; /* the sequence its next new record gets */
	uint32_t boot;
	uint64_t now_ms; /* monotonic */
} dev_greeting;

/* What a hello means. */
typedef struct dev_hello {
	bool registered; /* the journal does not know the device yet */
	bool restarted;	 /* its sequence began again: all it holds is new */
	bool refused;	 /* implausible: nothing changed (counted); no answer */
	uint32_t lost;	 /* records the device lost before it sent them */
	bool news;	 /* worth an event: registered (and not staged yet), a new
			    boot, a restart or records lost; else re-ack the last */
} dev_hello;

/* A hello from device id: finds or adds the device (NULL when the table is
 * full, counted in refused, or out of memory, or when the hello is refused:
 * h->refused), moves its expected record to g->seq when it is new, lost
 * records or began again, marks it greeted and says what it means in *h. */
dev *devices_hello(devices *t, uint32_t id, const dev_greeting *g, dev_hello *h);
/* Stages a hello's news: the device's boot. False when out of memory. */
bool devices_stage_hello(devices *t, dev *d, uint32_t boot);

/* The staged devices' x.dev.<id> keys and values into kv[0..n), n as
 * devices_staged says. The strings live in the devices until devices_done. */
size_t devices_staged(const devices *t);
void devices_staged_kv(devices *t, es_journal_kv *kv);

/* The batch committed (ok: each staged device's records up to the last one
 * taken are journaled, and ack is called for it) or failed (each staged
 * device forgets what it took since, and a hello not journaled must come
 * again). Unstages every device. */
void devices_done(devices *t, bool ok, void (*ack)(void *ctx, dev *d), void *ctx);

/* Forgets conn as where devices were last heard (it closed). */
void devices_forget_conn(devices *t, const struct conn *conn);

/* Records when (wall ms) and on which link device id was last heard from;
 * nothing for an unknown device. */
void devices_seen(devices *t, uint32_t id, const char *link, uint64_t now_ms);

/* Counts. */
typedef struct devices_counts {
	size_t devices;
	uint64_t refused;     /* hellos refused: the table was full */
	uint64_t lost;	      /* records lost at devices (hellos said) */
	uint64_t restarts;    /* hellos whose sequence began again */
	uint64_t implausible; /* hellos refused: a gap their boots cannot explain,
				 or a device holding more than it can */
} devices_counts;
void devices_counts_get(const devices *t, devices_counts *out);

/* Every device, in no order, into out[0..) (room for devices_counts's
 * devices); returns how many. */
size_t devices_list(const devices *t, const dev **out);

#endif
