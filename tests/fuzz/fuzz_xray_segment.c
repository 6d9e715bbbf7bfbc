/*
 * xray_documents() (common/xray_segment.h) with fuzzed strings, as clients and
 * responders control them: the input's first two bytes pick the datagram
 * limit (512 to 66047 bytes), the rest is split at newlines into the URL, the
 * user agent, the client address, the request id, the call's error and the
 * responder's name (missing ones are NULL or empty).
 * The documents are written by hand, so this is what proves them JSON.
 * - a document is sent only whole: each datagram is X-Ray's daemon header
 *   followed by one JSON object that jansson parses strictly, within the limit;
 * - it carries the required fields with the trace's ids, and the subsegment,
 *   embedded or on its own with type, parent_id and trace_id;
 * - a string comes back as sent, bytes outside printable ASCII as '?';
 * - too large is the only refusal for a limit of 4 KB or more (the trimmed
 *   segment always fits there);
 * - xray_document_whole() writes exactly the one datagram xray_documents()
 *   chooses when it neither splits nor trims, and nothing otherwise.
 */
#include <stdint.h>

#include "../../common/xray_segment.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next field of the input (split at '\n'), NULL when none is left. */
static char *
field(char **rest)
{
	char *f = *rest, *nl;

	if (f == NULL)
		return NULL;
	nl = strchr(f, '\n');
	if (nl != NULL) {
		*nl = '\0';
		*rest = nl + 1;
	} else {
		*rest = NULL;
	}
	return f;
}

/* Checks one datagram: framing, size, strict JSON, ids; returns the document (caller decrefs). */
static json_t *
check_datagram(const struct xray_datagram *dg, size_t max, const struct trace *t)
{
	const char *d = dg->data;
	size_t len = dg->len;
	static const char header[] = XRAY_DAEMON_HEADER;
	size_t head = sizeof(header) - 1;
	json_error_t err;
	json_t *doc;
	char trace_id[36];

	FUZZ_CHECK(len <= max, "datagram of %zu bytes over the limit %zu", len, max);
	FUZZ_CHECK(len > head && memcmp(d, header, head) == 0, "no daemon header");
	doc = json_loadb(d + head, len - head, JSON_REJECT_DUPLICATES, &err);
	FUZZ_CHECK(doc != NULL && json_is_object(doc), "not a JSON object: %s", err.text);
	snprintf(trace_id, sizeof(trace_id), "1-%.8s-%s", t->trace_id, t->trace_id + 8);
	FUZZ_CHECK(strcmp(json_string_value(json_object_get(doc, "trace_id")), trace_id) == 0,
	           "trace_id");
	FUZZ_CHECK(json_is_string(json_object_get(doc, "name")) &&
	               json_is_string(json_object_get(doc, "id")) &&
	               json_is_number(json_object_get(doc, "start_time")) &&
	               json_is_number(json_object_get(doc, "end_time")),
	           "a required field is missing");
	return doc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[2 * XRAY_DATAGRAM_LIMIT], whole_out[XRAY_DATAGRAM_LIMIT];
	char *input, *rest;
	struct xray_datagram dg[2];
	struct trace t;
	struct trace_call call;
	struct xray_request r;
	size_t max, count, whole;
	unsigned int how;
	enum xray_documents_result rc;
	json_t *doc, *sub;

	if (size < 2)
		return 0;
	max = 512 + (((size_t)data[0] << 8) | data[1]);
	input = fuzz_strndup(data + 2, size - 2);
	rest = input;
	trace_begin(&t, NULL, "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8");
	memset(&call, 0, sizeof(call));
	memset(&r, 0, sizeof(r));
	r.name = "caller";
	r.version = "1.0.0";
	r.trace = &t;
	r.start_s = 1764500000.125;
	r.end_s = 1764500000.75;
	r.method = "GET";
	r.url = field(&rest);
	r.user_agent = field(&rest);
	r.client_ip = field(&rest);
	r.request_id = field(&rest);
	r.status = 200;
	if (rest != NULL) {
		snprintf(call.error, sizeof(call.error), "%s", field(&rest));
		strcpy(call.span_id, "0123456789abcdef");
		call.name = rest != NULL ? field(&rest) : "responder";
		call.url = "http://responder:5000/data";
		call.start_s = r.start_s;
		call.end_s = r.end_s;
		call.breaker = "closed";
		r.call = &call;
	}
	if (max > XRAY_DATAGRAM_LIMIT)
		max = XRAY_DATAGRAM_LIMIT;
	rc = xray_documents(&r, max, out, dg, &count, &how);
	FUZZ_CHECK(rc == XRAY_DOCUMENTS_OK || max < 4096, "refused at a limit of %zu", max);
	whole = xray_document_whole(&r, max, whole_out);
	/* A call's error gets a cause with a new random id each time it is written. */
	if (rc == XRAY_DOCUMENTS_OK && how == 0)
		FUZZ_CHECK(whole == dg[0].len && (memcmp(whole_out, dg[0].data, whole) == 0 ||
		                                  (r.call != NULL && call.error[0] != '\0')),
		           "the whole document differs from xray_documents' (%zu, %zu bytes)", whole,
		           dg[0].len);
	else
		FUZZ_CHECK(whole == 0, "a whole document of %zu bytes where xray_documents cut it",
		           whole);
	if (rc == XRAY_DOCUMENTS_OK) {
		FUZZ_CHECK(count == ((how & XRAY_SPLIT) ? 2u : 1u), "count %zu", count);
		doc = check_datagram(&dg[0], max, &t);
		FUZZ_CHECK(strcmp(json_string_value(json_object_get(doc, "id")), t.span_id) == 0,
		           "segment id");
		if (r.url != NULL && !(how & XRAY_TRIMMED)) {
			const char *got = json_string_value(json_object_get(
			    json_object_get(json_object_get(doc, "http"), "request"), "url"));
			size_t k;

			FUZZ_CHECK(got != NULL && strlen(got) == strlen(r.url), "url length");
			for (k = 0; r.url[k] != '\0'; k++)
				FUZZ_CHECK(got[k] == ((r.url[k] >= 0x20 && r.url[k] < 0x7f) ? r.url[k] : '?'),
				           "url byte %zu", k);
		}
		sub = json_array_get(json_object_get(doc, "subsegments"), 0);
		FUZZ_CHECK((sub != NULL) == (r.call != NULL && count == 1), "embedded subsegment");
		json_decref(doc);
		if (count == 2) {
			doc = check_datagram(&dg[1], max, &t);
			FUZZ_CHECK(strcmp(json_string_value(json_object_get(doc, "type")),
			                  "subsegment") == 0 &&
			               strcmp(json_string_value(json_object_get(doc, "parent_id")),
			                      t.span_id) == 0,
			           "standalone subsegment");
			json_decref(doc);
		}
	}
	free(input);
	return 0;
}
