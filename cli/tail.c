/* edgespool tail: prints the events whose type matches a pattern, as they
 * arrive, from an AMQP queue or an MQTT broker: one JSON line per event
 * (the CloudEvent as received), or a table for people at a terminal. */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "cli.h"
#include "consumer.h"
#include "event.h"
#include "log.h"
#include "source.h"

#define MAX_LIST 16
#define WAIT_MS	 200

static const char usage[] =
	"usage: edgespool tail [--amqp URL [--queue Q] [--bind KEY]... | --mqtt URL [--topic "
	"F]...]\n"
	"                      [--table] [--count N] PATTERN\n"
	"\n"
	"Prints the events whose type matches PATTERN (`sensor.*`, `alarm.raised`, `#`;\n"
	"'*' is one dot-separated word, '#' any number) as JSON lines, or as a table.\n"
	"  --amqp URL     amqp://user:pass@host:port/vhost (repeat: a cluster's nodes)\n"
	"  --queue Q      consume from the quorum queue Q (declared if missing); default:\n"
	"                 an exclusive auto-delete queue of its own\n"
	"  --bind KEY     routing-key pattern bound on amq.topic (repeatable; default '#'\n"
	"                 for a queue of its own, none for a --queue: it keeps its own)\n"
	"  --mqtt URL     mqtt://host:port instead (clean session, QoS 1)\n"
	"  --topic F      MQTT filter (repeatable; default edgespool/#)\n"
	"  --count N      exit 0 after N matching events\n"
	"  --table        a table: time, source, subject, type, sequence, id\n";

struct tail_args {
	const char *amqp[MAX_LIST], *bind[MAX_LIST], *mqtt[MAX_LIST], *topic[MAX_LIST];
	size_t namqp, nbind, nmqtt, ntopic;
	const char *queue, *pattern;
	unsigned long long count;
	bool table;
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

static bool parse_one(struct tail_args *a, int opt, const char *arg)
{
	char *end;
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
		a->count = strtoull(arg, &end, 10);
		if (*end || !*arg || a->count == 0)
			fprintf(stderr, "edgespool tail: --count: '%s' is not a count\n", arg);
		return !*end && *arg && a->count > 0;
	default:
		return false;
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
	a->pattern = argv[optind];
	if ((why = es_consumer_check_pattern(a->pattern))) {
		fprintf(stderr, "edgespool tail: pattern '%s' %s\n", a->pattern, why);
		return 2;
	}
	return 0;
}

static es_err open_source(const struct tail_args *a, es_source **out)
{
	if (a->namqp) {
		es_amqp_opts o = {.urls = a->amqp,
				  .nurls = a->namqp,
				  .queue = a->queue,
				  .binds = a->bind,
				  .nbinds = a->nbind,
				  /* A named queue keeps its own bindings unless told. */
				  .bind_none = a->queue && !a->nbind,
				  .prefetch = 64};
		return es_amqp_source_new(&o, out);
	}
	char id[64];
	snprintf(id, sizeof id, "edgespool-tail-%ld", (long)getpid());
	es_msource_opts o = {.mqtt = {.urls = a->mqtt,
				      .nurls = a->nmqtt,
				      .client_id = id,
				      .version = 4,
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

/* Prints ev (text json) if it matches the pattern; true if it did. */
static bool show_event(const struct tail_args *a, es_event *ev, const char *json)
{
	bool match = es_consumer_match(a->pattern, es_event_type(ev));
	if (match && a->table)
		print_row(ev);
	else if (match)
		printf("%s\n", json);
	es_event_free(ev);
	return match;
}

static void not_an_event(const es_delivery *d, const es_verr *v)
{
	fprintf(stderr, "edgespool tail: not a CloudEvent on %s: %s%s%s\n", d->where, v->field,
		v->field[0] ? ": " : "", v->reason);
}

/* Each event of a batch; a bad one is said on stderr and skipped. */
static unsigned long long show_batch(const struct tail_args *a, const es_delivery *d,
				     const es_batch *b)
{
	unsigned long long shown = 0;
	for (size_t i = 0; i < es_batch_count(b) && (!a->count || shown < a->count); i++) {
		es_event *ev;
		es_verr v;
		if (es_batch_event_decode(b, i, &ev, &v))
			not_an_event(d, &v);
		else
			shown += show_event(a, ev, es_batch_json(b, i, NULL));
	}
	return shown;
}

/* Prints the events of d (one, or a batch's) matching the pattern; how
 * many it printed. */
static unsigned long long show(const struct tail_args *a, const es_delivery *d,
			       unsigned long long room)
{
	es_batch_meta meta = {d->content_type, d->encoding, d->dict};
	es_batch_limits lim = {.event_max_bytes = ES_EVENT_MAX_BYTES_DEFAULT * 16};
	es_batch *b = NULL;
	char why[256];
	es_event *ev;
	es_verr v;
	unsigned long long shown = 0;
	struct tail_args left = *a;
	left.count = room;
	if (es_batch_read(d->where, d->sep ? d->sep : '/', &meta, d->body, d->len, &lim, &b, why,
			  sizeof why))
		fprintf(stderr, "edgespool tail: a batch on %s that cannot be read: %s\n", d->where,
			why);
	else if (b)
		shown = show_batch(&left, d, b);
	else if (es_event_decode(d->body, d->len, lim.event_max_bytes, &ev, &v))
		not_an_event(d, &v);
	else
		shown = show_event(a, ev, d->body);
	es_batch_free(b);
	fflush(stdout);
	return shown;
}

static int run(const struct tail_args *a, es_source *src)
{
	unsigned long long shown = 0;
	if (a->table)
		printf("%-24s  %-20s  %-16s  %-20s  %10s  %s\n", "TIME", "SOURCE", "SUBJECT",
		       "TYPE", "SEQUENCE", "ID");
	while (!atomic_load(&stop_now) && (!a->count || shown < a->count)) {
		es_delivery d = {0};
		es_err err = es_source_next(src, WAIT_MS, &d);
		if (err)
			continue;
		shown += show(a, &d, a->count ? a->count - shown : 0);
		if (d.tag)
			(void)es_source_ack(src, d.tag);
		es_delivery_clear(&d);
	}
	return 0;
}

int cmd_tail(int argc, char **argv)
{
	struct tail_args a = {0};
	int rc = parse(argc, argv, &a);
	if (rc)
		return rc < 0 ? 0 : rc;
	es_log_setup(ES_LOG_WARN, false, "edgespool");
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	es_source *src;
	if (open_source(&a, &src)) {
		fprintf(stderr, "edgespool tail: cannot use the source given\n");
		return 2;
	}
	rc = run(&a, src);
	es_source_free(src);
	return rc;
}
