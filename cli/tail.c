/* edgespool tail: prints the events whose type matches a pattern, as they
 * arrive, from an AMQP queue or an MQTT broker: one JSON line per event
 * (the CloudEvent as received), or a table for people at a terminal. An id
 * printed already within the last --dedup-window ids is not printed again
 * (at-least-once delivery re-sends), and the count of those hidden is said
 * at the end. */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "cli.h"
#include "config.h"
#include "consumer.h"
#include "dedup.h"
#include "event.h"
#include "log.h"
#include "source.h"

#define MAX_LIST       16
#define WAIT_MS	       200
#define WINDOW_DEFAULT 100000
#define WINDOW_MAX     (1UL << 24)

static const char usage[] =
	"usage: edgespool tail [--amqp URL [--queue Q] [--bind KEY]... | --mqtt URL [--topic "
	"F]...]\n"
	"                      [--ca FILE] [--cert FILE --key FILE]\n"
	"                      [--user NAME] [--password-file FILE]\n"
	"                      [--table] [--count N] [--no-dedup | --dedup-window N] PATTERN\n"
	"\n"
	"Prints the events whose type matches PATTERN (`sensor.*`, `alarm.raised`, `#`;\n"
	"'*' is one dot-separated word, '#' any number) as JSON lines, or as a table.\n"
	"  --amqp URL     amqp://user@host:port/vhost, amqps:// for TLS (repeat: a\n"
	"                 cluster's nodes)\n"
	"  --queue Q      consume from the quorum queue Q (declared if missing); default:\n"
	"                 an exclusive auto-delete queue of its own\n"
	"  --bind KEY     routing-key pattern bound on amq.topic (repeatable; default '#'\n"
	"                 for a queue of its own, none for a --queue: it keeps its own)\n"
	"  --mqtt URL     mqtt://host:port, mqtts:// for TLS, instead (clean session, QoS 1)\n"
	"  --topic F      MQTT filter (repeatable; default edgespool/#)\n"
	"  --ca FILE      CA certificate (PEM) that the broker's must chain to (TLS;\n"
	"                 default: the system's); the broker is always verified\n"
	"  --cert FILE, --key FILE  client certificate and key (PEM) for mutual TLS\n"
	"  --user NAME    the broker user (AMQP: instead of the URL's)\n"
	"  --password-file FILE  the broker password (first line), kept out of the URL\n"
	"  --count N      exit 0 after N matching events (duplicates do not count)\n"
	"  --table        a table: time, source, subject, type, sequence, id\n"
	"  --no-dedup     print every copy of an event (re-sends too)\n"
	"  --dedup-window N  remember the last N ids printed (default 100000)\n";

struct tail_args {
	const char *amqp[MAX_LIST], *bind[MAX_LIST], *mqtt[MAX_LIST], *topic[MAX_LIST];
	size_t namqp, nbind, nmqtt, ntopic;
	const char *queue, *pattern;
	const char *ca, *cert, *key, *user, *password_file;
	unsigned long long count, window;
	bool table, no_dedup;
};

/* What a run has shown and hidden. */
struct tail_run {
	es_dedup *seen; /* NULL: --no-dedup */
	char *password; /* from --password-file */
	unsigned long long shown, hidden;
};

static atomic_bool stop_now;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_now, true);
}

static bool push(const char **v, size_t *n, const char *s)
{
	if (*n >= MAX_LIST) {
		fprintf(stderr, "edgespool tail: at most %d of each list option\n", MAX_LIST);
		return false;
	}
	v[(*n)++] = s;
	return true;
}

/* A count of 1..max for flag. */
static bool parse_count(const char *flag, const char *arg, unsigned long long *out,
			unsigned long long max)
{
	char *end;
	*out = strtoull(arg, &end, 10);
	bool ok = *arg >= '0' && *arg <= '9' && !*end && *out > 0 && *out <= max;
	if (!ok)
		fprintf(stderr, "edgespool tail: %s: '%s' is not a count (1..%llu)\n", flag, arg,
			max);
	return ok;
}

static bool parse_tls(struct tail_args *a, int opt, const char *arg)
{
	switch (opt) {
	case 'C':
		a->ca = arg;
		return true;
	case 'E':
		a->cert = arg;
		return true;
	case 'K':
		a->key = arg;
		return true;
	case 'P':
		a->password_file = arg;
		return true;
	case 'U':
		a->user = arg;
		return true;
	default:
		return false;
	}
}

