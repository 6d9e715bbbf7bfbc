/*
 * merge_parts() (caller/merge.h): the caller's GET / document, built from a
 * fuzzed responder answer and a fixed caller store, the answer judged by
 * caller/judge.c as a 200 (json_scan_member() for "stored_data", which must
 * be an array) and the pieces sent as caller/main.c sends them.
 * - when the answer was accepted, the merged document is valid JSON (checked
 *   with jansson), has exactly the two members, the caller's objects, and the
 *   responder's stored_data array byte for byte;
 * - when it was not, the document is valid JSON whose responder_service_data is
 *   {"error":"Failed to reach Service B: <reason>"} with the reason intact; the
 *   reason is both the one judge_attempt() gives and, to reach every byte
 *   value, the raw answer itself;
 * - ownership: the answer buffer is taken over and freed once (LeakSanitizer).
 */
#include <stdint.h>

#include "../../caller/judge.h"
#include "../../caller/merge.h"
#include "fuzz_util.h"

#define URL "http://responder:5000/data"
/* What payload_parse() could have stored: compact objects joined by commas. */
static const char caller_items[] =
    "{\"key\":\"value\"},{\"n\":[1,-0.5e-3,12345678901234567890123,true,false,null]},"
    "{\"s\":\"\\u00e9\\ud83d\\ude00 \\\"q\\\" \\\\\",\"o\":{\"\":{}}}";
#define CALLER_COUNT 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Joins the pieces into one document; returns it (malloc) and its length in *len. */
static char *
join(const struct http_part parts[MERGE_PARTS], size_t *len)
{
	size_t i, n = 0;
	char *doc;

	for (i = 0; i < MERGE_PARTS; i++)
		n += parts[i].len;
	doc = malloc(n + 1);
	FUZZ_CHECK(doc != NULL, "out of memory");
	for (n = 0, i = 0; i < MERGE_PARTS; i++) {
		memcpy(doc + n, parts[i].base, parts[i].len);
		n += parts[i].len;
	}
	doc[n] = '\0';
	*len = n;
	return doc;
}

/* Checks the members common to both shapes; returns the document (the caller frees it). */
static json_t *
check_document(const char *doc, size_t len, int *skipped)
{
	json_error_t jerr;
	json_t *root, *callers;
	void *it;

	*skipped = 0;
	root = json_loadb(doc, len, FUZZ_JANSSON_FLAGS & ~JSON_DECODE_ANY, &jerr);
	if (root == NULL && fuzz_jansson_limit(&jerr)) {
		*skipped =
		    1; /* e.g. 1e999 in the responder's objects: valid JSON, too big for a double */
		return NULL;
	}
	FUZZ_CHECK(root != NULL, "the merged document is not valid JSON: %s (line %d col %d)",
	           jerr.text, jerr.line, jerr.column);
	FUZZ_CHECK(json_is_object(root) && json_object_size(root) == 2, "not a 2-member object");
	it = json_object_iter(root);
	FUZZ_CHECK(strcmp(json_object_iter_key(it), "caller_service_data") == 0, "first member");
	it = json_object_iter_next(root, it);
	FUZZ_CHECK(strcmp(json_object_iter_key(it), "responder_service_data") == 0,
	           "second member");
	callers = json_object_get(root, "caller_service_data");
	FUZZ_CHECK(json_is_array(callers) && json_array_size(callers) == CALLER_COUNT,
	           "caller_service_data is not the caller's %d objects", CALLER_COUNT);
	return root;
}

