/* fleet-state: a projection of every device, fed by the events, served as
 * JSON, and rebuilt from the service's own event log with --rebuild. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fleet.h"
#include "log.h"

extern char **environ;

static const char usage[] =
	"usage: fleet-state [--config FILE] [--section.key VALUE ...] [--rebuild]\n"
	"       fleet-state --print-config | --print-reference | --help | --version\n"
	"\n"
	"Consumes the events over AMQP (a quorum queue bound to amq.topic) or MQTT,\n"
	"applies each id once to a SQLite projection of every device, and serves it\n"
	"on GET /api/devices and /api/stats. --rebuild empties the projection,\n"
	"re-applies the service's own event log, prints how many events, and exits.\n";

/* The one running service, for the signal handler (which only sets its
 * stop flag). */
static fleet *running;

static void on_signal(int sig)
{
	(void)sig;
	if (running)
		fleet_stop(running);
}

static int serve(const fleet_settings *s)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t set;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	/* Threads started from here on (paho, civetweb, the MQTT loop) inherit
	 * the mask: the signals go to the main thread, the consumer's. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	fleet *f;
	es_err err = fleet_new(s, &f);
	if (!err) {
		running = f;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	if (err)
		return 1;
	err = fleet_run(f);
	running = NULL;
	fleet_free(f);
	es_info("main", "stopped (exit %d)", err ? 1 : 0);
	return err ? 1 : 0;
}

static int rebuild(const fleet_settings *s)
{
	uint64_t n = 0;
	es_err err = fleet_rebuild(s, &n);
	if (err) {
		fprintf(stderr, "fleet-state: rebuild: %s\n", es_strerror(err));
		return 1;
	}
	printf("rebuilt: %llu events applied\n", (unsigned long long)n);
	return 0;
}

/* Takes --rebuild out of argv (the settings table does not know it). */
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

static int dispatch(es_config *cfg, fleet_settings *s, bool rebuilding)
{
	char err[512];
	switch (es_config_mode(cfg)) {
	case ES_CFG_HELP:
		es_config_help(cfg, stdout, usage);
		return 0;
	case ES_CFG_REFERENCE:
		es_config_reference(cfg, stdout);
		return 0;
	case ES_CFG_VERSION:
		printf("fleet-state %s\n", ES_VERSION);
		return 0;
	default:
		break;
	}
	if (!fleet_settings_check(s, !rebuilding, err, sizeof err)) {
		fprintf(stderr, "fleet-state: %s\n", err);
		return 2;
	}
	if (es_config_mode(cfg) == ES_CFG_PRINT) {
		es_config_print(cfg, stdout);
		return 0;
	}
	es_log_setup((es_log_level)s->log_level, s->log_syslog, "fleet-state");
	return rebuilding ? rebuild(s) : serve(s);
}

int main(int argc, char **argv)
{
	fleet_settings s;
	es_config *cfg;
	char err[512];
	memset(&s, 0, sizeof s);
	bool rebuilding = take_flag(&argc, argv, "--rebuild");
	if (es_config_new(fleet_settings_table, fleet_settings_count, &s, &cfg)) {
		fputs("fleet-state: settings table: out of memory\n", stderr);
		return 1;
	}
	int rc = 2;
	if (es_config_load(cfg, argc, argv, environ, err, sizeof err) != ES_OK)
		fprintf(stderr, "fleet-state: %s\n", err);
	else
		rc = dispatch(cfg, &s, rebuilding);
	es_config_free(cfg);
	return rc;
}
