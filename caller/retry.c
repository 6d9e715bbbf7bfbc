/* Retry budget and backoff ("full jitter": a random wait up to the exponential bound). */
#include "retry.h"

void
retry_budget_init(struct retry_budget *b, unsigned int percent)
{
	b->tokens = RETRY_BUDGET_RESERVE;
	b->per_call = percent / 100.0;
	atomic_init(&b->retries, 0);
	atomic_init(&b->exhausted, 0);
}

void
retry_budget_deposit(struct retry_budget *b)
{
	b->tokens += b->per_call;
	if (b->tokens > RETRY_BUDGET_RESERVE)
		b->tokens = RETRY_BUDGET_RESERVE;
}

int
retry_budget_withdraw(struct retry_budget *b)
{
	if (b->tokens < 1.0) {
		atomic_fetch_add(&b->exhausted, 1);
		return 0;
	}
	b->tokens -= 1.0;
	atomic_fetch_add(&b->retries, 1);
	return 1;
}

long long
retry_backoff_ms(unsigned int attempt, long long base_ms, double uniform)
{
	long long bound = base_ms;
	long long wait;

	while (attempt-- > 1 && bound < (1LL << 40))
		bound *= 2;
	wait = (long long)(uniform * (double)bound);
	return wait < 1 ? 1 : wait;
}

/* The outcome and the count of attempts first, then whether the backoff leaves time. */
long long
retry_decide(const struct failed_attempt *f)
{
	long long wait;

	if (!f->retryable || f->attempt > f->retry_max)
		return -1;
	wait = retry_backoff_ms(f->attempt, f->base_ms, f->uniform);
	/* An attempt that cannot get a few milliseconds before the deadline is not worth making. */
	if (f->now_ms + wait + RETRY_MIN_TIME_LEFT_MS >= f->deadline_ms)
		return -1;
	return wait;
}
