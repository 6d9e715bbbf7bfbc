/*
 * Trace context across the caller and the responder. Service Connect does no
 * tracing, so the daemons carry it themselves, in both of the formats in use:
 * W3C `traceparent` and AWS X-Ray's `X-Amzn-Trace-Id`. The two share one
 * trace id: X-Ray's Root=1-5759e988-bd862e3fe1be46a994272793 is W3C's
 * 5759e988bd862e3fe1be46a994272793.
 */
#ifndef COMMON_TRACE_H
#define COMMON_TRACE_H

#define TRACE_ID_LEN 32 /* hex digits */
#define SPAN_ID_LEN  16
/* Room for either header value, with its terminating NUL. */
#define TRACE_HEADER_MAX 96

struct trace {
	char trace_id[TRACE_ID_LEN + 1]; /* the whole request's, shared by every hop */
	char span_id[SPAN_ID_LEN + 1];   /* this hop's */
	char sampled;                    /* '1' or '0', as received, '1' when new */
};

/*
 * Continues the trace named by traceparent, else by X-Amzn-Trace-Id, else
 * starts one (either may be NULL or invalid); this hop always gets a new span id.
 */
void trace_begin(struct trace *t, const char *traceparent, const char *amzn_trace_id);

/* Formats the traceparent header naming this hop's span as the parent. */
void trace_traceparent(const struct trace *t, char out[TRACE_HEADER_MAX]);

/* Formats the X-Amzn-Trace-Id header naming this hop's span as the parent. */
void trace_amzn(const struct trace *t, char out[TRACE_HEADER_MAX]);

#endif
