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
 */
#ifndef ES_CONTROL_H
#define ES_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "uuid.h"

#define ES_REQUEST_ID_MAX 64

/* {"state":"online","boot_id":"...","journal_id":"...","latest_seq":N,
 *  "acked_seq":N,"oldest_seq":N,"pending":N,"clock_synced":true,
 *  "time":"2026-..Z"} */
typedef struct es_status_msg {
	bool online;
	char boot_id[ES_UUID_STR];    /* new at every process start */
	char journal_id[ES_UUID_STR]; /* made when the journal was created */
	uint64_t latest_seq;	      /* newest sequence journaled (0: none yet) */
	uint64_t acked_seq;	      /* every sequence <= this was PUBACKed */
	uint64_t oldest_seq;	      /* oldest sequence still held (0: none) */
	uint64_t pending;	      /* journaled, not yet PUBACKed */
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
 *  "sent_from":N,"sent_to":N,"gone_from":N,"gone_to":N,"reason":".."};
 * a range of 0..0 means none. */
typedef struct es_resend_reply {
	char request_id[ES_REQUEST_ID_MAX];
	uint64_t from, to;
	es_resend_status status;
	uint64_t sent_from, sent_to;
	uint64_t gone_from, gone_to;
	char reason[128];
} es_resend_reply;

/* Encoders return a malloc'd NUL-terminated string in *json (*len excludes
 * the NUL); ES_ENOMEM on failure. */
es_err es_status_encode(const es_status_msg *m, char **json, size_t *len);
es_err es_resend_req_encode(const es_resend_req *r, char **json, size_t *len);
es_err es_resend_reply_encode(const es_resend_reply *r, char **json, size_t *len);

/* Decoders fill *out only on success; on ES_EINVAL, why[0..whycap) says
 * which field is wrong and how. */
es_err es_status_decode(const char *json, size_t len, es_status_msg *out, char *why, size_t whycap);
es_err es_resend_req_decode(const char *json, size_t len, es_resend_req *out, char *why,
			    size_t whycap);
es_err es_resend_reply_decode(const char *json, size_t len, es_resend_reply *out, char *why,
			      size_t whycap);

const char *es_resend_status_name(es_resend_status s);

#endif
