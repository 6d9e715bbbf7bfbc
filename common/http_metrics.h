/*
 * What the HTTP server counts for /metrics and EMF: requests by route, method
 * and status, their durations by route, requests in flight, and connections:
 * open, closed by the server by reason, and answer bytes held for readers.
 */
#ifndef COMMON_HTTP_METRICS_H
#define COMMON_HTTP_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "http_server.h"
#include "admission.h"

struct http_metrics;

/*
 * Makes the counters for routes (borrowed) and registers them with the
 * metrics module; in_flight and connections (borrowed) are read when rendering.
 * Call before any server thread starts. Returns NULL when memory runs out.
 */
struct http_metrics *http_metrics_new(const struct http_route *routes, size_t route_count,
                                      const atomic_uint *in_flight,
                                      const struct admission_stats *connections);

/* Counts one answered request; route is NULL when no route matched. Any thread. */
void http_metrics_count(struct http_metrics *m, const struct http_route *route, const char *method,
                        unsigned int status, double seconds);

void http_metrics_free(struct http_metrics *m);

#endif
