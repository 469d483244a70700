/* batch.h - the uplink's batches: many CloudEvents in one message, compressed.
 *
 * A batch is the CloudEvents JSON batch format
 * (application/cloudevents-batch+json: a JSON array of structured events),
 * compressed with a content coding: "identity" (none), "deflate" (zlib,
 * RFC 1950) or "zstd" (RFC 8878), the latter two optionally with one of
 * edgespool's own dictionaries, named by an id ("d1"). docs/protocol.md
 * says how one looks on the wire; docs/decisions.md why this coding.
 *
 * How a reader knows it is a batch, and how it is coded, never by sniffing:
 *  - the topic: <root>/<site>/<node>/batch/ce=<codec>[,<dict>]
 *    (es_batch_topic); the last level always has '=', which an event type
 *    cannot, so an AMQP routing key (levels joined by '.') is as plain;
 *  - with MQTT 5 also the properties: content type
 *    ES_BATCH_CONTENT_TYPE, user properties "content-encoding" and, with
 *    a dictionary, "dictionary" (es_batch_props). When present they must
 *    agree with the topic.
 *
 * Writing (the bridge's site role, the agent): an es_batch_enc collects
 * events' JSON texts (verbatim) until a cap says the batch is full, then
 * compresses them into one payload; it is reused batch after batch.
 * Reading (the consumer library, the cloud role, `edgespool tail`):
 * es_batch_classify says whether a received message is a batch and how it
 * is coded; es_batch_decode decompresses it within limits (a zip bomb is
 * refused), checks the array's structure and gives each event's text as it
 * was written; each event is then validated on its own
 * (es_batch_event_decode), so one bad event does not cost the good ones.
 *
 * Every failure comes with a reason (a string for logs and dead letters).
 * Not thread-safe: an encoder or a decoded batch belongs to one thread;
 * different ones may be used on different threads.
 */
#ifndef ES_BATCH_H
#define ES_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "event.h"
#include "mqtt.h"

#define ES_BATCH_CONTENT_TYPE  "application/cloudevents-batch+json"
#define ES_BATCH_PROP_ENCODING "content-encoding"
#define ES_BATCH_PROP_DICT     "dictionary"
/* The topic kind of batches (events are "ev"). */
#define ES_BATCH_KIND "batch"
/* The longest dictionary id: [a-z0-9]{1,15}. */
#define ES_BATCH_DICT_MAX 15
/* The longest coding token "ce=<codec>[,<dict>]", without its NUL. */
#define ES_BATCH_TOKEN_MAX 32

/* Decoding limits' defaults: far above what an encoder's caps make. */
#define ES_BATCH_MAX_BYTES_DEFAULT  (4u * 1024u * 1024u) /* decompressed JSON */
#define ES_BATCH_MAX_EVENTS_DEFAULT 10000u

typedef enum es_batch_codec {
	ES_BATCH_IDENTITY, /* no compression */
	ES_BATCH_DEFLATE,  /* zlib format (RFC 1950) */
	ES_BATCH_ZSTD,	   /* a zstd frame (RFC 8878) */
} es_batch_codec;

/* How a batch is coded: a codec and a dictionary id ("" for none). */
typedef struct es_batch_coding {
	es_batch_codec codec;
	char dict[ES_BATCH_DICT_MAX + 1];
} es_batch_coding;

/* The codec's name ("identity", "deflate", "zstd"). */
const char *es_batch_codec_name(es_batch_codec codec);

/* Parses "zstd", "deflate,d1", ... (a setting's value: codec, then an
 * optional dictionary id after a comma). ES_EINVAL with *why (static) for
 * an unknown codec, a malformed id, or a dictionary this build does not
 * have. */
es_err es_batch_coding_parse(const char *text, es_batch_coding *out, const char **why);

/* Writes "ce=<codec>[,<dict>]", the topic's last level, into buf.
 * ES_ETOOBIG if cap is too small (ES_BATCH_TOKEN_MAX + 1 always fits). */
es_err es_batch_token(const es_batch_coding *c, char *buf, size_t cap);

/* Writes "<root>/<site>/<node>/batch/ce=<codec>[,<dict>]" into buf; errors
 * as es_topic_build. */
es_err es_batch_topic(char *buf, size_t cap, const char *root, const char *site, const char *node,
		      const es_batch_coding *c);

/* The MQTT 5 properties a batch is published with: the content type and
 * the user properties, pointing into c (which must outlive *out) and into
 * pairs (room for 2). */
void es_batch_props(const es_batch_coding *c, es_mqtt_prop pairs[2], es_mqtt_props *out);

/* ---- reading ------------------------------------------------------------- */

/* What a received message says of itself, from its properties or headers
 * (MQTT 5 content type and user properties; AMQP content-type and
 * headers). NULL fields: absent. */
typedef struct es_batch_meta {
	const char *content_type, *encoding, *dict;
} es_batch_meta;

