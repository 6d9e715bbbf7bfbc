/* Request counters and durations, rendered for /metrics and summed for EMF. */
#include "http_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

/* The methods and statuses counted one by one in /metrics; others count as "other". */
static const char *const counted_methods[] = {"GET", "HEAD", "POST", "other"};
static const unsigned int counted_statuses[] = {200, 201, 400, 404, 405, 413,
                                                415, 429, 500, 503, 507};
#define METHOD_SLOTS (sizeof(counted_methods) / sizeof(counted_methods[0]))
#define STATUS_SLOTS (sizeof(counted_statuses) / sizeof(counted_statuses[0]) + 1)

/* Requests to one route (or, in the last slot, to no route), for /metrics. */
struct route_metrics {
	atomic_ullong requests[METHOD_SLOTS][STATUS_SLOTS];
	struct histogram duration;
	unsigned long long emf_last_count; /* EMF thread only */
	unsigned long long emf_last_sum_us;
};

struct http_metrics {
	struct metrics *registry; /* where the counters are registered; borrowed */
	const char *const *paths; /* route i's path; borrowed */
	size_t route_count;
	struct route_metrics *routes_metrics; /* route_count + 1 slots; the last for no route */
	const atomic_uint *in_flight;
	const struct admission_stats *connections;
	unsigned long long emf_last_errors[2]; /* 4xx and 5xx at the last EMF record */
};

/* Counts a finished request by route, method and status, and its duration by route. */
void
http_metrics_count(struct http_metrics *s, size_t route, const char *method_name,
                   unsigned int status, double seconds)
{
	struct route_metrics *m =
	    &s->routes_metrics[route < s->route_count ? route : s->route_count];
	size_t method = 0, code = 0;

	while (method < METHOD_SLOTS - 1 && strcmp(method_name, counted_methods[method]) != 0)
		method++;
	while (code < STATUS_SLOTS - 1 && counted_statuses[code] != status)
		code++;
	atomic_fetch_add_explicit(&m->requests[method][code], 1, memory_order_relaxed);
	histogram_observe(&m->duration, seconds);
}

/* Prometheus text for connections: open and closed by reason, answer bytes held, and limits. */
static void
render_connections(struct buffer *out, const struct admission_stats *c)
{
	size_t i;

	metrics_printf(
	    out,
	    "# HELP http_connections_open Connections open, those being closed included.\n"
	    "# TYPE http_connections_open gauge\nhttp_connections_open %u\n"
	    "# HELP http_connection_limit CONNECTION_LIMIT.\n"
	    "# TYPE http_connection_limit gauge\nhttp_connection_limit %u\n"
	    "# HELP http_connections_closed_total Connections the server closed or "
	    "refused itself, by reason.\n"
	    "# TYPE http_connections_closed_total counter\n",
	    atomic_load(&c->open), c->open_limit);
	for (i = 0; i < CLOSE_REASONS; i++)
		metrics_printf(out, "http_connections_closed_total{reason=\"%s\"} %llu\n",
		               close_reason_names[i], atomic_load(&c->closed[i]));
	metrics_printf(out,
	               "# HELP http_answer_bytes_held Bytes of answers queued and not yet sent.\n"
	               "# TYPE http_answer_bytes_held gauge\nhttp_answer_bytes_held %llu\n"
	               "# HELP http_answer_bytes_limit ANSWER_MEMORY_MAX_BYTES.\n"
	               "# TYPE http_answer_bytes_limit gauge\nhttp_answer_bytes_limit %zu\n",
	               atomic_load(&c->held), c->held_limit);
}

