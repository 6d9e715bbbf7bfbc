/* X-Ray segment documents, written straight into the datagram: no allocation per request. */
#include "xray_segment.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* No trimming: strings are bounded by the request limits that let them in. */
#define STRING_WHOLE ((size_t)-1)

/*
 * Writes one document into out (max bytes): every write past max sets
 * overflow and writes nothing more, so the caller knows the document does
 * not fit rather than getting a cut one.
 */
struct writer {
	char *out;
	size_t len;
	size_t max;
	size_t string_max; /* longest string value; longer ones are cut */
	int overflow;
	int trimmed; /* a string was cut to string_max */
};

static void
raw(struct writer *w, const char *s, size_t n)
{
	if (w->overflow || n > w->max - w->len) {
		w->overflow = 1;
		return;
	}
	memcpy(w->out + w->len, s, n);
	w->len += n;
}

/* A string literal's bytes: its length is known when compiled. */
#define LIT(w, s) raw((w), "" s, sizeof(s) - 1)

/* A member name as key() takes it: the literal `"name":` and its length. */
#define K(name) "\"" name "\":", sizeof("\"" name "\":") - 1

/* A member's name (from K()), after a comma unless it opens its object. */
static void
key(struct writer *w, const char *quoted, size_t n)
{
	if (w->len > 0 && w->out[w->len - 1] != '{')
		LIT(w, ",");
	raw(w, quoted, n);
}

/*
 * s as a JSON string of at most w->string_max bytes: bytes outside printable
 * ASCII become '?', so that a client's header can never make the document
 * invalid UTF-8; quotes and backslashes are escaped.
 */
static void
string(struct writer *w, const char *s)
{
	size_t n = strlen(s), i, need, room = w->max - w->len;
	char c, *out;

	if (n > w->string_max) {
		n = w->string_max;
		w->trimmed = 1;
	}
	/* The room is checked once, then the bytes written directly: counting the
	 * escapes first only when the worst case (every byte escaped) might not fit. */
	need = 2 * n + 2;
	if (need > room) {
		need = n + 2;
		for (i = 0; i < n; i++)
			need += s[i] == '"' || s[i] == '\\';
	}
	if (w->overflow || need > room) {
		w->overflow = 1;
		return;
	}
	out = w->out + w->len;
	*out++ = '"';
	for (i = 0; i < n; i++) {
		c = s[i];
		if (c < 0x20 || c >= 0x7f)
			c = '?';
		if (c == '"' || c == '\\')
			*out++ = '\\';
		*out++ = c;
	}
	*out++ = '"';
	w->len = (size_t)(out - w->out);
}

static void
put_string(struct writer *w, const char *quoted, size_t n, const char *s)
{
	if (s == NULL)
		return;
	key(w, quoted, n);
	string(w, s);
}

/* Writes v in decimal, at least width digits (zeros in front): printf is slow here. */
static void
digits(struct writer *w, unsigned long long v, size_t width)
{
	char text[24];
	size_t n = 0;

	do {
		text[sizeof(text) - ++n] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n < width && n < sizeof(text))
		text[sizeof(text) - ++n] = '0';
	raw(w, text + sizeof(text) - n, n);
}

static void
put_uint(struct writer *w, const char *quoted, size_t n, unsigned long long v)
{
	key(w, quoted, n);
	digits(w, v, 1);
}

static void
put_true(struct writer *w, const char *quoted, size_t n)
{
	key(w, quoted, n);
	LIT(w, "true");
}

/* Epoch seconds to the microsecond, written with integers: printf's %f is slow. */
static void
put_time(struct writer *w, const char *quoted, size_t n, double seconds)
{
	long long us = (long long)(seconds * 1e6 + 0.5);

	if (us < 0)
		us = 0;
	key(w, quoted, n);
	digits(w, (unsigned long long)(us / 1000000), 1);
	LIT(w, ".");
	digits(w, (unsigned long long)(us % 1000000), 6);
}

