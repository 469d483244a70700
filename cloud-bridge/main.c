/* cloud-bridge: edge brokers -> SQLite inbox -> cloud broker, nothing lost. */
#include "bridge.h"
#include "daemon.h"

static const char usage[] =
	"usage: cloud-bridge [--config FILE] [--section.key VALUE ...]\n"
	"       cloud-bridge --print-config | --print-reference | --help | --version\n"
	"\n"
	"Forwards every event of the edge agents on the edge broker(s) to the cloud\n"
	"broker: journaled in its own SQLite inbox first (unique by id), then\n"
	"published over MQTT QoS 1 per node in sequence order; holes are asked for\n"
	"again from the agents. Settings come from the INI file, then ES_SECTION_KEY\n"
	"environment variables, then flags; later ones win.\n";

static bool check(const void *s, const void *arg, char *err, size_t cap)
{
	return bridge_settings_check(s, err, cap);
}

static es_err svc_make(const void *s, es_loop *loop, void **out)
{
	bridge *b;
	es_err err = bridge_new(s, loop, &b);
	if (!err)
		*out = b;
	return err;
}

static es_err svc_start(void *b)
{
	return bridge_start(b);
}

static void svc_shutdown(void *b)
{
	bridge_shutdown(b);
}

static void svc_free(void *b)
{
	bridge_free(b);
}

int main(int argc, char **argv)
{
	bridge_settings s = {0};
	const es_daemon d = {
		.name = "cloud-bridge",
		.version = ES_VERSION,
		.usage = usage,
		.parts = bridge_settings_parts,
		.nparts = bridge_settings_nparts,
		.log = offsetof(bridge_settings, log),
		.check = check,
		.ops = {svc_make, svc_start, svc_shutdown, svc_free, NULL},
	};
	return es_daemon_main(&d, &s, argc, argv);
}
