/* Sockets half-closed after a refusal, read and dropped until the client is done or time is up. */
#include "linger.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"

/* How much one read takes; what is read is dropped. */
#define DRAIN_CHUNK 65536

struct lingering {
	struct lingering *prev, *next;
	int fd;
	long long until_ms;
	size_t drained;
};

struct linger_set {
	int epoll_fd;
	struct lingering *head, *tail; /* oldest first: all share one drain time */
	unsigned int count, max;
	long long drain_ms;
	size_t drain_bytes;
	char scratch[DRAIN_CHUNK];
};

struct linger_set *
linger_new(int epoll_fd, unsigned int max, long long drain_ms, size_t drain_bytes)
{
	struct linger_set *set = calloc(1, sizeof(*set));

	if (set == NULL)
		return NULL;
	set->epoll_fd = epoll_fd;
	set->max = max > 0 ? max : 1;
	set->drain_ms = drain_ms;
	set->drain_bytes = drain_bytes;
	return set;
}

/* Closes one draining socket and forgets it. */
static void
finish(struct linger_set *set, struct lingering *l)
{
	epoll_ctl(set->epoll_fd, EPOLL_CTL_DEL, l->fd, NULL);
	close(l->fd);
	if (set->head == l)
		set->head = l->next;
	else
		l->prev->next = l->next;
	if (set->tail == l)
		set->tail = l->prev;
	else
		l->next->prev = l->prev;
	set->count--;
	free(l);
}

void
linger_free(struct linger_set *set)
{
	if (set == NULL)
		return;
	while (set->head != NULL)
		finish(set, set->head);
	free(set);
}

int
linger_start(struct linger_set *set, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
	struct lingering *l;

	shutdown(fd, SHUT_WR);
	if (set->count >= set->max)
		finish(set, set->head);
	l = calloc(1, sizeof(*l));
	ev.data.ptr = l;
	if (l == NULL || epoll_ctl(set->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(l);
		close(fd);
		return -1;
	}
	l->fd = fd;
	l->until_ms = clock_ms() + set->drain_ms;
	l->prev = set->tail;
	if (set->tail != NULL)
		set->tail->next = l;
	else
		set->head = l;
	set->tail = l;
	set->count++;
	return 0;
}

void
linger_ready(struct linger_set *set, struct lingering *l)
{
	ssize_t n;

	for (;;) {
		n = recv(l->fd, set->scratch, sizeof(set->scratch), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break;
		l->drained += (size_t)n;
		if (l->drained >= set->drain_bytes)
			break;
	}
	finish(set, l);
}

long
linger_expire(struct linger_set *set)
{
	long long now = clock_ms();

	while (set->head != NULL && set->head->until_ms <= now)
		finish(set, set->head);
	return set->head != NULL ? (long)(set->head->until_ms - now) : -1;
}
