/* X-Ray segment documents, written straight into the datagram: no allocation per request. */
#include "xray_segment.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

/* A member name as key() takes it: the literal `,"name":` and its length. */
#define K(name) ",\"" name "\":", sizeof(",\"" name "\":") - 1

/* A member's name (from K()), without its comma when it opens its object. */
static void
key(struct writer *w, const char *quoted, size_t n)
{
	if (w->len > 0 && w->out[w->len - 1] == '{')
		raw(w, quoted + 1, n - 1);
	else
		raw(w, quoted, n);
}

#if defined(__SSE2__)
/*
 * A bit for each of the 16 bytes of v that string() must change: quotes,
 * backslashes, control bytes, DEL and bytes >= 0x80 (which a signed compare
 * with 0x20 catches with the control bytes).
 */
static unsigned
stop_mask(__m128i v)
{
	__m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
	                                         _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
	                            _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
	                                         _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f))));

	return (unsigned)_mm_movemask_epi8(stop);
}
#endif

/*
 * Copies the bytes at the start of s (n bytes) that string() keeps as they
 * are, 16 at a time, to out; returns how many. out must have room for n
 * bytes, every one of which string() writes at least once: a block is stored
 * whole even when it holds a byte to change, which is written over next.
 */
static size_t
plain_prefix(const char *s, size_t n, char *out)
{
	size_t i = 0;
#if defined(__SSE2__)
	__m128i v;
	unsigned mask;

	while (n - i >= 16) {
		v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		mask = stop_mask(v);
		_mm_storeu_si128((__m128i *)(void *)(out + i), v);
		if (mask != 0)
			return i + (unsigned)__builtin_ctz(mask);
		i += 16;
	}
#else
	(void)s;
	(void)out;
#endif
	return i;
}

/*
 * Writes s (n bytes, fewer than 16) quoted at out, 16 + 2 bytes of room, when
 * none of its bytes needs a change; returns 1, or 0 having written nothing
 * that counts.
 */
static int
short_plain(const char *s, size_t n, char *out)
{
#if defined(__SSE2__)
	char block[16] = {0};
	__m128i v;

	if (n >= 16)
		return 0;
	memcpy(block, s, n);
	v = _mm_loadu_si128((const __m128i *)(const void *)block);
	if ((stop_mask(v) & ((1u << n) - 1)) != 0)
		return 0;
	out[0] = '"';
	_mm_storeu_si128((__m128i *)(void *)(out + 1), v);
	out[n + 1] = '"';
	return 1;
#else
	(void)s;
	(void)n;
	(void)out;
	return 0;
#endif
}

/* Writes s (n bytes) quoted at out, each byte kept, escaped or made '?'; returns the end. */
static char *
quoted_copy(const char *s, size_t n, char *out)
{
	size_t i, run;
	char c;

	*out++ = '"';
	for (i = 0; i < n; i++) {
		run = plain_prefix(s + i, n - i, out);
		out += run;
		i += run;
		if (i == n)
			break;
		c = s[i];
		if (c < 0x20 || c >= 0x7f)
			c = '?';
		if (c == '"' || c == '\\')
			*out++ = '\\';
		*out++ = c;
	}
	*out++ = '"';
	return out;
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
	/* A short plain string, most of them, in one 16-byte step when 18 bytes are free. */
	if (room >= 18 && short_plain(s, n, w->out + w->len)) {
		w->len += n + 2;
		return;
	}
	w->len = (size_t)(quoted_copy(s, n, w->out + w->len) - w->out);
}

static void
put_string(struct writer *w, const char *quoted, size_t n, const char *s)
{
	if (s == NULL)
		return;
	key(w, quoted, n);
	string(w, s);
}

/* Two decimal digits for each value 0-99, at twice the value. */
static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324"
                                  "25262728293031323334353637383940414243444546474849"
                                  "50515253545556575859606162636465666768697071727374"
                                  "75767778798081828384858687888990919293949596979899";

/* Writes v in decimal, ending just before end; returns where it starts. printf is slow here. */
static char *
decimal(unsigned long long v, char *end)
{
	size_t at;

	/* Two digits a division. */
	while (v >= 100) {
		at = (size_t)(v % 100) * 2;
		v /= 100;
		*--end = digit_pairs[at + 1];
		*--end = digit_pairs[at];
	}
	if (v >= 10) {
		*--end = digit_pairs[v * 2 + 1];
		*--end = digit_pairs[v * 2];
	} else {
		*--end = (char)('0' + v);
	}
	return end;
}

/* Writes v in decimal. */
static void
digits(struct writer *w, unsigned long long v)
{
	char text[24], *start = decimal(v, text + sizeof(text));

	raw(w, start, (size_t)(text + sizeof(text) - start));
}

static void
put_uint(struct writer *w, const char *quoted, size_t n, unsigned long long v)
{
	key(w, quoted, n);
	digits(w, v);
}

static void
put_true(struct writer *w, const char *quoted, size_t n)
{
	key(w, quoted, n);
	LIT(w, "true");
}

/* The whole seconds of the last time a thread wrote, and their point: the same for a second. */
struct seconds_text {
	unsigned long long second;
	char text[24]; /* the seconds and the point, at its end */
	size_t len;    /* 0 until the first time is written */
};

static _Thread_local struct seconds_text last_seconds;

/* Epoch seconds to the microsecond, written with integers: printf's %f is slow. */
static void
put_time(struct writer *w, const char *quoted, size_t n, double seconds)
{
	struct seconds_text *last = &last_seconds;
	long long us = (long long)(seconds * 1e6 + 0.5);
	unsigned long long second, micro;
	char fraction[6];

	if (us < 0)
		us = 0;
	second = (unsigned long long)us / 1000000;
	micro = (unsigned long long)us % 1000000;
	if (last->len == 0 || last->second != second) {
		last->text[sizeof(last->text) - 1] = '.';
		last->len = (size_t)(last->text + sizeof(last->text) -
		                     decimal(second, last->text + sizeof(last->text) - 1));
		last->second = second;
	}
	memcpy(fraction, digit_pairs + micro / 10000 * 2, 2);
	memcpy(fraction + 2, digit_pairs + micro / 100 % 100 * 2, 2);
	memcpy(fraction + 4, digit_pairs + micro % 100 * 2, 2);
	key(w, quoted, n);
	raw(w, last->text + sizeof(last->text) - last->len, last->len);
	raw(w, fraction, sizeof(fraction));
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
