/* Circuit breaker state machine: closed, open, half-open. Not thread-safe: callers serialize. */
#include "breaker.h"

#include "../common/log.h"

static const char *const state_names[] = {"closed", "open", "half-open"};

const char *
breaker_state_name(enum breaker_state s)
{
	return state_names[s];
}

static void
enter(struct breaker *b, enum breaker_state to, long long now_ms)
{
	enum breaker_state from = (enum breaker_state)atomic_load(&b->state);

	if (from == to)
		return;
	if (to == BREAKER_OPEN)
		b->opened_at_ms = now_ms;
	atomic_store(&b->state, to);
	atomic_fetch_add(&b->transitions[to], 1);
	if (to == BREAKER_OPEN)
		log_msg(LOG_WARN, "circuit breaker %s -> open after %u failed calls in a row",
		        state_names[from], b->failures);
	else if (to == BREAKER_HALF_OPEN)
		log_msg(LOG_WARN, "circuit breaker open -> half-open: one probe goes through");
	else
		log_msg(LOG_INFO, "circuit breaker %s -> closed: the probe succeeded",
		        state_names[from]);
}

void
breaker_init(struct breaker *b, unsigned int threshold, long long cooldown_ms)
{
	b->threshold = threshold;
	b->cooldown_ms = cooldown_ms;
	b->failures = 0;
	b->opened_at_ms = 0;
	b->probing = 0;
	atomic_init(&b->state, BREAKER_CLOSED);
	atomic_init(&b->transitions[0], 0);
	atomic_init(&b->transitions[1], 0);
	atomic_init(&b->transitions[2], 0);
}

int
breaker_allow(struct breaker *b, long long now_ms, long long *wait_ms)
{
	switch (atomic_load(&b->state)) {
	case BREAKER_OPEN:
		if (now_ms - b->opened_at_ms < b->cooldown_ms) {
			*wait_ms = b->opened_at_ms + b->cooldown_ms - now_ms;
			return 0;
		}
		enter(b, BREAKER_HALF_OPEN, now_ms);
		b->probing = 1;
		return 1;
	case BREAKER_HALF_OPEN:
		if (b->probing) {
			*wait_ms = 0;
			return 0;
		}
		b->probing = 1;
		return 1;
	default:
		return 1;
	}
}

void
breaker_record(struct breaker *b, int succeeded, long long now_ms)
{
	b->probing = 0;
	if (succeeded) {
		b->failures = 0;
		enter(b, BREAKER_CLOSED, now_ms);
		return;
	}
	b->failures++;
	if (atomic_load(&b->state) == BREAKER_HALF_OPEN ||
	    (b->threshold > 0 && b->failures >= b->threshold))
		enter(b, BREAKER_OPEN, now_ms);
}