/* Prometheus text for requests: counts by route, method and status, durations, in flight. */
static void
render_metrics(struct buffer *out, void *arg)
{
	struct http_metrics *s = arg;
	size_t r, m, c;
	char labels[128];

	metrics_printf(out,
	               "# HELP http_requests_total HTTP requests by route, method and status.\n"
	               "# TYPE http_requests_total counter\n");
	for (r = 0; r <= s->route_count; r++) {
		const char *route = r < s->route_count ? s->paths[r] : "other";

		for (m = 0; m < METHOD_SLOTS; m++) {
			for (c = 0; c < STATUS_SLOTS; c++) {
				unsigned long long n =
				    atomic_load(&s->routes_metrics[r].requests[m][c]);
				char code[16];

				if (n == 0)
					continue;
				if (c < STATUS_SLOTS - 1)
					snprintf(code, sizeof(code), "%u", counted_statuses[c]);
				else
					snprintf(code, sizeof(code), "other");
				metrics_printf(
				    out,
				    "http_requests_total{route=\"%s\",method=\"%s\",code=\"%s\"} "
				    "%llu\n",
				    route, counted_methods[m], code, n);
			}
		}
	}
	metrics_printf(out, "# HELP http_request_duration_seconds Time from request to answer.\n"
	                    "# TYPE http_request_duration_seconds histogram\n");
	for (r = 0; r <= s->route_count; r++) {
		snprintf(labels, sizeof(labels), "route=\"%s\"",
		         r < s->route_count ? s->paths[r] : "other");
		histogram_render(out, "http_request_duration_seconds", labels,
		                 &s->routes_metrics[r].duration);
	}
	metrics_printf(out,
	               "# HELP http_requests_in_flight Requests received and not yet answered.\n"
	               "# TYPE http_requests_in_flight gauge\nhttp_requests_in_flight %u\n"
	               "# HELP http_read_timeouts_total Connections closed for not sending a whole "
	               "request within REQUEST_READ_TIMEOUT_S.\n"
	               "# TYPE http_read_timeouts_total counter\nhttp_read_timeouts_total %llu\n",
	               atomic_load(s->in_flight),
	               atomic_load(&s->connections->closed[CLOSE_READ_DEADLINE]));
	render_connections(out, s->connections);
}

/* EMF figures for requests since the last record: count, 4xx, 5xx, mean latency. */
static void
emf_metrics(struct metrics_emf *emf, void *arg)
{
	struct http_metrics *s = arg;
	unsigned long long count = 0, sum_us = 0, errors[2] = {0, 0};
	size_t r, m, c, b;

	for (r = 0; r <= s->route_count; r++) {
		struct route_metrics *rm = &s->routes_metrics[r];
		unsigned long long rc = 0, rs = atomic_load(&rm->duration.sum_us);

		for (b = 0; b <= METRICS_BUCKETS; b++)
			rc += atomic_load(&rm->duration.counts[b]);
		count += rc - rm->emf_last_count;
		sum_us += rs - rm->emf_last_sum_us;
		rm->emf_last_count = rc;
		rm->emf_last_sum_us = rs;
		for (m = 0; m < METHOD_SLOTS; m++)
			for (c = 0; c < STATUS_SLOTS - 1; c++)
				if (counted_statuses[c] >= 400)
					errors[counted_statuses[c] >= 500] +=
					    atomic_load(&rm->requests[m][c]);
	}
	metrics_emf_value(emf, "Requests", "Count", (double)count);
	metrics_emf_value(emf, "Errors4xx", "Count", (double)(errors[0] - s->emf_last_errors[0]));
	metrics_emf_value(emf, "Errors5xx", "Count", (double)(errors[1] - s->emf_last_errors[1]));
	metrics_emf_value(emf, "LatencyAverage", "Milliseconds",
	                  count > 0 ? (double)sum_us / 1e3 / (double)count : 0);
	metrics_emf_value(emf, "InFlight", "Count", (double)atomic_load(s->in_flight));
	s->emf_last_errors[0] = errors[0];
	s->emf_last_errors[1] = errors[1];
}

struct http_metrics *
http_metrics_new(struct metrics *registry, const char *const *paths, size_t route_count,
                 const atomic_uint *in_flight, const struct admission_stats *connections)
{
	struct http_metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		goto fail;
	m->routes_metrics = calloc(route_count + 1, sizeof(*m->routes_metrics));
	if (m->routes_metrics == NULL)
		goto fail;
	m->registry = registry;
	m->paths = paths;
	m->route_count = route_count;
	m->in_flight = in_flight;
	m->connections = connections;
	if (metrics_register(registry, render_metrics, emf_metrics, m) < 0)
		goto fail_registered;
	return m;
fail:
	log_msg(LOG_ERROR, "out of memory for the request metrics");
fail_registered:
	if (m != NULL)
		free(m->routes_metrics);
	free(m);
	return NULL;
}

void
http_metrics_free(struct http_metrics *m)
{
	if (m == NULL)
		return;
	metrics_unregister(m->registry, m);
	free(m->routes_metrics);
	free(m);
}
