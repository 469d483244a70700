/* links.c - the device links (see links.h).
 *
 * Threads: the links thread owns every conn and device. l->lock guards the
 * counters (struct link_stats, the device count and l->refused) so that
 * links_status_json can read them from an HTTP thread; the links thread
 * holds it while it decodes a chunk of input, never across the journal's
 * commit or a poll.
 */
#include "links.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "link.h"
#include "log.h"

#define TAG	       "links"
#define READ_CHUNK     4096
#define OUT_MAX	       8192
#define BATCH_MAX      2048 /* events per append at most */
#define FAULT_LOG_MS   10000
#define DEFAULT_BAUD   115200
#define DEV_KEY_PREFIX "x.dev."

enum conn_kind { C_SERIAL, C_LISTENER, C_CLIENT };
static const char *const kind_names[] = {"serial", "listen", "client"};

/* What one link saw; a listener's clients count into the listener's. */
struct link_stats {
	uint64_t opens, bytes_in, frames, records, duplicates, early, unknown_device;
	uint64_t bad_payload, wrong_direction, acks, out_dropped, clients_refused;
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
	uint64_t time_at, fault_log_at;
	bool warned; /* C_SERIAL: said that it cannot open, since the last open */
};

struct dev {
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
	char link[96];	   /* the name of the link it was last heard on (cut) */
	struct conn *conn; /* where it was last heard from */
	char value[80];	   /* its x.dev.<id> value, while dirty */
	char key[24];
};

struct batch {
	es_event *evs[BATCH_MAX];
	size_t n;
	struct dev **devs; /* the dirty devices */
	size_t ndevs, capdevs;
};

struct links {
	links_opts o;
	es_strlist serial, listen;
	struct conn **conns;
	size_t nconns, capconns;
	struct dev *devs; /* open addressing by id, capdevs a power of 2 */
	size_t ndevs, capdevs;
	struct batch batch;
	int wake_fd;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	pthread_mutex_t lock;
	uint64_t devices_refused, journal_refused, device_lost;
	uint64_t refused_log_at;
};

/* ---- parsing the settings ---------------------------------------------------------- */

static speed_t baud_speed(long baud)
{
	static const struct {
		long baud;
		speed_t speed;
	} map[] = {{1200, B1200},	{2400, B2400},	     {4800, B4800},
		   {9600, B9600},	{19200, B19200},     {38400, B38400},
		   {57600, B57600},	{115200, B115200},   {230400, B230400},
		   {460800, B460800},	{921600, B921600},   {1000000, B1000000},
		   {2000000, B2000000}, {3000000, B3000000}, {4000000, B4000000}};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (map[i].baud == baud)
			return map[i].speed;
	return B0;
}

/* "PATH[:BAUD]" into a malloc'd path and a speed; false if not valid. */
static bool parse_serial(const char *spec, char **path, speed_t *speed)
{
	const char *colon = strrchr(spec, ':');
	long baud = DEFAULT_BAUD;
	size_t plen = strlen(spec);
	if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		baud = strlen(colon + 1) <= 8 ? strtol(colon + 1, NULL, 10) : 0;
		plen = (size_t)(colon - spec);
	}
	if (plen == 0 || spec[0] != '/' || baud_speed(baud) == B0)
		return false;
	if (path && !(*path = strndup(spec, plen)))
		return false;
	if (speed)
		*speed = baud_speed(baud);
	return true;
}

const char *links_check_serial(const char *spec)
{
	if (!spec || spec[0] != '/')
		return "must be an absolute device path, optionally with :BAUD";
	return parse_serial(spec, NULL, NULL)
		       ? NULL
		       : "has a baud rate this system does not support (1200 .. 4000000)";
}

