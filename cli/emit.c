/* edgespool emit: hand events to an agent over its HTTP API. */
#include <cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "event.h"
#include "httpc.h"

static const char usage[] =
	"usage: edgespool emit [--url URL] --type TYPE [--subject S] [--data JSON]\n"
	"       edgespool emit [--url URL] [--batch N] -     (NDJSON events on stdin)\n"
	"\n"
	"Posts events to an edge agent (default URL http://127.0.0.1:8080) and prints\n"
	"one line per event, `SEQUENCE ID`, once the agent has journaled it. Lines on\n"
	"stdin are events in the short form {\"type\",\"subject\",\"data\"} or full\n"
	"CloudEvents. Exit status: 0 all accepted, 1 refused or failed, 2 usage.\n";

struct emit {
	char url[512];
	const char *type, *subject, *data;
	long batch;
	bool from_stdin;
	es_httpc *http;
};

/* Prints the sequences and ids of a 202 answer; false if it is not one. */
static bool print_accepted(const char *resp)
{
	cJSON *o = cJSON_Parse(resp), *e;
	cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "events");
	bool ok = cJSON_IsArray(list);
	cJSON_ArrayForEach(e, list)
	{
		cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
		cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "sequence");
		if (!cJSON_IsString(id) || !cJSON_IsNumber(seq)) {
			ok = false;
			break;
		}
		printf("%.0f %s\n", seq->valuedouble, id->valuestring);
	}
	cJSON_Delete(o);
	return ok;
}

static int post(struct emit *em, const char *body, size_t len)
{
	es_httpc_resp resp;
	if (es_httpc_post(em->http, em->url, "application/json", body, len, &resp)) {
		fprintf(stderr, "edgespool emit: %s\n", es_httpc_error(em->http));
		return 1;
	}
	int rc = 0;
	if (resp.status != 202 || !print_accepted(resp.body)) {
		fprintf(stderr, "edgespool emit: the agent answered %ld: %s\n", resp.status,
			resp.body);
		rc = 1;
	}
	es_httpc_resp_free(&resp);
	return rc;
}

static int emit_one(struct emit *em)
{
	es_event *ev;
	es_verr v;
	char *json;
	size_t len;
	if (es_event_new(em->type, em->subject, em->data, &ev, &v)) {
		fprintf(stderr, "edgespool emit: %s: %s\n", v.field, v.reason);
		return 2;
	}
	es_err err = es_event_encode(ev, 0, &json, &len);
	es_event_free(ev);
	if (err) {
		fprintf(stderr, "edgespool emit: %s\n", es_strerror(err));
		return 1;
	}
	int rc = post(em, json, len);
	free(json);
	return rc;
}

struct batch {
	char *buf;
	size_t len, cap, count;
};

static bool append(struct batch *b, const char *s, size_t n)
{
	if (b->len + n + 2 > b->cap) {
		size_t cap = (b->len + n + 2) * 2;
		char *grown = realloc(b->buf, cap);
		if (!grown)
			return false;
		b->buf = grown;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return true;
}

static int flush(struct emit *em, struct batch *b)
{
	if (!b->count)
		return 0;
	int rc = append(b, "]", 1) ? post(em, b->buf, b->len) : 1;
	b->len = b->count = 0;
	return rc;
}

/* Checks one line locally, so a bad line is reported with its number and
 * does not sink the batch around it. */
static bool valid_line(const char *line, size_t len, long lineno)
{
	es_event **evs;
	size_t n;
	es_verr v;
	es_err err = es_event_decode_input(line, len, ES_EVENT_MAX_BYTES_DEFAULT, 1, &evs, &n, &v);
	if (err) {
		fprintf(stderr, "edgespool emit: stdin:%ld: %s%s%s\n", lineno, v.field,
			v.field[0] ? ": " : "", v.reason);
		return false;
	}
	es_event_free_array(evs, n);
	return true;
}

static int emit_stdin(struct emit *em)
{
	struct batch b = {0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int rc = 0;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (!valid_line(line, (size_t)n, lineno)) {
			rc = 1;
			continue;
		}
		if (!append(&b, b.count ? "," : "[", 1) || !append(&b, line, (size_t)n)) {
			fputs("edgespool emit: out of memory\n", stderr);
			rc = 1;
			break;
		}
		if (++b.count == (size_t)em->batch && flush(em, &b))
			rc = 1;
	}
	if (flush(em, &b))
		rc = 1;
	free(line);
	free(b.buf);
	return rc;
}

static int parse_args(struct emit *em, int argc, char **argv)
{
	static const struct option opts[] = {{"url", required_argument, 0, 'u'},
					     {"type", required_argument, 0, 't'},
					     {"subject", required_argument, 0, 's'},
					     {"data", required_argument, 0, 'd'},
					     {"batch", required_argument, 0, 'b'},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	const char *base = "http://127.0.0.1:8080";
	int c;
	em->batch = 100;
	while ((c = getopt_long(argc, argv, "u:t:s:d:b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			base = optarg;
			break;
		case 't':
			em->type = optarg;
			break;
		case 's':
			em->subject = optarg;
			break;
		case 'd':
			em->data = optarg;
			break;
		case 'b':
			em->batch = strtol(optarg, NULL, 10);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	em->from_stdin = optind < argc && strcmp(argv[optind], "-") == 0;
	if ((optind < argc && !em->from_stdin) || optind + 1 < argc || em->batch < 1 ||
	    em->batch > 100000 || (!em->from_stdin && !em->type) || (em->from_stdin && em->type)) {
		fputs(usage, stderr);
		return 2;
	}
	size_t blen = strlen(base);
	snprintf(em->url, sizeof em->url, "%s%s", base,
		 blen && base[blen - 1] == '/' ? "api/events" : "/api/events");
	return -1;
}

int cmd_emit(int argc, char **argv)
{
	struct emit em = {0};
	int rc = parse_args(&em, argc, argv);
	if (rc >= 0)
		return rc;
	if (es_httpc_new(NULL, &em.http)) {
		fputs("edgespool emit: out of memory\n", stderr);
		return 1;
	}
	rc = em.from_stdin ? emit_stdin(&em) : emit_one(&em);
	es_httpc_free(em.http);
	return rc;
}
