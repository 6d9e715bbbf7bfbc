/*
 * A token bucket per client address, for POST /data. Service Connect has no
 * rate limiting, so the daemons do it themselves (RATE_LIMIT_RPS and
 * RATE_LIMIT_BURST; off when RATE_LIMIT_RPS is unset).
 */
#ifndef COMMON_RATE_LIMIT_H
#define COMMON_RATE_LIMIT_H

#include <stddef.h>

struct rate_limiter;

/*
 * Makes a limiter letting each client through rps requests a second on
 * average, burst at once, tracking at most max_clients clients. Returns NULL
 * when memory runs out; the caller frees it with rate_limit_free().
 */
struct rate_limiter *rate_limit_new(double rps, double burst, size_t max_clients);

/*
 * Takes a token from client's bucket at time now (seconds, any steady clock).
 * Returns 1 when the request may go on; 0 when it must wait, with the seconds
 * until a token is back in *retry_after. Safe to call from any thread.
 */
int rate_limit_take(struct rate_limiter *l, const char *client, double now, double *retry_after);

void rate_limit_free(struct rate_limiter *l);

#endif