/* X-Ray's flags for an HTTP status: error for 4xx, throttle for 429 too, fault for 5xx. */
static void
put_status_flags(struct writer *w, int status)
{
	if (status >= 400 && status < 500)
		put_true(w, K("error"));
	if (status == 429)
		put_true(w, K("throttle"));
	if (status >= 500)
		put_true(w, K("fault"));
}

/* A span id: hex digits, made here or checked by trace_begin(), so written as they are. */
static void
put_span_id(struct writer *w, const char *quoted, size_t n, const char *id)
{
	assert(strnlen(id, SPAN_ID_LEN + 1) == SPAN_ID_LEN);
	key(w, quoted, n);
	LIT(w, "\"");
	raw(w, id, SPAN_ID_LEN);
	LIT(w, "\"");
}

/* The X-Ray form of a W3C trace id: 1-<8 hex>-<24 hex>. */
static void
put_trace_id(struct writer *w, const struct trace *t)
{
	assert(t != NULL); /* every request has its trace context */
	key(w, K("trace_id"));
	LIT(w, "\"1-");
	raw(w, t->trace_id, 8);
	LIT(w, "-");
	raw(w, t->trace_id + 8, TRACE_ID_LEN - 8);
	LIT(w, "\"");
}

/* The http object: the request's fields, and the answer's when there was one. */
static void
put_http(struct writer *w, const char *method, const char *url, const char *client_ip,
         int forwarded, const char *user_agent, int traced, int status, size_t bytes)
{
	key(w, K("http"));
	LIT(w, "{\"request\":{");
	put_string(w, K("method"), method);
	put_string(w, K("url"), url);
	put_string(w, K("client_ip"), client_ip);
	if (client_ip != NULL && forwarded)
		put_true(w, K("x_forwarded_for"));
	put_string(w, K("user_agent"), user_agent);
	if (traced)
		put_true(w, K("traced"));
	LIT(w, "}");
	if (status > 0) {
		LIT(w, ",\"response\":{");
		put_uint(w, K("status"), (unsigned long long)status);
		put_uint(w, K("content_length"), bytes);
		LIT(w, "}");
	}
	LIT(w, "}");
}

/*
 * The subsegment of the request's call to another service: namespace remote,
 * so that X-Ray's trace map draws the edge; standalone adds what a
 * subsegment sent in a document of its own needs.
 */
static void
subsegment(struct writer *w, const struct xray_request *r, int standalone)
{
	const struct trace_call *c = r->call;
	char exception_id[SPAN_ID_LEN + 1];

	LIT(w, "{");
	put_span_id(w, K("id"), c->span_id);
	put_string(w, K("name"), c->name);
	put_time(w, K("start_time"), c->start_s);
	put_time(w, K("end_time"), c->end_s);
	put_string(w, K("namespace"), "remote");
	if (standalone) {
		put_string(w, K("type"), "subsegment");
		put_span_id(w, K("parent_id"), r->trace->span_id);
		put_trace_id(w, r->trace);
	}
	put_http(w, "GET", c->url, NULL, 0, NULL, 1, c->status, c->bytes);
	put_status_flags(w, c->status);
	/* No answer, or one the caller could not use, is the callee's fault. */
	if (c->error[0] != '\0' && c->status < 400)
		put_true(w, K("fault"));
	key(w, K("annotations"));
	LIT(w, "{");
	put_uint(w, K("attempts"), c->attempts);
	put_uint(w, K("retries"), c->attempts > 0 ? c->attempts - 1 : 0);
	put_string(w, K("breaker"), c->breaker);
	key(w, K("breaker_allowed"));
	if (c->breaker_allowed)
		LIT(w, "true");
	else
		LIT(w, "false");
	LIT(w, "}");
	if (c->error[0] != '\0') {
		trace_new_span_id(exception_id);
		key(w, K("cause"));
		LIT(w, "{\"exceptions\":[{");
		put_span_id(w, K("id"), exception_id);
		put_string(w, K("message"), c->error);
		put_true(w, K("remote"));
		LIT(w, "}]}");
	}
	LIT(w, "}");
}

