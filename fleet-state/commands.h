/* commands.h - fleet-state's one-shot commands, run instead of the service
 * (es_daemon's command): --rebuild restores the projection from its latest
 * snapshot and re-applies the service's own event log after it
 * (--from-scratch: empties it and re-applies the whole log); --rebuild-from URL applies the events
 * a node's journal holds (through its HTTP API). Neither is a setting: main() takes them out of the
 * command line before the settings table reads it.
 */
#ifndef FLEET_COMMANDS_H
#define FLEET_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fleet_command {
	bool rebuild;	  /* --rebuild */
	bool scratch;	  /* --from-scratch (with --rebuild) */
	const char *from; /* --rebuild-from URL; NULL: none */
} fleet_command;

/* Takes --rebuild, --from-scratch and "--rebuild-from URL" out of
 * argv[1..*argc), shifting the rest down, into *out. */
void fleet_command_take(int *argc, char **argv, fleet_command *out);

/* es_daemon's check: the settings (a fleet_settings) as fleet_settings_check
 * sees them, a source needed only to serve (cmd: the fleet_command). */
bool fleet_command_check(const void *settings, const void *cmd, char *err, size_t errcap);

/* es_daemon's command: runs the command, prints what it did, and returns
 * the exit status (0, or 1 on failure); -1 when there is none to run. */
int fleet_command_run(const void *settings, const void *cmd);

#endif
