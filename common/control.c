/* control.c - JSON codec of the status, re-send request and re-send reply.
 *
 * The only file that reads or writes these messages, and the only one of
 * them that includes <cJSON.h>. Each message has one validator used by both
 * directions, so whatever an encoder accepts its decoder accepts back, and a
 * decoder rejects what an encoder would refuse.
 *
 * Sequences travel as JSON numbers, which most readers hold in a double:
 * only integers in [0, 2^53 - 1] (I-JSON, RFC 7493) are exact everywhere,
 * so nothing outside that range is written or accepted. A number written
 * with a fraction that a double rounds to an integer ("1.0000000000000001")
 * cannot be told from that integer once parsed, and is accepted as it.
 *
 * Unknown members are ignored (forward compatibility); a known member that
 * appears twice is rejected, so two readers cannot see two different values.
 *
 * The messages come from whoever the broker lets publish: a text over
 * ES_CONTROL_MAX_BYTES is refused before anything reads it, and one that is
 * not UTF-8 before cJSON parses it (cJSON copies any byte into a string,
 * and prints it back as it came: FF FE in a request_id would make the
 * answer invalid JSON). Strings that travel back (request_id, reason) are
 * checked in both directions: valid UTF-8, no control characters.
 */
#include "control.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "clock.h"
#include "jsoncheck.h"
#include "utf8.h"

/* The largest integer a double holds exactly, with every one below it. */
#define SEQ_MAX ES_CONTROL_SEQ_MAX
/* 9999-12-31T23:59:59.999Z: the last instant RFC 3339 can write. */
#define TIME_MAX   253402300799999ULL
#define REASON_MAX 128

/* What is wrong, and where: the field's name and the problem. */
typedef struct bad {
	const char *field;
	const char *what;
} bad;

/* A decoder's state: the object being read and where to explain. */
typedef struct dec {
	const cJSON *obj;
	char *why;
	size_t whycap;
} dec;

static const char *const status_names[] = {
	[ES_RESEND_OK] = "ok",	   [ES_RESEND_PARTIAL] = "partial", [ES_RESEND_GONE] = "gone",
	[ES_RESEND_BUSY] = "busy", [ES_RESEND_INVALID] = "invalid",
};

#define NSTATUS (sizeof status_names / sizeof status_names[0])

const char *es_resend_status_name(es_resend_status s)
{
	if ((size_t)s >= NSTATUS)
		return "unknown";
	return status_names[s];
}

/* ---- validation shared by both directions ---- */

static bool fail_at(bad *b, const char *field, const char *what)
{
	b->field = field;
	b->what = what;
	return false;
}

static bool seq_ok(bad *b, const char *field, uint64_t v)
{
	return v <= SEQ_MAX || fail_at(b, field, "above 2^53-1");
}

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* A NUL-terminated string shorter than cap bytes, of valid UTF-8 without
 * control characters: what can be echoed into JSON as it is. */
static bool str_ok(bad *b, const char *field, const char *s, size_t cap, const char *toolong)
{
	size_t n = strnlen(s, cap);
	if (n == cap)
		return fail_at(b, field, toolong);
	if (!es_utf8_valid(s, n, NULL))
		return fail_at(b, field, "not valid UTF-8");
	for (size_t i = 0; i < n; i++) {
		if (is_control((unsigned char)s[i]))
			return fail_at(b, field, "contains a control character");
	}
	return true;
}

static bool is_uuid_text(const char *s)
{
	if (strnlen(s, ES_UUID_STR) != ES_UUID_STR - 1)
		return false;
	for (size_t i = 0; i < ES_UUID_STR - 1; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	}
	return true;
}

static bool uuid_ok(bad *b, const char *field, const char *s)
{
	return is_uuid_text(s) || fail_at(b, field, "not a 36-character UUID");
}

/* [from, to] with 1 <= from <= to; also 0..0 when none_ok. */
static bool range_ok(bad *b, const char *ffrom, uint64_t from, uint64_t to, bool none_ok)
{
	if (none_ok && from == 0 && to == 0)
		return true;
	if (from == 0)
		return fail_at(b, ffrom, "must be at least 1");
	if (from > to)
		return fail_at(b, ffrom, "greater than to");
	return true;
}

/* A sub-range of a reply: none (0..0), or a range inside [from, to]. */
static bool subrange_ok(bad *b, const char *ffrom, uint64_t sf, uint64_t st,
			const es_resend_reply *r)
{
	if (!range_ok(b, ffrom, sf, st, true))
		return false;
	if (sf != 0 && (sf < r->from || st > r->to))
		return fail_at(b, ffrom, "range outside from..to");
	return true;
}

