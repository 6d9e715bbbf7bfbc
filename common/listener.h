/* The listening socket the server threads share, and the descriptors serving needs. */
#ifndef COMMON_LISTENER_H
#define COMMON_LISTENER_H

/*
 * Opens the listening socket every thread accepts from: IPv6 and IPv4 where
 * the host has IPv6, IPv4 alone where it does not. Returns it, or -1 after
 * logging why.
 */
int listener_open(unsigned int port);

/*
 * Makes sure the process may open the descriptors its limits allow: two per
 * connection (one kept, one drained after a refusal) and each thread's own.
 * Raises the soft RLIMIT_NOFILE up to the hard one when it must; when even
 * that is short, logs that past it new connections are closed at once.
 */
void listener_reserve_descriptors(unsigned int connection_limit, unsigned int threads);

#endif
