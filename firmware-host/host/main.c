/* main.c - firmware-host: a simulated device fleet built from the
 * firmware's portable core, on a pty, TCP or UNIX link to the gateway.
 * Options, the poll() loop, the ready file and the summary; the devices are
 * in fleet.c, the link in linkio.c. See firmware-host/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "fleet.h"
#include "linkio.h"

#ifndef ES_VERSION
#define ES_VERSION "dev"
#endif

#define OUT_CAP (64u * 1024u) /* the link's output buffer */

struct settings {
	uint32_t devices, first_id, count, window, resend_ms;
	double rate, duration, timeout;
	uint64_t seed;
	const char *link, *fault, *state, *summary, *ready, *records;
};

enum otype { O_U32, O_U64, O_NUM, O_STR };

/* One row per option: its range is checked by the parser. */
struct opt {
	const char *name, *arg;
	enum otype type;
	double min, max;
	bool above_min; /* the value must be > min, not >= */
	size_t off;
	const char *help;
};

#define S(f) offsetof(struct settings, f)
static const struct opt opts[] = {
	{"devices", "N", O_U32, 1, 10000, false, S(devices), "simulated devices (1)"},
	{"first-id", "K", O_U32, 1, UINT32_MAX, false, S(first_id), "ids K..K+N-1 (1)"},
	{"rate", "R", O_NUM, 0, 1000, true, S(rate), "readings/s per device, > 0 (1)"},
	{"link", "SPEC", O_STR, 0, 0, false, S(link),
	 "pty:PATH, tcp:HOST:PORT or unix:PATH (required)"},
	{"seed", "S", O_U64, 0, 0, false, S(seed), "seed for sensors and fault dice (1)"},
	{"fault", "SPEC", O_STR, 0, 0, false, S(fault),
	 "kind=P,... of corrupt truncate garbage reset burst"},
	{"duration", "SECONDS", O_NUM, 0, 1e7, true, S(duration), "stop after this long"},
	{"count", "N", O_U32, 1, 1e9, false, S(count),
	 "N readings per device, then wait for their ACKs"},
	{"timeout", "SECONDS", O_NUM, 0, 86400, false, S(timeout),
	 "with --count: longest wait for ACKs (30)"},
	{"window", "W", O_U32, 1, FW_RING, false, S(window), "records in flight per device (16)"},
	{"resend-ms", "MS", O_U32, 10, 600000, false, S(resend_ms),
	 "resend after this long without ACK progress (1000)"},
	{"state", "FILE", O_STR, 0, 0, false, S(state), "keep the nv counters in FILE"},
	{"summary", "FILE", O_STR, 0, 0, false, S(summary), "also write the summary as JSON"},
	{"ready", "FILE", O_STR, 0, 0, false, S(ready), "write FILE once the link is set up"},
	{"records", "FILE", O_STR, 0, 0, false, S(records),
	 "write every record made to FILE, one JSON line each (for tests)"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void usage(FILE *to)
{
	fprintf(to, "usage: firmware-host --link SPEC [options]\n"
		    "A simulated device fleet on the firmware's core, speaking the link.\n\n");
	for (size_t i = 0; i < NOPTS; i++) {
		char left[40];

		snprintf(left, sizeof left, "--%s %s", opts[i].name, opts[i].arg);
		fprintf(to, "  %-22s %s\n", left, opts[i].help);
	}
	fprintf(to, "  %-22s %s\n  %-22s %s\n", "--help", "this text", "--version", "the version");
}

static bool bad(const struct opt *o, const char *v, const char *what)
{
	fprintf(stderr, "firmware-host: --%s: '%s': %s\n", o->name, v, what);
	return false;
}

static bool parse_number(const struct opt *o, const char *v, void *to)
{
	char *end, what[80];
	double d;

	errno = 0;
	if (o->type == O_U64) {
		unsigned long long u = strtoull(v, &end, 0);

		if (errno || end == v || *end || v[0] == '-')
			return bad(o, v, "not a whole number in 0..2^64-1");
		*(uint64_t *)to = u;
		return true;
	}
	d = strtod(v, &end);
	if (o->type == O_U32)
		snprintf(what, sizeof what, "must be a whole number in %.0f..%.0f", o->min, o->max);
	else
		snprintf(what, sizeof what, "must be a number %s %g and <= %g",
			 o->above_min ? ">" : ">=", o->min, o->max);
	if (errno || end == v || *end || !isfinite(d) || d < o->min || d > o->max ||
	    (o->above_min && d <= o->min) || (o->type == O_U32 && d != floor(d)))
		return bad(o, v, what);
	if (o->type == O_U32)
		*(uint32_t *)to = (uint32_t)d;
	else
		*(double *)to = d;
	return true;
}

static bool set_option(struct settings *s, const struct opt *o, const char *v)
{
	void *to = (char *)s + o->off;

	if (o->type == O_STR) {
		if (!*v)
			return bad(o, v, "must not be empty");
		*(const char **)to = v;
		return true;
	}
	return parse_number(o, v, to);
}

/* Checks what one option cannot: required ones, and options together. */
static bool check_settings(const struct settings *s, struct fault_cfg *faults)
{
	char err[256];

	if (!s->link) {
		fprintf(stderr, "firmware-host: --link is required (try --help)\n");
		return false;
	}
	if (!linkio_check(s->link, err, sizeof err)) {
		fprintf(stderr, "firmware-host: --link: %s\n", err);
		return false;
	}
	if (s->fault && !fault_parse(s->fault, faults, err, sizeof err)) {
		fprintf(stderr, "firmware-host: --fault: %s\n", err);
		return false;
	}
	if ((uint64_t)s->first_id + s->devices - 1 > UINT32_MAX) {
		fprintf(stderr,
			"firmware-host: --first-id %" PRIu32 " with --devices %" PRIu32
			": the last id would exceed 4294967295\n",
			s->first_id, s->devices);
		return false;
	}
	return true;
}

/* Returns -1 to go on, or the exit status (0 for --help, 2 for a usage error). */
static int parse_args(int argc, char **argv, struct settings *s, struct fault_cfg *faults)
{
	struct option lo[NOPTS + 3];
	int c, idx;

	for (size_t i = 0; i < NOPTS; i++)
		lo[i] = (struct option){opts[i].name, required_argument, NULL, (int)i};
	lo[NOPTS] = (struct option){"help", no_argument, NULL, 'h'};
	lo[NOPTS + 1] = (struct option){"version", no_argument, NULL, 'V'};
	lo[NOPTS + 2] = (struct option){0};
	while ((c = getopt_long(argc, argv, "hV", lo, &idx)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == 'V') {
			printf("firmware-host %s\n", ES_VERSION);
			return 0;
		}
		if (c == '?' || c < 0 || (size_t)c >= NOPTS)
			return 2;
		if (!set_option(s, &opts[c], optarg))
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "firmware-host: unexpected argument '%s' (try --help)\n",
			argv[optind]);
		return 2;
	}
	return check_settings(s, faults) ? -1 : 2;
}

/* ---- output files ------------------------------------------------------- */

/* Writes text to path through a temporary file and a rename. */
static bool write_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	FILE *f;
	bool ok;

	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	if (!(f = fopen(tmp, "w")))
		goto fail;
	ok = fputs(text, f) >= 0;
	if (fclose(f) != 0 || !ok || rename(tmp, path) < 0)
		goto fail;
	return true;
fail:
	fprintf(stderr, "firmware-host: %s: %s\n", path, strerror(errno));
	(void)unlink(tmp);
	return false;
}

