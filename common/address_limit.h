/*
 * CONNECTION_LIMIT_PER_ADDRESS: how many connections one client address may
 * hold at once, shared by every server thread, so that one address cannot take
 * every slot. Addresses in CONNECTION_LIMIT_EXEMPT (the task's own Service
 * Connect proxy and health check) are not counted. An IPv4 client reaching an
 * IPv6 socket (::ffff:a.b.c.d) counts as its IPv4 address.
 */
#ifndef COMMON_ADDRESS_LIMIT_H
#define COMMON_ADDRESS_LIMIT_H

#include <sys/socket.h>

struct address_limit;

/* One connection's place in the count, kept from address_limit_take() to _release(). */
struct address_key {
	unsigned char addr[16]; /* IPv6, or IPv4 mapped into IPv6 */
	int counted;            /* 0 for an exempt or unknown address */
};

/*
 * Makes the counter: per_address connections at most from one address (0: no
 * limit), exempt a comma-separated list of IPv4 or IPv6 addresses, capacity
 * the most connections ever open (sizes the table). NULL when memory ran out
 * or exempt names something that is not an address.
 */
struct address_limit *address_limit_new(unsigned int per_address, const char *exempt,
                                        unsigned int capacity);

void address_limit_free(struct address_limit *l);

/* Checks that list is a comma-separated list of IPv4 or IPv6 addresses; returns 0 or -1. */
int address_list_check(const char *list);

/*
 * Counts one more connection from sa into *key; returns 0, or -1 when the
 * address already holds its limit (nothing is counted then).
 */
int address_limit_take(struct address_limit *l, const struct sockaddr *sa, struct address_key *key);

/* The connection counted in key has closed. */
void address_limit_release(struct address_limit *l, const struct address_key *key);

#endif
