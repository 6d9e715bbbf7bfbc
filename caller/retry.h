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

/* A retry must leave the attempt at least this long before the call's deadline. */
#define RETRY_MIN_TIME_LEFT_MS 5

/* What retry_decide() weighs about an attempt that failed. */
struct failed_attempt {
	int retryable;          /* judge_retryable(): a refused connection or a 503 */
	unsigned int attempt;   /* the attempt that failed, 1 for the first */
	unsigned int retry_max; /* RETRY_MAX */
	long long base_ms;      /* RETRY_BACKOFF_MS */
	double uniform;         /* in [0, 1): the backoff's jitter */
	long long now_ms;       /* when it failed */
	long long deadline_ms;  /* when the whole call must have ended */
};

/*
 * Whether a failed attempt is made again, budget aside: returns the backoff
 * in ms when it is retryable, RETRY_MAX is not reached and the attempt after
 * the backoff still has RETRY_MIN_TIME_LEFT_MS before the deadline; -1
 * otherwise. Ask retry_budget_withdraw() only after a wait is returned, so a
 * retry refused here spends no budget.
 */
long long retry_decide(const struct failed_attempt *f);

#endif
