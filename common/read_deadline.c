/* The list of open connections and the thread that shuts down those too slow to send a request. */
#include "read_deadline.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "log.h"

#define CHECK_EVERY_MS 250

struct read_clock {
	struct read_clock *prev, *next;
	int fd;
	atomic_int reading;    /* 1 while waiting for (the rest of) a request */
	atomic_llong since_ms; /* when the current wait began */
	int expired;           /* shut down already; guarded by the list lock */
};

struct read_deadline {
	pthread_mutex_t lock; /* guards the list and stopping */
	pthread_cond_t wake;
	struct read_clock *head;
	long long timeout_ms;
	int stopping;
	atomic_ullong expired;
	pthread_t thread;
};

/*
 * The watcher. It shuts down sockets while holding the list lock, and
 * read_deadline_closed() takes the same lock before libmicrohttpd closes a
 * socket, so it can never touch a descriptor that was closed and reused.
 */
static void *
watch(void *arg)
{
	struct read_deadline *d = arg;
	struct read_clock *c;
	struct timespec until;
	long long now;

	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		now = clock_ms();
		for (c = d->head; c != NULL; c = c->next) {
			if (c->expired || !atomic_load(&c->reading) ||
			    now - atomic_load(&c->since_ms) < d->timeout_ms)
				continue;
			c->expired = 1;
			shutdown(c->fd, SHUT_RDWR);
			atomic_fetch_add(&d->expired, 1);
			log_msg(LOG_DEBUG,
			        "closed a connection that sent no whole request in %lld ms",
			        d->timeout_ms);
		}
		until = clock_after(CLOCK_MONOTONIC, CHECK_EVERY_MS);
		pthread_cond_timedwait(&d->wake, &d->lock, &until);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

struct read_deadline *
read_deadline_start(unsigned int timeout_s)
{
	struct read_deadline *d = calloc(1, sizeof(*d));
	pthread_condattr_t attr;

	if (d == NULL)
		return NULL;
	d->timeout_ms = (long long)timeout_s * 1000;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wake, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&d->thread, NULL, watch, d) != 0) {
		pthread_cond_destroy(&d->wake);
		pthread_mutex_destroy(&d->lock);
		free(d);
		return NULL;
	}
	return d;
}

void
read_deadline_stop(struct read_deadline *d)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	d->stopping = 1;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

struct read_clock *
read_deadline_opened(struct read_deadline *d, int fd)
{
	struct read_clock *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->fd = fd;
	atomic_init(&c->reading, 1);
	atomic_init(&c->since_ms, clock_ms());
	pthread_mutex_lock(&d->lock);
	c->next = d->head;
	if (d->head != NULL)
		d->head->prev = c;
	d->head = c;
	pthread_mutex_unlock(&d->lock);
	return c;
}

void
read_deadline_closed(struct read_deadline *d, struct read_clock *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		d->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&d->lock);
	free(c);
}

void
read_clock_set(struct read_clock *c, int reading)
{
	if (c == NULL)
		return;
	if (reading)
		atomic_store(&c->since_ms, clock_ms());
	atomic_store(&c->reading, reading);
}

unsigned long long
read_deadline_expired(const struct read_deadline *d)
{
	return atomic_load(&d->expired);
}
