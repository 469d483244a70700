/* gap.h - consumer-side gap tracker: per source node, which sequences are
 * missing, and which re-send requests to issue for them.
 *
 * A consumer (the cloud bridge, `edgespool sub`, any service) feeds it every
 * event's (node, sequence) and every status message; it answers whether the
 * event is new or a duplicate, keeps the holes (ranges of missing
 * sequences), and hands out re-send requests for holes that stayed open
 * longer than a grace period, again after a retry period while they stay
 * open. A range the node no longer holds (its status says its oldest
 * sequence is above it, or it answered "gone") is counted as lost, loudly:
 * never silently forgotten.
 *
 * Per node the tracker keeps `seen_max` (the highest sequence accounted for:
 * received, or announced by a status message) and a sorted list of holes
 * below it. A sequence at or below seen_max that is in no hole is a
 * duplicate. The number of holes per node is bounded (max_holes): past it the
 * two closest holes are merged, which can only cause extra re-sends, never a
 * missed one.
 *
 * Nodes are keyed by a string (e.g. "site-1/gw-7"). A node's status
 * announces it (es_gap_announce): its journal, its boot, its newest
 * sequence. A journal that was replaced (a new journal_id) or went back in
 * time (a new boot whose newest sequence is below one its journal already
 * announced: restored from a backup) starts a new epoch of the node: its
 * sequences start again, and the tracker forgets the old ones (what was
 * missing of the old journal counts as lost). A node that says its newest
 * sequence is L (a status, or a re-send reply) has nothing above L: holes
 * there are void, not lost, and never asked for.
 * Not thread-safe: one thread owns a tracker.
 */
#ifndef ES_GAP_H
#define ES_GAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "err.h"

typedef struct es_gap es_gap;

typedef struct es_gap_opts {
	uint64_t grace_ms; /* a hole waits this long before it is asked for (default 500) */
	uint64_t retry_ms; /* asked again after this long while open (default 5000) */
	uint64_t max_span; /* the largest range in one request (default 10000) */
	size_t max_holes;  /* per node (default 4096) */
	bool from_start;   /* a new node's first event leaves [1, seq-1] as a
			      hole (true), or starts tracking there (false) */
	/* Catch-up: when > 0, a node's first online status (and each new epoch's)
	 * starts tracking it, and the newest `catchup` sequences it still holds
	 * up to its acked_seq are holes, to be asked for (UINT64_MAX: all it
	 * holds). 0: a status of an untracked node only records it, and its first
	 * event starts tracking (from_start). */
	uint64_t catchup;
} es_gap_opts;

typedef enum es_gap_verdict {
	ES_GAP_NEW,    /* a sequence not seen before (above seen_max, or below
			  where tracking started when from_start is false) */
	ES_GAP_FILLED, /* a sequence that filled (part of) a hole */
	ES_GAP_DUP,    /* already seen */
} es_gap_verdict;

typedef struct es_gap_request {
	char node[136];
	uint64_t from, to;
} es_gap_request;

typedef struct es_gap_stats {
	uint64_t nodes;
	uint64_t holes_open;	 /* ranges currently missing */
	uint64_t missing;	 /* sequences currently missing */
	uint64_t holes_detected; /* ranges ever opened */
	uint64_t filled;	 /* sequences that arrived into a hole */
	uint64_t lost;		 /* sequences the node no longer holds */
	uint64_t duplicates;	 /* sequences seen more than once */
	uint64_t requests;	 /* re-send requests handed out */
	uint64_t resets;	 /* new epochs: a journal replaced or gone back */
	uint64_t voided;	 /* sequences a node said it never had: not holes */
} es_gap_stats;

/* What the tracker knows of one node. */
typedef struct es_gap_node_info {
	bool announced;	   /* a status named its journal */
	bool tracking;	   /* its sequence is being tracked */
	uint32_t epoch;	   /* 0 until announced, then 1, +1 at each new epoch */
	uint64_t latest;   /* the newest sequence it said it has (status or reply) */
	uint64_t seen_max; /* the highest sequence accounted for */
} es_gap_node_info;

/* opts may be NULL for the defaults; zero fields take their default. */
es_err es_gap_new(const es_gap_opts *opts, es_gap **out);
void es_gap_free(es_gap *g);

/* Records that node's event with sequence seq (>= 1) arrived at now_ms.
 * ES_EINVAL for seq 0 or an invalid node; ES_ENOMEM. */
