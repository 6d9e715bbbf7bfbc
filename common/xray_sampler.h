/*
 * Which requests X-Ray records, decided as the X-Ray SDKs' default rule does:
 * a reservoir of the first XRAY_SAMPLING_RESERVOIR requests each second, then
 * XRAY_SAMPLING_RATE of the rest. Only requests whose caller left the
 * decision open are asked; a decision that came with the request is kept.
 */
#ifndef COMMON_XRAY_SAMPLER_H
#define COMMON_XRAY_SAMPLER_H

#include <stdatomic.h>

struct xray_sampler {
	unsigned int reservoir_per_s; /* XRAY_SAMPLING_RESERVOIR */
	double rate;                  /* XRAY_SAMPLING_RATE, 0 to 1 */
	/* The second the reservoir counts for (high 32 bits) and what it has used (low 32). */
	atomic_ullong window;
};

/* Sets s up; every thread may then call xray_sample() without a lock. */
void xray_sampler_init(struct xray_sampler *s, unsigned int reservoir_per_s, double rate);

/*
 * Returns 1 when a request arriving at now_s (any clock, in seconds) is
 * sampled: while the reservoir of its second lasts, otherwise when uniform
 * (a draw from [0, 1)) is below the rate.
 */
int xray_sample(struct xray_sampler *s, double now_s, double uniform);

#endif