static bool status_valid(const es_status_msg *m, bad *b)
{
	return uuid_ok(b, "boot_id", m->boot_id) && uuid_ok(b, "journal_id", m->journal_id) &&
	       seq_ok(b, "latest_seq", m->latest_seq) && seq_ok(b, "acked_seq", m->acked_seq) &&
	       seq_ok(b, "oldest_seq", m->oldest_seq) && seq_ok(b, "pending", m->pending) &&
	       seq_ok(b, "boot_seq", m->boot_seq) &&
	       (m->boot_seq <= m->latest_seq ||
		fail_at(b, "boot_seq", "greater than latest_seq")) &&
	       (m->acked_seq <= m->latest_seq ||
		fail_at(b, "acked_seq", "greater than latest_seq")) &&
	       (m->oldest_seq <= m->latest_seq ||
		fail_at(b, "oldest_seq", "greater than latest_seq")) &&
	       (m->time_ms <= TIME_MAX || fail_at(b, "time", "after year 9999"));
}

static bool req_valid(const es_resend_req *r, bad *b)
{
	return seq_ok(b, "from", r->from) && seq_ok(b, "to", r->to) &&
	       range_ok(b, "from", r->from, r->to, false) &&
	       str_ok(b, "request_id", r->request_id, ES_REQUEST_ID_MAX,
		      "longer than 63 characters");
}

static bool reply_valid(const es_resend_reply *r, bad *b)
{
	return str_ok(b, "request_id", r->request_id, ES_REQUEST_ID_MAX,
		      "longer than 63 characters") &&
	       ((size_t)r->status < NSTATUS || fail_at(b, "status", "unknown value")) &&
	       seq_ok(b, "from", r->from) && seq_ok(b, "to", r->to) &&
	       seq_ok(b, "sent_from", r->sent_from) && seq_ok(b, "sent_to", r->sent_to) &&
	       seq_ok(b, "gone_from", r->gone_from) && seq_ok(b, "gone_to", r->gone_to) &&
	       seq_ok(b, "latest_seq", r->latest_seq) &&
	       /* A request that could not be understood has no range to echo. */
	       range_ok(b, "from", r->from, r->to, r->status == ES_RESEND_INVALID) &&
	       subrange_ok(b, "sent_from", r->sent_from, r->sent_to, r) &&
	       subrange_ok(b, "gone_from", r->gone_from, r->gone_to, r) &&
	       str_ok(b, "reason", r->reason, REASON_MAX, "longer than 127 characters");
}

/* ---- encoding ---- */

/* Written as raw text: cJSON prints a double with 15 significant digits
 * whenever that reads back "close enough", which rounds integers above
 * 10^15 (9007199254740991 would come out as 9.00719925474099e+15). */
static bool add_seq(cJSON *o, const char *name, uint64_t v)
{
	char text[24];
	snprintf(text, sizeof text, "%" PRIu64, v);
	return cJSON_AddRawToObject(o, name, text) != NULL;
}

static bool add_str(cJSON *o, const char *name, const char *s)
{
	return cJSON_AddStringToObject(o, name, s) != NULL;
}

/* Prints o into a buffer of our own malloc (whatever cJSON's hooks are), so
 * the caller frees it with free(); consumes o. */
static es_err finish(cJSON *o, bool built, char **json, size_t *len)
{
	char *text = built ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!text)
		return ES_ENOMEM;
	size_t n = strlen(text);
	char *copy = malloc(n + 1);
	if (copy)
		memcpy(copy, text, n + 1);
	cJSON_free(text);
	if (!copy)
		return ES_ENOMEM;
	*json = copy;
	*len = n;
	return ES_OK;
}

/* Encodes m as the status object; ES_EINVAL when m breaks a rule its
 * decoder enforces (see status_valid), ES_ENOMEM. */
es_err es_status_encode(const es_status_msg *m, char **json, size_t *len)
{
	bad b;
	if (!m || !json || !len || !status_valid(m, &b))
		return ES_EINVAL;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return ES_ENOMEM;
	char when[ES_TIME_STR];
	es_time_format(m->time_ms, when);
	bool built = add_str(o, "state", m->online ? "online" : "offline") &&
		     add_str(o, "boot_id", m->boot_id) && add_str(o, "journal_id", m->journal_id) &&
		     add_seq(o, "latest_seq", m->latest_seq) &&
		     add_seq(o, "boot_seq", m->boot_seq) && add_seq(o, "acked_seq", m->acked_seq) &&
		     add_seq(o, "oldest_seq", m->oldest_seq) && add_seq(o, "pending", m->pending) &&
		     cJSON_AddBoolToObject(o, "clock_synced", m->clock_synced) &&
		     add_str(o, "time", when);
	return finish(o, built, json, len);
}

