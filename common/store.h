/*
 * The in-memory store behind POST /data and GET /data.
 *
 * Objects are kept as their compact JSON text, joined by commas, in one region
 * reserved at start-up that never moves. Bytes before the published length are
 * never written again, so readers take a snapshot (pointer and length) without
 * a lock and serve it without copying or re-encoding anything, while writers
 * append behind them.
 */
#ifndef COMMON_STORE_H
#define COMMON_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct store {
	char *base;           /* reserved region of max_bytes; owned by the store */
	size_t max_items;     /* STORE_MAX_ITEMS */
	size_t max_bytes;     /* STORE_MAX_BYTES: objects plus the commas between them */
	pthread_mutex_t lock; /* serializes writers; readers never take it */
	_Atomic size_t len;   /* published bytes */
	_Atomic size_t items; /* published objects */
};

enum store_result {
	STORE_OK = 0,
	STORE_FULL_ITEMS, /* STORE_MAX_ITEMS reached */
	STORE_FULL_BYTES, /* the object does not fit in STORE_MAX_BYTES */
};

/* Reserves the region; returns 0, or -1 with errno set when it cannot be reserved. */
int store_init(struct store *s, size_t max_items, size_t max_bytes);

/* Appends the JSON text of one object (copied). Safe to call from any thread. */
enum store_result store_append(struct store *s, const char *json, size_t len);

/*
 * Gives the comma-joined objects, oldest first, as they are now. The bytes stay
 * valid and unchanged until store_destroy(); the store keeps ownership.
 */
void store_snapshot(struct store *s, const char **data, size_t *len, size_t *items);

/* Releases the region; no snapshot may be used afterwards. */
void store_destroy(struct store *s);

#endif
