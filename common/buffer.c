/* A growable byte buffer with a hard maximum (the idea of curl's dynbuf). */
#include "buffer.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
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

enum buffer_result
buffer_reserve(struct buffer *b, size_t n)
{
	char *grown;

	if (n > b->max - b->len)
		return BUFFER_TOO_LARGE;
	if (b->len + n <= b->cap)
		return BUFFER_OK;
	grown = realloc(b->data, b->len + n);
	if (grown == NULL)
		return BUFFER_NO_MEMORY;
	b->data = grown;
	b->cap = b->len + n;
	return BUFFER_OK;
}

void
buffer_adopt(struct buffer *b, char *data, size_t cap)
{
	assert(b->data == NULL && b->len == 0 && data != NULL);
	b->data = data;
	b->cap = cap;
}

enum buffer_result
buffer_vprintf(struct buffer *b, const char *fmt, va_list ap)
{
	char small[512], *text = small;
	enum buffer_result rc;
	va_list again;
	int n;

	va_copy(again, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	if (n < 0) {
		rc = BUFFER_NO_MEMORY;
		goto out;
	}
	if ((size_t)n >= sizeof(small)) {
		rc = BUFFER_TOO_LARGE;
		if ((size_t)n > b->max - b->len)
			goto out;
		/* Longer text is formatted again where it fits. */
		rc = BUFFER_NO_MEMORY;
		text = malloc((size_t)n + 1);
		if (text == NULL)
			goto out;
		vsnprintf(text, (size_t)n + 1, fmt, again);
	}
	rc = buffer_append(b, text, (size_t)n);
out:
	va_end(again);
	if (text != small)
		free(text);
	return rc;
}

enum buffer_result
buffer_printf(struct buffer *b, const char *fmt, ...)
{
	enum buffer_result rc;
	va_list ap;

	va_start(ap, fmt);
	rc = buffer_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
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
