/* A growable byte buffer with a hard maximum, so no input can make it grow without bound. */
#ifndef COMMON_BUFFER_H
#define COMMON_BUFFER_H

#include <stdarg.h>
#include <stddef.h>

struct buffer {
	char *data; /* owned by the buffer; NULL until the first append */
	size_t len; /* bytes in use */
	size_t cap; /* bytes allocated */
	size_t max; /* len never exceeds this */
};

enum buffer_result {
	BUFFER_OK = 0,
	BUFFER_TOO_LARGE, /* the append would pass the maximum; nothing was appended */
	BUFFER_NO_MEMORY,
};

/* Prepares an empty buffer that will refuse to hold more than max bytes. */
void buffer_init(struct buffer *b, size_t max);

/* Appends n bytes from p; on failure the buffer is left as it was. */
enum buffer_result buffer_append(struct buffer *b, const void *p, size_t n);

/*
 * Makes room for n more bytes in one allocation of exactly what is needed, so
 * that appending a body of known length copies it once instead of growing by
 * doubling (a copy per step). BUFFER_TOO_LARGE, with nothing changed, when
 * len + n would pass the maximum; the buffer is unchanged on failure.
 */
enum buffer_result buffer_reserve(struct buffer *b, size_t n);

/*
 * Appends printf-style text (without a terminating NUL); on failure the
 * buffer is left as it was.
 */
enum buffer_result buffer_printf(struct buffer *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The same as buffer_printf(), for callers that already hold a va_list. */
enum buffer_result buffer_vprintf(struct buffer *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/*
 * Gives an empty buffer (nothing allocated yet) data, an allocation of cap
 * bytes made with malloc(), to fill: the buffer owns it from now on. It lets
 * a large allocation kept from an earlier use be filled again without fresh
 * pages.
 */
void buffer_adopt(struct buffer *b, char *data, size_t cap);

/* Hands the data to the caller, who frees it with free(); the buffer is left empty. */
char *buffer_steal(struct buffer *b, size_t *len);

/* Frees the data and leaves the buffer empty and reusable. */
void buffer_free(struct buffer *b);

#endif
