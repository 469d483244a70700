/* es-bench-http: the agent's front door, driven from outside.
 *
 *   load      T threads, one keep-alive libcurl handle each, POST JSON arrays
 *             of BATCH short-form events to /api/events and require 202 for
 *             every one; then GET /api/status until journal.pending is 0.
 *             Prints the posted rate and the end-to-end rate, and the
 *             wall-clock moment of the first POST (start_wall, seconds; the
 *             bridge benchmark times the cloud side from it).
 *   healthz   polls GET /healthz until 200 and prints the time since SINCE
 *             (the wall-clock moment the agent was started, in seconds).
 *   drain     polls GET /api/status: from the first poll that sees the broker
 *             connected until journal.pending is 0; prints the drain rate.
 *   free-port prints a loopback TCP port that was free a moment ago.
 *
 * Exit status 1 when something broke: a non-202, a dead agent, a timeout.
 */
#include <arpa/inet.h>
#include <cJSON.h>
#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"

#define PROG	    "es-bench-http"
#define MAX_THREADS 64
#define BODY_CAP    (1024 * 1024)

struct opts {
	const char *url;
	uint64_t n;
	size_t threads, batch, size;
	double since, timeout_s;
	pid_t pid; /* the agent: checked while polling; 0 = not checked */
};

/* A response body, kept for parsing. */
struct buf {
	char *p;
	size_t len, cap;
};

struct worker {
	pthread_t thread;
	const struct opts *o;
	uint64_t first, count;
	size_t pad;
	int failed; /* the HTTP status or curl code of the first failure */
};

static void usage(void)
{
	fprintf(stderr,
		"usage: " PROG " load --url http://127.0.0.1:PORT [-n EVENTS] [-t THREADS] "
		"[-b BATCH] [-s BYTES] [--pid PID] [--timeout S]\n"
		"       " PROG " healthz --url URL --since EPOCH_S [--pid PID] [--timeout S]\n"
		"       " PROG " drain --url URL [--pid PID] [--timeout S]\n"
		"       " PROG " free-port\n");
	exit(2);
}

/* ---- options ------------------------------------------------------------------ */

static bool set_opt(struct opts *o, int c, const char *arg)
{
	uint64_t v = 0;
	char *end;
	if (c == '?' || !arg)
		return false;
	if (c == 'u')
		return (o->url = arg) != NULL;
	if (c == 'S' || c == 'T') {
		double d = strtod(arg, &end);
		*(c == 'S' ? &o->since : &o->timeout_s) = d;
		return *end == '\0' && d > 0;
	}
	if (!bench_parse_count(arg, &v))
		return false;
	if (c == 'n')
		o->n = v;
	else if (c == 't')
		o->threads = (size_t)v;
	else if (c == 'b')
		o->batch = (size_t)v;
	else if (c == 's')
		o->size = (size_t)v;
	else if (c == 'P')
		o->pid = (pid_t)v;
	return o->threads <= MAX_THREADS && o->batch <= 10000 && o->size >= 200 && o->size <= 60000;
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {{"url", required_argument, NULL, 'u'},
					      {"events", required_argument, NULL, 'n'},
					      {"threads", required_argument, NULL, 't'},
					      {"batch", required_argument, NULL, 'b'},
					      {"size", required_argument, NULL, 's'},
					      {"since", required_argument, NULL, 'S'},
					      {"timeout", required_argument, NULL, 'T'},
					      {"pid", required_argument, NULL, 'P'},
					      {NULL, 0, NULL, 0}};
	*o = (struct opts){.n = 100000, .threads = 4, .batch = 100, .size = 300, .timeout_s = 300};
	int c;
	while ((c = getopt_long(argc, argv, "u:n:t:b:s:", longs, NULL)) != -1)
		if (!set_opt(o, c, optarg))
			usage();
	if (!o->url)
		usage();
}

/* ---- HTTP ----------------------------------------------------------------------- */

