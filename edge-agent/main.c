/* edge-agent: journal every event in SQLite, publish it over MQTT QoS 1. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "log.h"

extern char **environ;

static const char usage[] =
	"usage: edge-agent [--config FILE] [--section.key VALUE ...]\n"
	"       edge-agent --print-config | --help | --version\n"
	"\n"
	"Journals every event handed to it (POST /api/events) in SQLite before\n"
	"answering, then publishes it over MQTT QoS 1 and marks it acknowledged on\n"
	"PUBACK. Settings come from the INI file, then ES_SECTION_KEY environment\n"
	"variables, then flags; later ones win.\n";

struct signals {
	int fd;
	agent *agent;
};

/* SIGTERM and SIGINT arrive through a signalfd on the loop: no handler runs
 * in signal context at all. */
static void on_signal(void *arg, int fd, short revents)
{
	struct signals *s = arg;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof si) != (ssize_t)sizeof si)
		return;
	es_info("main", "%s received", strsignal((int)si.ssi_signo));
	agent_shutdown(s->agent);
}

static int block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	/* Before any thread starts, so every thread inherits the mask. */
	if (pthread_sigmask(SIG_BLOCK, set, NULL) != 0)
		return -1;
	return signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int run(const agent_settings *s)
{
	sigset_t set;
	struct signals sig = {.fd = block_signals(&set)};
	es_loop *loop = NULL;
	agent *a = NULL;
	int rc = 1;
	if (sig.fd < 0) {
		es_error("main", "signalfd: %s", strerror(errno));
		return 1;
	}
	if (es_loop_new(&loop))
		goto out;
	if (agent_new(s, loop, &a) || agent_start(a))
		goto out;
	sig.agent = a;
	if (es_loop_watch(loop, sig.fd, POLLIN, on_signal, &sig) || es_loop_run(loop))
		goto out;
	rc = 0;
out:
	agent_free(a);
	es_loop_free(loop);
	close(sig.fd);
	es_info("main", "stopped (exit %d)", rc);
	return rc;
}

int main(int argc, char **argv)
{
	agent_settings s = {0};
	es_config *cfg;
	char err[512];
	es_err e = es_config_new(agent_settings_table, agent_settings_count, &s, &cfg);
	if (e) {
		fprintf(stderr, "edge-agent: settings table: %s\n", es_strerror(e));
		return 1;
	}
	int rc = 2;
	if (es_config_load(cfg, argc, argv, environ, err, sizeof err) != ES_OK) {
		fprintf(stderr, "edge-agent: %s\n", err);
	} else if (es_config_mode(cfg) == ES_CFG_HELP) {
		es_config_help(cfg, stdout, usage);
		rc = 0;
	} else if (es_config_mode(cfg) == ES_CFG_REFERENCE) {
		es_config_reference(cfg, stdout);
		rc = 0;
	} else if (es_config_mode(cfg) == ES_CFG_VERSION) {
		printf("edge-agent %s\n", ES_VERSION);
		rc = 0;
	} else if (!agent_settings_check(&s, err, sizeof err)) {
		fprintf(stderr, "edge-agent: %s\n", err);
	} else if (es_config_mode(cfg) == ES_CFG_PRINT) {
		es_config_print(cfg, stdout);
		rc = 0;
	} else {
		es_log_setup((es_log_level)s.log_level, s.log_syslog, "edge-agent");
		rc = run(&s);
	}
	es_config_free(cfg);
	return rc;
}
