/*
 * A deadline for reading each request. libmicrohttpd's connection timeout
 * counts idle time, so a client that sends one byte a second would hold a
 * connection for ever. Here a connection must deliver a whole request
 * (headers and body) within REQUEST_READ_TIMEOUT_S of opening or of its
 * previous answer; a watcher thread shuts down those that do not, and
 * libmicrohttpd then closes them as it would any broken connection.
 */
#ifndef COMMON_READ_DEADLINE_H
#define COMMON_READ_DEADLINE_H

#include <stdatomic.h>

struct read_deadline;
struct read_clock; /* one connection's state */

/* Starts the watcher; returns NULL when it cannot. */
struct read_deadline *read_deadline_start(unsigned int timeout_s);

/* Stops the watcher and frees it; every connection must have been closed. */
void read_deadline_stop(struct read_deadline *d);

/* A connection opened on socket fd: returns its state (NULL when memory ran out). */
struct read_clock *read_deadline_opened(struct read_deadline *d, int fd);

/* The connection is closing: forget it. Must be called before its socket is closed. */
void read_deadline_closed(struct read_deadline *d, struct read_clock *c);

/* The connection's request is fully read (reading 0) or it awaits the next one (reading 1). */
void read_clock_set(struct read_clock *c, int reading);

/* How many connections the watcher has shut down. */
unsigned long long read_deadline_expired(const struct read_deadline *d);

#endif