/* "tcp:HOST:PORT" into host and port (brackets around an IPv6 host go). */
static bool split_tcp(const char *rest, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon = strrchr(rest, ':');
	if (!colon || colon == rest || !colon[1] || strlen(colon + 1) >= pcap ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return false;
	size_t hlen = (size_t)(colon - rest);
	if (hlen >= 2 && rest[0] == '[' && rest[hlen - 1] == ']')
		rest++, hlen -= 2;
	if (hlen == 0 || hlen >= hcap || atol(colon + 1) > 65535)
		return false;
	memcpy(host, rest, hlen);
	host[hlen] = '\0';
	snprintf(port, pcap, "%s", colon + 1);
	return true;
}

const char *links_check_listen(const char *spec)
{
	char host[256], port[8];
	if (spec && strncmp(spec, "tcp:", 4) == 0)
		return split_tcp(spec + 4, host, sizeof host, port, sizeof port)
			       ? NULL
			       : "must be tcp:HOST:PORT with a port 0..65535";
	if (spec && strncmp(spec, "unix:", 5) == 0)
		return spec[5] && strlen(spec + 5) < sizeof(((struct sockaddr_un *)0)->sun_path)
			       ? NULL
			       : "must be unix:PATH with a path of 1..107 bytes";
	return "must be tcp:HOST:PORT or unix:PATH";
}

/* ---- the device table -------------------------------------------------------------- */

static size_t dev_slot(const struct links *l, uint32_t id)
{
	size_t mask = l->capdevs - 1, i = (size_t)(id * 2654435761u) & mask;
	while (l->devs[i].id && l->devs[i].id != id)
		i = (i + 1) & mask;
	return i;
}

static struct dev *dev_find(struct links *l, uint32_t id)
{
	if (!l->capdevs)
		return NULL;
	struct dev *d = &l->devs[dev_slot(l, id)];
	return d->id ? d : NULL;
}

static bool dev_grow(struct links *l)
{
	size_t cap = l->capdevs ? l->capdevs * 2 : 64;
	struct dev *old = l->devs, *grown = calloc(cap, sizeof *grown);
	if (!grown)
		return false;
	size_t oldcap = l->capdevs;
	l->devs = grown;
	l->capdevs = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].id)
			l->devs[dev_slot(l, old[i].id)] = old[i];
	free(old);
	/* The batch points at devices: a grow happens only between batches. */
	return true;
}

/* A new device, or NULL when the table is at link.max_devices (counted) or
 * out of memory. */
static struct dev *dev_add(struct links *l, uint32_t id)
{
	if (l->ndevs >= l->o.max_devices) {
		l->devices_refused++;
		return NULL;
	}
	if ((l->ndevs + 1) * 2 > l->capdevs && (l->batch.ndevs || !dev_grow(l)))
		return NULL;
	struct dev *d = &l->devs[dev_slot(l, id)];
	*d = (struct dev){.id = id};
	l->ndevs++;
	return d;
}

static int load_dev(void *ctx, const char *key, const void *value, size_t len)
{
	struct links *l = ctx;
	char text[80];
	unsigned long id;
	unsigned boot, last;
	unsigned long long records;
	char *end;
	snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text ? len : sizeof text - 1),
		 (const char *)value);
	id = strtoul(key + strlen(DEV_KEY_PREFIX), &end, 10);
	if (*end || id == 0 || id > UINT32_MAX ||
	    sscanf(text, "%u %u %llu", &boot, &last, &records) != 3) {
		es_warn(TAG, "journal key %s: '%s' is not a device's state; ignored", key, text);
		return 0;
	}
	if ((l->ndevs + 1) * 2 > l->capdevs && !dev_grow(l))
		return 1;
	struct dev *d = &l->devs[dev_slot(l, (uint32_t)id)];
	*d = (struct dev){.id = (uint32_t)id,
			  .boot = boot,
			  .last = last,
			  .expected = last + 1,
			  .known = true,
			  .greeted = true,
			  .records = records};
	l->ndevs++;
	return 0;
}

static es_err load_devices(struct links *l)
{
	es_journal_reader *r;
	es_err err = es_journal_reader_new(l->o.journal, &r);
	if (!err)
		err = es_journal_scan(r, DEV_KEY_PREFIX, load_dev, l);
	es_journal_reader_free(r);
	if (err)
		es_error(TAG, "cannot read the devices' state from the journal: %s",
			 es_strerror(err));
	else if (l->ndevs)
		es_info(TAG, "%zu devices known from the journal", l->ndevs);
	return err;
}

/* ---- output ------------------------------------------------------------------------ */

static void conn_send(struct conn *c, const fw_frame *f)
{
	uint8_t wire[FW_WIRE_MAX];
	size_t n = fw_frame_encode(f, wire, sizeof wire);
	if (c->fd < 0 || n == 0)
		return;
	if (c->nout + n > sizeof c->out) {
		c->st->out_dropped++; /* the device resends; its re-ack goes then */
		return;
	}
	memcpy(c->out + c->nout, wire, n);
	c->nout += n;
}

static void send_ack(struct conn *c, uint32_t device, uint32_t seq, uint8_t flags)
{
	fw_frame f;
	fw_frame_init(&f, FW_ACK, device, seq);
	fw_ack_pack(&f, flags);
	conn_send(c, &f);
	c->st->acks++;
}

static void send_time(struct conn *c, uint32_t device)
{
	fw_frame f;
	fw_frame_init(&f, FW_TIME, device, 0);
	fw_time_pack(&f, es_clock_wall_ms());
	conn_send(c, &f);
}

