/*
 * The answer an exchange holds until it is queued: shared by the two files
 * that see libmicrohttpd, http_server.c (which sends it) and response.c
 * (which sets it). Handlers use response.h instead.
 */
#ifndef COMMON_HTTP_ANSWER_H
#define COMMON_HTTP_ANSWER_H

#include <stddef.h>

#include "app_version.h"
#include "served_by.h"

struct MHD_Response;
struct http_exchange;
struct http_part; /* response.h */

struct http_answer {
	unsigned int status;                    /* 0 until set */
	struct MHD_Response *response;          /* owned until queued */
	size_t bytes;                           /* the body's length, for the log */
	const char *content_type;               /* NULL for application/json; borrowed */
	int queued;                             /* logged, counted and handed to libmicrohttpd */
	char upstream_served_by[SERVED_BY_MAX]; /* "" unless http_set_upstream() */
	char upstream_version[APP_VERSION_MAX + 1];
};

/* The answer ex holds (http_server.c); borrowed from the exchange. */
struct http_answer *http_exchange_answer(struct http_exchange *ex);

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
