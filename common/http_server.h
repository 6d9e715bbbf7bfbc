/*
 * The HTTP server both daemons run: one event loop per server thread, each
 * with its own libmicrohttpd daemon on the shared listening socket; routing by
 * path and method, bounded JSON request bodies, JSON answers with a request
 * id, one log line per request, and a drain on shutdown.
 */
#ifndef COMMON_HTTP_SERVER_H
#define COMMON_HTTP_SERVER_H

#include <stddef.h>

#include "config.h"
#include "http_rules.h"
#include "metrics.h"
#include "response.h"
#include "tls_server.h"
#include "trace.h"
#include "xray.h"

struct http_server;
struct http_exchange; /* one request and its answer; owned by the server */

/*
 * Work a daemon adds to every server thread's event loop (the caller's calls
 * to the responder), so that a request and the I/O it waits for are handled by
 * one thread, with nothing handed between threads.
 */
struct http_loop {
	/* Before the thread starts: gives its state (NULL on failure) and in *fd what to wait on.
	 */
	void *(*attach)(void *arg, int *fd);
	/* On the thread after every wait (ready: fd was readable); returns ms until due, or -1. */
	long (*run)(void *state, int ready);
	/* On the thread, once, at shutdown: ends all work in flight, answering every held request.
	 */
	void (*abort)(void *state);
	/* After the thread has ended: frees the state. */
	void (*detach)(void *state);
	void *arg; /* passed to attach; borrowed */
};

/*
 * Starts serving routes (borrowed: they must outlive the server) on cfg->port,
 * over TLS when tls is not NULL, with loop's work in every server thread when
 * loop is not NULL, its request metrics registered with registry, each
 * sampled request's X-Ray segment sent by tracer when it is not NULL (tls,
 * loop, registry and tracer borrowed: they must outlive the server). Returns
 * NULL after logging why it failed.
 */
struct http_server *http_server_start(const struct server_config *cfg, struct tls_server *tls,
                                      const struct http_route *routes, size_t route_count,
                                      const struct http_loop *loop, struct metrics *registry,
                                      struct xray *tracer);

/*
 * Stops accepting connections and waits up to timeout_ms for requests in
 * flight to finish; later answers close their connections. Returns how many
 * requests are still in flight.
 */
unsigned int http_server_drain(struct http_server *s, unsigned int timeout_ms);

/*
 * Has every server thread end its loop's work in flight (http_loop.abort), then
 * waits up to flush_ms for the answers that gave to be sent. Returns how many
 * requests are still in flight. Call after http_server_drain().
 */
unsigned int http_server_abort(struct http_server *s, unsigned int flush_ms);

/* Stops the server threads, closes every connection and frees the server. */
void http_server_stop(struct http_server *s);

/* The request body received so far (POST); borrowed from the exchange. */
const char *http_body(const struct http_exchange *ex, size_t *len);

/* The request id (from X-Request-Id when it is sane, otherwise generated); borrowed. */
const char *http_request_id(const struct http_exchange *ex);

/* The state http_loop.attach gave the thread serving the request; NULL without a loop. */
void *http_loop_state(const struct http_exchange *ex);

/* The request's trace context (this hop's span); borrowed. */
const struct trace *http_trace(const struct http_exchange *ex);

/*
 * Records the call the request made to another service (copied), for its
 * trace: with X-Ray on, it becomes the subsegment of the request's segment.
 */
void http_trace_call(struct http_exchange *ex, const struct trace_call *call);

/* Holds the request without an answer until http_resume(); call only from a handler. */
void http_suspend(struct http_exchange *ex);

/*
 * Sends the answer set since http_suspend(), once, from the thread serving the
 * request: its handler, or its thread's http_loop work.
 */
void http_resume(struct http_exchange *ex);

#endif
