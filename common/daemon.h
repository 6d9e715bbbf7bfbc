/* The life of a daemon, the same for both: flags, configuration, serving, draining on a signal. */
#ifndef COMMON_DAEMON_H
#define COMMON_DAEMON_H

#include <stddef.h>

#include "config.h"
#include "http_server.h"
#include "metrics.h"
#include "xray.h"

/*
 * Blocks this large and larger are mapped on their own and returned to the
 * system when freed. glibc's default threshold rises to the size of each
 * large block freed, after which answers of that size come from the heap and
 * stay resident when freed: a burst of large answers held by slow readers
 * would then keep its memory for the life of the process.
 */
#define DAEMON_MMAP_THRESHOLD_BYTES (256 * 1024)

struct daemon {
	const char *name; /* "caller" or "responder"; borrowed */
	struct server_config config;
	struct tls_server *tls;  /* NULL without TLS_CERT_FILE; owned */
	struct metrics *metrics; /* the registry every module reports to; owned */
	struct xray *tracer;     /* NULL unless XRAY_TRACING=1; owned */
};

/* What a daemon adds to the shared life; every member may be NULL. */
struct daemon_hooks {
	/* SIGHUP: reads the daemon's own TLS settings again; 0, or -1 with err filled. */
	int (*reload)(void *arg, char *err, size_t errlen);
	/*
	 * Work for every server thread's event loop (borrowed): the caller's calls, the
	 * responder's delays. After the drain it is ended, answering what it still holds.
	 */
	const struct http_loop *loop;
	void *arg; /* passed to reload; borrowed */
};

/*
 * Handles the command line (--healthcheck, --help), reads the shared
 * configuration and makes the metrics registry and the X-Ray tracer. Returns 0 to go on serving,
 * or -1 with the status the process should exit with in *exit_status.
 */
int daemon_init(struct daemon *d, const char *name, int argc, char **argv, int *exit_status);

/*
 * Serves routes until SIGTERM or SIGINT, running hooks->reload on SIGHUP
 * after its own certificates. Then: drain (stop accepting, let requests in
 * flight finish within DRAIN_TIMEOUT_MS), abort (the loop's work still in
 * flight is ended and answered), stop. hooks may be NULL. Returns the exit
 * status.
 */
int daemon_serve(struct daemon *d, const struct http_route *routes, size_t route_count,
                 const struct daemon_hooks *hooks);

/* Releases what daemon_init() made. */
void daemon_destroy(struct daemon *d);

#endif
