/* edgespool: the command-line tool. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: edgespool COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  emit      hand events to an agent over HTTP\n"
	"  journal   look into a journal file: stats, ls, cat, verify\n"
	"  sub       receive every node's events, find and fill holes\n"
	"  passwd    add a user to an HTTP auth file, or change a password\n"
	"  tail      print the events matching a type pattern, over AMQP or MQTT\n"
	"\n"
	"`edgespool COMMAND --help` tells more.\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "emit") == 0)
		return cmd_emit(argc - 1, argv + 1);
	if (strcmp(cmd, "journal") == 0)
		return cmd_journal(argc - 1, argv + 1);
	if (strcmp(cmd, "sub") == 0)
		return cmd_sub(argc - 1, argv + 1);
	if (strcmp(cmd, "passwd") == 0)
		return cmd_passwd(argc - 1, argv + 1);
	if (strcmp(cmd, "tail") == 0)
		return cmd_tail(argc - 1, argv + 1);
	if (strcmp(cmd, "--version") == 0) {
		printf("edgespool %s\n", ES_VERSION);
		return 0;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	fprintf(stderr, "edgespool: unknown command '%s'\n\n%s", cmd, usage);
	return 2;
}
