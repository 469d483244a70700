/* agent_fixture.c - the journal fixture and fake MQTT client of the agent's
 * unit tests (agent_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tmpdir.h"
#include "agent_fixture.h"
#include "clock.h"
#include "event.h"

#define WAIT_MS 15000

/* ---- the fake client ------------------------------------------------------- */

static es_err fake_publish(void *ctx, const char *topic, const void *payload, size_t len,
			   bool retain, uint64_t tag, const es_mqtt_props *props)
{
	fx_mqtt *m = ctx;
	if (!m->connected)
		return ES_ENOTCONN;
	if (m->inflight >= m->window)
		return ES_EBUSY;
	if (m->fail)
		return m->fail;
	assert_true(m->nsent < FX_SENT_MAX);
	fx_msg *s = &m->sent[m->nsent++];
	snprintf(s->topic, sizeof s->topic, "%s", topic);
	s->payload = malloc(len + 1);
	assert_non_null(s->payload);
	memcpy(s->payload, payload, len);
	s->payload[len] = '\0';
	s->len = len;
	s->retain = retain;
	s->tag = tag;
	snprintf(s->content_type, sizeof s->content_type, "%s",
		 props && props->content_type ? props->content_type : "");
	m->inflight++;
	return ES_OK;
}

static bool fake_connected(void *ctx)
{
	return ((fx_mqtt *)ctx)->connected;
}

static size_t fake_inflight(void *ctx)
{
	return ((fx_mqtt *)ctx)->inflight;
}

static size_t fake_window(void *ctx)
{
	return ((fx_mqtt *)ctx)->window;
}

const agent_pub_ops fx_ops = {.publish = fake_publish,
			      .connected = fake_connected,
			      .inflight = fake_inflight,
			      .window = fake_window};

void fx_clear(fx *f)
{
	for (size_t i = 0; i < f->mqtt.nsent; i++)
		free(f->mqtt.sent[i].payload);
	f->mqtt.nsent = 0;
}

uint64_t fx_sequence(const fx_msg *m)
{
	es_event *ev = NULL;
	es_verr v;
	assert_int_equal(es_event_decode(m->payload, m->len, 0, &ev, &v), ES_OK);
	uint64_t seq = es_event_seq(ev);
	es_event_free(ev);
	return seq;
}

/* ---- the journal ------------------------------------------------------------ */

static void open_journal(fx *f, uint64_t retain_ms)
{
	es_journal_opts o = {.path = f->path,
			     .sync = ES_SYNC_NORMAL,
			     .retain_ms = retain_ms,
			     .on_full = ES_ON_FULL_REFUSE,
			     .source = "/" FX_SITE "/" FX_NODE};
	assert_int_equal(es_journal_open(&o, &f->journal), ES_OK);
	assert_int_equal(es_journal_reader_new(f->journal, &f->reader), ES_OK);
}

static void close_journal(fx *f)
{
	es_journal_reader_free(f->reader);
	es_journal_close(f->journal);
	f->reader = NULL;
	f->journal = NULL;
}

void fx_reopen(fx *f, uint64_t retain_ms)
{
	close_journal(f);
	open_journal(f, retain_ms);
}

int fx_setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	if (es_tmpdir_make(f->dir, sizeof f->dir, "agent-test")) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/agent.db", f->dir);
	open_journal(f, UINT64_C(3600000));
	f->mqtt = (fx_mqtt){.connected = true, .window = 10};
	f->names = (agent_names){FX_ROOT, FX_SITE, FX_NODE};
	*state = f;
	return 0;
}

int fx_teardown(void **state)
{
	fx *f = *state;
	fx_clear(f);
	close_journal(f);
	es_tmpdir_remove(f->dir);
	free(f);
	return 0;
}

uint64_t fx_append(fx *f, size_t n, const char *type)
{
	es_event **evs = calloc(n, sizeof *evs);
	es_append_result *res = calloc(n, sizeof *res);
	assert_true(evs && res);
	for (size_t i = 0; i < n; i++) {
		char data[32];
		es_verr v;
		snprintf(data, sizeof data, "{\"i\":%zu}", i);
		assert_int_equal(es_event_new(type, "dev-1", data, &evs[i], &v), ES_OK);
	}
	assert_int_equal(es_journal_append(f->journal, evs, n, res), ES_OK);
	uint64_t last = res[n - 1].seq;
	es_event_free_array(evs, n);
	free(res);
	return last;
}

void fx_ack(fx *f, uint64_t from, uint64_t to)
{
	for (uint64_t s = from; s <= to; s++)
		assert_int_equal(es_journal_ack(f->journal, s), ES_OK);
	assert_int_equal(es_journal_sync_acks(f->journal), ES_OK);
}

bool fx_wait_oldest(fx *f, uint64_t seq)
{
	uint64_t deadline = es_clock_mono_ms() + WAIT_MS;
	es_journal_stats s;
	for (;;) {
		assert_int_equal(es_journal_stats_get(f->reader, &s), ES_OK);
		if (s.oldest_seq >= seq || (s.oldest_seq == 0 && s.latest_seq < seq))
			return true;
		if (es_clock_mono_ms() > deadline)
			return false;
		struct timespec ts = {0, 5000000L};
		nanosleep(&ts, NULL);
	}
}

/* ---- a raw HTTP client -------------------------------------------------------- */

static int dial(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	return fd;
}

static void send_all(int fd, const char *text, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
		assert_true(n > 0);
		off += (size_t)n;
	}
}

int fx_http(int port, const char *method, const char *path, const char *ctype, const char *body,
	    char *out, size_t cap)
{
	char head[512], resp[65536];
	size_t blen = body ? strlen(body) : 0, got = 0;
	int n = snprintf(head, sizeof head,
			 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
			 "%s%s%sContent-Length: %zu\r\n\r\n",
			 method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "",
			 ctype ? "\r\n" : "", blen);
	int fd = dial(port);
	send_all(fd, head, (size_t)n);
	send_all(fd, body ? body : "", blen);
	ssize_t k;
	while (got < sizeof resp - 1 && (k = recv(fd, resp + got, sizeof resp - 1 - got, 0)) > 0)
		got += (size_t)k;
	close(fd);
	resp[got] = '\0';
	int status = 0;
	assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &status), 1);
	const char *b = strstr(resp, "\r\n\r\n");
	snprintf(out, cap, "%s", b ? b + 4 : "");
	return status;
}
