/*
 * The caller's figures for its calls to the responder: calls by outcome, the
 * time each attempt took, retries made and refused, and the circuit
 * breaker's state, as Prometheus text for GET /metrics and as EMF figures.
 * The server threads update them; the metrics registry reads them.
 */
#ifndef CALLER_UPSTREAM_METRICS_H
#define CALLER_UPSTREAM_METRICS_H

#include <stdatomic.h>

#include "../common/buffer.h"
#include "../common/metrics.h"
#include "breaker.h"
#include "judge.h"
#include "retry.h"

struct upstream_metrics {
	atomic_ullong outcomes[OUTCOME_COUNT]; /* calls ended, by outcome */
	atomic_ullong bodies_reused;           /* answers received into a kept body buffer */
	struct histogram latency;              /* the time one attempt took */
	struct retry_budget *budget;           /* borrowed; only its counters are read */
	struct breaker *breaker;               /* borrowed; only its state and counters are read */
	unsigned long long emf_last[2];        /* calls and failures at the last EMF record */
};

/* Starts every figure at zero; budget and breaker are borrowed and must outlive m. */
void upstream_metrics_init(struct upstream_metrics *m, struct retry_budget *budget,
                           struct breaker *breaker);

/* Counts one call that ended with outcome o; from any thread. */
void upstream_metrics_count(struct upstream_metrics *m, enum upstream_outcome o);

/* Records the time one attempt took; from any thread. */
void upstream_metrics_latency(struct upstream_metrics *m, double seconds);

/* A metrics_render_fn: the Prometheus text of m (arg). */
void upstream_metrics_render(struct buffer *out, void *arg);

/* A metrics_emf_fn: calls and failed calls since the last record, and whether the breaker is open.
 */
void upstream_metrics_emf(struct metrics_emf *emf, void *arg);

#endif
