/* commands.c - fleet-state's --rebuild and --rebuild-from; see commands.h. */
#include "commands.h"

#include <stdio.h>
#include <string.h>

#include "fleet.h"

/* Takes flag out of argv; true if it was there. */
static bool take_flag(int *argc, char **argv, const char *flag)
{
	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], flag) != 0)
			continue;
		memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i) * sizeof *argv);
		(*argc)--;
		return true;
	}
	return false;
}

/* Takes "flag VALUE" out of argv; the value, or NULL. */
static const char *take_value(int *argc, char **argv, const char *flag)
{
	for (int i = 1; i + 1 < *argc; i++) {
		if (strcmp(argv[i], flag) != 0)
			continue;
		const char *v = argv[i + 1];
		memmove(&argv[i], &argv[i + 2], (size_t)(*argc - i - 1) * sizeof *argv);
		*argc -= 2;
		return v;
	}
	return NULL;
}

/* Contract in commands.h. */
void fleet_command_take(int *argc, char **argv, fleet_command *out)
{
	out->rebuild = take_flag(argc, argv, "--rebuild");
	out->scratch = take_flag(argc, argv, "--from-scratch");
	out->from = take_value(argc, argv, "--rebuild-from");
}

/* Contract in commands.h. */
bool fleet_command_check(const void *settings, const void *cmd, char *err, size_t cap)
{
	const fleet_command *c = cmd;
	return fleet_settings_check(settings, !c->rebuild && !c->scratch && !c->from, err, cap);
}

static int rebuild(const fleet_settings *s, bool scratch)
{
	es_consumer_rebuilt r;
	es_err err = fleet_rebuild(s, scratch, &r);
	if (err) {
		fprintf(stderr, "fleet-state: rebuild: %s\n", es_strerror(err));
		return 1;
	}
	if (r.snapshot_n)
		printf("rebuilt from the snapshot at event %llu: %llu events applied after it\n",
		       (unsigned long long)r.snapshot_n, (unsigned long long)r.applied);
	else if (r.trimmed)
		printf("rebuilt: %llu events applied (from scratch: the log's first %llu events "
		       "were trimmed, see state.log_keep)\n",
		       (unsigned long long)r.applied, (unsigned long long)r.trimmed);
	else
		printf("rebuilt: %llu events applied\n", (unsigned long long)r.applied);
	return 0;
}

static int rebuild_from(const fleet_settings *s, const char *url)
{
	uint64_t read = 0, applied = 0;
	es_err err = fleet_rebuild_from(s, url, &read, &applied);
	printf("rebuilt from %s: %llu events read, %llu applied\n", url, (unsigned long long)read,
	       (unsigned long long)applied);
	if (err)
		fprintf(stderr, "fleet-state: rebuild from %s: %s\n", url, es_strerror(err));
	return err ? 1 : 0;
}

/* Contract in commands.h. --rebuild-from wins over --rebuild, as it always
 * did. */
int fleet_command_run(const void *settings, const void *cmd)
{
	const fleet_command *c = cmd;
	if (c->from)
		return rebuild_from(settings, c->from);
	if (c->scratch && !c->rebuild) {
		fprintf(stderr, "fleet-state: --from-scratch goes with --rebuild\n");
		return 2;
	}
	return c->rebuild ? rebuild(settings, c->scratch) : -1;
}
