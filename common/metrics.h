/*
 * Metrics: the Prometheus text format (version 0.0.4) for GET /metrics, and
 * optionally CloudWatch Embedded Metric Format lines on stdout. Each module
 * registers what it measures with the daemon's registry at start-up; the
 * figures themselves are atomics the module updates as it works.
 */
#ifndef COMMON_METRICS_H
#define COMMON_METRICS_H

#include <stdatomic.h>

#include "buffer.h"

/* Largest /metrics page; text past it is dropped. */
#define METRICS_PAGE_MAX (1 << 20)

/* Upper bounds of the latency histogram buckets, in seconds; +Inf follows. */
#define METRICS_BUCKETS 12

/* A latency histogram, safe to update from any thread. */
struct histogram {
	atomic_ullong counts[METRICS_BUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
	atomic_ullong sum_us;
};

struct metrics;     /* the registry: its sources in registration order, and the EMF writer */
struct metrics_emf; /* one EMF record being built */

/* Writes one source's Prometheus text into out. */
typedef void (*metrics_render_fn)(struct buffer *out, void *arg);

/* Adds one source's figures to an EMF record, with metrics_emf_value(); EMF thread only. */
typedef void (*metrics_emf_fn)(struct metrics_emf *emf, void *arg);

/* Makes an empty registry; the caller frees it with metrics_free(). NULL when memory runs out. */
struct metrics *metrics_new(void);

/* Stops the EMF writer if it runs, then frees the registry (not its sources' args). */
void metrics_free(struct metrics *m);

/*
 * Adds a source (either function may be NULL; arg is borrowed and must stay
 * valid until metrics_unregister(m, arg) or metrics_free()). Any thread.
 * Returns 0, or -1 after logging that memory ran out.
 */
int metrics_register(struct metrics *m, metrics_render_fn render, metrics_emf_fn emf, void *arg);

/* Removes every source registered with arg (not NULL), before arg is freed. Any thread. */
void metrics_unregister(struct metrics *m, const void *arg);

/* Writes every source's text into out, in registration order. Any thread. */
void metrics_render(struct metrics *m, struct buffer *out);

/* Records one observation. */
void histogram_observe(struct histogram *h, double seconds);

/* Writes the _bucket, _sum and _count lines of name{labels} (labels may be ""). */
void histogram_render(struct buffer *out, const char *name, const char *labels,
                      const struct histogram *h);

/* Appends formatted text to a metrics page; output past the page's maximum is dropped. */
void metrics_printf(struct buffer *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Adds one named figure to the EMF record being built; names and units must be static. */
void metrics_emf_value(struct metrics_emf *emf, const char *name, const char *unit, double value);

/*
 * Starts a thread that writes one EMF line to stdout every interval_s seconds,
 * under the namespace and with the dimension Service=service (both borrowed).
 * Returns 0, or -1 when the thread cannot start.
 */
int metrics_emf_start(struct metrics *m, unsigned int interval_s, const char *ns,
                      const char *service);

/* Writes a last EMF line and stops the thread, when one was started. */
void metrics_emf_stop(struct metrics *m);

#endif