static void conn_close(struct links *l, struct conn *c, const char *why);

static void conn_flush(struct links *l, struct conn *c)
{
	size_t done = 0;
	while (c->fd >= 0 && done < c->nout) {
		ssize_t w = write(c->fd, c->out + done, c->nout - done);
		if (w > 0)
			done += (size_t)w;
		else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else {
			conn_close(l, c, w < 0 ? strerror(errno) : "write returned 0");
			return;
		}
	}
	memmove(c->out, c->out + done, c->nout - done);
	c->nout -= done;
}

/* ---- events ------------------------------------------------------------------------ */

static void subject_of(uint32_t id, char *buf, size_t cap)
{
	snprintf(buf, cap, "dev-%08x", id);
}

/* Adds an event to the batch; the batch owns it. */
static void batch_event(struct links *l, const char *type, uint32_t device, cJSON *data)
{
	char subject[16], *json = cJSON_PrintUnformatted(data);
	es_event *ev = NULL;
	es_verr v;
	subject_of(device, subject, sizeof subject);
	if (json && es_event_new(type, subject, json, &ev, &v) == ES_OK)
		l->batch.evs[l->batch.n++] = ev;
	else
		es_error(TAG, "cannot make a %s event for %s: %s", type, subject,
			 json ? v.reason : "out of memory");
	cJSON_free(json);
	cJSON_Delete(data);
}

static cJSON *data_of(const struct dev *d, const struct conn *c)
{
	char subject[16];
	cJSON *o = cJSON_CreateObject();
	subject_of(d->id, subject, sizeof subject);
	cJSON_AddStringToObject(o, "device", subject);
	cJSON_AddStringToObject(o, "link", c->name);
	return o;
}

static void add_value(cJSON *o, const fw_record *r)
{
	if (r->kind == FW_KIND_DOOR) {
		cJSON_AddBoolToObject(o, "open", r->value != 0);
		return;
	}
	cJSON_AddNumberToObject(o, "value", (double)r->value / 1000.0);
	cJSON_AddStringToObject(o, "unit", fw_kind_unit(r->kind));
}

static void add_time(cJSON *o, const char *name, uint64_t ms)
{
	char buf[ES_TIME_STR];
	es_time_format(ms, buf);
	cJSON_AddStringToObject(o, name, buf);
}

static const char *record_type(const fw_record *r)
{
	if (r->flags & FW_REC_ALARM_EDGE)
		return r->flags & FW_REC_ALARM ? "alarm.raised" : "alarm.cleared";
	return "sensor.reading";
}

static void record_event(struct links *l, const struct dev *d, const struct conn *c, uint32_t seq,
			 const fw_record *r)
{
	cJSON *o = data_of(d, c);
	cJSON_AddNumberToObject(o, "seq", seq);
	cJSON_AddStringToObject(o, "kind", fw_kind_name(r->kind));
	add_value(o, r);
	cJSON_AddBoolToObject(o, "alarm", (r->flags & FW_REC_ALARM) != 0);
	cJSON_AddNumberToObject(o, "uptime_ms", r->uptime_ms);
	if (r->flags & FW_REC_WALL)
		add_time(o, "device_time", r->wall_ms);
	batch_event(l, record_type(r), d->id, o);
}

static void hello_event(struct links *l, const struct dev *d, const struct conn *c,
			const fw_hello *h, bool registered, uint32_t lost)
{
	cJSON *o = data_of(d, c), *kinds = cJSON_AddArrayToObject(o, "sensors");
	char fw[16];
	snprintf(fw, sizeof fw, "%u.%u", h->fw_major, h->fw_minor);
	cJSON_AddStringToObject(o, "firmware", fw);
	cJSON_AddNumberToObject(o, "boot", h->boot);
	cJSON_AddNumberToObject(o, "uptime_ms", h->uptime_ms);
	for (uint8_t k = 1; k <= FW_KIND_MAX_; k++)
		if (h->kinds & (1u << (k - 1)))
			cJSON_AddItemToArray(kinds, cJSON_CreateString(fw_kind_name(k)));
	if (lost)
		cJSON_AddNumberToObject(o, "records_lost", lost);
	batch_event(l, registered ? "device.registered" : "device.seen", d->id, o);
}

/* ---- frames in --------------------------------------------------------------------- */

static void mark_dirty(struct links *l, struct dev *d)
{
	struct batch *b = &l->batch;
	if (d->dirty)
		return;
	if (b->ndevs == b->capdevs) {
		size_t cap = b->capdevs ? b->capdevs * 2 : 64;
		struct dev **grown = realloc(b->devs, cap * sizeof *grown);
		if (!grown)
			return; /* not stored: the device will resend */
		b->devs = grown;
		b->capdevs = cap;
	}
	d->dirty = true;
	b->devs[b->ndevs++] = d;
}

