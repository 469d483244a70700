/* batch.c - the batch codec: coding names, topics and properties, the
 * classification of received messages, bounded decompression (zlib,
 * libzstd: the only file that includes them), the array's elements, and
 * the encoder. Contracts in batch.h.
 */
#include "batch.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "batch_dict.h"
#include "grow.h"
#include "jsoncheck.h"
#include "log.h"
#include "topic.h"

#define TAG "batch"

#define TOKEN_PREFIX	   "ce="
#define ENC_MAX_EVENTS	   100
#define ENC_MAX_BYTES	   (256u * 1024u)
#define DEFLATE_LEVEL	   6
#define ZSTD_LEVEL	   3
#define ZSTD_LEVEL_MAX	   19
#define ZSTD_WINDOW_LOG_LO 10
#define ZSTD_WINDOW_LOG_HI 27 /* zstd's own default limit */

static const char *const codec_names[] = {"identity", "deflate", "zstd"};

/* ---- codings ------------------------------------------------------------- */

const char *es_batch_codec_name(es_batch_codec codec)
{
	return (unsigned)codec < 3 ? codec_names[codec] : "?";
}

static bool codec_by_name(const char *s, size_t n, es_batch_codec *out)
{
	for (size_t i = 0; i < 3; i++)
		if (strlen(codec_names[i]) == n && memcmp(codec_names[i], s, n) == 0) {
			*out = (es_batch_codec)i;
			return true;
		}
	return false;
}