/* The summary, as "key=value ..." (json false) or a JSON object. */
static void format_summary(const fleet_totals *t, bool json, char *out, size_t cap)
{
	const struct {
		const char *key;
		uint64_t v;
	} kv[] = {{"devices", t->devices},
		  {"sampled", t->sampled},
		  {"sent", t->sent},
		  {"resent", t->resent},
		  {"acked", t->acked},
		  {"pending", t->pending},
		  {"dropped_full", t->dropped_full},
		  {"hellos", t->hellos},
		  {"time_syncs", t->time_syncs},
		  {"frames_in", t->frames_in},
		  {"link_faults", t->link_faults},
		  {"injected_corrupt", t->injected[FAULT_CORRUPT]},
		  {"injected_truncate", t->injected[FAULT_TRUNCATE]},
		  {"injected_garbage", t->injected[FAULT_GARBAGE]},
		  {"injected_reset", t->injected[FAULT_RESET]},
		  {"injected_burst", t->injected[FAULT_BURST]},
		  {"reconnects", t->reconnects}};
	size_t n = sizeof kv / sizeof kv[0], o = 0;

	o += (size_t)snprintf(out, cap, "%s", json ? "{" : "");
	for (size_t i = 0; i < n && o < cap; i++)
		o += (size_t)snprintf(out + o, cap - o,
				      json ? "%s\"%s\": %" PRIu64 : "%s%s=%" PRIu64,
				      i ? (json ? ", " : " ") : "", kv[i].key, kv[i].v);
	if (o < cap)
		snprintf(out + o, cap - o, "%s\n", json ? "}" : "");
}

/* ---- the loop ----------------------------------------------------------- */

