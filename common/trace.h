/*
 * Trace context across the caller and the responder. Service Connect does no
 * tracing, so the daemons carry it themselves, in both of the formats in use:
 * W3C `traceparent` and AWS X-Ray's `X-Amzn-Trace-Id`. The two share one
 * trace id: X-Ray's Root=1-5759e988-bd862e3fe1be46a994272793 is W3C's
 * 5759e988bd862e3fe1be46a994272793.
 */
#ifndef COMMON_TRACE_H
#define COMMON_TRACE_H

#include <stddef.h>

#define TRACE_ID_LEN 32 /* hex digits */
#define SPAN_ID_LEN  16
/* Room for either header value, with its terminating NUL. */
#define TRACE_HEADER_MAX 96

struct trace {
	char trace_id[TRACE_ID_LEN + 1]; /* the whole request's, shared by every hop */
	char span_id[SPAN_ID_LEN + 1];   /* this hop's */
	char parent_id[SPAN_ID_LEN + 1]; /* the span that called this hop; "" when none was named */
	char sampled;                    /* '1' or '0', as received, '1' when new */
	int decided;                     /* 1 when the caller's header carried sampled */
};

/* Room for the reason a traced call failed, NUL included. */
#define TRACE_CALL_ERROR_MAX 384

/*
 * One call this hop made to another service on behalf of a request, as its
 * trace records it (the caller's call to the responder): the span the call's
 * headers named as their parent, so the callee's span links to it.
 */
struct trace_call {
	char span_id[SPAN_ID_LEN + 1];    /* the parent the call's headers named */
	const char *name;                 /* the service called; borrowed, outlives the call */
	const char *url;                  /* borrowed, outlives the call */
	double start_s;                   /* epoch seconds when the call started */
	double end_s;                     /* epoch seconds when it ended */
	int status;                       /* the last attempt's HTTP status; 0 without an answer */
	size_t bytes;                     /* the last answer's body bytes */
	unsigned int attempts;            /* 0 when the call was never made */
	const char *breaker;              /* the breaker's state when asked; a static string */
	int breaker_allowed;              /* 0 when the breaker refused the call */
	char error[TRACE_CALL_ERROR_MAX]; /* why the call failed; "" when it did not */
};

/*
 * Continues the trace named by traceparent, else by X-Amzn-Trace-Id, else
 * starts one (either may be NULL or invalid); this hop always gets a new span
 * id. The parent and the sampling decision are kept when the header has them;
 * X-Ray's "Sampled=?" or none leaves the decision open (decided 0, sampled '1').
 */
void trace_begin(struct trace *t, const char *traceparent, const char *amzn_trace_id);

/*
 * Makes child the context for a call out of this hop: the same trace and
 * sampling decision, t's span as its parent, a new span id of its own.
 */
void trace_child(const struct trace *t, struct trace *child);

/* Writes a new random span id (16 hex digits, not all zero). */
void trace_new_span_id(char out[SPAN_ID_LEN + 1]);

/* Formats the traceparent header naming this hop's span as the parent. */
void trace_traceparent(const struct trace *t, char out[TRACE_HEADER_MAX]);

/* Formats the X-Amzn-Trace-Id header naming this hop's span as the parent. */
void trace_amzn(const struct trace *t, char out[TRACE_HEADER_MAX]);

#endif
