/* Time for deadlines and timed waits, in one place so no caller gets the arithmetic wrong. */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <time.h>

/* Milliseconds on the monotonic clock: for deadlines and durations, never for dates. */
long long clock_ms(void);

/* Seconds on the monotonic clock, with their fraction: for durations and rates. */
double clock_seconds(void);

/* Milliseconds since the Unix epoch: for timestamps others read, never for durations. */
long long clock_epoch_ms(void);

/* Seconds since the Unix epoch, with their fraction: for trace timestamps. */
double clock_epoch_seconds(void);

/* A duration of ms milliseconds (not negative) as a struct timespec, for timers. */
struct timespec clock_duration(long long ms);

/* The moment ms milliseconds from now on clock id, as pthread_cond_timedwait() wants it. */
struct timespec clock_after(clockid_t id, long long ms);

#endif
