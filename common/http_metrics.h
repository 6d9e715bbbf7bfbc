/*
 * What the HTTP server counts for /metrics and EMF: requests by route, method
 * and status, their durations by route, requests in flight, and connections:
 * open, closed by the server by reason, and answer bytes held for readers.
 */
#ifndef COMMON_HTTP_METRICS_H
#define COMMON_HTTP_METRICS_H

#include <stdatomic.h>
#include <stddef.h>

#include "admission.h"
#include "metrics.h"

struct http_metrics;

/*
 * Makes the counters for the routes whose paths are given (route i is
 * paths[i]) and registers them with registry; paths, registry, in_flight and
 * connections are borrowed and must outlive the counters. Returns NULL after
 * logging why it failed.
 */
struct http_metrics *http_metrics_new(struct metrics *registry, const char *const *paths,
                                      size_t route_count, const atomic_uint *in_flight,
                                      const struct admission_stats *connections);

/* Counts one answered request to route i, or to none when i is route_count. Any thread. */
void http_metrics_count(struct http_metrics *m, size_t route, const char *method,
                        unsigned int status, double seconds);

/* Unregisters the counters and frees them. */
void http_metrics_free(struct http_metrics *m);

#endif