/* UTF-8 decoding of a jansson string; json_escape() writes each byte >= 0x80 as \u00XX. */
static int
same_bytes(const char *decoded, size_t dlen, const char *want, size_t wlen)
{
	const unsigned char *p = (const unsigned char *)decoded, *end = p + dlen;
	size_t i = 0;

	while (p < end) {
		unsigned cp;

		if (*p < 0x80) {
			cp = *p++;
		} else if ((*p & 0xE0) == 0xC0 && p + 1 < end) {
			cp = ((unsigned)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
			p += 2;
		} else {
			return 0; /* more than one escaped byte can give: not a byte-by-byte escape
			           */
		}
		if (i >= wlen || cp != (unsigned char)want[i])
			return 0;
		i++;
	}
	return i == wlen;
}

static void
merge_error(const char *reason, size_t reason_len)
{
	struct upstream_result r;
	struct http_part parts[MERGE_PARTS];
	char *owned = NULL, *doc, *want;
	size_t len, want_len;
	json_t *root, *err;
	int skipped;

	memset(&r, 0, sizeof(r));
	if (reason_len >= sizeof(r.reason))
		reason_len = sizeof(r.reason) - 1;
	memcpy(r.reason, reason, reason_len);
	r.reason[reason_len] = '\0';
	reason_len = strlen(r.reason); /* a C string: ends at the first NUL */
	r.body = malloc(16);           /* an error answer's body is freed by merge_parts() */
	FUZZ_CHECK(r.body != NULL, "out of memory");
	FUZZ_CHECK(merge_parts(caller_items, sizeof(caller_items) - 1, &r, parts, &owned) == 0,
	           "merge_parts failed");
	FUZZ_CHECK(r.body == NULL, "body not taken over");
	doc = join(parts, &len);
	root = check_document(doc, len, &skipped);
	FUZZ_CHECK(!skipped, "an error document hit a jansson limit");
	err = json_object_get(json_object_get(root, "responder_service_data"), "error");
	FUZZ_CHECK(json_is_string(err) &&
	               json_object_size(json_object_get(root, "responder_service_data")) == 1,
	           "responder_service_data is not {\"error\": <string>}");
	want_len = strlen(MERGE_ERROR_PREFIX) + reason_len;
	want = malloc(want_len + 1);
	FUZZ_CHECK(want != NULL, "out of memory");
	snprintf(want, want_len + 1, "%s%s", MERGE_ERROR_PREFIX, r.reason);
	FUZZ_CHECK(same_bytes(json_string_value(err), json_string_length(err), want, want_len),
	           "the error text is not \"" MERGE_ERROR_PREFIX "<reason>\"");
	free(want);
	json_decref(root);
	free(doc);
	free(owned);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct upstream_result r;
	struct http_part parts[MERGE_PARTS];
	const struct attempt_report answer = {
	    .code = CURLE_OK, .error = "", .status = 200, .max_bytes = SIZE_MAX, .url = URL};
	char *owned = NULL, *doc;
	size_t len;
	json_t *root, *resp, *want;
	json_error_t jerr;
	int skipped;

	memset(&r, 0, sizeof(r));
	r.body = malloc(size > 0 ? size : 1);
	FUZZ_CHECK(r.body != NULL, "out of memory");
	if (size > 0)
		memcpy(r.body, data, size);
	r.body_len = size;
	judge_attempt(&answer, &r);

	if (!r.ok) {
		merge_error(r.reason, strlen(r.reason));
		free(r.body);
		/* Any bytes at all as the reason (libcurl's messages name hosts and URLs). */
		merge_error((const char *)data, size);
		return 0;
	}

	FUZZ_CHECK(merge_parts(caller_items, sizeof(caller_items) - 1, &r, parts, &owned) == 0,
	           "merge_parts failed");
	FUZZ_CHECK(r.body == NULL && owned != NULL, "body not taken over");
	FUZZ_CHECK(parts[3].len == r.stored_data.len &&
	               memcmp(parts[3].base, data + r.stored_data.offset, r.stored_data.len) == 0,
	           "stored_data not passed on byte for byte");
	doc = join(parts, &len);
	root = check_document(doc, len, &skipped);
	if (!skipped) {
		resp = json_object_get(root, "responder_service_data");
		FUZZ_CHECK(json_is_array(resp), "responder_service_data is not an array");
		want = json_loadb((const char *)data + r.stored_data.offset, r.stored_data.len,
		                  FUZZ_JANSSON_FLAGS, &jerr);
		FUZZ_CHECK(want != NULL && json_equal(want, resp),
		           "responder_service_data is not the answer's stored_data");
		json_decref(want);
		json_decref(root);
	}
	free(doc);
	free(owned);
	return 0;
}