static bool seq_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static void on_record(struct links *l, struct conn *c, const fw_frame *f)
{
	struct dev *d = dev_find(l, f->device);
	fw_record r;
	if (!d || !d->greeted) {
		c->st->unknown_device++;
		send_ack(c, f->device, 0, FW_ACK_SEND_HELLO);
		return;
	}
	d->conn = c;
	if (seq_before(f->seq, d->expected)) { /* journaled (or in this batch) */
		c->st->duplicates++;
		if (!d->dirty)
			send_ack(c, d->id, d->last, 0);
		return;
	}
	if (f->seq != d->expected) { /* one before it was lost on the way */
		c->st->early++;
		if (!d->dirty)
			send_ack(c, d->id, d->last, 0);
		return;
	}
	if (l->batch.n == BATCH_MAX)
		return; /* no room this round: the device resends it */
	mark_dirty(l, d);
	d->expected++;
	d->records++;
	c->st->records++;
	if (fw_record_unpack(f, &r)) {
		record_event(l, d, c, f->seq, &r);
		d->reading = r;
		d->has_reading = true;
		return;
	}
	c->st->bad_payload++;
	char why[96];
	snprintf(why, sizeof why, "device %u record %u: a payload of %u bytes that is not a record",
		 f->device, f->seq, f->len);
	es_journal_dead_letter(l->o.journal, c->name, why, f->payload, f->len);
}

static void on_hello(struct links *l, struct conn *c, const fw_frame *f)
{
	fw_hello h;
	struct dev *d = dev_find(l, f->device);
	bool registered = !d || !d->known;
	if (!fw_hello_unpack(f, &h)) {
		c->st->bad_payload++;
		return;
	}
	if (!d && !(d = dev_add(l, f->device)))
		return;
	if (registered && (!d->greeted || seq_before(d->expected, f->seq))) {
		d->expected = f->seq; /* a new device starts where it is */
		d->last = f->seq - 1;
	}
	uint32_t lost = seq_before(d->expected, f->seq) ? f->seq - d->expected : 0;
	if (lost) { /* a cold boot lost records the device never sent us */
		l->device_lost += lost;
		d->expected = f->seq;
		d->last = f->seq - 1;
	}
	d->greeted = true;
	d->conn = c;
	send_time(c, d->id);
	/* A registration already in this batch is not made twice. */
	if ((registered && !d->dirty) || h.boot != d->boot || lost) {
		if (l->batch.n == BATCH_MAX)
			return; /* next hello, then */
		d->boot = h.boot;
		mark_dirty(l, d);
		hello_event(l, d, c, &h, registered, lost);
	} else if (!d->dirty) {
		send_ack(c, d->id, d->last, 0);
	}
}

/* When and where a known device was last heard from. */
static void seen(struct links *l, const struct conn *c, uint32_t id)
{
	struct dev *d = dev_find(l, id);
	if (!d)
		return;
	d->last_seen_ms = es_clock_wall_ms();
	snprintf(d->link, sizeof d->link, "%.95s", c->name);
}

static void on_frame(void *ctx, const fw_frame *f)
{
	struct conn *c = ((void **)ctx)[1];
	struct links *l = ((void **)ctx)[0];
	c->st->frames++;
	if (f->type == FW_RECORD && f->device)
		on_record(l, c, f);
	else if (f->type == FW_HELLO && f->device)
		on_hello(l, c, f);
	else
		c->st->wrong_direction++;
	if (f->device)
		seen(l, c, f->device);
}

static void on_fault(void *ctx, enum fw_fault why)
{
	struct conn *c = ((void **)ctx)[1];
	uint64_t now = es_clock_mono_ms();
	c->st->faults[why]++;
	if (now >= c->fault_log_at) {
		c->fault_log_at = now + FAULT_LOG_MS;
		es_warn(TAG, "%s: a bad frame (%s), dropped; %" PRIu64 " %s faults so far", c->name,
			fw_fault_name(why), c->st->faults[why], fw_fault_name(why));
	}
}

/* ---- the batch --------------------------------------------------------------------- */

static void dev_value(struct dev *d)
{
	snprintf(d->key, sizeof d->key, DEV_KEY_PREFIX "%u", d->id);
	snprintf(d->value, sizeof d->value, "%u %u %llu", d->boot, d->expected - 1,
		 (unsigned long long)d->records);
}

/* The batch was journaled (ok) or not: acknowledge, or forget it so the
 * devices' resends bring it again. */
