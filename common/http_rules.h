/*
 * What a daemon serves and the rules the server applies before a handler
 * runs: the route table, which handler answers a method, the request id it
 * accepts, the content type a POST needs, the client a rate limit counts,
 * and the path as decoded. Pure functions over text, with no HTTP library.
 */
#ifndef COMMON_HTTP_RULES_H
#define COMMON_HTTP_RULES_H

#include <stddef.h>
#include <sys/socket.h>

struct http_exchange; /* one request and its answer; owned by the server (http_server.h) */

/*
 * Answers one request. A handler either sets the answer with one of the
 * http_reply functions before it returns, or calls http_suspend() and sets it
 * later, from its thread's http_loop work, before calling http_resume().
 */
typedef void (*http_handler)(struct http_exchange *ex, void *arg);

struct http_route {
	const char *path;
	http_handler get;  /* answers GET and HEAD; NULL when the path has none */
	http_handler post; /* answers POST with a JSON body; NULL when the path has none */
	void *arg;         /* passed to the handlers; borrowed */
	int rate_limited;  /* 1: POST is subject to RATE_LIMIT_RPS per client */
};

/* The route whose path is exactly path (already decoded), or NULL. */
const struct http_route *http_route_find(const struct http_route *routes, size_t count,
                                         const char *path);

/* The handler for method on route: get for GET and HEAD, post for POST; NULL otherwise. */
http_handler http_route_handler(const struct http_route *route, const char *method);

/* The Allow header's value for route (static text). */
const char *http_route_allow(const struct http_route *route);

/*
 * 1 when a client's X-Request-Id (id, may be NULL) can be echoed and logged as
 * it is: 1 to max characters from A-Z a-z 0-9 . _ -.
 */
int http_request_id_is_sane(const char *id, size_t max);

/* 1 when a Content-Type value (may be NULL) is application/json, parameters allowed. */
int http_content_type_is_json(const char *value);

/*
 * Writes into key (size bytes) the client a rate limit counts: the last
 * address in forwarded_for (the X-Forwarded-For a trusted proxy added; NULL
 * when not trusted or absent), else the peer's address (may be NULL), else
 * "unknown".
 */
void http_client_key(const char *forwarded_for, const struct sockaddr *peer, char *key,
                     size_t size);

/*
 * Copies n bytes of src into dst (size bytes), cut to fit, and ends it with a
 * NUL: the bounded copy of the request path, where printf would cost more
 * than the request.
 */
void http_copy_bytes(char *dst, size_t size, const char *src, size_t n);

/*
 * Decodes %XX escapes in a path in place, except %00: a NUL would cut the
 * path short ("/data%00junk" would be served as "/data"), so it is left as
 * written and the path matches no route. Returns the new length.
 */
size_t http_path_unescape(char *path);

#endif
