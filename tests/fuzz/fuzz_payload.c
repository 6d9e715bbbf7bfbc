/*
 * payload_parse() (common/payload.h): a POST /data body to the stored text.
 * - no crash, no sanitizer report, no leak, for any bytes;
 * - accepted only when jansson (the daemon's own flags) sees a non-empty
 *   object, and such an object is refused only when it is not one the caller
 *   could take back (a raw NUL byte, which jansson 2.14 skips after a number
 *   although no JSON text may hold one, or nesting deeper than
 *   JSON_SCAN_MAX_DEPTH allows inside GET /data's {"stored_data":[...]});
 *   a rejection always says why;
 * - the stored text is no longer than the body, has no white space outside
 *   strings, and is the same object: same members, same order, same values;
 * - the stored text, served in GET /data as {"stored_data":[<text>]}, is
 *   accepted by json_scan_member(), which is what the caller runs on the
 *   responder's answer: anything the responder stores, the caller must take.
 */
#include <stdint.h>

#include "../../common/json_scan.h"
#include "../../common/payload.h"
#include "fuzz_util.h"

#define DAEMON_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_compact(const char *s, size_t n)
{
	size_t i;
	int in_string = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else {
			FUZZ_CHECK(c != ' ' && c != '\t' && c != '\n' && c != '\r',
			           "white space left at byte %zu of the stored text", i);
		}
	}
}

/* Deepest nesting of objects and arrays, strings skipped. */
static int
max_depth(const uint8_t *s, size_t n)
{
	size_t i;
	int depth = 0, deepest = 0, in_string = 0;

	for (i = 0; i < n; i++) {
		if (in_string) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_string = 0;
		} else if (s[i] == '"') {
			in_string = 1;
		} else if (s[i] == '{' || s[i] == '[') {
			if (++depth > deepest)
				deepest = depth;
		} else if (s[i] == '}' || s[i] == ']') {
			depth--;
		}
	}
	return deepest;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out = NULL, err[256];
	size_t out_len = 0;
	json_error_t jerr;
	json_t *ref, *again;
	int rc, want;

	err[0] = '\0';
	rc = payload_parse((const char *)data, size, &out, &out_len, err, sizeof(err));
	ref = json_loadb((const char *)data, size, DAEMON_FLAGS, &jerr);
	want = ref != NULL && json_is_object(ref) && json_object_size(ref) > 0;
	if (rc != 0) {
		FUZZ_CHECK(rc == PAYLOAD_INVALID, "rc %d", (int)rc);
		FUZZ_CHECK(out == NULL, "output on failure");
		FUZZ_CHECK(err[0] != '\0', "rejected without a reason");
		FUZZ_CHECK(!want || memchr(data, '\0', size) != NULL ||
		               max_depth(data, size) > JSON_SCAN_MAX_DEPTH - 2,
		           "jansson sees a non-empty object, payload_parse refuses: %s", err);
		json_decref(ref);
		return 0;
	}
	FUZZ_CHECK(want, "accepted what jansson does not see as a non-empty object");
	FUZZ_CHECK(out != NULL && out_len > 0 && out_len <= size, "stored length %zu of %zu",
	           out_len, size);
	check_compact(out, out_len);

	again = json_loadb(out, out_len, DAEMON_FLAGS, &jerr);
	FUZZ_CHECK(again != NULL, "the stored text is not valid JSON: %s", jerr.text);
	FUZZ_CHECK(json_equal(ref, again), "the stored text is not the object sent");
	{
		void *a = json_object_iter(ref), *b = json_object_iter(again);

		for (; a != NULL && b != NULL;
		     a = json_object_iter_next(ref, a), b = json_object_iter_next(again, b))
			FUZZ_CHECK(strcmp(json_object_iter_key(a), json_object_iter_key(b)) == 0,
			           "member order changed");
		FUZZ_CHECK(a == NULL && b == NULL, "member count changed");
	}
	json_decref(again);

	{
		static const char head[] = "{\"stored_data\":[", tail[] = "]}";
		size_t n = sizeof(head) - 1 + out_len + sizeof(tail) - 1;
		char *doc = malloc(n), why[128];
		struct json_span span;
		int found;

		FUZZ_CHECK(doc != NULL, "out of memory");
		memcpy(doc, head, sizeof(head) - 1);
		memcpy(doc + sizeof(head) - 1, out, out_len);
		memcpy(doc + sizeof(head) - 1 + out_len, tail, sizeof(tail) - 1);
		found = json_scan_member(doc, n, "stored_data", &span, why, sizeof(why));
		FUZZ_CHECK(found == 1 && span.type == '[',
		           "the responder stores this object (201) but the caller rejects its GET "
		           "/data answer: %s",
		           found < 0 ? why : "no stored_data array");
		free(doc);
	}
	free(out);
	json_decref(ref);
	return 0;
}