static void batch_done(struct links *l, bool ok)
{
	struct batch *b = &l->batch;
	for (size_t i = 0; i < b->ndevs; i++) {
		struct dev *d = b->devs[i];
		d->dirty = false;
		if (ok) {
			d->last = d->expected - 1;
			d->known = true;
			if (d->conn)
				send_ack(d->conn, d->id, d->last, 0);
		} else {
			d->expected = d->last + 1;
			d->greeted = d->known; /* an unjournaled hello must come again */
		}
	}
	b->ndevs = 0;
	for (size_t i = 0; i < b->n; i++)
		es_event_free(b->evs[i]);
	b->n = 0;
}

static void refused(struct links *l, es_err err)
{
	uint64_t now = es_clock_mono_ms();
	l->journal_refused += l->batch.n;
	if (now >= l->refused_log_at) {
		l->refused_log_at = now + FAULT_LOG_MS;
		es_warn(TAG,
			"the journal refused %zu device events (%s): not acknowledged, the "
			"devices keep them and resend",
			l->batch.n, es_strerror(err));
	}
}

static void batch_flush(struct links *l)
{
	struct batch *b = &l->batch;
	if (!b->ndevs && !b->n)
		return;
	es_journal_kv *kv = calloc(b->ndevs ? b->ndevs : 1, sizeof *kv);
	es_append_result *res = calloc(b->n ? b->n : 1, sizeof *res);
	es_err err = kv && res ? ES_OK : ES_ENOMEM;
	for (size_t i = 0; !err && i < b->ndevs; i++) {
		dev_value(b->devs[i]);
		kv[i] = (es_journal_kv){b->devs[i]->key, b->devs[i]->value,
					strlen(b->devs[i]->value)};
	}
	if (!err)
		err = es_journal_append_kv(l->o.journal, b->evs, b->n, res, kv, b->ndevs);
	free(kv);
	free(res);
	pthread_mutex_lock(&l->lock);
	if (err)
		refused(l, err);
	batch_done(l, err == ES_OK);
	pthread_mutex_unlock(&l->lock);
}

/* ---- opening and closing ----------------------------------------------------------- */

static void conn_close(struct links *l, struct conn *c, const char *why)
{
	if (c->fd < 0)
		return;
	es_info(TAG, "%s: closed (%s)", c->name, why);
	close(c->fd);
	c->fd = -1;
	c->nout = 0;
	fw_decoder_init(&c->dec);
	for (size_t i = 0; i < l->capdevs; i++)
		if (l->devs[i].conn == c)
			l->devs[i].conn = NULL;
	if (c->kind == C_SERIAL)
		c->retry_at = es_clock_mono_ms() + l->o.reopen_ms;
	if (c->kind == C_CLIENT)
		c->listener->clients--;
}

static bool set_raw(int fd, speed_t speed, char *why, size_t cap)
{
	struct termios t;
	if (tcgetattr(fd, &t) != 0) {
		snprintf(why, cap, "not a terminal: %s", strerror(errno));
		return false;
	}
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (cfsetispeed(&t, speed) != 0 || cfsetospeed(&t, speed) != 0 ||
	    tcsetattr(fd, TCSANOW, &t) != 0) {
		snprintf(why, cap, "cannot set raw mode: %s", strerror(errno));
		return false;
	}
	return true;
}

static void serial_open(struct links *l, struct conn *c, uint64_t now)
{
	char why[160];
	int fd = open(c->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		snprintf(why, sizeof why, "%s", strerror(errno));
	if (fd >= 0 && set_raw(fd, c->speed, why, sizeof why)) {
		c->fd = fd;
		c->st->opens++;
		c->time_at = now;
		c->warned = false;
		es_info(TAG, "%s: open", c->name);
		return;
	}
	if (fd >= 0)
		close(fd);
	if (!c->warned)
		es_warn(TAG, "%s: cannot open (%s); retrying every %" PRIu64 " ms", c->name, why,
			l->o.reopen_ms);
	c->warned = true;
	c->retry_at = now + l->o.reopen_ms;
}

static es_err add_conn(struct links *l, struct conn *c)
{
	if (l->nconns == l->capconns) {
		size_t cap = l->capconns ? l->capconns * 2 : 8;
		struct conn **grown = realloc(l->conns, cap * sizeof *grown);
		if (!grown)
			return ES_ENOMEM;
		l->conns = grown;
		l->capconns = cap;
	}
	l->conns[l->nconns++] = c;
	return ES_OK;
}

static struct conn *conn_new(enum conn_kind kind, const char *name)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->kind = kind;
	c->fd = -1;
	c->st = &c->own;
	snprintf(c->name, sizeof c->name, "%s", name);
	fw_decoder_init(&c->dec);
	return c;
}

