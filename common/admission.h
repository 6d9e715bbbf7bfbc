/*
 * Which connections one server thread keeps, and which it closes first when
 * it runs short. Each connection is waiting (for its first request, for the
 * next one on a kept-alive connection, or for the rest of a request still
 * arriving), busy (its request is in and being answered), or closing. When the
 * thread is full, the connection that has waited longest gives way to a new
 * one, so idle, slowloris and slow-body clients can never starve a client with
 * a real request; a connection that waits longer than the read deadline is
 * closed; and when the answers held for slow readers pass the thread's share of
 * ANSWER_MEMORY_MAX_BYTES, the readers that have held theirs longest are cut
 * off. Closing is a shutdown(): libmicrohttpd then closes the socket as it
 * would any broken connection, and reports it with admission_closed().
 *
 * A table belongs to one server thread: every call for it comes from there.
 * Only the shared statistics are atomics.
 */
#ifndef COMMON_ADMISSION_H
#define COMMON_ADMISSION_H

#include <stdatomic.h>
#include <stddef.h>

/* Why the server closed a connection itself; /metrics counts each. */
enum close_reason {
	CLOSE_EVICTED_IDLE,         /* gave way to a new connection while waiting */
	CLOSE_PER_ADDRESS_LIMIT,    /* refused: its address had CONNECTION_LIMIT_PER_ADDRESS */
	CLOSE_OVER_LIMIT,           /* refused: CONNECTION_LIMIT reached, none could give way */
	CLOSE_READ_DEADLINE,        /* no whole request within REQUEST_READ_TIMEOUT_S */
	CLOSE_SLOW_READER,          /* its answer was held longest past ANSWER_MEMORY_MAX_BYTES */
	CLOSE_DRAINED_AFTER_REFUSAL /* refused before its request was read, then drained */
};
#define CLOSE_REASONS 6

/* The label /metrics gives each reason. */
extern const char *const close_reason_names[CLOSE_REASONS];

/* Figures for /metrics, shared by every thread's table. */
struct admission_stats {
	atomic_ullong closed[CLOSE_REASONS];
	atomic_uint open;        /* connections open, closing ones included */
	atomic_ullong held;      /* bytes of answers queued and not yet sent */
	unsigned int open_limit; /* CONNECTION_LIMIT */
	size_t held_limit;       /* ANSWER_MEMORY_MAX_BYTES */
};

/* One thread's share of the limits. */
struct admission_limits {
	unsigned int connections;
	size_t held_bytes;
	long long read_timeout_ms;
};

struct admission;
struct admitted; /* one connection in a table */

/* Makes an empty table that counts into stats (borrowed); NULL when memory ran out. */
struct admission *admission_new(const struct admission_limits *limits,
                                struct admission_stats *stats);

/* Frees the table; every connection must have been reported closed. */
void admission_free(struct admission *a);

/*
 * Makes room for one more connection: returns 1 when there is room (after
 * closing the connection that has waited longest, when the thread was full),
 * or 0 when every connection is busy and none can give way.
 */
int admission_make_room(struct admission *a);

/* A connection opened on socket fd, waiting for its request; NULL when memory ran out. */
struct admitted *admission_opened(struct admission *a, int fd);

/* The connection is closing (before its socket is closed): forgets it and frees c. */
void admission_closed(struct admission *a, struct admitted *c);

/* The whole request is in: the connection no longer waits, and no deadline applies. */
void admission_busy(struct admission *a, struct admitted *c);

/*
 * An answer of bytes is queued on c and held until admission_done(). When the
 * thread's held answers then pass its share, those held longest, other than
 * this one, are cut off; returns how many were.
 */
unsigned int admission_hold(struct admission *a, struct admitted *c, size_t bytes);

/* The request ended (answer sent, or the client left): c waits for the next one. */
void admission_done(struct admission *a, struct admitted *c);

/* Closes connections past the read deadline; returns ms until the next is due, or -1. */
long admission_expire(struct admission *a);

#endif
