/* Answers built from pieces: copied into one buffer when small, sent from the pieces when large. */
#include "response.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

/*
 * Bodies up to this size are sent from one copy: libmicrohttpd 0.9.75 sends a
 * body made of pieces in a second write after the headers, which costs a
 * system call and wakes the client twice; past this size copying costs more.
 */
#define COPY_BODY_MAX_BYTES (64 * 1024)

struct MHD_Response *
response_from_parts(const struct http_part *parts, unsigned int count, void (*done)(void *),
                    void *done_arg, size_t *size)
{
	struct MHD_IoVec pieces[HTTP_PARTS_MAX];
	struct MHD_Response *r = NULL;
	size_t total = 0, at = 0;
	unsigned int i;
	char *copy;

	assert(count <= HTTP_PARTS_MAX);
	for (i = 0; i < count; i++)
		total += parts[i].len;
	*size = total;
	if (total > COPY_BODY_MAX_BYTES) {
		for (i = 0; i < count; i++)
			pieces[i] = (struct MHD_IoVec){parts[i].base, parts[i].len};
		r = MHD_create_response_from_iovec(pieces, count, done, done_arg);
		if (r == NULL && done != NULL)
			done(done_arg);
		return r;
	}
	copy = malloc(total > 0 ? total : 1);
	if (copy != NULL) {
		for (i = 0; i < count; i++) {
			memcpy(copy + at, parts[i].base, parts[i].len);
			at += parts[i].len;
		}
		r = MHD_create_response_from_buffer(total, copy, MHD_RESPMEM_MUST_FREE);
		if (r == NULL)
			free(copy);
	}
	if (done != NULL)
		done(done_arg);
	return r;
}