es_err es_gap_seen(es_gap *g, const char *node, uint64_t seq, uint64_t now_ms,
		   es_gap_verdict *verdict);

/* Records node's status: everything up to acked_seq should have arrived
 * (later ones become holes); everything below oldest_seq is no longer held
 * (holes there are lost). journal_id may be NULL or empty. */
es_err es_gap_status(es_gap *g, const char *node, const char *journal_id, uint64_t acked_seq,
		     uint64_t oldest_seq, uint64_t now_ms);

/* Records node's status message m (online or offline): announces the node,
 * starts a new epoch when its journal was replaced or went back (then
 * *new_epoch, if not NULL, is true), catches up (opts.catchup), and applies
 * acked_seq and oldest_seq as es_gap_status does (online only). A status
 * older than the newest one seen (both with synchronised clocks, same
 * journal) is stale: ignored. ES_EINVAL for a bad node; ES_ENOMEM. */
es_err es_gap_announce(es_gap *g, const char *node, const es_status_msg *m, uint64_t now_ms,
		       bool *new_epoch);

/* Records that node said its newest sequence is latest (a re-send reply):
 * what is missing above it is void (counted, never asked for), and if
 * sequences above it were seen (a forged event), tracking comes back to
 * latest, so the real ones are new when they come. An unknown node is no
 * error. ES_EINVAL for a bad node or latest 0. */
es_err es_gap_void(es_gap *g, const char *node, uint64_t latest);

/* True when node's seq was seen in the current epoch (it would be a
 * duplicate). */
bool es_gap_has(const es_gap *g, const char *node, uint64_t seq);

/* What the tracker knows of node: true and *out, or false when it knows
 * nothing of it. */
bool es_gap_node_get(const es_gap *g, const char *node, es_gap_node_info *out);

/* Calls fn with every node, in no particular order; fn must not change g. */
void es_gap_each(const es_gap *g,
		 void (*fn)(void *ctx, const char *node, const es_gap_node_info *info), void *ctx);

/* Records that node answered [from, to] is gone: holes there count as lost. */
es_err es_gap_gone(es_gap *g, const char *node, uint64_t from, uint64_t to);

/* Writes up to cap re-send requests that are due at now_ms into out, marks
 * them asked, and returns how many. */
size_t es_gap_due(es_gap *g, uint64_t now_ms, es_gap_request *out, size_t cap);

/* The highest sequence below which nothing is missing for node (0 if none
 * or unknown node). */
uint64_t es_gap_contiguous(const es_gap *g, const char *node);

void es_gap_stats_get(const es_gap *g, es_gap_stats *out);

/* Writes the tracker's whole state (every node: journal_id, boot_id, epoch,
 * latest, seen_max, holes with their from/to -- not the timing of requests
 * nor the time of the last status) as text into a malloc'd
 * *out (NUL-terminated, *len excludes it), so a consumer can keep it
 * (e.g. with es_journal_put) and restore it after a restart. The same state
 * always gives the same text. ES_EINVAL for a NULL argument; ES_ENOMEM. */
es_err es_gap_save(const es_gap *g, char **out, size_t *len);

/* Replaces the tracker's state with one written by es_gap_save. Restored
 * holes count as newly detected at now_ms (so they are asked for again after
 * grace_ms); a node with more holes than this tracker's max_holes has its
 * closest ones merged. The counters (holes_detected, filled, lost...) are
 * this tracker's and stay as they were. ES_EINVAL (the tracker is unchanged)
 * for text that is not a valid saved state, naming nothing -- it is our own
 * format; ES_ENOMEM (unchanged too). */
es_err es_gap_load(es_gap *g, const char *text, size_t len, uint64_t now_ms);

/* One node's part of that text (es_gap_save's text is a header line, then
 * each node's part, then "\n"; a part is "\n<name> ..." with the name
 * written as a word: see gap.c), malloc'd and NUL-terminated, *len
 * excluding the NUL. So a consumer can keep each node's state apart and
 * write only the nodes that changed. ES_ENOTFOUND for a node the tracker
 * does not know; ES_EINVAL for a NULL argument; ES_ENOMEM. */
es_err es_gap_save_node(const es_gap *g, const char *node, char **out, size_t *len);

/* As es_gap_load, from node parts (es_gap_save_node's, in any order)
 * concatenated: none at all makes an empty tracker. */
es_err es_gap_load_nodes(es_gap *g, const char *parts, size_t len, uint64_t now_ms);

#endif
