/* The append-only object store: one reserved region, lock-free readers. */
#include "store.h"

#include <string.h>
#include <sys/mman.h>

int
store_init(struct store *s, size_t max_items, size_t max_bytes)
{
	void *base;

	/*
	 * Reserve address space only: pages cost memory when first written, so a
	 * large STORE_MAX_BYTES costs nothing until objects arrive, and the
	 * region never has to move (which is what lets readers skip the lock).
	 */
	base = mmap(NULL, max_bytes, PROT_READ | PROT_WRITE,
	            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		return -1;
	s->base = base;
	s->max_items = max_items;
	s->max_bytes = max_bytes;
	atomic_init(&s->len, 0);
	atomic_init(&s->items, 0);
	pthread_mutex_init(&s->lock, NULL);
	return 0;
}

enum store_result
store_append(struct store *s, const char *json, size_t len)
{
	enum store_result result = STORE_OK;
	size_t used, items, need;

	pthread_mutex_lock(&s->lock);
	used = atomic_load_explicit(&s->len, memory_order_relaxed);
	items = atomic_load_explicit(&s->items, memory_order_relaxed);
	need = len + (items > 0 ? 1 : 0);
	if (items >= s->max_items) {
		result = STORE_FULL_ITEMS;
		goto out;
	}
	if (need > s->max_bytes - used) {
		result = STORE_FULL_BYTES;
		goto out;
	}
	if (items > 0)
		s->base[used] = ',';
	memcpy(s->base + used + need - len, json, len);
	/* Release: a reader that sees the new length also sees the bytes. */
	atomic_store_explicit(&s->len, used + need, memory_order_release);
	atomic_store_explicit(&s->items, items + 1, memory_order_release);
out:
	pthread_mutex_unlock(&s->lock);
	return result;
}

void
store_snapshot(struct store *s, const char **data, size_t *len, size_t *items)
{
	*data = s->base;
	*len = atomic_load_explicit(&s->len, memory_order_acquire);
	if (items != NULL)
		*items = atomic_load_explicit(&s->items, memory_order_acquire);
}

void
store_destroy(struct store *s)
{
	if (s->base != NULL)
		munmap(s->base, s->max_bytes);
	s->base = NULL;
	pthread_mutex_destroy(&s->lock);
}