static bool parse_one(struct tail_args *a, int opt, const char *arg)
{
	switch (opt) {
	case 'a':
		return push(a->amqp, &a->namqp, arg);
	case 'b':
		return push(a->bind, &a->nbind, arg);
	case 'm':
		return push(a->mqtt, &a->nmqtt, arg);
	case 'T':
		return push(a->topic, &a->ntopic, arg);
	case 'q':
		a->queue = arg;
		return true;
	case 't':
		a->table = true;
		return true;
	case 'c':
		return parse_count("--count", arg, &a->count, ULLONG_MAX);
	case 'w':
		return parse_count("--dedup-window", arg, &a->window, WINDOW_MAX);
	case 'n':
		a->no_dedup = true;
		return true;
	default:
		return parse_tls(a, opt, arg);
	}
}

/* 0: parsed; otherwise the exit status (2 usage, 0 for --help). */
static int parse(int argc, char **argv, struct tail_args *a)
{
	static const struct option opts[] = {{"amqp", required_argument, NULL, 'a'},
					     {"queue", required_argument, NULL, 'q'},
					     {"bind", required_argument, NULL, 'b'},
					     {"mqtt", required_argument, NULL, 'm'},
					     {"topic", required_argument, NULL, 'T'},
					     {"count", required_argument, NULL, 'c'},
					     {"table", no_argument, NULL, 't'},
					     {"no-dedup", no_argument, NULL, 'n'},
					     {"dedup-window", required_argument, NULL, 'w'},
					     {"ca", required_argument, NULL, 'C'},
					     {"cert", required_argument, NULL, 'E'},
					     {"key", required_argument, NULL, 'K'},
					     {"password-file", required_argument, NULL, 'P'},
					     {"user", required_argument, NULL, 'U'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			return -1;
		}
		if (!parse_one(a, opt, optarg))
			return 2;
	}
	const char *why;
	if (optind != argc - 1 || !a->namqp == !a->nmqtt) {
		fputs(usage, stderr);
		return 2;
	}
	if (!a->cert != !a->key) {
		fprintf(stderr, "edgespool tail: --cert and --key go together\n");
		return 2;
	}
	a->pattern = argv[optind];
	if ((why = es_consumer_check_pattern(a->pattern))) {
		fprintf(stderr, "edgespool tail: pattern '%s' %s\n", a->pattern, why);
		return 2;
	}
	return 0;
}

static es_err open_source(const struct tail_args *a, const char *password, es_source **out)
{
	if (a->namqp) {
		es_amqp_opts o = {.urls = a->amqp,
				  .nurls = a->namqp,
				  .queue = a->queue,
				  .binds = a->bind,
				  .nbinds = a->nbind,
				  /* A named queue keeps its own bindings unless told. */
				  .bind_none = a->queue && !a->nbind,
				  .prefetch = 64,
				  .username = a->user,
				  .password = password,
				  .ca_file = a->ca,
				  .cert_file = a->cert,
				  .key_file = a->key};
		return es_amqp_source_new(&o, out);
	}
	char id[64];
	snprintf(id, sizeof id, "edgespool-tail-%ld", (long)getpid());
	es_msource_opts o = {.mqtt = {.urls = a->mqtt,
				      .nurls = a->nmqtt,
				      .client_id = id,
				      .version = 4,
				      .username = a->user,
				      .password = password,
				      .ca_file = a->ca,
				      .cert_file = a->cert,
				      .key_file = a->key,
				      .tls_verify = true,
				      .clean = true},
			     .topics = a->topic,
			     .ntopics = a->ntopic};
	return es_msource_new(&o, out);
}

static void print_row(const es_event *ev)
{
	const char *subject = es_event_subject(ev);
	const char *time = es_event_time(ev);
	printf("%-24s  %-20s  %-16s  %-20s  %10llu  %s\n", time ? time : "-", es_event_source(ev),
	       subject ? subject : "-", es_event_type(ev), (unsigned long long)es_event_seq(ev),
	       es_event_id(ev));
}

/* Prints ev (text json) if it matches the pattern and its id was not
 * printed within the window; counts it in t. Frees ev. */