struct app {
	const struct settings *s;
	fleet *fleet;
	linkio *link;
	int sigfd;
	uint64_t start, wait_start; /* wait_start: when sampling ended (--count) */
	bool ready_done, waiting;
	FILE *records;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t min_due(int64_t a, int64_t b)
{
	return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* Milliseconds left before --duration or the --count timeout ends the run
 * (0: now), or -1 if neither applies. */
static int64_t deadline(struct app *a, uint64_t now)
{
	uint64_t end = UINT64_MAX;

	if (a->s->duration > 0)
		end = a->start + (uint64_t)(a->s->duration * 1000);
	if (a->s->count && fleet_sampling_over(a->fleet)) {
		uint64_t t;

		if (!a->waiting) {
			a->waiting = true;
			a->wait_start = now;
		}
		t = a->wait_start + (uint64_t)(a->s->timeout * 1000);
		end = t < end ? t : end;
	}
	if (end == UINT64_MAX)
		return -1;
	return end > now ? (int64_t)(end - now) : 0;
}

/* One turn: time passes, devices act, the link is written. Returns false
 * when the run is over. */
static bool turn(struct app *a, uint64_t now, int *rc)
{
	char err[256];

	linkio_tick(a->link, now);
	if (!a->ready_done && linkio_ever_up(a->link)) {
		a->ready_done = true;
		if (a->s->ready && !write_atomic(a->s->ready, "ready\n")) {
			*rc = 1;
			return false;
		}
	}
	if (!fleet_step(a->fleet, now, err, sizeof err)) {
		fprintf(stderr, "firmware-host: %s\n", err);
		*rc = 1;
		return false;
	}
	linkio_flush(a->link);
	return !(a->s->count && fleet_done(a->fleet));
}

static int run(struct app *a)
{
	struct pollfd pfd[2] = {{.fd = a->sigfd, .events = POLLIN}};
	int rc = 0;

	for (;;) {
		uint64_t now = mono_ms();
		int64_t wait, left;
		int nfds = 1;

		if (!turn(a, now, &rc) || (left = deadline(a, now)) == 0)
			break;
		wait = min_due(fleet_timeout_ms(a->fleet, now), linkio_timeout_ms(a->link, now));
		wait = min_due(wait, left);
		if (linkio_pollfd(a->link, &pfd[1]))
			nfds = 2;
		if (poll(pfd, (nfds_t)nfds, wait > INT_MAX ? INT_MAX : (int)wait) < 0 &&
		    errno != EINTR) {
			fprintf(stderr, "firmware-host: poll: %s\n", strerror(errno));
			return 1;
		}
		if (pfd[0].revents & POLLIN)
			break;
		if (nfds == 2)
			linkio_handle(a->link, pfd[1].revents);
	}
	if (rc == 0 && a->s->count && !fleet_done(a->fleet))
		rc = 1;
	return rc;
}

static void summarise(const struct app *a)
{
	fleet_totals t;
	char line[1024];

	fleet_totals_get(a->fleet, &t);
	format_summary(&t, false, line, sizeof line);
	fputs(line, stdout);
	fflush(stdout);
	if (a->s->summary) {
		format_summary(&t, true, line, sizeof line);
		(void)write_atomic(a->s->summary, line);
	}
}

/* SIGINT and SIGTERM arrive on a signalfd, so the loop sees them without a
 * race; SIGPIPE is ignored (a closed socket is an error return). */
static int signals_fd(void)
{
	sigset_t mask;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -1;
	return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

static fleet *make_fleet(const struct settings *s, const struct fault_cfg *faults, FILE *records)
{
	char err[256];
	fleet_cfg fc = {.devices = s->devices,
			.first_id = s->first_id,
			.rate = s->rate,
			.seed = s->seed,
			.count = s->count,
			.window = (uint8_t)s->window,
			.resend_ms = s->resend_ms,
			.faults = *faults,
			.state_path = s->state,
			.records = records};
	fleet *f = fleet_new(&fc, mono_ms(), err, sizeof err);

	if (!f)
		fprintf(stderr, "firmware-host: %s\n", err);
	return f;
}

int main(int argc, char **argv)
{
	struct settings s = {.devices = 1,
			     .first_id = 1,
			     .rate = 1,
			     .seed = 1,
			     .timeout = 30,
			     .window = 16,
			     .resend_ms = 1000};
	struct fault_cfg faults = {{0}};
	struct app a = {.s = &s};
	char err[256];
	int rc = parse_args(argc, argv, &s, &faults);

	if (rc >= 0)
		return rc;
	rc = 1;
	if ((a.sigfd = signals_fd()) < 0) {
		fprintf(stderr, "firmware-host: signalfd: %s\n", strerror(errno));
		goto fail_signals;
	}
	if (s.records && !(a.records = fopen(s.records, "w"))) {
		fprintf(stderr, "firmware-host: --records %s: %s\n", s.records, strerror(errno));
		goto fail_records;
	}
	if (!(a.fleet = make_fleet(&s, &faults, a.records)))
		goto fail_fleet;
	a.link = linkio_new(&(linkio_cfg){s.link, OUT_CAP, fleet_rx, a.fleet}, err, sizeof err);
	if (!a.link) {
		fprintf(stderr, "firmware-host: --link %s: %s\n", s.link, err);
		goto fail_link;
	}
	fleet_attach(a.fleet, a.link);
	a.start = mono_ms();
	rc = run(&a);
	summarise(&a);
	linkio_free(a.link);
fail_link:
	fleet_free(a.fleet);
fail_fleet:
	if (a.records && fclose(a.records) != 0) {
		fprintf(stderr, "firmware-host: --records %s: %s\n", s.records, strerror(errno));
		rc = 1;
	}
fail_records:
	close(a.sigfd);
fail_signals:
	return rc;
}
