/*
 * The caller's circuit breaker around the responder. Service Connect's proxy
 * ejects failing endpoints, but offers no breaker you can configure (roadmap
 * #1963), and locally there is no proxy at all. After BREAKER_THRESHOLD calls
 * in a row fail, the breaker opens: for BREAKER_COOLDOWN_MS every call fails
 * at once instead of waiting; then one probe goes through (half-open), and
 * its result closes the breaker or opens it again.
 */
#ifndef CALLER_BREAKER_H
#define CALLER_BREAKER_H

#include <stdatomic.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct breaker {
	unsigned int threshold;       /* BREAKER_THRESHOLD; 0 turns the breaker off */
	long long cooldown_ms;        /* BREAKER_COOLDOWN_MS */
	unsigned int failures;        /* calls failed in a row */
	long long opened_at_ms;       /* when it last opened */
	int probing;                  /* a half-open probe is in flight */
	atomic_int state;             /* enum breaker_state; read by /metrics */
	atomic_ullong transitions[3]; /* times it entered each state */
};

/* Sets up a closed breaker. */
void breaker_init(struct breaker *b, unsigned int threshold, long long cooldown_ms);

/*
 * Says whether a call may start at now_ms: 1, or 0 with the milliseconds until
 * the next probe in *wait_ms. When it lets a half-open probe through, later
 * calls fail until breaker_record() has that probe's result.
 */
int breaker_allow(struct breaker *b, long long now_ms, long long *wait_ms);

/* Records how a call that breaker_allow() let through ended. */
void breaker_record(struct breaker *b, int succeeded, long long now_ms);

/* "closed", "open" or "half-open". */
const char *breaker_state_name(enum breaker_state s);

#endif
