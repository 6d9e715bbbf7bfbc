/*
 * When the caller retries a call to the responder, and how long it waits.
 * Only GET /data is called, and it is idempotent; only a refused connection or
 * a 503 is retried, at most RETRY_MAX times, after a jittered exponential
 * backoff, and only while the retry budget lasts: every call adds
 * RETRY_BUDGET_PERCENT/100 of a token, every retry takes one, so retries can
 * never add more than that share of load (plus a small reserve) however the
 * responder fails. Service Connect's proxy retries too; see the README.
 */
#ifndef CALLER_RETRY_H
#define CALLER_RETRY_H

#include <stdatomic.h>

#define RETRY_BUDGET_RESERVE 10.0 /* tokens to start with, and the most ever held */

struct retry_budget {
	double tokens;           /* not thread-safe: callers serialize */
	double per_call;         /* RETRY_BUDGET_PERCENT / 100 */
	atomic_ullong retries;   /* retries made; read by /metrics */
	atomic_ullong exhausted; /* retries refused for want of budget */
};

void retry_budget_init(struct retry_budget *b, unsigned int percent);

/* Credits the budget for one new call. */
void retry_budget_deposit(struct retry_budget *b);

/* Takes one retry from the budget: 1 when granted, 0 when the budget is spent. */
int retry_budget_withdraw(struct retry_budget *b);

/*
 * The wait before retry number attempt (1 for the first retry): a uniform
 * share (uniform, in [0, 1)) of base_ms * 2^(attempt - 1), at least 1 ms.
 */
long long retry_backoff_ms(unsigned int attempt, long long base_ms, double uniform);

#endif
