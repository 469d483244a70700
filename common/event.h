/* event.h - the CloudEvents 1.0 envelope in JSON structured mode.
 *
 * An es_event is one CloudEvent: required attributes id, source, type,
 * specversion "1.0"; optional subject, time, datacontenttype, data; the
 * extension `sequence` (the journal sequence of the node that journaled it,
 * a decimal string); and any other extension attribute, kept as it came.
 *
 * Two input forms are accepted (es_event_decode_input):
 *  - full: a CloudEvent, recognised by the presence of "specversion";
 *  - short: {"type": ..., "subject": ..., "data": {...}} (plus optional
 *    "id" and "time"); the journal fills the rest.
 * Events received from a broker are decoded strictly with es_event_decode.
 *
 * Validation failures fill an es_verr naming the attribute ("type",
 * "[3].data" inside a batch) and the reason, suitable for an HTTP 400 body.
 *
 * Rules (the reasons callers will see):
 *  - input must be valid UTF-8 and valid JSON; an event must be an object;
 *  - type: 1..128 characters of [A-Za-z0-9._:-] (it becomes an MQTT topic
 *    level, so no '/', '+', '#', spaces or control characters);
 *  - id: 1..128 printable ASCII characters; source: 1..256 characters, no
 *    control characters; subject: 1..256 characters, no control characters;
 *  - time: an RFC 3339 date-time; specversion: exactly "1.0";
 *  - datacontenttype, if present: "application/json"; data_base64 refused;
 *  - data: an object in the short form; any JSON value in the full form;
 *  - extension names: 1..20 characters of [a-z0-9] (CloudEvents 1.0);
 *  - an event whose encoding exceeds the size limit is ES_ETOOBIG.
 */
#ifndef ES_EVENT_H
#define ES_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ES_EVENT_MAX_BYTES_DEFAULT (64u * 1024u)
#define ES_EVENT_ID_MAX		   128
#define ES_EVENT_TYPE_MAX	   128
#define ES_EVENT_SOURCE_MAX	   256
#define ES_EVENT_SUBJECT_MAX	   256

typedef struct es_event es_event;

/* A validation error: which attribute, and why. */
typedef struct es_verr {
	char field[48];
	char reason[192];
} es_verr;

/* Parses an HTTP ingest body: one event object, or a JSON array of 1..max_count
 * of them, each in the full or the short form. max_bytes limits each event's
 * encoded size. On success *evs is a malloc'd array of *n events (free with
 * es_event_free_array). Errors: ES_EINVAL (verr says what and where),
 * ES_ETOOBIG (an event or the array is too big; verr says which), ES_ENOMEM.
 * Either every element is valid and returned, or none is. */
es_err es_event_decode_input(const char *body, size_t len, size_t max_bytes, size_t max_count,
			     es_event ***evs, size_t *n, es_verr *verr);

/* Decodes one full CloudEvent (as published on the broker). Requires
 * specversion, id, source, type. Same rules and errors as above. */
es_err es_event_decode(const char *json, size_t len, size_t max_bytes, es_event **out,
		       es_verr *verr);

/* Builds a short-form event from parts; data_json may be NULL (no data) and
 * must otherwise be a JSON object's text. Validates like decoding. */
es_err es_event_new(const char *type, const char *subject, const char *data_json, es_event **out,
		    es_verr *verr);

/* Completes an event for the journal: sets `sequence` to seq (seq 0: removes
 * any `sequence` it had), and fills id, source and time when absent (a
 * full-form event keeps its own). specversion and datacontenttype are set
 * for short-form events. id_if_missing and source must be valid; time_ms is
 * wall time in ms. */
es_err es_event_stamp(es_event *ev, const char *id_if_missing, const char *source, uint64_t time_ms,
		      uint64_t seq);

/* The encoded CloudEvent as compact JSON, malloc'd, NUL-terminated (*len
 * excludes the NUL). ES_ETOOBIG if longer than max_bytes (0 = no limit). */
es_err es_event_encode(const es_event *ev, size_t max_bytes, char **json, size_t *len);

/* As es_event_encode, without the closing '}': the journal appends
 * ,"sequence":"N"} once it knows N. Stamp with seq 0 first (no sequence
 * attribute), so the event is encoded once, by its producer's thread. */
es_err es_event_encode_open(const es_event *ev, size_t max_bytes, char **json, size_t *len);

/* Accessors; strings live as long as the event. NULL when absent. */
const char *es_event_id(const es_event *ev);
const char *es_event_type(const es_event *ev);
const char *es_event_source(const es_event *ev);
const char *es_event_subject(const es_event *ev);
const char *es_event_time(const es_event *ev);
/* The `sequence` extension; 0 when absent or not a valid decimal. */
uint64_t es_event_seq(const es_event *ev);
/* True for an event given in the full CloudEvents form. */
bool es_event_is_full(const es_event *ev);

void es_event_free(es_event *ev);
/* Frees n events and the array itself. NULL is a no-op. */
void es_event_free_array(es_event **evs, size_t n);

/* Checks a type string (the rule above); returns NULL when valid, else a
 * static reason. */
const char *es_event_check_type(const char *type);

#endif