static bool dict_id_ok(const char *s, size_t n)
{
	if (n == 0 || n > ES_BATCH_DICT_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

/* "<codec>[,<dict>]" of length n; the dictionary must be one we have. */
static es_err parse_coding(const char *s, size_t n, es_batch_coding *out, const char **why)
{
	const char *comma = memchr(s, ',', n);
	size_t cn = comma ? (size_t)(comma - s) : n;
	es_batch_coding c = {0};
	if (!codec_by_name(s, cn, &c.codec)) {
		*why = "has an unknown codec (known: identity, deflate, zstd)";
		return ES_EINVAL;
	}
	if (comma) {
		size_t dn = n - cn - 1;
		if (!dict_id_ok(comma + 1, dn)) {
			*why = "has a malformed dictionary id ([a-z0-9], 1 to 15 characters)";
			return ES_EINVAL;
		}
		if (c.codec == ES_BATCH_IDENTITY) {
			*why = "names a dictionary for no compression";
			return ES_EINVAL;
		}
		memcpy(c.dict, comma + 1, dn);
		if (!es_batch_dict_find(c.dict)) {
			*why = "names a dictionary this build does not have";
			return ES_EINVAL;
		}
	}
	*out = c;
	return ES_OK;
}

es_err es_batch_coding_parse(const char *text, es_batch_coding *out, const char **why)
{
	const char *ignored;
	if (!why)
		why = &ignored;
	if (!text || !out) {
		*why = "is missing";
		return ES_EINVAL;
	}
	return parse_coding(text, strlen(text), out, why);
}

es_err es_batch_token(const es_batch_coding *c, char *buf, size_t cap)
{
	if (!c || !buf || (unsigned)c->codec > ES_BATCH_ZSTD)
		return ES_EINVAL;
	int n = snprintf(buf, cap, TOKEN_PREFIX "%s%s%s", codec_names[c->codec],
			 c->dict[0] ? "," : "", c->dict);
	return n < 0 || (size_t)n >= cap ? ES_ETOOBIG : ES_OK;
}

es_err es_batch_topic(char *buf, size_t cap, const char *root, const char *site, const char *node,
		      const es_batch_coding *c)
{
	char token[ES_BATCH_TOKEN_MAX + 1];
	es_err err = es_batch_token(c, token, sizeof token);
	return err ? err : es_topic_build(buf, cap, root, site, node, ES_BATCH_KIND, token);
}

void es_batch_props(const es_batch_coding *c, es_mqtt_prop pairs[2], es_mqtt_props *out)
{
	pairs[0] = (es_mqtt_prop){ES_BATCH_PROP_ENCODING, es_batch_codec_name(c->codec)};
	pairs[1] = (es_mqtt_prop){ES_BATCH_PROP_DICT, c->dict};
	*out = (es_mqtt_props){
		.content_type = ES_BATCH_CONTENT_TYPE, .user = pairs, .nuser = c->dict[0] ? 2 : 1};
}

/* ---- what a received message is ------------------------------------------ */

void es_batch_meta_from_props(const es_mqtt_props *props, es_batch_meta *meta)
{
	*meta = (es_batch_meta){0};
	if (!props)
		return;
	meta->content_type = props->content_type;
	for (size_t i = 0; i < props->nuser; i++) {
		const es_mqtt_prop *p = &props->user[i];
		if (!meta->encoding && strcmp(p->name, ES_BATCH_PROP_ENCODING) == 0)
			meta->encoding = p->value;
		else if (!meta->dict && strcmp(p->name, ES_BATCH_PROP_DICT) == 0)
			meta->dict = p->value;
	}
}

/* The last level of where and the one before it (lengths; NULL if none). */
static void last_levels(const char *where, char sep, const char **prev, size_t *prev_n,
			const char **last)
{
	const char *cut = strrchr(where, sep);
	*last = cut ? cut + 1 : where;
	*prev = NULL;
	*prev_n = 0;
	if (!cut)
		return;
	const char *p = cut;
	while (p > where && p[-1] != sep)
		p--;
	*prev = p;
	*prev_n = (size_t)(cut - p);
}

static es_err say(char *why, size_t cap, es_err err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Writes the reason into why (when given); returns err. */
static es_err say(char *why, size_t cap, es_err err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (why && cap)
		vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return err;
}

/* The properties, when present, must say what the topic says. */
static es_err check_meta(const es_batch_meta *m, const es_batch_coding *c, char *why, size_t cap)
{
	if (!m)
		return ES_OK;
	if (m->content_type && strcmp(m->content_type, ES_BATCH_CONTENT_TYPE) != 0)
		return say(why, cap, ES_EINVAL, "a batch topic with content type '%.64s'",
			   m->content_type);
	if (m->encoding && strcmp(m->encoding, es_batch_codec_name(c->codec)) != 0)
		return say(why, cap, ES_EINVAL, "the properties say '%.32s', the topic '%s'",
			   m->encoding, es_batch_codec_name(c->codec));
	if (m->dict && strcmp(m->dict, c->dict) != 0)
		return say(why, cap, ES_EINVAL,
			   "the properties name dictionary '%.32s', the topic '%s'", m->dict,
			   c->dict);
	return ES_OK;
}

es_err es_batch_classify(const char *where, char sep, const es_batch_meta *meta, bool *is_batch,
			 es_batch_coding *coding, char *why, size_t cap)
{
	if (!where || !is_batch || !coding)
		return ES_EINVAL;
	const char *prev, *last, *what;
	size_t prev_n, plen = strlen(TOKEN_PREFIX);
	last_levels(where, sep, &prev, &prev_n, &last);
	bool topic_says = prev && prev_n == strlen(ES_BATCH_KIND) &&
			  memcmp(prev, ES_BATCH_KIND, prev_n) == 0 &&
			  strncmp(last, TOKEN_PREFIX, plen) == 0;
	if (!topic_says) {
		if (meta && meta->content_type &&
		    strcmp(meta->content_type, ES_BATCH_CONTENT_TYPE) == 0)
			return say(why, cap, ES_EINVAL,
				   "a batch content type on '%.200s', not a batch topic", where);
		*is_batch = false;
		return ES_OK;
	}
	es_batch_coding c;
	if (parse_coding(last + plen, strlen(last + plen), &c, &what))
		return say(why, cap, ES_EINVAL, "batch coding '%.40s' %s", last, what);
	es_err err = check_meta(meta, &c, why, cap);
	if (err)
		return err;
	*coding = c;
	*is_batch = true;
	return ES_OK;
}

/* ---- a growing buffer ------------------------------------------------------ */

struct buf {
	unsigned char *data;
	size_t len, cap;
};

/* Room for at least `more` bytes after len. */
static bool reserve(struct buf *b, size_t more)
{
	unsigned char *p = more <= SIZE_MAX - b->len
				   ? es_grow(b->data, &b->cap, b->len + more, 1, 4096)
				   : NULL;
	if (!p)
		return false;
	b->data = p;
	return true;
}

/* Room for output while decompressing: at most max + 1 bytes in all, so
 * that passing max shows. Returns the room (0: out of memory). */
static size_t out_room(struct buf *b, size_t max)
{
	size_t want = b->cap > b->len ? b->cap - b->len : (b->cap ? b->cap : 16384);
	if (want > max + 1 - b->len)
		want = max + 1 - b->len;
	return reserve(b, want) ? want : 0;
}

/* ---- decompression, bounded ------------------------------------------------ */

struct dec {
	const unsigned char *in;
	size_t len, max;
	const es_batch_dict *dict;
	struct buf out;
	char *why;
	size_t cap;
};

static es_err dec_fail(struct dec *d, es_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static es_err dec_fail(struct dec *d, es_err err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (d->why && d->cap)
		vsnprintf(d->why, d->cap, fmt, ap);
	va_end(ap);
	return err;
}

static es_err too_big(struct dec *d)
{
	return dec_fail(d, ES_ETOOBIG, "decompressed, it is larger than %zu bytes (refused)",
			d->max);
}

static es_err plain(struct dec *d)
{
	if (d->len > d->max)
		return too_big(d);
	if (!reserve(&d->out, d->len + 1))
		return ES_ENOMEM;
	memcpy(d->out.data, d->in, d->len);
	d->out.len = d->len;
	return ES_OK;
}

static es_err inflate_end(struct dec *d, z_stream *z, es_err err)
{
	inflateEnd(z);
	if (!err && z->avail_in)
		return dec_fail(d, ES_EINVAL, "bytes after the end of the deflate stream");
	return err;
}

/* Z_NEED_DICT: the stream was made with a preset dictionary. */
static es_err inflate_dict(struct dec *d, z_stream *z)
{
	if (!d->dict)
		return dec_fail(d, ES_EINVAL, "deflate data made with a dictionary, none named");
	if (inflateSetDictionary(z, d->dict->bytes, (uInt)d->dict->len) != Z_OK)
		return dec_fail(d, ES_EINVAL, "deflate data made with another dictionary than %s",
				d->dict->id);
	return ES_OK;
}

static es_err inflate_step(struct dec *d, z_stream *z, bool *done)
{
	size_t room = out_room(&d->out, d->max);
	if (!room)
		return ES_ENOMEM;
	z->next_out = d->out.data + d->out.len;
	z->avail_out = (uInt)(room > UINT_MAX ? UINT_MAX : room);
	uInt before = z->avail_out;
	int rc = inflate(z, Z_NO_FLUSH);
	d->out.len += before - z->avail_out;
	if (d->out.len > d->max)
		return too_big(d);
	*done = rc == Z_STREAM_END;
	if (rc == Z_NEED_DICT)
		return inflate_dict(d, z);
	if (rc == Z_DATA_ERROR)
		return dec_fail(d, ES_EINVAL, "bad deflate data: %s", z->msg ? z->msg : "?");
	if (rc == Z_MEM_ERROR)
		return ES_ENOMEM;
	if (!*done && z->avail_in == 0 && z->avail_out > 0)
		return dec_fail(d, ES_EINVAL, "truncated: the deflate stream does not end");
	return rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR
		       ? ES_OK
		       : dec_fail(d, ES_EINVAL, "bad deflate data");
}

static es_err inflate_all(struct dec *d)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (d->len > UINT_MAX)
		return too_big(d);
	if (inflateInit(&z) != Z_OK)
		return ES_ENOMEM;
	z.next_in = (Bytef *)d->in;
	z.avail_in = (uInt)d->len;
	bool done = false;
	es_err err = ES_OK;
	while (!err && !done)
		err = inflate_step(d, &z, &done);
	return inflate_end(d, &z, err);
}

/* The window a frame may ask for: enough for max bytes, no more. */
static int window_log(size_t max)
{
	int log = ZSTD_WINDOW_LOG_LO;
	while (log < ZSTD_WINDOW_LOG_HI && ((size_t)1 << log) < max)
		log++;
	return log;
}

static es_err zstd_error(struct dec *d, size_t rc)
{
	if (ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation)
		return ES_ENOMEM;
	if (ZSTD_getErrorCode(rc) == ZSTD_error_dictionary_wrong)
		return dec_fail(d, ES_EINVAL, "zstd data made with another dictionary than '%s'",
				d->dict ? d->dict->id : "none");
	if (ZSTD_getErrorCode(rc) == ZSTD_error_frameParameter_windowTooLarge)
		return too_big(d);
	return dec_fail(d, ES_EINVAL, "bad zstd data: %s", ZSTD_getErrorName(rc));
}

static es_err zstd_step(struct dec *d, ZSTD_DCtx *dc, ZSTD_inBuffer *in, bool *done)
{
	size_t room = out_room(&d->out, d->max);
	if (!room)
		return ES_ENOMEM;
	ZSTD_outBuffer out = {d->out.data + d->out.len, room, 0};
	size_t rc = ZSTD_decompressStream(dc, &out, in);
	d->out.len += out.pos;
	if (ZSTD_isError(rc))
		return zstd_error(d, rc);
	if (d->out.len > d->max)
		return too_big(d);
	*done = rc == 0;
	if (!*done && in->pos == in->size && out.pos < out.size)
		return dec_fail(d, ES_EINVAL, "truncated: the zstd frame does not end");
	return ES_OK;
}

static es_err zstd_setup(struct dec *d, ZSTD_DCtx *dc)
{
	unsigned long long size = ZSTD_getFrameContentSize(d->in, d->len);
	if (size != ZSTD_CONTENTSIZE_UNKNOWN && size != ZSTD_CONTENTSIZE_ERROR && size > d->max)
		return too_big(d);
	size_t rc = ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, window_log(d->max));
	if (!ZSTD_isError(rc) && d->dict)
		rc = ZSTD_DCtx_loadDictionary(dc, d->dict->bytes, d->dict->len);
	return ZSTD_isError(rc) ? zstd_error(d, rc) : ES_OK;
}

static es_err unzstd_all(struct dec *d)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	if (!dc)
		return ES_ENOMEM;
	ZSTD_inBuffer in = {d->in, d->len, 0};
	bool done = false;
	es_err err = zstd_setup(d, dc);
	while (!err && !done)
		err = zstd_step(d, dc, &in, &done);
	if (!err && in.pos < in.size)
		err = dec_fail(d, ES_EINVAL, "bytes after the end of the zstd frame");
	ZSTD_freeDCtx(dc);
	return err;
}

/* ---- the array's elements -------------------------------------------------- */

struct span {
	size_t off, len;
};

struct es_batch {
	char *text; /* the batch's JSON; each element NUL-terminated in place */
	size_t len;
	struct span *el;
	size_t n, capn;
	size_t max_events, event_max;
};

/* The scanner's state over b->text. */
struct scan {
	es_batch *b;
	size_t i, start;		   /* where we are; where the element began */
	char stack[ES_JSON_MAX_DEPTH + 2]; /* the open brackets */
	int depth;
	bool in_element;
	char *why;
	size_t cap;
};

static es_err scan_fail(struct scan *s, es_err err, const char *what)
{
	if (s->why && s->cap)
		snprintf(s->why, s->cap, "%s at byte %zu", what, s->i);
	return err;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Ends the element that began at s->start before s->i (a ',' or the final
 * ']'), trimmed of white space. */
static es_err end_element(struct scan *s)
{
	es_batch *b = s->b;
	size_t end = s->i;
	while (end > s->start && is_space(b->text[end - 1]))
		end--;
	if (!s->in_element || end == s->start)
		return scan_fail(s, ES_EINVAL, "not a JSON array of events: an empty element");
	if (b->n == b->max_events)
		return scan_fail(s, ES_ETOOBIG, "more events than the limit");
	struct span *grown = es_grow(b->el, &b->capn, b->n + 1, sizeof *grown, 64);
	if (!grown)
		return ES_ENOMEM;
	b->el = grown;
	b->el[b->n++] = (struct span){s->start, end - s->start};
	s->in_element = false;
	return ES_OK;
}

/* Skips the string starting at s->i (a '"'); s->i is then its last '"'. */
static es_err skip_string(struct scan *s)
{
	const char *t = s->b->text;
	for (s->i++; s->i < s->b->len; s->i++) {
		if (t[s->i] == '\\')
			s->i++;
		else if (t[s->i] == '"')
			return ES_OK;
	}
	return scan_fail(s, ES_EINVAL, "truncated: a string does not end");
}

static es_err open_bracket(struct scan *s, char c)
{
	if (s->depth > ES_JSON_MAX_DEPTH)
		return scan_fail(s, ES_EINVAL, "nested too deep");
	s->stack[s->depth++] = c;
	return ES_OK;
}

/* A ']' or '}': closes the innermost bracket; closing the array ends it. */
static es_err close_bracket(struct scan *s, char c, bool *done)
{
	if (s->depth == 0 || s->stack[s->depth - 1] != (c == ']' ? '[' : '{'))
		return scan_fail(s, ES_EINVAL, "not JSON: a bracket that does not match");
	if (--s->depth > 0)
		return ES_OK;
	*done = true;
	return s->b->n == 0 && !s->in_element ? scan_fail(s, ES_EINVAL, "an empty batch")
					      : end_element(s);
}

/* One character at depth >= 1. */
static es_err scan_char(struct scan *s, bool *done)
{
	char c = s->b->text[s->i];
	if (is_space(c))
		return ES_OK;
	if (s->depth == 1 && c == ',')
		return end_element(s);
	if (s->depth == 1 && c != ']' && !s->in_element) {
		s->in_element = true;
		s->start = s->i;
	}
	if (c == '"')
		return skip_string(s);
	if (c == '[' || c == '{')
		return open_bracket(s, c);
	if (c == ']' || c == '}')
		return close_bracket(s, c, done);
	return ES_OK;
}

/* Finds the elements of the array that b->text must be. */
static es_err split(es_batch *b, char *why, size_t cap)
{
	struct scan s = {.b = b, .why = why, .cap = cap};
	while (s.i < b->len && is_space(b->text[s.i]))
		s.i++;
	if (s.i == b->len || b->text[s.i] != '[')
		return scan_fail(&s, ES_EINVAL, "not a JSON array");
	s.stack[s.depth++] = '[';
	bool done = false;
	es_err err = ES_OK;
	for (s.i++; !err && !done && s.i < b->len; s.i++)
		err = scan_char(&s, &done);
	if (!err && !done)
		err = scan_fail(&s, ES_EINVAL, "truncated: the array does not end");
	while (!err && s.i < b->len && is_space(b->text[s.i]))
		s.i++;
	if (!err && s.i < b->len)
		err = scan_fail(&s, ES_EINVAL, "data after the array");
	for (size_t k = 0; !err && k < b->n; k++)
		b->text[b->el[k].off + b->el[k].len] = '\0';
	return err;
}

/* ---- decoding -------------------------------------------------------------- */

static es_err decompress(struct dec *d, es_batch_codec codec)
{
	switch (codec) {
	case ES_BATCH_IDENTITY:
		return plain(d);
	case ES_BATCH_DEFLATE:
		return inflate_all(d);
	case ES_BATCH_ZSTD:
		return unzstd_all(d);
	}
	return ES_EINVAL;
}

static es_err find_dict(const es_batch_coding *c, struct dec *d)
{
	if (!c->dict[0])
		return ES_OK;
	d->dict = es_batch_dict_find(c->dict);
	if (!d->dict)
		return dec_fail(d, ES_ENOTFOUND, "unknown dictionary '%.16s'", c->dict);
	return ES_OK;
}

es_err es_batch_decode(const void *payload, size_t len, const es_batch_coding *coding,
		       const es_batch_limits *lim, es_batch **out, char *why, size_t cap)
{
	static const es_batch_limits none = {0};
	if ((!payload && len) || !coding || !out || (unsigned)coding->codec > ES_BATCH_ZSTD)
		return say(why, cap, ES_EINVAL, "no batch given");
	lim = lim ? lim : &none;
	struct dec d = {.in = payload,
			.len = len,
			.max = lim->max_bytes ? lim->max_bytes : ES_BATCH_MAX_BYTES_DEFAULT,
			.why = why,
			.cap = cap};
	es_err err = find_dict(coding, &d);
	if (!err)
		err = decompress(&d, coding->codec);
	es_batch *b = err ? NULL : calloc(1, sizeof *b);
	if (!err && !b)
		err = ES_ENOMEM;
	if (err) {
		free(d.out.data);
		return err;
	}
	b->text = (char *)d.out.data;
	b->len = d.out.len;
	b->max_events = lim->max_events ? lim->max_events : ES_BATCH_MAX_EVENTS_DEFAULT;
	b->event_max = lim->event_max_bytes ? lim->event_max_bytes : ES_EVENT_MAX_BYTES_DEFAULT;
	if ((err = split(b, why, cap))) {
		es_batch_free(b);
		return err;
	}
	*out = b;
	return ES_OK;
}

size_t es_batch_count(const es_batch *b)
{
	return b ? b->n : 0;
}

const char *es_batch_json(const es_batch *b, size_t i, size_t *len)
{
	if (!b || i >= b->n)
		return NULL;
	if (len)
		*len = b->el[i].len;
	return b->text + b->el[i].off;
}

es_err es_batch_event_decode(const es_batch *b, size_t i, es_event **out, es_verr *verr)
{
	if (!b || i >= b->n || !out)
		return ES_EINVAL;
	es_verr v;
	memset(&v, 0, sizeof v);
	es_err err = es_event_decode(b->text + b->el[i].off, b->el[i].len, b->event_max, out, &v);
	if (err && verr) {
		*verr = v;
		int n = snprintf(verr->field, sizeof verr->field, "[%zu]%s%s", i,
				 v.field[0] ? "." : "", v.field);
		if (n < 0 || (size_t)n >= sizeof verr->field)
			verr->field[sizeof verr->field - 1] = '\0'; /* cut short: said as is */
	}
	return err;
}

es_err es_batch_read(const char *where, char sep, const es_batch_meta *meta, const void *body,
		     size_t len, const es_batch_limits *lim, es_batch **out, char *why, size_t cap)
{
	bool is_batch = false;
	es_batch_coding coding;
	if (!out)
		return ES_EINVAL;
	es_err err = es_batch_classify(where, sep, meta, &is_batch, &coding, why, cap);
	if (err || !is_batch) {
		if (!err)
			*out = NULL;
		return err;
	}
	return es_batch_decode(body, len, &coding, lim, out, why, cap);
}

void es_batch_free(es_batch *b)
{
	if (!b)
		return;
	free(b->text);
	free(b->el);
	free(b);
}

/* ---- the encoder ----------------------------------------------------------- */

struct es_batch_enc {
	es_batch_enc_opts o;
	const es_batch_dict *dict;
	es_batch_dict given; /* o.dict_bytes, when given */
	struct buf json;     /* "[e1,e2,...": the closing ']' is put by finish */
	size_t n;
	struct buf out;
	z_stream z;
	bool z_ready;
	ZSTD_CCtx *zc;
	ZSTD_CDict *cdict;
};

static es_err check_enc_opts(const es_batch_enc_opts *o)
{
	const es_batch_coding *c = &o->coding;
	if ((unsigned)c->codec > ES_BATCH_ZSTD || (c->codec == ES_BATCH_IDENTITY && c->dict[0]))
		return ES_EINVAL;
	if (c->codec == ES_BATCH_DEFLATE && (o->level < 0 || o->level > 9))
		return ES_EINVAL;
	if (c->codec == ES_BATCH_ZSTD && (o->level < 0 || o->level > ZSTD_LEVEL_MAX))
		return ES_EINVAL;
	if (o->max_bytes > ES_BATCH_MAX_BYTES_DEFAULT || (o->max_bytes && o->max_bytes < 64) ||
	    o->max_events > ES_BATCH_MAX_EVENTS_DEFAULT)
		return ES_EINVAL;
	return ES_OK;
}

static es_err enc_deflate_init(es_batch_enc *e)
{
	int level = e->o.level ? e->o.level : DEFLATE_LEVEL;
	if (deflateInit(&e->z, level) != Z_OK)
		return ES_ENOMEM;
	e->z_ready = true;
	return ES_OK;
}

static es_err enc_zstd_init(es_batch_enc *e)
{
	int level = e->o.level ? e->o.level : ZSTD_LEVEL;
	e->zc = ZSTD_createCCtx();
	if (!e->zc)
		return ES_ENOMEM;
	size_t rc = ZSTD_CCtx_setParameter(e->zc, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(rc) && e->dict) {
		e->cdict = ZSTD_createCDict(e->dict->bytes, e->dict->len, level);
		rc = e->cdict ? ZSTD_CCtx_refCDict(e->zc, e->cdict) : (size_t)-1;
	}
	return ZSTD_isError(rc) ? ES_ENOMEM : ES_OK;
}

es_err es_batch_enc_new(const es_batch_enc_opts *o, es_batch_enc **out)
{
	if (!o || !out || check_enc_opts(o)) {
		es_error(TAG, "invalid batch encoder options (coding, level or caps)");
		return ES_EINVAL;
	}
	const es_batch_dict *dict = NULL;
	if (o->coding.dict[0] && !o->dict_bytes && !(dict = es_batch_dict_find(o->coding.dict))) {
		es_error(TAG, "unknown batch dictionary '%s'", o->coding.dict);
		return ES_ENOTFOUND;
	}
	es_batch_enc *e = calloc(1, sizeof *e);
	if (!e)
		return ES_ENOMEM;
	e->o = *o;
	e->o.max_events = o->max_events ? o->max_events : ENC_MAX_EVENTS;
	e->o.max_bytes = o->max_bytes ? o->max_bytes : ENC_MAX_BYTES;
	e->dict = dict;
	if (o->dict_bytes) {
		e->given = (es_batch_dict){e->o.coding.dict, o->dict_bytes, o->dict_len};
		e->dict = &e->given;
	}
	es_err err = ES_OK;
	if (o->coding.codec == ES_BATCH_DEFLATE)
		err = enc_deflate_init(e);
	else if (o->coding.codec == ES_BATCH_ZSTD)
		err = enc_zstd_init(e);
	if (err) {
		es_batch_enc_free(e);
		return err;
	}
	*out = e;
	return ES_OK;
}

void es_batch_enc_free(es_batch_enc *e)
{
	if (!e)
		return;
	if (e->z_ready)
		deflateEnd(&e->z);
	ZSTD_freeCCtx(e->zc);
	ZSTD_freeCDict(e->cdict);
	free(e->json.data);
	free(e->out.data);
	free(e);
}

es_err es_batch_enc_add(es_batch_enc *e, const char *json, size_t len)
{
	if (!e || !json || len == 0)
		return ES_EINVAL;
	/* '[' or ',' before it, and room for the closing ']'. */
	if (len > e->o.max_bytes - 2)
		return e->n ? ES_EFULL : ES_ETOOBIG;
	if (e->n == e->o.max_events || e->json.len + 2 + len > e->o.max_bytes)
		return ES_EFULL;
	if (!reserve(&e->json, len + 2))
		return ES_ENOMEM;
	e->json.data[e->json.len++] = e->n ? ',' : '[';
	memcpy(e->json.data + e->json.len, json, len);
	e->json.len += len;
	e->n++;
	return ES_OK;
}

size_t es_batch_enc_count(const es_batch_enc *e)
{
	return e ? e->n : 0;
}

size_t es_batch_enc_json_bytes(const es_batch_enc *e)
{
	return e && e->n ? e->json.len + 1 : 0;
}

static es_err enc_deflate(es_batch_enc *e, size_t len)
{
	if (deflateReset(&e->z) != Z_OK ||
	    (e->dict && deflateSetDictionary(&e->z, e->dict->bytes, (uInt)e->dict->len) != Z_OK))
		return ES_EIO;
	size_t bound = deflateBound(&e->z, (uLong)len);
	e->out.len = 0;
	if (!reserve(&e->out, bound))
		return ES_ENOMEM;
	e->z.next_in = e->json.data;
	e->z.avail_in = (uInt)len;
	e->z.next_out = e->out.data;
	e->z.avail_out = (uInt)bound;
	if (deflate(&e->z, Z_FINISH) != Z_STREAM_END)
		return ES_EIO;
	e->out.len = bound - e->z.avail_out;
	return ES_OK;
}

static es_err enc_zstd(es_batch_enc *e, size_t len)
{
	size_t bound = ZSTD_compressBound(len);
	e->out.len = 0;
	if (!reserve(&e->out, bound))
		return ES_ENOMEM;
	size_t rc = ZSTD_compress2(e->zc, e->out.data, bound, e->json.data, len);
	if (ZSTD_isError(rc)) {
		es_error(TAG, "zstd: %s", ZSTD_getErrorName(rc));
		return ZSTD_getErrorCode(rc) == ZSTD_error_memory_allocation ? ES_ENOMEM : ES_EIO;
	}
	e->out.len = rc;
	return ES_OK;
}

es_err es_batch_enc_finish(es_batch_enc *e, const void **payload, size_t *len)
{
	if (!e || !payload || !len || e->n == 0)
		return ES_EINVAL;
	if (!reserve(&e->json, 1))
		return ES_ENOMEM;
	e->json.data[e->json.len] = ']'; /* past len: a later add overwrites it */
	size_t n = e->json.len + 1;
	es_err err = ES_OK;
	if (e->o.coding.codec == ES_BATCH_DEFLATE)
		err = enc_deflate(e, n);
	else if (e->o.coding.codec == ES_BATCH_ZSTD)
		err = enc_zstd(e, n);
	if (err)
		return err;
	*payload = e->o.coding.codec == ES_BATCH_IDENTITY ? e->json.data : e->out.data;
	*len = e->o.coding.codec == ES_BATCH_IDENTITY ? n : e->out.len;
	return ES_OK;
}

void es_batch_enc_reset(es_batch_enc *e)
{
	if (!e)
		return;
	e->json.len = 0;
	e->n = 0;
}
