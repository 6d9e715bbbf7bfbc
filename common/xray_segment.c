/* X-Ray segment documents: built with jansson, framed and fitted into datagrams. */
#include "xray_segment.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Epoch seconds to the microsecond need 16 significant digits. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(16))

/* No trimming: strings are bounded by the request limits that let them in. */
#define STRING_WHOLE ((size_t)-1)

/* Builds one document; `failed` records any allocation that did not succeed. */
struct builder {
	size_t string_max;
	int trimmed;
	int failed;
};

/*
 * A JSON string of s: at most b->string_max bytes, and bytes outside
 * printable ASCII as '?', so that a client's header can never make the
 * document invalid UTF-8. New reference; NULL when memory ran out.
 */
static json_t *
text(struct builder *b, const char *s)
{
	size_t n = strlen(s), i;
	json_t *j;
	char *copy;

	if (n > b->string_max) {
		n = b->string_max;
		b->trimmed = 1;
	}
	copy = malloc(n + 1);
	if (copy == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		copy[i] = s[i];
		if (s[i] < 0x20 || s[i] >= 0x7f)
			copy[i] = '?';
	}
	j = json_stringn(copy, n);
	free(copy);
	return j;
}

/* Sets o[key] to value (stealing the reference); a NULL value marks the build failed. */
static void
put(struct builder *b, json_t *o, const char *key, json_t *value)
{
	if (value == NULL || json_object_set_new(o, key, value) < 0)
		b->failed = 1;
}

/* Sets o[key] to the text of s, when s is not NULL. */
static void
put_text(struct builder *b, json_t *o, const char *key, const char *s)
{
	if (s != NULL)
		put(b, o, key, text(b, s));
}

/* An empty object set as o[key]; borrowed from o. NULL (build failed) when memory ran out. */
static json_t *
put_object(struct builder *b, json_t *o, const char *key)
{
	json_t *child = json_object();

	put(b, o, key, child);
	return b->failed ? NULL : child;
}

/* X-Ray's flags for an HTTP status: error for 4xx, throttle for 429 too, fault for 5xx. */
static void
put_status_flags(struct builder *b, json_t *o, int status)
{
	if (status >= 400 && status < 500)
		put(b, o, "error", json_true());
	if (status == 429)
		put(b, o, "throttle", json_true());
	if (status >= 500)
		put(b, o, "fault", json_true());
}

/* The X-Ray form of a W3C trace id: 1-<8 hex>-<24 hex>. */
static void
put_trace_id(struct builder *b, json_t *o, const struct trace *t)
{
	char id[2 + 8 + 1 + 24 + 1];

	memcpy(id, "1-", 2);
	memcpy(id + 2, t->trace_id, 8);
	id[10] = '-';
	memcpy(id + 11, t->trace_id + 8, 24);
	id[35] = '\0';
	put(b, o, "trace_id", json_string(id));
}

/*
 * The subsegment of the request's call to another service: namespace remote,
 * so that X-Ray's trace map draws the edge; standalone adds what a
 * subsegment sent in a document of its own needs. New reference or NULL.
 */
