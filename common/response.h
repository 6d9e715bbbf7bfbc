/*
 * The answer a handler sets: a status and a body (static, taken over, an
 * error text, or made of pieces sent without copying them), its Content-Type
 * and what the caller learned of its upstream. The server sends it with the
 * headers every answer carries (http_server.c).
 */
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

struct http_exchange; /* one request and its answer; owned by the server (http_server.h) */

/* Overrides the answer's Content-Type (application/json otherwise); borrowed, must be static. */
void http_set_content_type(struct http_exchange *ex, const char *content_type);

/*
 * Records which responder task and version gave what this answer holds, for
 * the X-Upstream-Served-By and X-Upstream-Version headers and the log line;
 * either may be "" for unknown. Both are copied; call before the answer is set.
 */
void http_set_upstream(struct http_exchange *ex, const char *served_by, const char *version);

/*
 * Sets the answer to the body made of count pieces (at most HTTP_PARTS_MAX;
 * parts is read here, the bytes it points to must stay valid until
 * done(done_arg) runs). done, when not NULL, runs exactly once: when the
 * answer has been sent or dropped, or at once when memory runs out.
 */
void http_reply_parts(struct http_exchange *ex, unsigned int status, const struct http_part *parts,
                      unsigned int count, void (*done)(void *), void *done_arg);

/* Sets the answer to a body the exchange takes over (freed with free()). */
void http_reply_take(struct http_exchange *ex, unsigned int status, char *body, size_t len);

/* Sets the answer to a static body that outlives the server (not copied). */
void http_reply_static(struct http_exchange *ex, unsigned int status, const char *body);

/* Sets the answer to {"error":"<message>"}. */
void http_reply_error(struct http_exchange *ex, unsigned int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
