/* Connections per client address: a small hash table under one lock, touched at open and close. */
#include "address_limit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

/* The most addresses CONNECTION_LIMIT_EXEMPT may list. */
#define EXEMPT_MAX 16

struct address_count {
	struct address_count *next;
	unsigned char addr[16];
	unsigned int count;
};

/* The addresses whose hash falls in one slot of the table. */
struct bucket {
	struct address_count *head;
};

struct address_limit {
	pthread_mutex_t lock; /* guards buckets */
	struct bucket *buckets;
	size_t mask; /* bucket count - 1 */
	unsigned int per_address;
	unsigned char exempt[EXEMPT_MAX][16];
	size_t exempt_count;
};

/* Parses one address of a list into 16 bytes (IPv4 mapped into IPv6); returns 0 or -1. */
static int
address_parse(const char *text, size_t len, unsigned char out[16])
{
	char buf[INET6_ADDRSTRLEN];
	struct in_addr v4;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET6, buf, out) == 1)
		return 0;
	if (inet_pton(AF_INET, buf, &v4) != 1)
		return -1;
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, &v4, 4);
	return 0;
}

/* Walks a comma-separated list, storing up to EXEMPT_MAX addresses when l is not NULL. */
static int
address_list_parse(const char *list, struct address_limit *l)
{
	unsigned char addr[16];
	size_t n = 0, len;

	while (list != NULL && *list != '\0') {
		len = strcspn(list, ",");
		if (address_parse(list, len, addr) < 0 || n >= EXEMPT_MAX)
			return -1;
		if (l != NULL)
			memcpy(l->exempt[n], addr, 16);
		n++;
		list += len;
		if (*list == ',')
			list++;
	}
	if (l != NULL)
		l->exempt_count = n;
	return 0;
}

int
address_list_check(const char *list)
{
	return address_list_parse(list, NULL);
}

struct address_limit *
address_limit_new(unsigned int per_address, const char *exempt, unsigned int capacity)
{
	struct address_limit *l = calloc(1, sizeof(*l));
	size_t buckets = 64;

	if (l == NULL)
		return NULL;
	while (buckets < capacity && buckets < ((size_t)1 << 20))
		buckets <<= 1;
	l->buckets = calloc(buckets, sizeof(*l->buckets));
	if (l->buckets == NULL || address_list_parse(exempt, l) < 0) {
		free(l->buckets);
		free(l);
		return NULL;
	}
	l->mask = buckets - 1;
	l->per_address = per_address;
	pthread_mutex_init(&l->lock, NULL);
	return l;
}

void
address_limit_free(struct address_limit *l)
{
	struct address_count *e, *next;
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i <= l->mask; i++)
		for (e = l->buckets[i].head; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	pthread_mutex_destroy(&l->lock);
	free(l->buckets);
	free(l);
}

/* FNV-1a over the address bytes. */
static size_t
address_hash(const unsigned char addr[16])
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	return h;
}

/* The 16-byte form of a peer address; returns 0, or -1 for a family that has none. */
static int
address_of(const struct sockaddr *sa, unsigned char out[16])
{
	if (sa != NULL && sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return 0;
	}
	if (sa != NULL && sa->sa_family == AF_INET) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 0;
	}
	return -1;
}

int
address_limit_take(struct address_limit *l, const struct sockaddr *sa, struct address_key *key)
{
	struct address_count **slot, *e;
	size_t i;
	int result = 0;

	key->counted = 0;
	if (l->per_address == 0 || address_of(sa, key->addr) < 0)
		return 0;
	for (i = 0; i < l->exempt_count; i++)
		if (memcmp(l->exempt[i], key->addr, 16) == 0)
			return 0;
	pthread_mutex_lock(&l->lock);
	slot = &l->buckets[address_hash(key->addr) & l->mask].head;
	for (e = *slot; e != NULL && memcmp(e->addr, key->addr, 16) != 0; e = e->next)
		;
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e != NULL) {
			memcpy(e->addr, key->addr, 16);
			e->next = *slot;
			*slot = e;
		}
	}
	/* Without memory to count it, the connection is let in uncounted. */
	if (e != NULL && e->count >= l->per_address) {
		result = -1;
	} else if (e != NULL) {
		e->count++;
		key->counted = 1;
	}
	pthread_mutex_unlock(&l->lock);
	return result;
}

void
address_limit_release(struct address_limit *l, const struct address_key *key)
{
	struct address_count **slot, *e;

	if (!key->counted)
		return;
	pthread_mutex_lock(&l->lock);
	slot = &l->buckets[address_hash(key->addr) & l->mask].head;
	while ((e = *slot) != NULL && memcmp(e->addr, key->addr, 16) != 0)
		slot = &e->next;
	if (e != NULL && --e->count == 0) {
		*slot = e->next;
		free(e);
	}
	pthread_mutex_unlock(&l->lock);
}
