/* A growable byte buffer with a hard maximum (the idea of curl's dynbuf). */
#include "buffer.h"

#include <stdlib.h>
#include <string.h>

#define BUFFER_MIN_CAP 256

void
buffer_init(struct buffer *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

enum buffer_result
buffer_append(struct buffer *b, const void *p, size_t n)
{
	size_t need, cap;
	char *grown;

	if (n > b->max - b->len)
		return BUFFER_TOO_LARGE;
	need = b->len + n;
	if (need > b->cap) {
		/* Double, so appends cost amortized O(1), but never past the maximum. */
		cap = b->cap < BUFFER_MIN_CAP ? BUFFER_MIN_CAP : b->cap;
		while (cap < need)
			cap = cap > b->max / 2 ? b->max : cap * 2;
		grown = realloc(b->data, cap);
		if (grown == NULL)
			return BUFFER_NO_MEMORY;
		b->data = grown;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len = need;
	return BUFFER_OK;
}

char *
buffer_steal(struct buffer *b, size_t *len)
{
	char *data = b->data;

	if (len != NULL)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return data;
}

void
buffer_free(struct buffer *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}
