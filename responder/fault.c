/* Injected 503s and delays, decided by a seeded generator; delays never hold a server thread. */
#include "fault.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "../common/clock.h"
#include "../common/config.h"
#include "../common/log.h"
#include "../common/random.h"

/* A suspended request waiting for its delay to pass. */
struct delayed {
	struct delayed *next; /* ordered by due */
	struct timespec due;
	struct http_exchange *ex;
	http_handler handler;
	void *arg;
};

struct faults {
	struct fault_config cfg;
	pthread_mutex_t lock; /* guards rng, pending and stopping */
	pthread_cond_t wake;
	struct random rng;
	struct delayed *pending;
	int stopping;
	int has_thread;
	pthread_t thread;
};

int
fault_config_load(struct fault_config *c)
{
	if (config_number("FAULT_ERROR_RATE", 0, 0, 1, &c->error_rate) < 0 ||
	    config_number("FAULT_DELAY_RATE", 1, 0, 1, &c->delay_rate) < 0)
		return -1;
	CONFIG_INTEGER_OR_RETURN("FAULT_DELAY_MS", 0, 0, 60000, c->delay_ms);
	CONFIG_INTEGER_OR_RETURN("FAULT_SEED", 1, 1, INT64_MAX, c->seed);
	return 0;
}

static int
before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The delay thread: answers each delayed request when its time comes (or at once when stopping). */
static void *
delay_loop(void *arg)
{
	struct faults *f = arg;
	struct delayed *d;
	struct timespec now;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		d = f->pending;
		if (d != NULL && (f->stopping || !before(&now, &d->due))) {
			f->pending = d->next;
			pthread_mutex_unlock(&f->lock);
			if (d->handler != NULL)
				d->handler(d->ex, d->arg);
			http_resume(d->ex);
			free(d);
			pthread_mutex_lock(&f->lock);
			continue;
		}
		if (f->stopping)
			break;
		if (d == NULL)
			pthread_cond_wait(&f->wake, &f->lock);
		else
			pthread_cond_timedwait(&f->wake, &f->lock, &d->due);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

struct faults *
fault_start(const struct fault_config *c)
{
	struct faults *f = calloc(1, sizeof(*f));
	pthread_condattr_t attr;

	if (f == NULL)
		return NULL;
	f->cfg = *c;
	random_seed(&f->rng, c->seed);
	pthread_mutex_init(&f->lock, NULL);
	/* Due times are on the monotonic clock, so the wait must be too. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&f->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (c->delay_ms > 0 && c->delay_rate > 0) {
		if (pthread_create(&f->thread, NULL, delay_loop, f) != 0) {
			fault_free(f);
			return NULL;
		}
		f->has_thread = 1;
	}
	if (c->error_rate > 0 || f->has_thread)
		log_msg(LOG_WARN,
		        "fault injection on: FAULT_ERROR_RATE=%g FAULT_DELAY_MS=%u "
		        "FAULT_DELAY_RATE=%g FAULT_SEED=%llu",
		        c->error_rate, c->delay_ms, c->delay_rate, c->seed);
	return f;
}

int
fault_inject(struct faults *f, struct http_exchange *ex, http_handler handler, void *arg)
{
	struct delayed *d, **p;
	int fail, delay;

	if (f->cfg.error_rate <= 0 && !f->has_thread)
		return 0;
	pthread_mutex_lock(&f->lock);
	fail = random_uniform(&f->rng) < f->cfg.error_rate;
	delay = f->has_thread && random_uniform(&f->rng) < f->cfg.delay_rate;
	pthread_mutex_unlock(&f->lock);
	if (fail)
		http_reply_error(ex, 503, "Injected fault: FAULT_ERROR_RATE=%g", f->cfg.error_rate);
	if (!delay)
		return fail;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return fail; /* answer without the delay rather than not at all */
	d->due = clock_after(CLOCK_MONOTONIC, f->cfg.delay_ms);
	d->ex = ex;
	/* A failed request keeps its 503: the late answer is the one already set. */
	d->handler = fail ? NULL : handler;
	d->arg = arg;
	http_suspend(ex);
	pthread_mutex_lock(&f->lock);
	for (p = &f->pending; *p != NULL && !before(&d->due, &(*p)->due); p = &(*p)->next)
		;
	d->next = *p;
	*p = d;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	return 1;
}

void
fault_stop(struct faults *f)
{
	if (f == NULL || !f->has_thread)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = 1;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	f->has_thread = 0;
}

void
fault_free(struct faults *f)
{
	if (f == NULL)
		return;
	pthread_cond_destroy(&f->wake);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
