/*
 * Fault injection for demos, off by default: a share of the responder's
 * GET /data answers become 503s or arrive late, so a user can watch Service
 * Connect's retries and outlier detection on ECS, and the caller's retries
 * and circuit breaker locally. Decisions come from a seeded generator, so a
 * given sequence of requests always meets the same faults.
 */
#ifndef RESPONDER_FAULT_H
#define RESPONDER_FAULT_H

#include "../common/http_server.h"

struct fault_config {
	double error_rate;       /* FAULT_ERROR_RATE: share answered 503, 0 to 1 */
	unsigned int delay_ms;   /* FAULT_DELAY_MS: how late a delayed answer is */
	double delay_rate;       /* FAULT_DELAY_RATE: share delayed, 0 to 1 (default 1) */
	unsigned long long seed; /* FAULT_SEED */
};

struct faults;

/* Reads the configuration; returns 0, or -1 after printing what is wrong. */
int fault_config_load(struct fault_config *c);

/* Makes the fault state for c (copied); NULL when memory runs out. */
struct faults *fault_new(const struct fault_config *c);

/*
 * The work each server thread runs to answer its delayed requests (owned by
 * f), or NULL when no delay is configured.
 */
const struct http_loop *fault_loop(struct faults *f);

/*
 * Decides this request's fault. Returns 0 when there is none and the caller
 * should answer as usual; 1 when the fault took the request over: it has been
 * answered 503, or suspended and will be answered by handler(ex, arg) later,
 * on this server thread, from fault_loop()'s work.
 */
int fault_inject(struct faults *f, struct http_exchange *ex, http_handler handler, void *arg);

/* Frees f, once the server has stopped. */
void fault_free(struct faults *f);

#endif
