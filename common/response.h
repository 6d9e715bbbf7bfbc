/* Answers whose body is made of pieces (the stored objects between fixed text). */
#ifndef COMMON_RESPONSE_H
#define COMMON_RESPONSE_H

#include <stddef.h>

/* Most pieces one answer is given in. */
#define HTTP_PARTS_MAX 8

/* One piece of an answer's body. */
struct http_part {
	const void *base;
	size_t len;
};

struct MHD_Response; /* only the server's own files see inside */

/*
 * A body made of count pieces, at most HTTP_PARTS_MAX (parts is read here;
 * the bytes it points to must stay valid until done(done_arg) runs, which is
 * always called exactly once, also on failure; done may be NULL). Small
 * bodies are copied into one buffer at once, larger ones are sent from the
 * pieces. Returns NULL when memory runs out; *size is the body length.
 */
struct MHD_Response *response_from_parts(const struct http_part *parts, unsigned int count,
                                         void (*done)(void *), void *done_arg, size_t *size);

#endif