/* Encodes r as the request object; ES_EINVAL unless 1 <= from <= to <=
 * 2^53-1 and request_id has at most 63 characters; ES_ENOMEM. */
es_err es_resend_req_encode(const es_resend_req *r, char **json, size_t *len)
{
	bad b;
	if (!r || !json || !len || !req_valid(r, &b))
		return ES_EINVAL;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return ES_ENOMEM;
	bool built = add_seq(o, "from", r->from) && add_seq(o, "to", r->to) &&
		     add_str(o, "request_id", r->request_id);
	return finish(o, built, json, len);
}

/* Encodes r as the reply object, every member present; ES_EINVAL when r
 * breaks a rule its decoder enforces (see reply_valid), ES_ENOMEM. */
es_err es_resend_reply_encode(const es_resend_reply *r, char **json, size_t *len)
{
	bad b;
	if (!r || !json || !len || !reply_valid(r, &b))
		return ES_EINVAL;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return ES_ENOMEM;
	bool built = add_str(o, "request_id", r->request_id) && add_seq(o, "from", r->from) &&
		     add_seq(o, "to", r->to) &&
		     add_str(o, "status", es_resend_status_name(r->status)) &&
		     add_seq(o, "sent_from", r->sent_from) && add_seq(o, "sent_to", r->sent_to) &&
		     add_seq(o, "gone_from", r->gone_from) && add_seq(o, "gone_to", r->gone_to) &&
		     add_str(o, "reason", r->reason) && add_seq(o, "latest_seq", r->latest_seq);
	return finish(o, built, json, len);
}

/* ---- decoding ---- */

static es_err fail(const dec *d, const char *field, const char *what)
{
	if (d->why && d->whycap)
		snprintf(d->why, d->whycap, "%s: %s", field, what);
	return ES_EINVAL;
}

static es_err too_big(const dec *d, size_t len)
{
	char what[80];
	snprintf(what, sizeof what, "message of %zu bytes; the limit is %d", len,
		 ES_CONTROL_MAX_BYTES);
	fail(d, "json", what);
	return ES_ETOOBIG;
}

/* Parses json[0..len) into an object; only whitespace may follow it. */
static es_err parse_object(const char *json, size_t len, dec *d, cJSON **root)
{
	const char *end = NULL, *why;
	size_t off_bad;
	if (len > ES_CONTROL_MAX_BYTES)
		return too_big(d, len);
	if (!es_utf8_valid(json, len, &off_bad)) {
		char at[48];
		snprintf(at, sizeof at, "not valid UTF-8 (at byte %zu)", off_bad);
		return fail(d, "json", at);
	}
	/* Control messages are flat; anything deep is not one of them. */
	if (!es_json_check(json, len, 4, &off_bad, &why))
		return fail(d, "json", why);
	cJSON *o = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!o) {
		char at[48];
		size_t off = end && end >= json ? (size_t)(end - json) : 0;
		snprintf(at, sizeof at, "not valid JSON (at byte %zu)", off);
		return fail(d, "json", at);
	}
	for (; end < json + len; end++) {
		if (!strchr(" \t\r\n", *end) || *end == '\0') {
			cJSON_Delete(o);
			return fail(d, "json", "text after the object");
		}
	}
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return fail(d, "json", "not an object");
	}
	d->obj = o;
	*root = o;
	return ES_OK;
}

/* The member called name in *out (NULL when absent). */
static es_err member(const dec *d, const char *name, bool required, const cJSON **out)
{
	const cJSON *found = NULL;
	for (const cJSON *c = d->obj->child; c; c = c->next) {
		if (!c->string || strcmp(c->string, name) != 0)
			continue;
		if (found)
			return fail(d, name, "appears more than once");
		found = c;
	}
	if (!found && required)
		return fail(d, name, "missing");
	*out = found;
	return ES_OK;
}

/* A non-negative integer member no larger than 2^53-1; 0 when absent and
 * not required. */
