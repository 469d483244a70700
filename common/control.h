/* control.h - the messages that close the delivery loop end to end.
 *
 * A broker's PUBACK is not durability, so every node also publishes:
 *  - status (retained, <root>/<site>/<node>/status): what its journal holds,
 *    so a consumer can see events it should have received;
 *  - replies to re-send requests (<root>/<site>/<node>/reply/resend).
 * and serves re-send requests on <root>/<site>/<node>/cmd/resend: the events
 * themselves are re-published on their usual topics.
 *
 * All are small JSON objects; decoding is strict and says what is wrong.
 * They come from the network, from whoever the broker lets publish: a
 * message larger than ES_CONTROL_MAX_BYTES is refused before it is parsed,
 * the text must be UTF-8 (RFC 8259), and every string a node echoes back
 * (request_id) is valid UTF-8 without control characters, so an answer is
 * always valid JSON.
 */
#ifndef ES_CONTROL_H
#define ES_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "uuid.h"

#define ES_REQUEST_ID_MAX 64
/* The largest control message decoded: far below any broker's limit (the
 * largest valid one is about 400 bytes). */
#define ES_CONTROL_MAX_BYTES 4096
/* The largest sequence these messages carry (2^53-1, exact in a double):
 * no node sends a larger one, since nobody could ask it to re-send it. */
#define ES_CONTROL_SEQ_MAX UINT64_C(9007199254740991)

/* {"state":"online","boot_id":"...","journal_id":"...","latest_seq":N,
 *  "acked_seq":N,"oldest_seq":N,"pending":N,"clock_synced":true,
 *  "time":"2026-..Z"} */
typedef struct es_status_msg {
	bool online;
	char boot_id[ES_UUID_STR];    /* new at every process start */
	char journal_id[ES_UUID_STR]; /* made when the journal was created */
	uint64_t latest_seq;	      /* newest sequence journaled (0: none yet) */
	/* The newest sequence the journal held when this boot opened it: what
	 * the node had before it started. Below what it announced or sent
	 * before, its journal went back (restored from a backup, or lost its
	 * last commits): a new epoch. Absent from an older node's status: its
	 * latest_seq. */
	uint64_t boot_seq;
	uint64_t acked_seq;  /* every sequence <= this was PUBACKed */
	uint64_t oldest_seq; /* oldest sequence still held (0: none) */
	uint64_t pending;    /* journaled, not yet PUBACKed */
	bool clock_synced;
	uint64_t time_ms;
} es_status_msg;

/* {"from":N,"to":N,"request_id":"..."}; 1 <= from <= to. */
typedef struct es_resend_req {
	uint64_t from, to;
	char request_id[ES_REQUEST_ID_MAX]; /* may be empty */
} es_resend_req;

typedef enum es_resend_status {
	ES_RESEND_OK,	   /* the whole range was re-published */
	ES_RESEND_PARTIAL, /* part re-published, part gone or not yet there */
	ES_RESEND_GONE,	   /* nothing of it is held any more */
	ES_RESEND_BUSY,	   /* too many requests queued; ask again later */
	ES_RESEND_INVALID, /* the request could not be understood */
} es_resend_status;

/* {"request_id":"..","from":N,"to":N,"status":"ok|partial|gone|busy|invalid",
 *  "sent_from":N,"sent_to":N,"gone_from":N,"gone_to":N,"reason":"..",
 *  "latest_seq":N};
 * a range of 0..0 means none. latest_seq is the node's newest sequence when
 * it answered (0: not said, as by nodes before it was added): nothing above
 * it exists, so a consumer stops looking for it. */
typedef struct es_resend_reply {
	char request_id[ES_REQUEST_ID_MAX];
	uint64_t from, to;
	es_resend_status status;
	uint64_t sent_from, sent_to;
	uint64_t gone_from, gone_to;
	char reason[128];
	uint64_t latest_seq;
} es_resend_reply;

/* Encoders return a malloc'd NUL-terminated string in *json (*len excludes
 * the NUL); ES_ENOMEM on failure. */
es_err es_status_encode(const es_status_msg *m, char **json, size_t *len);
es_err es_resend_req_encode(const es_resend_req *r, char **json, size_t *len);
es_err es_resend_reply_encode(const es_resend_reply *r, char **json, size_t *len);

/* Decoders fill *out only on success; on ES_EINVAL (or ES_ETOOBIG: more
 * than ES_CONTROL_MAX_BYTES, refused unread), why[0..whycap) says which
 * field is wrong and how. A request_id must be valid UTF-8 without control
 * characters. */
es_err es_status_decode(const char *json, size_t len, es_status_msg *out, char *why, size_t whycap);
es_err es_resend_req_decode(const char *json, size_t len, es_resend_req *out, char *why,
			    size_t whycap);
es_err es_resend_reply_decode(const char *json, size_t len, es_resend_reply *out, char *why,
			      size_t whycap);

/* The request_id of a request es_resend_req_decode refused, as far as it
 * can be read, so the answer still names it: a text within
 * ES_CONTROL_MAX_BYTES that parses as a JSON object with a string
 * request_id. Invalid UTF-8 and control characters become U+FFFD; the
 * result is cut to at most 63 bytes on a character boundary. Writes out
 * ("" when there is none) and says whether one was found. */
bool es_resend_req_id(const char *json, size_t len, char out[ES_REQUEST_ID_MAX]);

const char *es_resend_status_name(es_resend_status s);

#endif
