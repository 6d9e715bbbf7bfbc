/* The life of a daemon, the same for both: flags, configuration, serving, draining on a signal. */
#ifndef COMMON_DAEMON_H
#define COMMON_DAEMON_H

#include <stddef.h>

#include "config.h"
#include "data_routes.h"
#include "http_server.h"

struct daemon {
	const char *name; /* "caller" or "responder"; borrowed */
	struct server_config config;
	struct data_service data;
	struct tls_server *tls; /* NULL without TLS_CERT_FILE; owned */
	/*
	 * Set by the daemon's main before daemon_serve() when it has TLS settings
	 * of its own to read again on SIGHUP: returns 0, or -1 with err filled.
	 */
	int (*reload)(void *arg, char *err, size_t errlen);
	void *reload_arg;
	/*
	 * Set by the daemon's main before daemon_serve() when it has work for every
	 * server thread's event loop (borrowed); after the drain that work is ended.
	 */
	const struct http_loop *loop;
};

/*
 * Handles the command line (--healthcheck, --help), reads the configuration
 * and reserves the store. Returns 0 to go on serving, or -1 with the status
 * the process should exit with in *exit_status.
 */
int daemon_init(struct daemon *d, const char *name, const char *stored_message, int argc,
                char **argv, int *exit_status);

/*
 * Serves routes until SIGTERM or SIGINT, reloading certificates on SIGHUP, then stops accepting and
 * lets requests in flight finish within DRAIN_TIMEOUT_MS, then ends d->loop's work still in flight.
 * before_stop, when not NULL, runs after that and before the server closes its connections (the
 * responder uses it to answer delayed requests); it runs even when the server cannot start.
 * Returns the exit status.
 */
int daemon_serve(struct daemon *d, const struct http_route *routes, size_t route_count,
                 void (*before_stop)(void *), void *arg);

/* Releases what daemon_init() reserved. */
void daemon_destroy(struct daemon *d);

#endif
