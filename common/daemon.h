/* daemon.h - the start-up every edgespool daemon shares (edge-agent,
 * cloud-bridge, fleet-state): a program's main() describes itself in an
 * es_daemon and hands over to es_daemon_main(), which
 *   1. loads the settings: the table made from the program's parts, from
 *      the file, the environment and the command line (config.h); an error
 *      is printed as "NAME: why" and exits 2;
 *   2. answers the standard flags: --help, --print-reference and --version
 *      print to stdout and exit 0, without the checks below;
 *   3. runs the program's check (exit 2 with its message), then answers
 *      --print-config (exit 0);
 *   4. sets up logging from the program's log settings (settings_shared.h);
 *   5. runs the program's one-shot command instead of the service, if it
 *      has one for this command line (fleet-state --rebuild): its status;
 *   6. runs the service: SIGPIPE ignored; SIGTERM and SIGINT blocked in
 *      every thread (before any starts) and read from a signalfd on the
 *      loop, so no code runs in signal context; make() and start(); the loop
 *      runs; each signal is logged and calls shutdown(), which drains and
 *      stops the loop when done; then free(). Exit 0, or 1 when a step
 *      failed or the service ended in failure (outcome()); logged as
 *      "stopped (exit N)".
 * Exit 1 also when the settings table itself is invalid (a program's bug).
 */
#ifndef ES_DAEMON_H
#define ES_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "err.h"
#include "loop.h"

/* The service, over the program's own types (void * is its settings struct
 * and its top object). Every function runs on the loop's thread, main's. */
typedef struct es_daemon_ops {
	/* Makes the service on loop from its checked settings (which outlive
	 * it); errors are logged with their cause. */
	es_err (*make)(const void *settings, es_loop *loop, void **out);
	es_err (*start)(void *svc);
	/* A signal came: stop taking work, drain, then es_loop_stop(). May be
	 * called again by a later signal. */
	void (*shutdown)(void *svc);
	void (*free)(void *svc); /* NULL is a no-op */
	/* Optional: how the run ended once the loop returned; not ES_OK:
	 * exit 1. */
	es_err (*outcome)(void *svc);
} es_daemon_ops;

typedef struct es_daemon {
	const char *name;    /* "edge-agent": messages, --version, log ident */
	const char *version; /* ES_VERSION */
	const char *usage;   /* the head of --help */
	const es_settings_part *parts;
	size_t nparts;
	size_t log; /* offset of its es_log_settings in the settings struct */
	/* Checks what the table cannot; writes the first problem into err. arg
	 * is the es_daemon's. */
	bool (*check)(const void *settings, const void *arg, char *err, size_t errcap);
	/* Optional: a one-shot command run instead of the service; returns the
	 * exit status, or -1 to run the service. */
	int (*command)(const void *settings, const void *arg);
	const void *arg; /* what main() took from the command line, for both */
	es_daemon_ops ops;
} es_daemon;

/* Runs the program as above, with settings its zeroed settings struct
 * (outliving the call), argv as main() got it and the process's
 * environment. Returns main()'s exit status. */
int es_daemon_main(const es_daemon *d, void *settings, int argc, char **argv);

/* The same with the environment given: a NULL-terminated "NAME=value"
 * array, or NULL for none (for tests). */
int es_daemon_main_env(const es_daemon *d, void *settings, int argc, char **argv, char *const *env);

#endif