static es_err get_seq(const dec *d, const char *name, bool required, uint64_t *out)
{
	const cJSON *it;
	es_err err = member(d, name, required, &it);
	if (err || !it) {
		*out = 0;
		return err;
	}
	if (!cJSON_IsNumber(it))
		return fail(d, name, "not a number");
	double v = it->valuedouble;
	if (v < 0)
		return fail(d, name, "negative");
	if (v > (double)SEQ_MAX)
		return fail(d, name, "above 2^53-1");
	if (v != (double)(uint64_t)v)
		return fail(d, name, "not an integer");
	*out = (uint64_t)v;
	return ES_OK;
}

/* An optional sequence: dflt when absent. */
static es_err get_seq_or(const dec *d, const char *name, uint64_t dflt, uint64_t *out)
{
	const cJSON *it;
	es_err err = member(d, name, false, &it);
	if (err || it)
		return err ? err : get_seq(d, name, false, out);
	*out = dflt;
	return ES_OK;
}

/* A string member, borrowed from the tree; "" when absent and not required. */
static es_err get_strp(const dec *d, const char *name, bool required, const char **out)
{
	const cJSON *it;
	es_err err = member(d, name, required, &it);
	if (err)
		return err;
	if (it && !cJSON_IsString(it))
		return fail(d, name, "not a string");
	*out = it ? it->valuestring : "";
	return ES_OK;
}

/* A string member copied into buf[cap]; too long is an error, not a cut. */
static es_err get_str(const dec *d, const char *name, bool required, char *buf, size_t cap)
{
	const char *s;
	es_err err = get_strp(d, name, required, &s);
	if (err)
		return err;
	size_t n = strlen(s);
	if (n >= cap) {
		char what[40];
		snprintf(what, sizeof what, "longer than %zu characters", cap - 1);
		return fail(d, name, what);
	}
	memcpy(buf, s, n + 1);
	return ES_OK;
}

static es_err get_bool(const dec *d, const char *name, bool *out)
{
	const cJSON *it;
	es_err err = member(d, name, true, &it);
	if (err)
		return err;
	if (!cJSON_IsBool(it))
		return fail(d, name, "not true or false");
	*out = cJSON_IsTrue(it);
	return ES_OK;
}

static es_err get_state(const dec *d, bool *online)
{
	const char *s = NULL;
	es_err err = get_strp(d, "state", true, &s);
	if (err)
		return err;
	if (strcmp(s, "online") != 0 && strcmp(s, "offline") != 0)
		return fail(d, "state", "neither \"online\" nor \"offline\"");
	*online = strcmp(s, "online") == 0;
	return ES_OK;
}

static es_err get_time(const dec *d, uint64_t *ms)
{
	const char *s = NULL;
	es_err err = get_strp(d, "time", true, &s);
	if (err)
		return err;
	if (!es_time_parse(s, ms))
		return fail(d, "time", "not an RFC 3339 date-time");
	return ES_OK;
}

static es_err get_status_kind(const dec *d, es_resend_status *out)
{
	const char *s;
	es_err err = get_strp(d, "status", true, &s);
	if (err)
		return err;
	for (size_t i = 0; i < NSTATUS; i++) {
		if (strcmp(s, status_names[i]) == 0) {
			*out = (es_resend_status)i;
			return ES_OK;
		}
	}
	return fail(d, "status", "not one of ok, partial, gone, busy, invalid");
}

static es_err read_status(const dec *d, es_status_msg *m)
{
	es_err err = get_state(d, &m->online);
	if (!err)
		err = get_str(d, "boot_id", true, m->boot_id, sizeof m->boot_id);
	if (!err)
		err = get_str(d, "journal_id", true, m->journal_id, sizeof m->journal_id);
	if (!err)
		err = get_seq(d, "latest_seq", true, &m->latest_seq);
	if (!err)
		err = get_seq_or(d, "boot_seq", m->latest_seq, &m->boot_seq); /* see control.h */
	if (!err)
		err = get_seq(d, "acked_seq", true, &m->acked_seq);
	if (!err)
		err = get_seq(d, "oldest_seq", true, &m->oldest_seq);
	if (!err)
		err = get_seq(d, "pending", true, &m->pending);
	if (!err)
		err = get_bool(d, "clock_synced", &m->clock_synced);
	if (!err)
		err = get_time(d, &m->time_ms);
	return err;
}

static es_err read_req(const dec *d, es_resend_req *r)
{
	es_err err = get_seq(d, "from", true, &r->from);
	if (!err)
		err = get_seq(d, "to", true, &r->to);
	if (!err)
		err = get_str(d, "request_id", false, r->request_id, sizeof r->request_id);
	return err;
}

