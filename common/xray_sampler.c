/* X-Ray's default sampling rule: a reservoir per second, then a fixed rate. */
#include "xray_sampler.h"

#include <stdint.h>

void
xray_sampler_init(struct xray_sampler *s, unsigned int reservoir_per_s, double rate)
{
	s->reservoir_per_s = reservoir_per_s;
	s->rate = rate;
	atomic_init(&s->window, 0);
}

/*
 * Takes one request from the reservoir of second `second`: one compare and
 * swap on one word, so threads never wait for each other here.
 */
static int
reservoir_take(struct xray_sampler *s, uint32_t second)
{
	unsigned long long seen = atomic_load_explicit(&s->window, memory_order_relaxed);
	unsigned long long next;
	uint32_t used;

	for (;;) {
		/* A thread that read the clock just before the second turned: no reservoir left. */
		if ((uint32_t)(seen >> 32) > second)
			return 0;
		used = (uint32_t)(seen >> 32) == second ? (uint32_t)seen : 0;
		if (used >= s->reservoir_per_s)
			return 0;
		next = ((unsigned long long)second << 32) | (used + 1);
		if (atomic_compare_exchange_weak_explicit(
		        &s->window, &seen, next, memory_order_relaxed, memory_order_relaxed))
			return 1;
	}
}

int
xray_sample(struct xray_sampler *s, double now_s, double uniform)
{
	if (s->reservoir_per_s > 0 && now_s >= 0 && reservoir_take(s, (uint32_t)(uint64_t)now_s))
		return 1;
	return uniform < s->rate;
}