/* Fills meta from received MQTT properties (NULL: none); strings point into
 * props. */
void es_batch_meta_from_props(const es_mqtt_props *props, es_batch_meta *meta);

/* Is the message that came on `where` (an MQTT topic, sep '/', or an AMQP
 * routing key, sep '.') with meta a batch? *is_batch false: an event (or
 * anything else) to read as before. True: *coding says how it is coded.
 * ES_EINVAL (a batch that cannot be read: an unknown codec or dictionary,
 * properties that contradict the topic, a batch content type on another
 * topic) with the reason in why. meta may be NULL. */
es_err es_batch_classify(const char *where, char sep, const es_batch_meta *meta, bool *is_batch,
			 es_batch_coding *coding, char *why, size_t cap);

typedef struct es_batch_limits {
	size_t max_bytes;	/* decompressed at most; 0: ES_BATCH_MAX_BYTES_DEFAULT */
	size_t max_events;	/* 0: ES_BATCH_MAX_EVENTS_DEFAULT */
	size_t event_max_bytes; /* each event, for es_batch_event_decode; 0: 64 KiB */
} es_batch_limits;

/* A decoded batch: the events' texts, in order. */
typedef struct es_batch es_batch;

/* Decompresses payload[0..len) as coded (lim may be NULL: the defaults),
 * checks that it is a JSON array within the limits, and finds each
 * element (each element's own JSON, UTF-8 included, is checked by
 * es_batch_event_decode). Errors, with the reason in why: ES_EINVAL (bad
 * compressed data, truncated, trailing bytes, not a JSON array, too deep,
 * an empty batch or element), ES_ETOOBIG (larger than max_bytes decompressed, more than
 * max_events), ES_ENOTFOUND (an unknown dictionary), ES_ENOMEM. */
es_err es_batch_decode(const void *payload, size_t len, const es_batch_coding *coding,
		       const es_batch_limits *lim, es_batch **out, char *why, size_t cap);

size_t es_batch_count(const es_batch *b);

/* The i-th element's text as it was written (NUL-terminated; *len
 * excludes the NUL); valid until es_batch_free. i < count. */
const char *es_batch_json(const es_batch *b, size_t i, size_t *len);

/* Decodes the i-th element strictly (es_event_decode with the batch's
 * event_max_bytes); on failure verr's field names the element
 * ("[3].type"). Errors as es_event_decode. */
es_err es_batch_event_decode(const es_batch *b, size_t i, es_event **out, es_verr *verr);

void es_batch_free(es_batch *b);

/* What a reader does with each message: es_batch_classify, then, for a
 * batch, es_batch_decode. *out NULL (and ES_OK): not a batch, read the
 * body as one event. Errors as those two, with the reason in why. */
es_err es_batch_read(const char *where, char sep, const es_batch_meta *meta, const void *body,
		     size_t len, const es_batch_limits *lim, es_batch **out, char *why, size_t cap);

/* ---- writing ------------------------------------------------------------- */

typedef struct es_batch_enc_opts {
	es_batch_coding coding;
	int level;	   /* compression level; 0: the codec's default here */
	size_t max_events; /* events a batch at most; 0: 100 */
	size_t max_bytes;  /* the batch's JSON before compression at most; 0: 256 KiB */
	/* Measurements and tests only: a dictionary given as bytes (not
	 * copied), used instead of the one coding.dict names. */
	const void *dict_bytes;
	size_t dict_len;
} es_batch_enc_opts;

typedef struct es_batch_enc es_batch_enc;

/* Makes an encoder (its compression context and dictionary are made once).
 * ES_EINVAL for a bad coding, level or cap (logged); ES_ENOTFOUND for an
 * unknown dictionary; ES_ENOMEM. */
es_err es_batch_enc_new(const es_batch_enc_opts *o, es_batch_enc **out);
void es_batch_enc_free(es_batch_enc *e);

/* Adds one event's JSON text (copied verbatim: the caller gives valid
 * events, as journaled). ES_EFULL: it would pass a cap; finish this batch
 * and add it to the next. ES_ETOOBIG: alone it passes max_bytes.
 * ES_EINVAL: empty. ES_ENOMEM. */
es_err es_batch_enc_add(es_batch_enc *e, const char *json, size_t len);

/* Events in the batch being made, and its JSON bytes so far. */
size_t es_batch_enc_count(const es_batch_enc *e);
size_t es_batch_enc_json_bytes(const es_batch_enc *e);

/* Closes the batch and compresses it: *payload (owned by the encoder) is
 * valid until the next add, reset or free. ES_EINVAL when empty; ES_ENOMEM;
 * ES_EIO when the compressor fails (logged). The batch stays as it is;
 * es_batch_enc_reset starts the next one. */
es_err es_batch_enc_finish(es_batch_enc *e, const void **payload, size_t *len);

/* Empties the batch (keeps the buffers and contexts). */
void es_batch_enc_reset(es_batch_enc *e);

#endif
