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
