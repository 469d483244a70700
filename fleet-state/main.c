/* fleet-state: a projection of every device, fed by the events, served as
 * JSON, and rebuilt from its snapshot and the service's own event log with
 * --rebuild. */
#include "commands.h"
#include "daemon.h"
#include "fleet.h"

static const char usage[] =
	"usage: fleet-state [--config FILE] [--section.key VALUE ...]\n"
	"                   [--rebuild [--from-scratch] | --rebuild-from http://NODE:PORT]\n"
	"       fleet-state --print-config | --print-reference | --help | --version\n"
	"\n"
	"Consumes the events over AMQP (a quorum queue bound to amq.topic) or MQTT,\n"
	"applies each id once to a SQLite projection of every device, and serves it\n"
	"on GET /api/devices and /api/stats. --rebuild restores the projection from\n"
	"its latest snapshot, re-applies the service's own event log after it, prints\n"
	"how many events, and exits; with --from-scratch it empties the projection\n"
	"and re-applies the whole event log (what state.log_keep kept of it).\n"
	"--rebuild-from applies the events a node's journal holds (through its HTTP\n"
	"API; ids applied already are dropped): what the MQTT hop lost comes back.\n";

static es_err svc_make(const void *s, es_loop *loop, void **out)
{
	fleet *f;
	es_err err = fleet_new(s, loop, &f);
	if (!err)
		*out = f;
	return err;
}

static es_err svc_start(void *f)
{
	return fleet_start(f);
}

static void svc_shutdown(void *f)
{
	fleet_shutdown(f);
}

static void svc_free(void *f)
{
	fleet_free(f);
}

static es_err svc_outcome(void *f)
{
	return fleet_outcome(f);
}

int main(int argc, char **argv)
{
	fleet_settings s = {0};
	fleet_command cmd;
	fleet_command_take(&argc, argv, &cmd);
	const es_daemon d = {
		.name = "fleet-state",
		.version = ES_VERSION,
		.usage = usage,
		.parts = fleet_settings_parts,
		.nparts = fleet_settings_nparts,
		.log = offsetof(fleet_settings, log),
		.check = fleet_command_check,
		.command = fleet_command_run,
		.arg = &cmd,
		.ops = {svc_make, svc_start, svc_shutdown, svc_free, svc_outcome},
	};
	return es_daemon_main(&d, &s, argc, argv);
}
