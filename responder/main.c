/* The responder ("Service B"): a store behind POST /data and GET /data, with optional faults. */
#include <stdio.h>

#include "../common/daemon.h"
#include "../common/data_routes.h"
#include "fault.h"

/* What the responder's own routes need. */
struct responder {
	struct data_service data;
	struct faults *faults;
};

/* GET /data, unless an injected fault answers first. */
static void
responder_data_get(struct http_exchange *ex, void *arg)
{
	struct responder *r = arg;

	if (!fault_inject(r->faults, ex, data_get, &r->data))
		data_get(ex, &r->data);
}

/* POST /data; the route's arg is the responder, the shared handler wants its data. */
static void
responder_data_post(struct http_exchange *ex, void *arg)
{
	struct responder *r = arg;

	data_post(ex, &r->data);
}

int
main(int argc, char **argv)
{
	struct fault_config faults;
	struct responder r = {0};
	struct daemon d;
	int status;

	if (daemon_init(&d, "responder", argc, argv, &status) < 0)
		return status;
	if (data_service_init(&r.data, "Data stored successfully in Service B", &d.config,
	                      d.metrics) < 0) {
		status = CONFIG_EXIT_STATUS;
		goto out;
	}
	if (fault_config_load(&faults) < 0) {
		status = CONFIG_EXIT_STATUS;
		goto out_data;
	}
	r.faults = fault_new(&faults);
	if (r.faults == NULL) {
		fprintf(stderr, "responder: out of memory for fault injection\n");
		status = 1;
		goto out_data;
	}
	{
		const struct http_route routes[] = {
		    {.path = "/data",
		     .get = responder_data_get,
		     .post = responder_data_post,
		     .arg = &r,
		     .rate_limited = 1},
		    {.path = "/health", .get = health_get},
		    {.path = "/metrics", .get = metrics_get, .arg = d.metrics},
		};
		const struct daemon_hooks hooks = {.loop = fault_loop(r.faults)};

		status = daemon_serve(&d, routes, sizeof(routes) / sizeof(routes[0]), &hooks);
	}
	fault_free(r.faults);
out_data:
	data_service_destroy(&r.data);
out:
	daemon_destroy(&d);
	return status;
}
