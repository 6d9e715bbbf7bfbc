/* One server thread's connections in the order they give way: longest waiting, longest held. */
#include "admission.h"

#include <stdlib.h>
#include <sys/socket.h>

#include "clock.h"
#include "log.h"

const char *const close_reason_names[CLOSE_REASONS] = {
    "evicted_idle",  "per_address_limit", "over_limit",
    "read_deadline", "slow_reader",       "drained_after_refusal",
};

enum admitted_state { ADMITTED_WAITING, ADMITTED_BUSY, ADMITTED_CLOSING };

/* A list of connections, oldest first: they are only ever appended at the tail. */
struct admitted_list {
	struct admitted *head, *tail;
};

struct admitted {
	struct admitted *prev, *next;
	struct admitted_list *list; /* the list it is on; NULL when on none */
	int fd;
	enum admitted_state state;
	long long since_ms; /* when it began to wait */
	size_t held;        /* bytes of its answer counted as held */
};

struct admission {
	struct admitted_list waiting; /* by when they began to wait */
	struct admitted_list holding; /* busy with an answer queued, by when it was queued */
	unsigned int count;           /* connections not closing */
	size_t held;                  /* bytes held by this thread's answers */
	struct admission_limits limits;
	struct admission_stats *stats;
};

static void
list_append(struct admitted_list *l, struct admitted *c)
{
	c->list = l;
	c->next = NULL;
	c->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
}

static void
list_remove(struct admitted *c)
{
	struct admitted_list *l = c->list;

	if (l == NULL)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	c->list = NULL;
}

/* Stops counting c's answer as held: it is sent, or is about to be freed. */
static void
release_held(struct admission *a, struct admitted *c)
{
	if (c->held == 0)
		return;
	a->held -= c->held;
	atomic_fetch_sub_explicit(&a->stats->held, c->held, memory_order_relaxed);
	c->held = 0;
}

/* Takes c out of every list and shuts its socket down; libmicrohttpd does the rest. */
static void
cut(struct admission *a, struct admitted *c, enum close_reason why)
{
	list_remove(c);
	release_held(a, c);
	c->state = ADMITTED_CLOSING;
	a->count--;
	/* Counted before the client can see the close, so /metrics asked next already shows it. */
	atomic_fetch_add_explicit(&a->stats->closed[why], 1, memory_order_relaxed);
	shutdown(c->fd, SHUT_RDWR);
	log_msg(LOG_DEBUG, "closed a connection: %s", close_reason_names[why]);
}

struct admission *
admission_new(const struct admission_limits *limits, struct admission_stats *stats)
{
	struct admission *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->limits = *limits;
	a->stats = stats;
	return a;
}

void
admission_free(struct admission *a)
{
	free(a);
}

int
admission_make_room(struct admission *a)
{
	if (a->count < a->limits.connections)
		return 1;
	if (a->waiting.head == NULL)
		return 0;
	cut(a, a->waiting.head, CLOSE_EVICTED_IDLE);
	return 1;
}

struct admitted *
admission_opened(struct admission *a, int fd)
{
	struct admitted *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->fd = fd;
	c->state = ADMITTED_WAITING;
	c->since_ms = clock_ms();
	list_append(&a->waiting, c);
	a->count++;
	atomic_fetch_add_explicit(&a->stats->open, 1, memory_order_relaxed);
	return c;
}

void
admission_closed(struct admission *a, struct admitted *c)
{
	if (c == NULL)
		return;
	if (c->state != ADMITTED_CLOSING) {
		list_remove(c);
		release_held(a, c);
		a->count--;
	}
	atomic_fetch_sub_explicit(&a->stats->open, 1, memory_order_relaxed);
	free(c);
}

void
admission_busy(struct admission *a, struct admitted *c)
{
	(void)a;
	if (c == NULL || c->state != ADMITTED_WAITING)
		return;
	list_remove(c);
	c->state = ADMITTED_BUSY;
}

unsigned int
admission_hold(struct admission *a, struct admitted *c, size_t bytes)
{
	unsigned int cut_count = 0;

	if (c == NULL || c->state == ADMITTED_CLOSING)
		return 0;
	list_remove(c);
	release_held(a, c);
	c->state = ADMITTED_BUSY;
	c->held = bytes;
	a->held += bytes;
	atomic_fetch_add_explicit(&a->stats->held, bytes, memory_order_relaxed);
	list_append(&a->holding, c);
	while (a->held > a->limits.held_bytes && a->holding.head != c) {
		cut(a, a->holding.head, CLOSE_SLOW_READER);
		cut_count++;
	}
	return cut_count;
}

void
admission_done(struct admission *a, struct admitted *c)
{
	if (c == NULL || c->state == ADMITTED_CLOSING)
		return;
	list_remove(c);
	release_held(a, c);
	c->state = ADMITTED_WAITING;
	c->since_ms = clock_ms();
	list_append(&a->waiting, c);
}

long
admission_expire(struct admission *a)
{
	long long now = clock_ms();
	struct admitted *c;

	while ((c = a->waiting.head) != NULL && now - c->since_ms >= a->limits.read_timeout_ms)
		cut(a, c, CLOSE_READ_DEADLINE);
	return c != NULL ? (long)(c->since_ms + a->limits.read_timeout_ms - now) : -1;
}
