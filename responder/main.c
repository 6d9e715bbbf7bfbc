/* The responder ("Service B"): a store behind POST /data and GET /data, with optional faults. */
#include "../common/daemon.h"
#include "../common/metrics.h"
#include "fault.h"

/* What the responder's own routes need. */
struct responder {
	struct daemon daemon;
	struct faults *faults;
};

/* GET /data, unless an injected fault answers first. */
static void
responder_data_get(struct http_exchange *ex, void *arg)
{
	struct responder *r = arg;

	if (!fault_inject(r->faults, ex, data_get, &r->daemon.data))
		data_get(ex, &r->daemon.data);
}

/* POST /data; the route's arg is the responder, the shared handler wants its data. */
static void
responder_data_post(struct http_exchange *ex, void *arg)
{
	struct responder *r = arg;

	data_post(ex, &r->daemon.data);
}

static void
stop_faults(void *faults)
{
	fault_stop(faults);
}

int
main(int argc, char **argv)
{
	struct fault_config faults;
	struct responder r;
	int status;

	if (daemon_init(&r.daemon, "responder", "Data stored successfully in Service B", argc, argv,
	                &status) < 0)
		return status;
	if (fault_config_load(&faults) < 0) {
		status = CONFIG_EXIT_STATUS;
		goto out;
	}
	r.faults = fault_start(&faults);
	if (r.faults == NULL) {
		status = 1;
		goto out;
	}
	{
		const struct http_route routes[] = {
		    {.path = "/data",
		     .get = responder_data_get,
		     .post = responder_data_post,
		     .arg = &r,
		     .rate_limited = 1},
		    {.path = "/health", .get = health_get},
		    {.path = "/metrics", .get = metrics_get},
		};

		status = daemon_serve(&r.daemon, routes, sizeof(routes) / sizeof(routes[0]),
		                      stop_faults, r.faults);
	}
	fault_free(r.faults);
out:
	daemon_destroy(&r.daemon);
	return status;
}
