/*
 * The judgement of one attempt to call the responder: how it ended (the
 * outcome /metrics counts by), why its answer cannot be used, or where the
 * stored_data array lies in an answer that can. Pure: it reads only what it
 * is handed (libcurl's result code and error text, the HTTP status, the
 * answer's bytes), never a libcurl handle or any shared state, so every
 * outcome can be tested without a network.
 */
#ifndef CALLER_JUDGE_H
#define CALLER_JUDGE_H

#include <curl/curl.h>
#include <stddef.h>

#include "../common/app_version.h"
#include "../common/json_scan.h"
#include "../common/served_by.h"
#include "../common/trace.h"

/* How a call to the responder ended, for /metrics (upstream_requests_total{outcome}). */
enum upstream_outcome {
	OUTCOME_OK,           /* a 200 whose JSON has a stored_data array */
	OUTCOME_REFUSED,      /* the connection was refused */
	OUTCOME_TIMEOUT,      /* the attempt, or the wait for a slot, ran out of time */
	OUTCOME_DNS,          /* the responder's name did not resolve */
	OUTCOME_HTTP_STATUS,  /* any status but 200 */
	OUTCOME_INVALID_BODY, /* a 200 that is not JSON, or has no stored_data array */
	OUTCOME_TOO_LARGE,    /* the answer passed UPSTREAM_MAX_BYTES */
	OUTCOME_BREAKER_OPEN, /* not made: the circuit breaker is open (never from judge_attempt) */
	OUTCOME_ERROR,        /* anything else: TLS, a reset, shutting down, out of memory */
	OUTCOME_COUNT
};

/* What one call gave. */
struct upstream_result {
	int ok;     /* 1: a 200 whose JSON has a stored_data array */
	char *body; /* the answer as received; the callback owns it (free()) */
	size_t body_len;
	struct json_span stored_data;      /* where the array lies in body, when ok */
	char reason[384];                  /* what went wrong, when not ok */
	char served_by[SERVED_BY_MAX];     /* the responder's X-Served-By, or "" */
	char version[APP_VERSION_MAX + 1]; /* the responder's X-App-Version, or "" */
	struct trace_call call;            /* the call as the request's trace records it */
};

/* What libcurl reported for one attempt; the strings are borrowed. */
struct attempt_report {
	CURLcode code;     /* the transfer's result */
	const char *error; /* libcurl's error buffer for it; "" when it wrote none */
	long status;       /* the HTTP status when code is CURLE_OK; 0 when there was none */
	int too_large;     /* the write callback refused bytes past max_bytes */
	size_t max_bytes;  /* UPSTREAM_MAX_BYTES */
	const char *url;   /* what was called, named in the reasons */
};

/*
 * Judges the answer in r->body (r->body_len bytes, may be NULL when empty) of
 * the attempt a describes. Returns the outcome; for OUTCOME_OK sets r->ok and
 * r->stored_data (the span of the array in r->body), otherwise writes why into
 * r->reason. Touches nothing else in r.
 */
enum upstream_outcome judge_attempt(const struct attempt_report *a, struct upstream_result *r);

/* Whether an attempt that ended so is worth making again: a refused connection or a 503 only. */
int judge_retryable(enum upstream_outcome o, long status);

#endif
