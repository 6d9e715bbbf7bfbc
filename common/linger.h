/*
 * Lingering close: a connection refused before its request was read (413 by
 * Content-Length, 415, 429, a refusal at accept) still has bytes on the way.
 * Closing it at once would make the kernel answer them with a reset, which
 * destroys the refusal before a client that sends its whole body first has
 * read it. So the socket is half-closed (the answer is followed by a FIN) and
 * what the client still sends is read and dropped, for REFUSAL_DRAIN_MS and
 * REFUSAL_DRAIN_BYTES at most, before it is closed.
 *
 * A set belongs to one server thread, whose epoll instance watches its sockets.
 */
#ifndef COMMON_LINGER_H
#define COMMON_LINGER_H

#include <stddef.h>

struct linger_set;
struct lingering; /* one socket being drained */

/*
 * Makes a set that drains at most max sockets at once (past it the oldest is
 * closed), each for drain_ms and drain_bytes at most, watched by epoll_fd
 * (borrowed). NULL when memory ran out.
 */
struct linger_set *linger_new(int epoll_fd, unsigned int max, long long drain_ms,
                              size_t drain_bytes);

/* Closes every socket still draining and frees the set. */
void linger_free(struct linger_set *set);

/* Takes fd over: half-closes it and drains it. Returns 0, or -1 when fd was closed at once. */
int linger_start(struct linger_set *set, int fd);

/* The epoll event for a draining socket (its data.ptr) fired: reads what is there. */
void linger_ready(struct linger_set *set, struct lingering *l);

/* Closes the sockets whose time is up; returns ms until the next is due, or -1. */
long linger_expire(struct linger_set *set);

#endif
