/* The responder ("Service B"): a store behind POST /data and GET /data. */
#include "../common/daemon.h"
#include "../common/metrics.h"

int
main(int argc, char **argv)
{
	struct daemon d;
	int status;

	if (daemon_init(&d, "responder", "Data stored successfully in Service B", argc, argv,
	                &status) < 0)
		return status;
	{
		const struct http_route routes[] = {
		    {.path = "/data",
		     .get = data_get,
		     .post = data_post,
		     .arg = &d.data,
		     .rate_limited = 1},
		    {.path = "/health", .get = health_get},
		    {.path = "/metrics", .get = metrics_get},
		};

		status = daemon_serve(&d, routes, sizeof(routes) / sizeof(routes[0]), NULL, NULL);
	}
	daemon_destroy(&d);
	return status;
}