static es_err add_serial(struct links *l, const char *spec)
{
	char name[200];
	snprintf(name, sizeof name, "serial:%s", spec);
	struct conn *c = conn_new(C_SERIAL, name);
	if (!c || !parse_serial(spec, &c->path, &c->speed) || add_conn(l, c)) {
		if (c)
			free(c->path);
		free(c);
		return ES_ENOMEM;
	}
	return ES_OK;
}

static int bind_unix(const char *path, char *why, size_t cap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a socket left by an earlier run */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 16) == 0)
		return fd;
	snprintf(why, cap, "%s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int bind_tcp(const char *spec, char *why, size_t cap)
{
	char host[256], port[8];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
	split_tcp(spec, host, sizeof host, port, sizeof port);
	int rc = getaddrinfo(host, port, &hints, &ai), fd = -1, one = 1;
	if (rc) {
		snprintf(why, cap, "%s", gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
		snprintf(why, cap, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static es_err add_listener(struct links *l, const char *spec)
{
	char why[160] = "";
	bool is_unix = strncmp(spec, "unix:", 5) == 0;
	struct conn *c = conn_new(C_LISTENER, spec);
	if (!c)
		return ES_ENOMEM;
	c->fd = is_unix ? bind_unix(spec + 5, why, sizeof why)
			: bind_tcp(spec + 4, why, sizeof why);
	if (c->fd < 0) {
		es_error(TAG, "link.listen %s: cannot listen: %s", spec, why);
		free(c);
		return ES_EINVAL;
	}
	if (is_unix)
		c->unix_path = strdup(spec + 5);
	if (add_conn(l, c)) {
		close(c->fd);
		free(c->unix_path);
		free(c);
		return ES_ENOMEM;
	}
	es_info(TAG, "listening for devices on %s", spec);
	return ES_OK;
}

static void accept_client(struct links *l, struct conn *ls, uint64_t now)
{
	int fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct conn *c = ls->clients < l->o.max_clients ? conn_new(C_CLIENT, ls->name) : NULL;
	if (!c || add_conn(l, c)) {
		ls->st->clients_refused++;
		es_warn(TAG, "%s: connection refused: %zu clients already (link.max_clients)",
			ls->name, ls->clients);
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->listener = ls;
	c->st = &ls->own;
	c->time_at = now;
	ls->clients++;
	ls->st->opens++;
	es_info(TAG, "%s: a device link connected", ls->name);
}

/* Frees closed clients; listeners and serial lines stay. */
static void reap(struct links *l)
{
	size_t kept = 0;
	for (size_t i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];
		if (c->kind == C_CLIENT && c->fd < 0)
			free(c);
		else
			l->conns[kept++] = c;
	}
	l->nconns = kept;
}

/* ---- the thread -------------------------------------------------------------------- */

static void conn_read(struct links *l, struct conn *c)
{
	uint8_t buf[READ_CHUNK];
	ssize_t n = read(c->fd, buf, sizeof buf);
	if (n > 0) {
		void *ctx[2] = {l, c};
		c->st->bytes_in += (uint64_t)n;
		fw_decoder_feed(&c->dec, buf, (size_t)n, on_frame, on_fault, ctx);
	} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		conn_close(l, c, n == 0 ? "end of input" : strerror(errno));
	}
}

static uint64_t timers(struct links *l, uint64_t now)
{
	uint64_t next = now + 1000;
	for (size_t i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];
		if (c->kind == C_SERIAL && c->fd < 0 && now >= c->retry_at)
			serial_open(l, c, now);
		if (c->kind == C_SERIAL && c->fd < 0 && c->retry_at < next)
			next = c->retry_at;
		if (c->kind != C_LISTENER && c->fd >= 0 && now >= c->time_at) {
			send_time(c, 0); /* to every device on the line */
			c->time_at = l->o.time_sync_ms ? now + l->o.time_sync_ms : UINT64_MAX;
		}
		if (c->kind != C_LISTENER && c->fd >= 0 && c->time_at < next)
			next = c->time_at;
	}
	return next;
}

static size_t fill_pollfds(struct links *l, struct pollfd *pfd, struct conn **who)
{
	size_t n = 1;
	pfd[0] = (struct pollfd){.fd = l->wake_fd, .events = POLLIN};
	for (size_t i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];
		if (c->fd < 0)
			continue;
		who[n] = c;
		pfd[n++] = (struct pollfd){.fd = c->fd,
					   .events = (short)(POLLIN | (c->nout ? POLLOUT : 0))};
	}
	return n;
}

static void serve(struct links *l, struct pollfd *pfd, struct conn **who, size_t n, uint64_t now)
{
	for (size_t i = 1; i < n; i++) {
		struct conn *c = who[i];
		if (!pfd[i].revents)
			continue;
		if (c->kind == C_LISTENER)
			accept_client(l, c, now);
		else if (pfd[i].revents & POLLIN)
			conn_read(l, c);
		else if (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL))
			conn_close(l, c, "hung up");
	}
}

static void *run(void *arg)
{
	struct links *l = arg;
	struct pollfd *pfd = NULL;
	struct conn **who = NULL;
	size_t cap = 0;
	while (!atomic_load(&l->stop)) {
		uint64_t now = es_clock_mono_ms();
		pthread_mutex_lock(&l->lock);
		uint64_t next = timers(l, now);
		pthread_mutex_unlock(&l->lock);
		if (cap < l->nconns + 1) {
			cap = l->nconns + 16;
			free(pfd);
			free(who);
			pfd = calloc(cap, sizeof *pfd);
			who = calloc(cap, sizeof *who);
			if (!pfd || !who) {
				es_error(TAG, "out of memory: the device links stop");
				break;
			}
		}
		size_t n = fill_pollfds(l, pfd, who);
		int wait = next > now ? (int)(next - now) : 0;
		if (poll(pfd, n, wait) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&l->lock);
		serve(l, pfd, who, n, es_clock_mono_ms());
		pthread_mutex_unlock(&l->lock);
		batch_flush(l); /* waits for the commit: without the lock */
		pthread_mutex_lock(&l->lock);
		for (size_t i = 0; i < l->nconns; i++)
			conn_flush(l, l->conns[i]);
		reap(l);
		pthread_mutex_unlock(&l->lock);
	}
	free(pfd);
	free(who);
	return NULL;
}

/* ---- the API ----------------------------------------------------------------------- */

es_err links_new(const links_opts *o, links **out)
{
	struct links *l = calloc(1, sizeof *l);
	if (!l)
		return ES_ENOMEM;
	l->o = *o;
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&l->lock, NULL);
	es_err err = l->wake_fd < 0 ? ES_EIO : load_devices(l);
	for (size_t i = 0; !err && o->serial && i < o->serial->n; i++)
		err = add_serial(l, o->serial->v[i]);
	for (size_t i = 0; !err && o->listen && i < o->listen->n; i++)
		err = add_listener(l, o->listen->v[i]);
	if (err) {
		links_free(l);
		return err;
	}
	*out = l;
	return ES_OK;
}