/* The segment of the request, with its call's subsegment when embed. */
static void
segment(struct writer *w, const struct xray_request *r, int embed)
{
	LIT(w, "{");
	put_string(w, K("name"), r->name);
	put_span_id(w, K("id"), r->trace->span_id);
	put_trace_id(w, r->trace);
	if (r->trace->parent_id[0] != '\0')
		put_span_id(w, K("parent_id"), r->trace->parent_id);
	put_time(w, K("start_time"), r->start_s);
	put_time(w, K("end_time"), r->end_s);
	put_string(w, K("origin"), r->origin);
	put_http(w, r->method, r->url, r->client_ip, r->forwarded, r->user_agent, 0, r->status,
	         r->bytes);
	put_status_flags(w, r->status);
	if (r->version != NULL) {
		key(w, K("service"));
		LIT(w, "{");
		put_string(w, K("version"), r->version);
		LIT(w, "}");
	}
	key(w, K("annotations"));
	LIT(w, "{");
	put_string(w, K("request_id"), r->request_id);
	if (r->status == 0)
		put_true(w, K("client_left"));
	LIT(w, "}");
	if (embed && r->call != NULL) {
		key(w, K("subsegments"));
		LIT(w, "[");
		subsegment(w, r, 0);
		LIT(w, "]");
	}
	LIT(w, "}");
}

/* Tries one shape: whole (one document) or split (two), strings cut at string_max. */
static int
try_shape(const struct xray_request *r, size_t max, size_t string_max, int split, char *out,
          struct xray_datagram dg[2], size_t *count, int *trimmed)
{
	static const char header[] = XRAY_DAEMON_HEADER;
	struct writer w = {.max = max, .string_max = string_max};
	size_t i, n = split ? 2 : 1;

	*count = 0;
	*trimmed = 0;
	for (i = 0; i < n; i++) {
		w.out = out + i * max;
		w.len = 0;
		raw(&w, header, sizeof(header) - 1);
		if (i == 0)
			segment(&w, r, !split);
		else
			subsegment(&w, r, 1);
		if (w.overflow)
			return -1;
		dg[i].data = w.out;
		dg[i].len = w.len;
	}
	*trimmed = w.trimmed;
	*count = n;
	return 0;
}

size_t
xray_document_whole(const struct xray_request *r, size_t max, char *out)
{
	struct xray_datagram dg[2];
	size_t count;
	int trimmed;

	assert(r->trace != NULL && max <= XRAY_DATAGRAM_LIMIT);
	if (try_shape(r, max, STRING_WHOLE, 0, out, dg, &count, &trimmed) < 0)
		return 0;
	return dg[0].len;
}

enum xray_documents_result
xray_documents(const struct xray_request *r, size_t max, char *out, struct xray_datagram dg[2],
               size_t *count, unsigned int *how)
{
	int trimmed = 0, split = r->call != NULL;

	assert(r->trace != NULL && max <= XRAY_DATAGRAM_LIMIT);
	*how = 0;
	if (try_shape(r, max, STRING_WHOLE, 0, out, dg, count, &trimmed) == 0)
		return XRAY_DOCUMENTS_OK;
	if (split && try_shape(r, max, STRING_WHOLE, 1, out, dg, count, &trimmed) == 0) {
		*how |= XRAY_SPLIT;
		return XRAY_DOCUMENTS_OK;
	}
	if (try_shape(r, max, XRAY_TRIMMED_STRING_MAX, split, out, dg, count, &trimmed) == 0) {
		*how |= (split ? XRAY_SPLIT : 0) | (trimmed ? XRAY_TRIMMED : 0);
		return XRAY_DOCUMENTS_OK;
	}
	return XRAY_DOCUMENTS_TOO_LARGE;
}
