/*
 * Injected 503s and delays, decided by a seeded generator. A delayed request
 * waits in its own server thread's loop, on a timer, and is answered there:
 * delays never hold a thread, and no request changes threads.
 */
#include "fault.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/timerfd.h>

#include "../common/clock.h"
#include "../common/config.h"
#include "../common/log.h"
#include "../common/random.h"

/* A suspended request waiting for its delay to pass. */
struct delayed {
	struct delayed *next;
	double due_s; /* clock_seconds() when it is answered: never before the whole delay */
	struct http_exchange *ex;
	http_handler handler; /* NULL: the answer set before the delay stands */
	void *arg;
};

/* One server thread's delayed requests; touched by that thread only. */
struct fault_worker {
	int timer_fd; /* timerfd, armed for the first request's due time */
	/* Every delay is FAULT_DELAY_MS long, so arrival order is due order: a queue. */
	struct delayed *head, *tail;
};

struct faults {
	struct fault_config cfg;
	pthread_mutex_t lock; /* guards rng: decisions follow the order requests arrive in */
	struct random rng;
	int delays; /* FAULT_DELAY_MS and FAULT_DELAY_RATE make delays */
	struct http_loop loop;
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

/* Arms w's timer for its first request, or disarms it when none waits. */
static void
timer_arm(struct fault_worker *w)
{
	struct itimerspec when = {0};
	long long wait;

	if (w->head != NULL) {
		/* Rounded up: a timer that fired early would find nothing due. */
		wait = (long long)((w->head->due_s - clock_seconds()) * 1e3) + 1;
		if (wait < 1)
			wait = 1; /* a zero it_value would disarm the timer */
		when.it_value = clock_duration(wait);
	}
	if (timerfd_settime(w->timer_fd, 0, &when, NULL) < 0)
		log_msg(LOG_ERROR, "fault injection: cannot arm the delay timer");
}

/* Answers w's first delayed request: the handler's answer, or the 503 already set. */
static void
answer_first(struct fault_worker *w)
{
	struct delayed *d = w->head;

	w->head = d->next;
	if (w->head == NULL)
		w->tail = NULL;
	if (d->handler != NULL)
		d->handler(d->ex, d->arg);
	http_resume(d->ex);
	free(d);
}

/* http_loop.attach: a server thread's queue and timer. */
static void *
worker_new(void *arg, int *fd)
{
	struct fault_worker *w = calloc(1, sizeof(*w));

	(void)arg;
	if (w == NULL)
		return NULL;
	w->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (w->timer_fd < 0) {
		log_msg(LOG_ERROR, "fault injection: cannot make a delay timer");
		free(w);
		return NULL;
	}
	*fd = w->timer_fd;
	return w;
}

/* http_loop.run: answers the requests whose delay has passed. */
static long
worker_run(void *state, int ready)
{
	struct fault_worker *w = state;
	uint64_t expirations;
	double now = clock_seconds();
	int answered = 0;

	if (ready && read(w->timer_fd, &expirations, sizeof(expirations)) < 0)
		expirations = 0; /* EAGAIN: woken for another reason; the queue decides */
	for (; w->head != NULL && w->head->due_s <= now; answered = 1)
		answer_first(w);
	/* A timer that fired is spent, and one set for an answered request is stale. */
	if (ready || answered)
		timer_arm(w);
	return -1;
}

/* http_loop.abort: at shutdown, answers every delayed request at once. */
static void
worker_abort(void *state)
{
	struct fault_worker *w = state;

	while (w->head != NULL)
		answer_first(w);
	timer_arm(w);
}

/* http_loop.detach: after the thread has ended. */
static void
worker_free(void *state)
{
	struct fault_worker *w = state;
	struct delayed *d;

	while ((d = w->head) != NULL) {
		w->head = d->next;
		free(d);
	}
	close(w->timer_fd);
	free(w);
}

struct faults *
fault_new(const struct fault_config *c)
{
	struct faults *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->cfg = *c;
	random_seed(&f->rng, c->seed);
	pthread_mutex_init(&f->lock, NULL);
	f->delays = c->delay_ms > 0 && c->delay_rate > 0;
	f->loop.attach = worker_new;
	f->loop.run = worker_run;
	f->loop.abort = worker_abort;
	f->loop.detach = worker_free;
	f->loop.arg = f;
	if (c->error_rate > 0 || f->delays)
		log_msg(LOG_WARN,
		        "fault injection on: FAULT_ERROR_RATE=%g FAULT_DELAY_MS=%u "
		        "FAULT_DELAY_RATE=%g FAULT_SEED=%llu",
		        c->error_rate, c->delay_ms, c->delay_rate, c->seed);
	return f;
}

const struct http_loop *
fault_loop(struct faults *f)
{
	return f->delays ? &f->loop : NULL;
}

int
fault_inject(struct faults *f, struct http_exchange *ex, http_handler handler, void *arg)
{
	struct fault_worker *w;
	struct delayed *d;
	int fail, delay;

	if (f->cfg.error_rate <= 0 && !f->delays)
		return 0;
	pthread_mutex_lock(&f->lock);
	fail = random_uniform(&f->rng) < f->cfg.error_rate;
	delay = f->delays && random_uniform(&f->rng) < f->cfg.delay_rate;
	pthread_mutex_unlock(&f->lock);
	if (fail)
		http_reply_error(ex, 503, "Injected fault: FAULT_ERROR_RATE=%g", f->cfg.error_rate);
	w = http_loop_state(ex);
	if (!delay || w == NULL)
		return fail;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return fail; /* answer without the delay rather than not at all */
	d->due_s = clock_seconds() + f->cfg.delay_ms / 1e3;
	d->ex = ex;
	/* A failed request keeps its 503: the late answer is the one already set. */
	d->handler = fail ? NULL : handler;
	d->arg = arg;
	http_suspend(ex);
	if (w->tail != NULL) {
		w->tail->next = d;
	} else {
		w->head = d;
		timer_arm(w);
	}
	w->tail = d;
	return 1;
}

void
fault_free(struct faults *f)
{
	if (f == NULL)
		return;
	pthread_mutex_destroy(&f->lock);
	free(f);
}
