/* edgespool journal: look into a journal file (read-only; safe on the file
 * of a running agent). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "journal.h"

static const char usage[] =
	"usage: edgespool journal stats PATH\n"
	"       edgespool journal ls PATH [--from SEQ] [--limit N] [--pending]\n"
	"       edgespool journal cat PATH [--from SEQ] [--limit N]\n"
	"       edgespool journal verify PATH\n"
	"\n"
	"stats   counts, sequence range, pending backlog and size\n"
	"ls      one line per event: sequence, state, id, type, subject, time journaled\n"
	"cat     the events themselves, one CloudEvent JSON per line\n"
	"verify  SQLite's integrity check, no holes in the sequence, every event decodes;\n"
	"        exit 0 when sound, 1 with each problem printed\n";

static es_journal_reader *open_reader(const char *path)
{
	es_journal_reader *r;
	es_err err = es_journal_reader_open_path(path, &r);
	if (!err)
		return r;
	fprintf(stderr, "edgespool journal: %s: %s\n", path,
		err == ES_ECORRUPT ? "not an edgespool journal" : es_strerror(err));
	return NULL;
}

static int stats(es_journal_reader *r)
{
	es_journal_stats s;
	es_err err = es_journal_stats_get(r, &s);
	if (err) {
		fprintf(stderr, "edgespool journal: %s\n", es_strerror(err));
		return 1;
	}
	char when[ES_TIME_STR] = "-";
	if (s.oldest_pending_ms)
		es_time_format(s.oldest_pending_ms, when);
	printf("count: %" PRIu64 "\npending: %" PRIu64 "\noldest_seq: %" PRIu64
	       "\nlatest_seq: %" PRIu64 "\nacked_seq: %" PRIu64 "\noldest_pending_seq: %" PRIu64
	       "\noldest_pending_time: %s\nused_bytes: %" PRIu64 "\nfile_bytes: %" PRIu64 "\n",
	       s.count, s.pending, s.oldest_seq, s.latest_seq, s.acked_seq, s.oldest_pending_seq,
	       when, s.used_bytes, s.file_bytes);
	return 0;
}

static int print_row(void *ctx, const es_journal_row *row)
{
	char when[ES_TIME_STR];
	es_time_format(row->journaled_ms, when);
	printf("%" PRIu64 "\t%s\t%s\t%s\t%s\t%s\n", row->seq,
	       row->state == ES_STATE_ACKED ? "acked" : "pending", row->id, row->type,
	       row->subject ? row->subject : "-", when);
	return ferror(stdout) ? 1 : 0;
}

static int print_body(void *ctx, const es_journal_row *row)
{
	fwrite(row->body, 1, row->body_len, stdout);
	putchar('\n');
	return ferror(stdout) ? 1 : 0;
}

static void report(void *ctx, const char *problem)
{
	int *n = ctx;
	(*n)++;
	printf("problem: %s\n", problem);
}

static int verify(es_journal_reader *r, const char *path)
{
	int problems = 0;
	es_err err = es_journal_verify(r, report, &problems);
	if (err && err != ES_ECORRUPT) {
		fprintf(stderr, "edgespool journal: %s\n", es_strerror(err));
		return 1;
	}
	printf("%s: %s (%d problem%s)\n", path, err ? "DAMAGED" : "ok", problems,
	       problems == 1 ? "" : "s");
	return err ? 1 : 0;
}

/* --from SEQ, --limit N, --pending for ls and cat. */
static int list(es_journal_reader *r, int argc, char **argv, es_journal_row_fn fn)
{
	uint64_t from = 0;
	size_t limit = SIZE_MAX;
	bool pending = false;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--pending") == 0)
			pending = true;
		else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
			from = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
			limit = (size_t)strtoull(argv[++i], NULL, 10);
		else {
			fputs(usage, stderr);
			return 2;
		}
	}
	es_err err = es_journal_read(r, from, UINT64_MAX, limit, pending, fn, NULL);
	if (err)
		fprintf(stderr, "edgespool journal: %s\n", es_strerror(err));
	return err ? 1 : 0;
}

int cmd_journal(int argc, char **argv)
{
	if (argc < 3) {
		fputs(usage, argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
	}
	const char *what = argv[1], *path = argv[2];
	if (strcmp(what, "stats") && strcmp(what, "ls") && strcmp(what, "cat") &&
	    strcmp(what, "verify")) {
		fputs(usage, stderr);
		return 2;
	}
	es_journal_reader *r = open_reader(path);
	if (!r)
		return 1;
	int rc;
	if (strcmp(what, "stats") == 0)
		rc = argc == 3 ? stats(r) : 2;
	else if (strcmp(what, "verify") == 0)
		rc = argc == 3 ? verify(r, path) : 2;
	else
		rc = list(r, argc - 3, argv + 3, strcmp(what, "ls") == 0 ? print_row : print_body);
	es_journal_reader_free(r);
	return rc;
}
