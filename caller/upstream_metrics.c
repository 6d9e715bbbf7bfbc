/* Counting calls to the responder, and their Prometheus text and EMF figures. */
#include "upstream_metrics.h"

#include <stddef.h>
#include <string.h>

/* The outcome label of upstream_requests_total, for each enum upstream_outcome. */
static const char *const outcome_names[OUTCOME_COUNT] = {
    [OUTCOME_OK] = "ok",
    [OUTCOME_REFUSED] = "refused",
    [OUTCOME_TIMEOUT] = "timeout",
    [OUTCOME_DNS] = "dns",
    [OUTCOME_HTTP_STATUS] = "http_status",
    [OUTCOME_INVALID_BODY] = "invalid_body",
    [OUTCOME_TOO_LARGE] = "too_large",
    [OUTCOME_BREAKER_OPEN] = "breaker_open",
    [OUTCOME_ERROR] = "error",
};

/* All zero bits is every counter and the histogram at zero, as calloc() would leave them. */
void
upstream_metrics_init(struct upstream_metrics *m, struct retry_budget *budget,
                      struct breaker *breaker)
{
	memset(m, 0, sizeof(*m));
	m->budget = budget;
	m->breaker = breaker;
}

void
upstream_metrics_count(struct upstream_metrics *m, enum upstream_outcome o)
{
	atomic_fetch_add(&m->outcomes[o], 1);
}

void
upstream_metrics_latency(struct upstream_metrics *m, double seconds)
{
	histogram_observe(&m->latency, seconds);
}

/* Prometheus text for calls to the responder: outcomes, latency, retries, the breaker. */
void
upstream_metrics_render(struct buffer *out, void *arg)
{
	struct upstream_metrics *m = arg;
	size_t i;

	metrics_printf(out, "# HELP upstream_requests_total Calls to the responder by outcome.\n"
	                    "# TYPE upstream_requests_total counter\n");
	for (i = 0; i < OUTCOME_COUNT; i++)
		metrics_printf(out, "upstream_requests_total{outcome=\"%s\"} %llu\n",
		               outcome_names[i], atomic_load(&m->outcomes[i]));
	metrics_printf(out,
	               "# HELP upstream_request_duration_seconds Time one attempt to call the "
	               "responder took.\n# TYPE upstream_request_duration_seconds histogram\n");
	histogram_render(out, "upstream_request_duration_seconds", "", &m->latency);
	metrics_printf(
	    out,
	    "# HELP upstream_retries_total Attempts made again after a refused connection "
	    "or a 503.\n# TYPE upstream_retries_total counter\n"
	    "upstream_retries_total %llu\n"
	    "# HELP upstream_retry_budget_exhausted_total Retries not made for want of "
	    "budget.\n# TYPE upstream_retry_budget_exhausted_total counter\n"
	    "upstream_retry_budget_exhausted_total %llu\n"
	    "# HELP upstream_breaker_state 0 closed, 1 open, 2 half-open.\n"
	    "# TYPE upstream_breaker_state gauge\nupstream_breaker_state %d\n"
	    "# HELP upstream_breaker_transitions_total Times the breaker entered a state.\n"
	    "# TYPE upstream_breaker_transitions_total counter\n"
	    "upstream_breaker_transitions_total{state=\"closed\"} %llu\n"
	    "upstream_breaker_transitions_total{state=\"open\"} %llu\n"
	    "upstream_breaker_transitions_total{state=\"half_open\"} %llu\n"
	    "# HELP upstream_body_buffers_reused_total Responder answers received into a "
	    "buffer kept from an earlier one (UPSTREAM_BODY_CACHE_BYTES).\n"
	    "# TYPE upstream_body_buffers_reused_total counter\n"
	    "upstream_body_buffers_reused_total %llu\n",
	    atomic_load(&m->budget->retries), atomic_load(&m->budget->exhausted),
	    atomic_load(&m->breaker->state), atomic_load(&m->breaker->transitions[BREAKER_CLOSED]),
	    atomic_load(&m->breaker->transitions[BREAKER_OPEN]),
	    atomic_load(&m->breaker->transitions[BREAKER_HALF_OPEN]),
	    atomic_load(&m->bodies_reused));
}

/* EMF figures: calls to the responder and failed calls since the last record. */
void
upstream_metrics_emf(struct metrics_emf *emf, void *arg)
{
	struct upstream_metrics *m = arg;
	unsigned long long calls = 0, failures;
	size_t i;

	for (i = 0; i < OUTCOME_COUNT; i++)
		calls += atomic_load(&m->outcomes[i]);
	failures = calls - atomic_load(&m->outcomes[OUTCOME_OK]);
	metrics_emf_value(emf, "UpstreamCalls", "Count", (double)(calls - m->emf_last[0]));
	metrics_emf_value(emf, "UpstreamFailures", "Count", (double)(failures - m->emf_last[1]));
	metrics_emf_value(emf, "BreakerOpen", "Count",
	                  atomic_load(&m->breaker->state) == BREAKER_OPEN ? 1 : 0);
	m->emf_last[0] = calls;
	m->emf_last[1] = failures;
}
