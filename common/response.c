/* Setting an answer; bodies from pieces are copied into one buffer when small, sent from the pieces
 * when large. */
#include "response.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "http_answer.h"
#include "json_escape.h"

/*
 * Bodies up to this size are sent from one copy: libmicrohttpd 0.9.75 sends a
 * body made of pieces in a second write after the headers, which costs a
 * system call and wakes the client twice; past this size copying costs more.
 */
#define COPY_BODY_MAX_BYTES (64 * 1024)

/* The longest error text an error answer keeps. */
#define ERROR_BODY_MAX 1024

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

void
http_set_content_type(struct http_exchange *ex, const char *content_type)
{
	http_exchange_answer(ex)->content_type = content_type;
}

void
http_set_upstream(struct http_exchange *ex, const char *served_by, const char *version)
{
	struct http_answer *a = http_exchange_answer(ex);

	snprintf(a->upstream_served_by, sizeof(a->upstream_served_by), "%s", served_by);
	snprintf(a->upstream_version, sizeof(a->upstream_version), "%s", version);
}

/* Sets the answer; steals the reference to response. size is the body length for the log. */
static void
reply(struct http_exchange *ex, unsigned int status, struct MHD_Response *response, size_t size)
{
	struct http_answer *a = http_exchange_answer(ex);

	assert(!a->queued); /* an answer already queued cannot be changed */
	if (a->response != NULL)
		MHD_destroy_response(a->response);
	a->status = status;
	a->response = response;
	a->bytes = size;
}

void
http_reply_parts(struct http_exchange *ex, unsigned int status, const struct http_part *parts,
                 unsigned int count, void (*done)(void *), void *done_arg)
{
	struct MHD_Response *r;
	size_t size;

	r = response_from_parts(parts, count, done, done_arg, &size);
	reply(ex, status, r, size);
}

void
http_reply_take(struct http_exchange *ex, unsigned int status, char *body, size_t len)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL)
		free(body);
	reply(ex, status, r, len);
}

void
http_reply_static(struct http_exchange *ex, unsigned int status, const char *body)
{
	size_t len = strlen(body);

	reply(ex, status,
	      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT), len);
}

void
http_reply_error(struct http_exchange *ex, unsigned int status, const char *fmt, ...)
{
	char message[ERROR_BODY_MAX], body[ERROR_BODY_MAX * 2];
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	len = (size_t)snprintf(body, sizeof(body), "{\"error\":\"");
	len = json_escape(body, sizeof(body) - 2, len, message);
	memcpy(body + len, "\"}", 3);
	len += 2;
	reply(ex, status, MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY), len);
}
