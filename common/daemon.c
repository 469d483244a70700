/* daemon.c - a daemon's start-up and life: settings, standard flags,
 * logging, signals through the loop, run, drain and stop; see daemon.h.
 */
#include "daemon.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "settings_shared.h"

extern char **environ;

#define TAG "main"

/* The running service, for the signal watch. */
struct running {
	const es_daemon *d;
	void *svc;
};

/* A signal, read from the signalfd on the loop thread. */
static void on_signal(void *arg, int fd, short revents)
{
	struct running *r = arg;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof si) != (ssize_t)sizeof si)
		return;
	es_info(TAG, "%s received", strsignal((int)si.ssi_signo));
	r->d->ops.shutdown(r->svc);
}

/* Blocks SIGTERM and SIGINT (before any thread starts, so every thread
 * inherits the mask) and returns a signalfd for them, or -1. */
static int block_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Step 6 of daemon.h: the service until a signal has stopped it. */
static int serve(const es_daemon *d, const void *settings)
{
	int fd = block_signals();
	if (fd < 0) {
		es_error(TAG, "signalfd: %s", strerror(errno));
		return 1;
	}
	es_loop *loop = NULL;
	struct running r = {.d = d};
	int rc = 1;
	if (es_loop_new(&loop) || d->ops.make(settings, loop, &r.svc) || d->ops.start(r.svc))
		goto out;
	if (es_loop_watch(loop, fd, POLLIN, on_signal, &r) || es_loop_run(loop))
		goto out;
	rc = d->ops.outcome && d->ops.outcome(r.svc) != ES_OK ? 1 : 0;
out:
	d->ops.free(r.svc);
	es_loop_free(loop);
	close(fd);
	es_info(TAG, "stopped (exit %d)", rc);
	return rc;
}

/* Steps 2 to 6, once the settings are loaded. */
static int dispatch(const es_daemon *d, es_config *cfg, const void *settings)
{
	char err[512];
	switch (es_config_mode(cfg)) {
	case ES_CFG_HELP:
		es_config_help(cfg, stdout, d->usage);
		return 0;
	case ES_CFG_REFERENCE:
		es_config_reference(cfg, stdout);
		return 0;
	case ES_CFG_VERSION:
		printf("%s %s\n", d->name, d->version);
		return 0;
	default:
		break;
	}
	if (d->check && !d->check(settings, d->arg, err, sizeof err)) {
		fprintf(stderr, "%s: %s\n", d->name, err);
		return 2;
	}
	if (es_config_mode(cfg) == ES_CFG_PRINT) {
		es_config_print(cfg, stdout);
		return 0;
	}
	const es_log_settings *log = (const void *)((const char *)settings + d->log);
	es_log_setup((es_log_level)log->level, log->syslog, d->name);
	int rc = d->command ? d->command(settings, d->arg) : -1;
	return rc >= 0 ? rc : serve(d, settings);
}

/* Contract in daemon.h. */
int es_daemon_main_env(const es_daemon *d, void *settings, int argc, char **argv, char *const *env)
{
	es_config *cfg;
	char err[512];
	es_err e = es_config_new_parts(d->parts, d->nparts, settings, &cfg);
	if (e) {
		fprintf(stderr, "%s: settings table: %s\n", d->name, es_strerror(e));
		return 1;
	}
	int rc = 2;
	if (es_config_load(cfg, argc, argv, env, err, sizeof err) != ES_OK)
		fprintf(stderr, "%s: %s\n", d->name, err);
	else
		rc = dispatch(d, cfg, settings);
	es_config_free(cfg);
	return rc;
}

/* Contract in daemon.h. */
int es_daemon_main(const es_daemon *d, void *settings, int argc, char **argv)
{
	return es_daemon_main_env(d, settings, argc, argv, environ);
}