static size_t keep(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t len = size * n;
	if (b->len + len + 1 > b->cap) {
		size_t cap = (b->len + len + 1) * 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return 0; /* curl reports a write error */
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return len;
}

/* A handle that keeps its connection open and collects bodies into b. */
static CURL *handle_new(struct buf *b)
{
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	return h;
}

/* Performs the request set up on h; the HTTP status, or -(curl code). */
static long perform(CURL *h, struct buf *b)
{
	long status = 0;
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
	CURLcode rc = curl_easy_perform(h);
	if (rc != CURLE_OK)
		return -(long)rc;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static long get(CURL *h, struct buf *b, const char *base, const char *path)
{
	char url[512];
	snprintf(url, sizeof url, "%s%s", base, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	return perform(h, b);
}

static bool agent_alive(const struct opts *o)
{
	return o->pid == 0 || kill(o->pid, 0) == 0;
}

/* ---- /api/status ---------------------------------------------------------------- */

struct status {
	double pending;
	bool connected;
};

static int parse_status(const char *text, struct status *s)
{
	cJSON *o = cJSON_Parse(text);
	cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "journal");
	cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pending");
	cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "broker");
	cJSON *st = cJSON_GetObjectItemCaseSensitive(b, "state");
	int rc = cJSON_IsNumber(p) && cJSON_IsString(st) ? 0 : -1;
	if (!rc) {
		s->pending = p->valuedouble;
		s->connected = strcmp(st->valuestring, "connected") == 0;
	}
	cJSON_Delete(o);
	return rc;
}

static int get_status(CURL *h, struct buf *b, const struct opts *o, struct status *s)
{
	long code = get(h, b, o->url, "/api/status");
	if (code != 200 || !b->p || parse_status(b->p, s)) {
		fprintf(stderr, PROG ": GET /api/status: %ld\n", code);
		return -1;
	}
	return 0;
}

/* Polls /api/status every ms milliseconds until journal.pending is 0; *t_conn
 * (if not NULL) gets the time of the first poll that saw the broker up and
 * *p_conn the pending count then. 0, or -1 on error, death or timeout. */
static int wait_drained(const struct opts *o, unsigned ms, double *t_conn, double *p_conn)
{
	struct buf b = {0};
	CURL *h = handle_new(&b);
	double until = bench_mono_s() + o->timeout_s;
	struct status s = {.pending = 1};
	int rc = h ? 0 : -1;
	while (!rc && s.pending > 0) {
		if (!agent_alive(o) || bench_mono_s() > until || get_status(h, &b, o, &s)) {
			fprintf(stderr, PROG ": agent dead, status failing, or timed out\n");
			rc = -1;
		} else if (t_conn && *t_conn == 0 && s.connected) {
			*t_conn = bench_mono_s();
			*p_conn = s.pending;
		} else if (s.pending > 0) {
			bench_pause_ms(ms);
		}
	}
	curl_easy_cleanup(h);
	free(b.p);
	return rc;
}

/* ---- load ----------------------------------------------------------------------- */

/* A JSON array of k short-form events numbered from first. Returns its
 * length, 0 if it does not fit. */
static size_t make_body(char *body, size_t cap, uint64_t first, size_t k, size_t pad)
{
	char data[4096];
	size_t at = 0;
	for (size_t i = 0; i < k; i++) {
		if (!bench_event_data(data, sizeof data, first + i, pad))
			return 0;
		int n = snprintf(body + at, cap - at,
				 "%s{\"type\":\"" BENCH_TYPE "\",\"subject\":\"dev-%04" PRIu64
				 "\",\"data\":%s}",
				 i ? "," : "[", (first + i) % 1000, data);
		if (n < 0 || (size_t)n >= cap - at - 1)
			return 0;
		at += (size_t)n;
	}
	body[at++] = ']';
	body[at] = '\0';
	return at;
}

static int post_batch(CURL *h, struct buf *b, char *body, struct worker *w, uint64_t first,
		      size_t k)
{
	size_t len = make_body(body, BODY_CAP, first, k, w->pad);
	if (!len)
		return -1;
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	long status = perform(h, b);
	if (status == 202 && b->p && strstr(b->p, "\"accepted\":"))
		return 0;
	w->failed = (int)status;
	fprintf(stderr, PROG ": POST /api/events: status %ld: %.200s\n", status, b->p ? b->p : "");
	return -1;
}

static void post_all(struct worker *w, CURL *h, struct buf *b, char *body)
{
	char url[512];
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	struct curl_slist *more = hdrs ? curl_slist_append(hdrs, "Expect:") : NULL;
	if (!more) {
		curl_slist_free_all(hdrs);
		w->failed = -1;
		return;
	}
	snprintf(url, sizeof url, "%s/api/events", w->o->url);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, more);
	for (uint64_t done = 0; done < w->count && !w->failed;) {
		size_t k = w->count - done < w->o->batch ? (size_t)(w->count - done) : w->o->batch;
		if (post_batch(h, b, body, w, w->first + done, k) && !w->failed)
			w->failed = -1;
		done += k;
	}
	curl_slist_free_all(more);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct buf b = {0};
	char *body = malloc(BODY_CAP);
	CURL *h = body ? handle_new(&b) : NULL;
	if (h)
		post_all(w, h, &b, body);
	else
		w->failed = -1;
	curl_easy_cleanup(h);
	free(body);
	free(b.p);
	return NULL;
}

