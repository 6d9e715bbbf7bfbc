/* Token buckets in an open-addressed table, one lock, bounded in size. */
#include "rate_limit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define CLIENT_KEY_MAX 64 /* an IPv6 address in text is at most 45 bytes */

struct bucket {
	char client[CLIENT_KEY_MAX]; /* "" for a free slot */
	double tokens;
	double updated; /* when tokens was last brought up to date */
};

struct rate_limiter {
	pthread_mutex_t lock;
	double rps;
	double burst;
	size_t max_clients;
	size_t used;
	size_t slots; /* a power of two, at least twice max_clients */
	struct bucket *table;
};

/* FNV-1a: fast, and good enough to spread addresses. */
static size_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

struct rate_limiter *
rate_limit_new(double rps, double burst, size_t max_clients)
{
	struct rate_limiter *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->rps = rps;
	l->burst = burst;
	l->max_clients = max_clients;
	l->slots = 16;
	while (l->slots < 2 * max_clients)
		l->slots *= 2;
	l->table = calloc(l->slots, sizeof(*l->table));
	if (l->table == NULL) {
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->lock, NULL);
	return l;
}

/* Brings a bucket's tokens up to now; a bucket that is full again says nothing a new one would not.
 */
static void
refill(const struct rate_limiter *l, struct bucket *b, double now)
{
	if (now > b->updated) {
		b->tokens += (now - b->updated) * l->rps;
		if (b->tokens > l->burst)
			b->tokens = l->burst;
		b->updated = now;
	}
}

/* Rebuilds the table without the buckets that are full again; returns how many remain. */
static size_t
sweep(struct rate_limiter *l, double now)
{
	struct bucket *old = l->table, *fresh = calloc(l->slots, sizeof(*fresh));
	size_t i, j;

	if (fresh == NULL)
		return l->used;
	l->used = 0;
	for (i = 0; i < l->slots; i++) {
		if (old[i].client[0] == '\0')
			continue;
		refill(l, &old[i], now);
		if (old[i].tokens >= l->burst)
			continue;
		for (j = hash(old[i].client) & (l->slots - 1); fresh[j].client[0] != '\0';
		     j = (j + 1) & (l->slots - 1))
			;
		fresh[j] = old[i];
		l->used++;
	}
	l->table = fresh;
	free(old);
	return l->used;
}

int
rate_limit_take(struct rate_limiter *l, const char *client, double now, double *retry_after)
{
	struct bucket *b;
	size_t i;
	int allowed;

	pthread_mutex_lock(&l->lock);
	for (i = hash(client) & (l->slots - 1);
	     l->table[i].client[0] != '\0' &&
	     strncmp(l->table[i].client, client, CLIENT_KEY_MAX - 1) != 0;
	     i = (i + 1) & (l->slots - 1))
		;
	b = &l->table[i];
	if (b->client[0] == '\0') {
		if (l->used >= l->max_clients && sweep(l, now) >= l->max_clients) {
			/*
			 * Every tracked client is still limited: forget them all rather
			 * than grow. Failing open for a moment beats unbounded memory.
			 */
			log_msg(LOG_WARN,
			        "rate limiter tracks %zu clients, its maximum: starting over",
			        l->used);
			memset(l->table, 0, l->slots * sizeof(*l->table));
			l->used = 0;
		}
		for (i = hash(client) & (l->slots - 1); l->table[i].client[0] != '\0';
		     i = (i + 1) & (l->slots - 1))
			;
		b = &l->table[i];
		strncpy(b->client, client, CLIENT_KEY_MAX - 1);
		b->tokens = l->burst;
		b->updated = now;
		l->used++;
	}
	refill(l, b, now);
	allowed = b->tokens >= 1.0;
	if (allowed)
		b->tokens -= 1.0;
	else
		*retry_after = (1.0 - b->tokens) / l->rps;
	pthread_mutex_unlock(&l->lock);
	return allowed;
}

void
rate_limit_free(struct rate_limiter *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->table);
	free(l);
}