es_err links_start(links *l)
{
	if (pthread_create(&l->thread, NULL, run, l) != 0)
		return ES_EIO;
	l->started = true;
	return ES_OK;
}

void links_stop(links *l)
{
	if (!l || !l->started)
		return;
	atomic_store(&l->stop, true);
	uint64_t one = 1;
	if (write(l->wake_fd, &one, sizeof one) < 0)
		es_warn(TAG, "cannot wake the links thread: %s", strerror(errno));
	pthread_join(l->thread, NULL);
	l->started = false;
}

void links_free(links *l)
{
	if (!l)
		return;
	links_stop(l);
	for (size_t i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];
		if (c->fd >= 0)
			close(c->fd);
		if (c->unix_path)
			unlink(c->unix_path);
		free(c->unix_path);
		free(c->path);
		free(c);
	}
	batch_done(l, false);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	pthread_mutex_destroy(&l->lock);
	free(l->conns);
	free(l->devs);
	free(l->batch.devs);
	free(l);
}

static void add_counts(cJSON *o, const struct link_stats *s)
{
#define COUNT(field, name)                                                                         \
	{                                                                                          \
		name, offsetof(struct link_stats, field)                                           \
	}
	static const struct {
		const char *name;
		size_t off;
	} counts[] = {
		COUNT(opens, "opens"),
		COUNT(bytes_in, "bytes_in"),
		COUNT(frames, "frames"),
		COUNT(records, "records"),
		COUNT(duplicates, "duplicates"),
		COUNT(early, "early"),
		COUNT(unknown_device, "unknown_device"),
		COUNT(bad_payload, "bad_payload"),
		COUNT(wrong_direction, "wrong_direction"),
		COUNT(acks, "acks_sent"),
		COUNT(out_dropped, "out_dropped"),
		COUNT(clients_refused, "clients_refused"),
	};
#undef COUNT
	cJSON *f = cJSON_CreateObject();
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		const uint64_t *v =
			(const uint64_t *)(const void *)((const char *)s + counts[i].off);
		cJSON_AddNumberToObject(o, counts[i].name, (double)*v);
	}
	for (int k = 0; k < FW_FAULT_COUNT_; k++)
		cJSON_AddNumberToObject(f, fw_fault_name((enum fw_fault)k), (double)s->faults[k]);
	cJSON_AddItemToObject(o, "faults", f);
}