static es_err read_reply(const dec *d, es_resend_reply *r)
{
	es_err err = get_str(d, "request_id", false, r->request_id, sizeof r->request_id);
	if (!err)
		err = get_seq(d, "from", true, &r->from);
	if (!err)
		err = get_seq(d, "to", true, &r->to);
	if (!err)
		err = get_status_kind(d, &r->status);
	if (!err)
		err = get_seq(d, "sent_from", false, &r->sent_from);
	if (!err)
		err = get_seq(d, "sent_to", false, &r->sent_to);
	if (!err)
		err = get_seq(d, "gone_from", false, &r->gone_from);
	if (!err)
		err = get_seq(d, "gone_to", false, &r->gone_to);
	if (!err)
		err = get_str(d, "reason", false, r->reason, sizeof r->reason);
	if (!err)
		err = get_seq(d, "latest_seq", false, &r->latest_seq);
	return err;
}

/* Decodes a status: every member required; boot_id and journal_id
 * 36-character UUIDs; acked_seq and oldest_seq at most latest_seq. */
es_err es_status_decode(const char *json, size_t len, es_status_msg *out, char *why, size_t whycap)
{
	dec d = {NULL, why, whycap};
	cJSON *root;
	if (!json || !out)
		return fail(&d, "json", "no input");
	es_err err = parse_object(json, len, &d, &root);
	if (err)
		return err;
	es_status_msg m = {0};
	bad b;
	err = read_status(&d, &m);
	if (!err && !status_valid(&m, &b))
		err = fail(&d, b.field, b.what);
	cJSON_Delete(root);
	if (!err)
		*out = m;
	return err;
}

/* Decodes a request: from and to required, 1 <= from <= to; request_id
 * optional (empty when absent), at most 63 bytes of UTF-8 without control
 * characters. */
es_err es_resend_req_decode(const char *json, size_t len, es_resend_req *out, char *why,
			    size_t whycap)
{
	dec d = {NULL, why, whycap};
	cJSON *root;
	if (!json || !out)
		return fail(&d, "json", "no input");
	es_err err = parse_object(json, len, &d, &root);
	if (err)
		return err;
	es_resend_req r = {0};
	bad b;
	err = read_req(&d, &r);
	if (!err && !req_valid(&r, &b))
		err = fail(&d, b.field, b.what);
	cJSON_Delete(root);
	if (!err)
		*out = r;
	return err;
}

/* Decodes a reply: from, to and status required (from..to may be 0..0 only
 * for "invalid"); request_id, reason and the sent/gone ranges optional
 * (empty, 0..0), each range none or inside from..to. */
es_err es_resend_reply_decode(const char *json, size_t len, es_resend_reply *out, char *why,
			      size_t whycap)
{
	dec d = {NULL, why, whycap};
	cJSON *root;
	if (!json || !out)
		return fail(&d, "json", "no input");
	es_err err = parse_object(json, len, &d, &root);
	if (err)
		return err;
	es_resend_reply r = {0};
	bad b;
	err = read_reply(&d, &r);
	if (!err && !reply_valid(&r, &b))
		err = fail(&d, b.field, b.what);
	cJSON_Delete(root);
	if (!err)
		*out = r;
	return err;
}

/* ---- the request_id of a refused request ---- */

/* Copies s[0..n) into out[cap] (cap >= 4), each invalid UTF-8 sequence or
 * control character replaced by U+FFFD, cut on a character boundary. */
static void sanitize(const char *s, size_t n, char *out, size_t cap)
{
	static const char repl[] = "\xEF\xBF\xBD";
	size_t k = 0, i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
		bool good = i + len <= n && es_utf8_valid(s + i, len, NULL) && !is_control(c);
		const char *src = good ? s + i : repl;
		size_t w = good ? len : 3;
		if (k + w >= cap)
			break;
		memcpy(out + k, src, w);
		k += w;
		i += good ? len : 1;
	}
	out[k] = '\0';
}

/* Contract in control.h. */
bool es_resend_req_id(const char *json, size_t len, char out[ES_REQUEST_ID_MAX])
{
	out[0] = '\0';
	const char *end = NULL, *why;
	size_t at;
	if (!json || len > ES_CONTROL_MAX_BYTES || !es_json_check(json, len, 4, &at, &why))
		return false;
	cJSON *o = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	const cJSON *id =
		cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "request_id") : NULL;
	bool found = cJSON_IsString(id) && id->valuestring;
	if (found)
		sanitize(id->valuestring, strlen(id->valuestring), out, ES_REQUEST_ID_MAX);
	cJSON_Delete(o);
	return found;
}
