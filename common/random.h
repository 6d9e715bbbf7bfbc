/*
 * The one pseudo-random generator of both daemons (splitmix64): trace ids,
 * the caller's backoff jitter and the responder's injected faults. A state
 * gives the same sequence for the same seed, so fault decisions follow
 * FAULT_SEED; random_secure_seed() seeds the states that need to differ from
 * run to run. Numbers are unique and well spread, not secret: not for keys.
 */
#ifndef COMMON_RANDOM_H
#define COMMON_RANDOM_H

#include <stdint.h>

/* A generator's state; not thread-safe: one per thread, or callers serialize. */
struct random {
	uint64_t state;
};

/* Starts r's sequence from seed; any value, 0 included, is a valid seed. */
void random_seed(struct random *r, uint64_t seed);

/* The next 64 random bits of r's sequence. */
uint64_t random_next(struct random *r);

/* The next number of r's sequence in [0, 1), with 53 random bits. */
double random_uniform(struct random *r);

/* A seed from the kernel (getrandom), or from the clock and an address when that fails. */
uint64_t random_secure_seed(void);

/*
 * The calling thread's own generator, seeded with random_secure_seed() at its
 * first use: for ids and sampling, which need no lock and no repeatable sequence.
 */
struct random *random_thread(void);

#endif
