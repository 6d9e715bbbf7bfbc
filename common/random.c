/* splitmix64 (Steele, Lea and Flood), and seeds from the kernel. */
#include "random.h"

#include <sys/random.h>
#include <time.h>

void
random_seed(struct random *r, uint64_t seed)
{
	r->state = seed;
}

/* One splitmix64 step: a Weyl sequence, each value mixed; every seed gives a full period. */
uint64_t
random_next(struct random *r)
{
	uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* The top 53 bits over 2^53: every double in [0, 1) it can give is equally likely. */
double
random_uniform(struct random *r)
{
	return (double)(random_next(r) >> 11) / 9007199254740992.0;
}

/* The kernel's bytes when it gives them; the fallback only has to differ between threads and runs.
 */
uint64_t
random_secure_seed(void)
{
	uint64_t seed;
	struct timespec now;

	if (getrandom(&seed, sizeof(seed), 0) == (ssize_t)sizeof(seed))
		return seed;
	clock_gettime(CLOCK_REALTIME, &now);
	return ((uint64_t)now.tv_sec << 30) ^ (uint64_t)now.tv_nsec ^ (uint64_t)(uintptr_t)&seed;
}

struct random *
random_thread(void)
{
	static _Thread_local struct random rng;
	static _Thread_local int seeded;

	if (!seeded) {
		random_seed(&rng, random_secure_seed());
		seeded = 1;
	}
	return &rng;
}