/* Runs the workers; 0 when every POST got its 202. */
static int post_everything(const struct opts *o, size_t pad)
{
	struct worker ws[MAX_THREADS];
	size_t started = 0;
	uint64_t first = 1;
	int rc = 0;
	for (size_t i = 0; i < o->threads; i++) {
		uint64_t share = o->n / o->threads + (i < o->n % o->threads ? 1 : 0);
		ws[i] = (struct worker){.o = o, .first = first, .count = share, .pad = pad};
		first += share;
		if (pthread_create(&ws[i].thread, NULL, work, &ws[i]) != 0) {
			rc = -1;
			break;
		}
		started++;
	}
	for (size_t i = 0; i < started; i++) {
		pthread_join(ws[i].thread, NULL);
		if (ws[i].failed)
			rc = -1;
	}
	return rc;
}

static int cmd_load(const struct opts *o)
{
	size_t pad, encoded;
	if (bench_event_pad(o->size, &pad, &encoded))
		bench_die(PROG, "cannot size the events");
	double t0_wall = bench_wall_s(), t0 = bench_mono_s();
	if (post_everything(o, pad))
		return 1;
	double t_post = bench_mono_s() - t0;
	if (wait_drained(o, 2, NULL, NULL))
		return 1;
	double t_all = bench_mono_s() - t0;
	printf("http n=%" PRIu64 " bytes=%zu threads=%zu batch=%zu posted_s=%.3f "
	       "posted_rate=%.0f s=%.3f rate=%.0f start_wall=%.6f\n",
	       o->n, encoded, o->threads, o->batch, t_post, (double)o->n / t_post, t_all,
	       (double)o->n / t_all, t0_wall);
	return 0;
}

/* ---- healthz, drain, free-port ------------------------------------------------------ */

static int cmd_healthz(const struct opts *o)
{
	struct buf b = {0};
	CURL *h = handle_new(&b);
	double until = bench_mono_s() + o->timeout_s;
	long code = 0;
	if (h)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
	while (h && code != 200 && agent_alive(o) && bench_mono_s() < until) {
		code = get(h, &b, o->url, "/healthz");
		if (code != 200)
			bench_pause_ms(1);
	}
	double ms = (bench_wall_s() - o->since) * 1000.0;
	curl_easy_cleanup(h);
	free(b.p);
	if (code != 200) {
		fprintf(stderr, PROG ": /healthz never answered 200 (last %ld)\n", code);
		return 1;
	}
	printf("healthz ms=%.0f\n", ms);
	return 0;
}

static int cmd_drain(const struct opts *o)
{
	double t_conn = 0, p_conn = 0, t0 = bench_mono_s();
	if (wait_drained(o, 10, &t_conn, &p_conn))
		return 1;
	double t_end = bench_mono_s();
	if (t_conn == 0 || p_conn == 0) {
		fprintf(stderr, PROG ": the backlog was gone before the broker was seen up\n");
		return 1;
	}
	printf("drain events=%.0f wait_s=%.3f s=%.3f rate=%.0f\n", p_conn, t_conn - t0,
	       t_end - t_conn, p_conn / (t_end - t_conn));
	return 0;
}

static int cmd_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		perror(PROG ": free-port");
		return 1;
	}
	close(fd);
	printf("%d\n", ntohs(a.sin_port));
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	if (strcmp(cmd, "free-port") == 0)
		return cmd_free_port();
	parse(argc - 1, argv + 1, &o);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		bench_die(PROG, "curl_global_init failed");
	int rc = 2;
	if (strcmp(cmd, "load") == 0)
		rc = cmd_load(&o);
	else if (strcmp(cmd, "healthz") == 0 && o.since > 0)
		rc = cmd_healthz(&o);
	else if (strcmp(cmd, "drain") == 0)
		rc = cmd_drain(&o);
	else
		usage();
	curl_global_cleanup();
	return rc;
}
