/* Start-up and shutdown shared by the caller and the responder. */
#include "daemon.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "http_get.h"
#include "log.h"
#include "metrics.h"
#include "served_by.h"

/* How long answers resumed at shutdown get to be sent. */
#define RESUMED_FLUSH_MS 1000

static void
usage(const char *name)
{
	printf("usage: %s [--healthcheck]\n"
	       "Serves the ECS Service Connect demo API on PORT (default 5000).\n"
	       "Configuration comes from the environment; see README.md.\n"
	       "  --healthcheck  probe http://127.0.0.1:$PORT/health, exit 0 when healthy\n",
	       name);
}

/* The signals that stop a daemon, blocked in every thread so that only sigwait() sees them. */
static void
stop_signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int
daemon_init(struct daemon *d, const char *name, const char *stored_message, int argc, char **argv,
            int *exit_status)
{
	sigset_t stop_signals;
	long long port;

	/* First of all, so that every thread started later inherits the mask. */
	stop_signals_block(&stop_signals);

	memset(d, 0, sizeof(*d));
	d->name = name;
	d->data.stored_message = stored_message;
	log_init(name, LOG_INFO);
	if (argc > 1 && strcmp(argv[1], "--healthcheck") == 0) {
		*exit_status = config_integer("PORT", 5000, 1, 65535, &port) < 0
		                   ? CONFIG_EXIT_STATUS
		                   : healthcheck_run((unsigned int)port);
		return -1;
	}
	if (argc > 1) {
		usage(name);
		*exit_status = strcmp(argv[1], "--help") == 0 ? 0 : CONFIG_EXIT_STATUS;
		return -1;
	}
	if (server_config_load(&d->config) < 0) {
		*exit_status = CONFIG_EXIT_STATUS;
		return -1;
	}
	log_init(name, d->config.log_level);
	if (store_init(&d->data.store, d->config.store_max_items, d->config.store_max_bytes) < 0) {
		fprintf(stderr, "%s: STORE_MAX_BYTES=%zu cannot be reserved: %s\n", name,
		        d->config.store_max_bytes, strerror(errno));
		*exit_status = CONFIG_EXIT_STATUS;
		return -1;
	}
	served_by_init();
	data_metrics_register(&d->data);
	return 0;
}

int
daemon_serve(struct daemon *d, const struct http_route *routes, size_t route_count,
             void (*before_stop)(void *), void *arg)
{
	struct http_server *server;
	sigset_t stop_signals;
	unsigned int left;
	int sig = 0;

	stop_signals_block(&stop_signals);

	server = http_server_start(&d->config, routes, route_count);
	if (server == NULL) {
		if (before_stop != NULL)
			before_stop(arg);
		return 1;
	}
	log_msg(LOG_INFO, "listening on port %u with %u threads, serving as %s", d->config.port,
	        d->config.threads, served_by());
	if (d->config.metrics_emf &&
	    metrics_emf_start(d->config.metrics_emf_interval_s, d->config.metrics_emf_namespace,
	                      d->name) < 0)
		log_msg(LOG_ERROR, "cannot start the EMF thread; going on without EMF");
	while (sigwait(&stop_signals, &sig) != 0)
		;
	log_msg(LOG_INFO, "signal %d: draining for up to %u ms", sig, d->config.drain_timeout_ms);
	left = http_server_drain(server, d->config.drain_timeout_ms);
	if (left > 0)
		log_msg(LOG_WARN, "drain timed out with %u requests in flight", left);
	if (before_stop != NULL) {
		before_stop(arg);
		/* What before_stop() resumed must be answered before the server may stop. */
		left = http_server_drain(server, RESUMED_FLUSH_MS);
		if (left > 0)
			log_msg(LOG_WARN, "%u requests still in flight at exit", left);
	}
	metrics_emf_stop();
	http_server_stop(server);
	log_msg(LOG_INFO, "stopped");
	return 0;
}

void
daemon_destroy(struct daemon *d)
{
	store_destroy(&d->data.store);
}
