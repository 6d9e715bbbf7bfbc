/* libmicrohttpd answers whose body is made of pieces (the stored objects between fixed text). */
#ifndef COMMON_RESPONSE_H
#define COMMON_RESPONSE_H

#include <stddef.h>

#include <microhttpd.h>

/*
 * A body made of count pieces (parts is read here; the bytes it points to must
 * stay valid until done(done_arg) runs, which is always called exactly once,
 * also on failure; done may be NULL). Small bodies are copied into one buffer
 * at once, larger ones are sent from the pieces. Returns NULL when memory runs
 * out; *size is the body length.
 */
struct MHD_Response *response_from_parts(const struct MHD_IoVec *parts, unsigned int count,
                                         void (*done)(void *), void *done_arg, size_t *size);

#endif
