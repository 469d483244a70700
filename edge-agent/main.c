/* edge-agent: journal every event in SQLite, publish it over MQTT QoS 1. */
#include "agent.h"
#include "daemon.h"

static const char usage[] =
	"usage: edge-agent [--config FILE] [--section.key VALUE ...]\n"
	"       edge-agent --print-config | --help | --version\n"
	"\n"
	"Journals every event handed to it (POST /api/events) in SQLite before\n"
	"answering, then publishes it over MQTT QoS 1 and marks it acknowledged on\n"
	"PUBACK. Settings come from the INI file, then ES_SECTION_KEY environment\n"
	"variables, then flags; later ones win.\n";

static bool check(const void *s, const void *arg, char *err, size_t cap)
{
	return agent_settings_check(s, err, cap);
}

static es_err svc_make(const void *s, es_loop *loop, void **out)
{
	agent *a;
	es_err err = agent_new(s, loop, &a);
	if (!err)
		*out = a;
	return err;
}

static es_err svc_start(void *a)
{
	return agent_start(a);
}

static void svc_shutdown(void *a)
{
	agent_shutdown(a);
}

static void svc_free(void *a)
{
	agent_free(a);
}

int main(int argc, char **argv)
{
	agent_settings s = {0};
	const es_daemon d = {
		.name = "edge-agent",
		.version = ES_VERSION,
		.usage = usage,
		.parts = agent_settings_parts,
		.nparts = agent_settings_nparts,
		.log = offsetof(agent_settings, log),
		.check = check,
		.ops = {svc_make, svc_start, svc_shutdown, svc_free, NULL},
	};
	return es_daemon_main(&d, &s, argc, argv);
}
