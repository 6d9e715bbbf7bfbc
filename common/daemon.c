/* Start-up and shutdown shared by the caller and the responder. */
#include "daemon.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "app_version.h"
#include "http_get.h"
#include "log.h"
#include "metrics.h"
#include "served_by.h"
#include "tls.h"

/* How long answers resumed at shutdown get to be sent. */
#define RESUMED_FLUSH_MS 1000

static void
usage(const char *name)
{
	printf(
	    "usage: %s [--healthcheck]\n"
	    "Serves the ECS Service Connect demo API on PORT (default 5000).\n"
	    "Configuration comes from the environment; see README.md.\n"
	    "  --healthcheck  probe http://127.0.0.1:$PORT/health (https:// with TLS_CERT_FILE),\n"
	    "                 exit 0 when healthy\n",
	    name);
}

/*
 * The signals that stop a daemon (SIGTERM, SIGINT) or reload its certificates
 * (SIGHUP), blocked in every thread so that only sigwait() sees them.
 */
static void
signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int
config_error(const char *name, const char *err)
{
	fprintf(stderr, "%s: %s\n", name, err);
	return CONFIG_EXIT_STATUS;
}

/* SIGHUP: reads every certificate and key again; on failure the old ones stay in use. */
static void
reload(struct daemon *d, const struct daemon_hooks *hooks)
{
	char err[ERROR_MAX];
	int ok = 1;

	if (d->tls != NULL && tls_server_reload(d->tls, err, sizeof(err)) < 0) {
		log_msg(LOG_ERROR, "TLS reload failed, still serving the old certificates: %s",
		        err);
		ok = 0;
	}
	if (ok && hooks->reload != NULL && hooks->reload(hooks->arg, err, sizeof(err)) < 0) {
		log_msg(LOG_ERROR, "TLS reload failed, still using the old certificates: %s", err);
		ok = 0;
	}
	if (d->tls == NULL && hooks->reload == NULL) {
		log_msg(LOG_INFO, "SIGHUP: no TLS settings to reload");
		return;
	}
	if (ok)
		log_msg(LOG_INFO, "reloaded TLS certificates");
	tls_reload_count(ok);
}

int
daemon_init(struct daemon *d, const char *name, int argc, char **argv, int *exit_status)
{
	struct xray_config xray;
	char err[ERROR_MAX];
	sigset_t signals;
	long long port;

	/* First of all, so that every thread started later inherits the mask. */
	signals_block(&signals);
	mallopt(M_MMAP_THRESHOLD, DAEMON_MMAP_THRESHOLD_BYTES);

	memset(d, 0, sizeof(*d));
	d->name = name;
	log_init(name, LOG_INFO);
	if (argc > 1 && strcmp(argv[1], "--healthcheck") == 0) {
		if (config_integer("PORT", 5000, 1, 65535, &port) < 0)
			*exit_status = CONFIG_EXIT_STATUS;
		else if (tls_server_load(&d->tls, err, sizeof(err)) < 0)
			*exit_status = config_error(name, err);
		else
			*exit_status =
			    healthcheck_run((unsigned int)port,
			                    d->tls != NULL ? tls_server_credentials(d->tls) : NULL);
		tls_server_free(d->tls);
		return -1;
	}
	if (argc > 1) {
		usage(name);
		*exit_status = strcmp(argv[1], "--help") == 0 ? 0 : CONFIG_EXIT_STATUS;
		return -1;
	}
	if (server_config_load(&d->config) < 0 || app_version_load() < 0) {
		*exit_status = CONFIG_EXIT_STATUS;
		return -1;
	}
	log_init(name, d->config.log_level);
	if (tls_server_load(&d->tls, err, sizeof(err)) < 0) {
		*exit_status = config_error(name, err);
		return -1;
	}
	d->metrics = metrics_new();
	if (d->metrics == NULL || app_version_metrics_register(d->metrics, name) < 0 ||
	    tls_metrics_register(d->metrics) < 0) {
		fprintf(stderr, "%s: out of memory for the metrics\n", name);
		daemon_destroy(d);
		*exit_status = 1;
		return -1;
	}
	if (xray_config_load(&xray, name) < 0) {
		daemon_destroy(d);
		*exit_status = CONFIG_EXIT_STATUS;
		return -1;
	}
	if (xray.enabled && (d->tracer = xray_new(&xray, d->metrics)) == NULL) {
		daemon_destroy(d);
		*exit_status = CONFIG_EXIT_STATUS;
		return -1;
	}
	served_by_init();
	return 0;
}

int
daemon_serve(struct daemon *d, const struct http_route *routes, size_t route_count,
             const struct daemon_hooks *hooks)
{
	static const struct daemon_hooks none;
	struct http_server *server;
	sigset_t signals;
	unsigned int left;
	int sig = 0;

	signals_block(&signals);
	if (hooks == NULL)
		hooks = &none;
	server = http_server_start(&d->config, d->tls, routes, route_count, hooks->loop, d->metrics,
	                           d->tracer);
	if (server == NULL)
		return 1;
	log_msg(LOG_INFO, "listening on port %u (%s) with %u threads, serving as %s, version %s",
	        d->config.port, d->tls != NULL ? "https" : "http", d->config.threads, served_by(),
	        app_version());
	if (d->config.metrics_emf &&
	    metrics_emf_start(d->metrics, d->config.metrics_emf_interval_s,
	                      d->config.metrics_emf_namespace, d->name) < 0)
		log_msg(LOG_ERROR, "cannot start the EMF thread; going on without EMF");
	while (sigwait(&signals, &sig) != 0 || sig == SIGHUP)
		if (sig == SIGHUP) {
			reload(d, hooks);
			sig = 0;
		}
	log_msg(LOG_INFO, "signal %d: draining for up to %u ms", sig, d->config.drain_timeout_ms);
	left = http_server_drain(server, d->config.drain_timeout_ms);
	if (left > 0)
		log_msg(LOG_WARN, "drain timed out with %u requests in flight", left);
	if (hooks->loop != NULL) {
		/* What the loops' work still held must be answered before the server may stop. */
		left = http_server_abort(server, RESUMED_FLUSH_MS);
		if (left > 0)
			log_msg(LOG_WARN, "%u requests still in flight at exit", left);
	}
	metrics_emf_stop(d->metrics);
	http_server_stop(server);
	log_msg(LOG_INFO, "stopped");
	return 0;
}

void
daemon_destroy(struct daemon *d)
{
	xray_free(d->tracer);
	d->tracer = NULL;
	metrics_free(d->metrics);
	tls_server_free(d->tls);
}