static void sum_stats(links_totals *t, const struct link_stats *s)
{
	t->frames += s->frames;
	t->records += s->records;
	t->duplicates += s->duplicates;
	t->early += s->early;
	t->unknown_device += s->unknown_device;
	t->bad_payload += s->bad_payload;
	t->wrong_direction += s->wrong_direction;
	t->acks_sent += s->acks;
	t->bytes_in += s->bytes_in;
	for (int k = 0; k < FW_FAULT_COUNT_; k++)
		t->faults[k] += s->faults[k];
}

void links_totals_get(links *l, links_totals *out)
{
	_Static_assert(FW_FAULT_COUNT_ <= 8, "links_totals.faults is too small");
	*out = (links_totals){.nfaults = FW_FAULT_COUNT_};
	for (int k = 0; k < FW_FAULT_COUNT_; k++)
		out->fault_names[k] = fw_fault_name((enum fw_fault)k);
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->nconns; i++) {
		const struct conn *c = l->conns[i];
		if (c->kind == C_CLIENT)
			continue; /* counted in its listener's */
		sum_stats(out, c->st);
		out->links++;
		out->links_open += c->fd >= 0;
	}
	out->devices = l->ndevs;
	out->devices_refused = l->devices_refused;
	out->records_lost_at_devices = l->device_lost;
	out->journal_refused = l->journal_refused;
	pthread_mutex_unlock(&l->lock);
}

static cJSON *device_json(const struct dev *d)
{
	char subject[16];
	cJSON *e = cJSON_CreateObject();
	subject_of(d->id, subject, sizeof subject);
	cJSON_AddStringToObject(e, "id", subject);
	cJSON_AddNumberToObject(e, "device", d->id);
	cJSON_AddNumberToObject(e, "boot", d->boot);
	cJSON_AddNumberToObject(e, "records", (double)d->records);
	cJSON_AddNumberToObject(e, "last_seq", d->last);
	cJSON_AddBoolToObject(e, "connected", d->conn != NULL);
	if (d->last_seen_ms) {
		cJSON_AddStringToObject(e, "link", d->link);
		cJSON_AddNumberToObject(e, "last_seen_ms", (double)d->last_seen_ms);
		add_time(e, "last_seen", d->last_seen_ms);
	}
	if (d->has_reading) {
		cJSON *r = cJSON_AddObjectToObject(e, "last_reading");
		cJSON_AddStringToObject(r, "kind", fw_kind_name(d->reading.kind));
		add_value(r, &d->reading);
		cJSON_AddBoolToObject(r, "alarm", (d->reading.flags & FW_REC_ALARM) != 0);
	}
	return e;
}

static int by_last_seen(const void *a, const void *b)
{
	const struct dev *x = *(const struct dev *const *)a, *y = *(const struct dev *const *)b;
	return x->last_seen_ms < y->last_seen_ms ? 1 : x->last_seen_ms > y->last_seen_ms ? -1 : 0;
}

char *links_devices_json(links *l)
{
	cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "devices");
	pthread_mutex_lock(&l->lock);
	const struct dev **order = calloc(l->ndevs ? l->ndevs : 1, sizeof *order);
	size_t n = 0;
	for (size_t i = 0; order && i < l->capdevs; i++)
		if (l->devs[i].id)
			order[n++] = &l->devs[i];
	if (order)
		qsort(order, n, sizeof *order, by_last_seen);
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(list, device_json(order[i]));
	pthread_mutex_unlock(&l->lock);
	free(order);
	char *text = order ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return text;
}

char *links_status_json(links *l)
{
	cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "links");
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->nconns; i++) {
		const struct conn *c = l->conns[i];
		if (c->kind == C_CLIENT)
			continue;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", c->name);
		cJSON_AddStringToObject(e, "kind", kind_names[c->kind]);
		cJSON_AddBoolToObject(e, "open", c->fd >= 0);
		if (c->kind == C_LISTENER)
			cJSON_AddNumberToObject(e, "clients", (double)c->clients);
		add_counts(e, c->st);
		cJSON_AddItemToArray(list, e);
	}
	cJSON_AddNumberToObject(o, "devices", (double)l->ndevs);
	cJSON_AddNumberToObject(o, "devices_refused", (double)l->devices_refused);
	cJSON_AddNumberToObject(o, "records_lost_at_devices", (double)l->device_lost);
	cJSON_AddNumberToObject(o, "journal_refused", (double)l->journal_refused);
	pthread_mutex_unlock(&l->lock);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}