static json_t *
subsegment(struct builder *b, const struct xray_request *r, int standalone)
{
	const struct trace_call *c = r->call;
	json_t *o = json_object(), *http, *req, *resp, *notes, *cause, *ex, *list;
	char exception_id[SPAN_ID_LEN + 1];

	if (o == NULL) {
		b->failed = 1;
		return NULL;
	}
	put(b, o, "id", json_string(c->span_id));
	put_text(b, o, "name", c->name);
	put(b, o, "start_time", json_real(c->start_s));
	put(b, o, "end_time", json_real(c->end_s));
	put(b, o, "namespace", json_string("remote"));
	if (standalone) {
		put(b, o, "type", json_string("subsegment"));
		put(b, o, "parent_id", json_string(r->trace->span_id));
		put_trace_id(b, o, r->trace);
	}
	http = put_object(b, o, "http");
	req = http != NULL ? put_object(b, http, "request") : NULL;
	if (req != NULL) {
		put(b, req, "method", json_string("GET"));
		put_text(b, req, "url", c->url);
		put(b, req, "traced", json_true());
	}
	if (http != NULL && c->status > 0 && (resp = put_object(b, http, "response")) != NULL) {
		put(b, resp, "status", json_integer(c->status));
		put(b, resp, "content_length", json_integer((json_int_t)c->bytes));
	}
	put_status_flags(b, o, c->status);
	/* No answer, or one the caller could not use, is the callee's fault. */
	if (c->error[0] != '\0' && c->status < 400)
		put(b, o, "fault", json_true());
	notes = put_object(b, o, "annotations");
	if (notes != NULL) {
		put(b, notes, "attempts", json_integer(c->attempts));
		put(b, notes, "retries", json_integer(c->attempts > 0 ? c->attempts - 1 : 0));
		put_text(b, notes, "breaker", c->breaker);
		put(b, notes, "breaker_allowed", json_boolean(c->breaker_allowed));
	}
	if (c->error[0] != '\0' && (cause = put_object(b, o, "cause")) != NULL) {
		list = json_array();
		ex = json_object();
		put(b, cause, "exceptions", list);
		if (ex == NULL || list == NULL || json_array_append_new(list, ex) < 0) {
			b->failed = 1;
		} else {
			trace_new_span_id(exception_id);
			put(b, ex, "id", json_string(exception_id));
			put_text(b, ex, "message", c->error);
			put(b, ex, "remote", json_true());
		}
	}
	if (b->failed) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The segment of the request, with its call's subsegment when embed. New reference or NULL. */
static json_t *
segment(struct builder *b, const struct xray_request *r, int embed)
{
	json_t *o = json_object(), *http, *req, *resp, *notes, *service, *subs;

	if (o == NULL) {
		b->failed = 1;
		return NULL;
	}
	put_text(b, o, "name", r->name);
	put(b, o, "id", json_string(r->trace->span_id));
	put_trace_id(b, o, r->trace);
	if (r->trace->parent_id[0] != '\0')
		put(b, o, "parent_id", json_string(r->trace->parent_id));
	put(b, o, "start_time", json_real(r->start_s));
	put(b, o, "end_time", json_real(r->end_s));
	if (r->origin != NULL)
		put(b, o, "origin", json_string(r->origin));
	http = put_object(b, o, "http");
	req = http != NULL ? put_object(b, http, "request") : NULL;
	if (req != NULL) {
		put_text(b, req, "method", r->method);
		put_text(b, req, "url", r->url);
		put_text(b, req, "client_ip", r->client_ip);
		if (r->client_ip != NULL && r->forwarded)
			put(b, req, "x_forwarded_for", json_true());
		put_text(b, req, "user_agent", r->user_agent);
	}
	if (http != NULL && r->status > 0 && (resp = put_object(b, http, "response")) != NULL) {
		put(b, resp, "status", json_integer(r->status));
		put(b, resp, "content_length", json_integer((json_int_t)r->bytes));
	}
	put_status_flags(b, o, r->status);
	service = put_object(b, o, "service");
	if (service != NULL)
		put_text(b, service, "version", r->version);
	notes = put_object(b, o, "annotations");
	if (notes != NULL) {
		put_text(b, notes, "request_id", r->request_id);
		if (r->status == 0)
			put(b, notes, "client_left", json_true());
	}
	if (embed && r->call != NULL && (subs = json_array()) != NULL) {
		put(b, o, "subsegments", subs);
		if (!b->failed && json_array_append_new(subs, subsegment(b, r, 0)) < 0)
			b->failed = 1;
	} else if (embed && r->call != NULL) {
		b->failed = 1;
	}
	if (b->failed) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * Frames doc (stolen) as one datagram in *out: the daemon's header, then the
 * compact JSON. Returns 0, 1 when it exceeds max bytes, -1 when memory ran out.
 */
static int
frame(json_t *doc, size_t max, char **out, size_t *len)
{
	static const char header[] = XRAY_DAEMON_HEADER;
	size_t head = sizeof(header) - 1, n;
	char *d;

	*out = NULL;
	if (doc == NULL)
		return -1;
	if (max <= head) {
		json_decref(doc);
		return 1;
	}
	/* One dump into room for the largest datagram: json_dumpb() reports what it needed. */
	d = malloc(max);
	if (d == NULL) {
		json_decref(doc);
		return -1;
	}
	n = json_dumpb(doc, d + head, max - head, DUMP_FLAGS);
	json_decref(doc);
	if (n == 0 || n > max - head) {
		free(d);
		return n == 0 ? -1 : 1;
	}
	memcpy(d, header, head);
	*out = d;
	*len = head + n;
	return 0;
}

/* Tries one shape: whole (one document) or split (two), strings cut at string_max. */
static enum xray_documents_result
try_shape(const struct xray_request *r, size_t max, size_t string_max, int split, char *docs[2],
          size_t lens[2], size_t *count, int *trimmed)
{
	struct builder b = {.string_max = string_max};
	int rc;

	*count = 0;
	rc = frame(segment(&b, r, !split), max, &docs[0], &lens[0]);
	if (rc == 0 && split) {
		rc = frame(subsegment(&b, r, 1), max, &docs[1], &lens[1]);
		if (rc != 0) {
			free(docs[0]);
			docs[0] = NULL;
		}
	}
	*trimmed = b.trimmed;
	if (rc < 0)
		return XRAY_DOCUMENTS_NO_MEMORY;
	if (rc > 0)
		return XRAY_DOCUMENTS_TOO_LARGE;
	*count = split ? 2 : 1;
	return XRAY_DOCUMENTS_OK;
}

enum xray_documents_result
xray_documents(const struct xray_request *r, size_t max, char *docs[2], size_t lens[2],
               size_t *count, unsigned int *how)
{
	enum xray_documents_result rc;
	int trimmed = 0;

	*how = 0;
	rc = try_shape(r, max, STRING_WHOLE, 0, docs, lens, count, &trimmed);
	if (rc != XRAY_DOCUMENTS_TOO_LARGE)
		return rc;
	if (r->call != NULL) {
		*how |= XRAY_SPLIT;
		rc = try_shape(r, max, STRING_WHOLE, 1, docs, lens, count, &trimmed);
		if (rc != XRAY_DOCUMENTS_TOO_LARGE)
			return rc;
	}
	rc = try_shape(r, max, XRAY_TRIMMED_STRING_MAX, r->call != NULL, docs, lens, count,
	               &trimmed);
	if (trimmed)
		*how |= XRAY_TRIMMED;
	return rc;
}