static void show_event(const struct tail_args *a, struct tail_run *t, es_event *ev,
		       const char *json)
{
	bool match = es_consumer_match(a->pattern, es_event_type(ev));
	if (match && t->seen && es_dedup_seen(t->seen, es_event_id(ev))) {
		t->hidden++;
		match = false;
	} else if (match && a->table)
		print_row(ev);
	else if (match)
		printf("%s\n", json);
	t->shown += match;
	es_event_free(ev);
}

static void not_an_event(const es_delivery *d, const es_verr *v)
{
	fprintf(stderr, "edgespool tail: not a CloudEvent on %s: %s%s%s\n", d->where, v->field,
		v->field[0] ? ": " : "", v->reason);
}

/* Each event of a batch, until --count; a bad one is said on stderr. */
static void show_batch(const struct tail_args *a, struct tail_run *t, const es_delivery *d,
		       const es_batch *b)
{
	for (size_t i = 0; i < es_batch_count(b) && (!a->count || t->shown < a->count); i++) {
		es_event *ev;
		es_verr v;
		if (es_batch_event_decode(b, i, &ev, &v))
			not_an_event(d, &v);
		else
			show_event(a, t, ev, es_batch_json(b, i, NULL));
	}
}

/* Prints the events of d (one, or an uplink batch's: batch.h) matching
 * the pattern. */
static void show(const struct tail_args *a, struct tail_run *t, const es_delivery *d)
{
	es_batch_meta meta = {d->content_type, d->encoding, d->dict};
	es_batch_limits lim = {.event_max_bytes = ES_EVENT_MAX_BYTES_DEFAULT * 16};
	es_batch *b = NULL;
	char why[256];
	es_event *ev;
	es_verr v;
	if (es_batch_read(d->where, d->sep ? d->sep : '/', &meta, d->body, d->len, &lim, &b, why,
			  sizeof why))
		fprintf(stderr, "edgespool tail: a batch on %s that cannot be read: %s\n", d->where,
			why);
	else if (b)
		show_batch(a, t, d, b);
	else if (es_event_decode(d->body, d->len, lim.event_max_bytes, &ev, &v))
		not_an_event(d, &v);
	else
		show_event(a, t, ev, d->body);
	es_batch_free(b);
	fflush(stdout);
}

static int run(const struct tail_args *a, struct tail_run *t, es_source *src)
{
	if (a->table)
		printf("%-24s  %-20s  %-16s  %-20s  %10s  %s\n", "TIME", "SOURCE", "SUBJECT",
		       "TYPE", "SEQUENCE", "ID");
	while (!atomic_load(&stop_now) && (!a->count || t->shown < a->count)) {
		es_delivery d = {0};
		es_err err = es_source_next(src, WAIT_MS, &d);
		if (err)
			continue;
		show(a, t, &d);
		if (d.tag)
			(void)es_source_ack(src, d.tag);
		es_delivery_clear(&d);
	}
	if (t->hidden)
		fprintf(stderr,
			"edgespool tail: %llu duplicates hidden (an id printed already within "
			"the last %llu ids; --no-dedup shows them)\n",
			t->hidden, a->window);
	return 0;
}

/* The dedup window and the password; 0, or the exit status. */
static int prepare(const struct tail_args *a, struct tail_run *t)
{
	char why[256];
	if (!a->no_dedup && es_dedup_new((size_t)a->window, &t->seen)) {
		fprintf(stderr, "edgespool tail: no memory for a window of %llu ids\n", a->window);
		return 1;
	}
	if (a->password_file &&
	    es_config_read_secret(a->password_file, &t->password, why, sizeof why)) {
		fprintf(stderr, "edgespool tail: --password-file %s\n", why);
		return 2;
	}
	return 0;
}

int cmd_tail(int argc, char **argv)
{
	struct tail_args a = {.window = WINDOW_DEFAULT};
	struct tail_run t = {0};
	int rc = parse(argc, argv, &a);
	if (rc)
		return rc < 0 ? 0 : rc;
	es_log_setup(ES_LOG_WARN, false, "edgespool");
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	es_source *src = NULL;
	rc = prepare(&a, &t);
	if (!rc && open_source(&a, t.password, &src)) {
		fprintf(stderr, "edgespool tail: cannot use the source given\n");
		rc = 2;
	}
	if (!rc)
		rc = run(&a, &t, src);
	es_source_free(src);
	es_dedup_free(t.seen);
	free(t.password);
	return rc;
}
