/* cloud-bridge: edge brokers -> SQLite inbox -> cloud broker, nothing lost. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "bridge.h"
#include "config.h"
#include "log.h"

extern char **environ;

static const char usage[] =
	"usage: cloud-bridge [--config FILE] [--section.key VALUE ...]\n"
	"       cloud-bridge --print-config | --print-reference | --help | --version\n"
	"\n"
	"Forwards every event of the edge agents on the edge broker(s) to the cloud\n"
	"broker: journaled in its own SQLite inbox first (unique by id), then\n"
	"published over MQTT QoS 1 per node in sequence order; holes are asked for\n"
	"again from the agents. Settings come from the INI file, then ES_SECTION_KEY\n"
	"environment variables, then flags; later ones win.\n";

struct signals {
	int fd;
	bridge *bridge;
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
	bridge_shutdown(s->bridge);
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

static int run(const bridge_settings *s)
{
	sigset_t set;
	struct signals sig = {.fd = block_signals(&set)};
	es_loop *loop = NULL;
	bridge *a = NULL;
	int rc = 1;
	if (sig.fd < 0) {
		es_error("main", "signalfd: %s", strerror(errno));
		return 1;
	}
	if (es_loop_new(&loop))
		goto out;
	if (bridge_new(s, loop, &a) || bridge_start(a))
		goto out;
	sig.bridge = a;
	if (es_loop_watch(loop, sig.fd, POLLIN, on_signal, &sig) || es_loop_run(loop))
		goto out;
	rc = 0;
out:
	bridge_free(a);
	es_loop_free(loop);
	close(sig.fd);
	es_info("main", "stopped (exit %d)", rc);
	return rc;
}

int main(int argc, char **argv)
{
	bridge_settings s = {0};
	es_config *cfg;
	char err[512];
	es_err e = es_config_new(bridge_settings_table, bridge_settings_count, &s, &cfg);
	if (e) {
		fprintf(stderr, "cloud-bridge: settings table: %s\n", es_strerror(e));
		return 1;
	}
	int rc = 2;
	if (es_config_load(cfg, argc, argv, environ, err, sizeof err) != ES_OK) {
		fprintf(stderr, "cloud-bridge: %s\n", err);
	} else if (es_config_mode(cfg) == ES_CFG_HELP) {
		es_config_help(cfg, stdout, usage);
		rc = 0;
	} else if (es_config_mode(cfg) == ES_CFG_REFERENCE) {
		es_config_reference(cfg, stdout);
		rc = 0;
	} else if (es_config_mode(cfg) == ES_CFG_VERSION) {
		printf("cloud-bridge %s\n", ES_VERSION);
		rc = 0;
	} else if (!bridge_settings_check(&s, err, sizeof err)) {
		fprintf(stderr, "cloud-bridge: %s\n", err);
	} else if (es_config_mode(cfg) == ES_CFG_PRINT) {
		es_config_print(cfg, stdout);
		rc = 0;
	} else {
		es_log_setup((es_log_level)s.log_level, s.log_syslog, "cloud-bridge");
		rc = run(&s);
	}
	es_config_free(cfg);
	return rc;
}
