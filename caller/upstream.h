/*
 * The caller's calls to the responder, made in the event loop of the server
 * thread that took the request: each thread has a libcurl multi handle driven
 * by its own sockets (curl_multi_socket_action), so a slow responder holds no
 * thread, nothing is handed between threads, and each thread keeps its
 * connections and DNS answers for its later calls. The circuit breaker, the
 * retry budget and the metrics are shared by all threads.
 */
#ifndef CALLER_UPSTREAM_H
#define CALLER_UPSTREAM_H

#include <stddef.h>

#include "../common/http_server.h"
#include "../common/metrics.h"
#include "../common/trace.h"
#include "judge.h"
#include "upstream_tls.h"

struct upstream_config {
	const char *base_url;              /* RESPONDER_URL, without a trailing slash; borrowed */
	long timeout_ms;                   /* UPSTREAM_TIMEOUT_MS: the whole call */
	long connect_timeout_ms;           /* UPSTREAM_CONNECT_TIMEOUT_MS */
	long dns_cache_s;                  /* UPSTREAM_DNS_CACHE_S */
	int connection_reuse;              /* UPSTREAM_CONNECTION_REUSE: 0, one connection a call */
	size_t max_bytes;                  /* UPSTREAM_MAX_BYTES */
	long attempt_timeout_ms;           /* UPSTREAM_ATTEMPT_TIMEOUT_MS: one attempt */
	unsigned int retry_max;            /* RETRY_MAX */
	long long retry_backoff_ms;        /* RETRY_BACKOFF_MS: the first retry's bound */
	unsigned int retry_budget_percent; /* RETRY_BUDGET_PERCENT */
	unsigned int breaker_threshold;    /* BREAKER_THRESHOLD; 0 turns it off */
	long long breaker_cooldown_ms;     /* BREAKER_COOLDOWN_MS */
	long keepalive_max;                /* UPSTREAM_KEEPALIVE_MAX: kept for reuse, per thread */
	long calls_max;                    /* UPSTREAM_CALLS_MAX: in flight, per thread */
	size_t body_cache_bytes;           /* UPSTREAM_BODY_CACHE_BYTES: kept, per thread */
	struct upstream_tls *tls;          /* NULL without TLS settings; borrowed */
};

/*
 * Called when a call ends, however it ends, on the server thread that asked
 * for it (in upstream_fetch() itself when the call could not even start):
 * context is the one given to upstream_new(), request the one given to
 * upstream_fetch().
 */
typedef void (*upstream_done)(struct upstream_result *result, void *context, void *request);

struct upstream;
struct upstream_worker; /* one server thread's calls */

/*
 * Makes what all threads share, its call figures registered with registry
 * (borrowed, must outlive u); cfg is copied, its strings borrowed. NULL after
 * logging why.
 */
struct upstream *upstream_new(const struct upstream_config *cfg, struct metrics *registry,
                              upstream_done done, void *context);

/* The work each server thread runs for u (see http_loop); owned by u. */
const struct http_loop *upstream_loop(struct upstream *u);

/*
 * Asks the responder for GET /data on behalf of request, passing on its
 * request id and trace context (both copied). w is the calling server
 * thread's (http_loop_state()); done() is always called, exactly once.
 */
void upstream_fetch(struct upstream_worker *w, const char *request_id, const struct trace *trace,
                    void *request);

/*
 * Frees a body an upstream_result gave (result->body; may be NULL). A large
 * one may instead be kept for the next call this server thread makes, within
 * UPSTREAM_BODY_CACHE_BYTES: call it on the thread that received the body.
 */
void upstream_body_free(void *body);

/* Frees what upstream_new() made, once the server that ran its loops has stopped. */
void upstream_free(struct upstream *u);

#endif
