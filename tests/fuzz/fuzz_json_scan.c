/*
 * json_scan_member() (common/json_scan.h), the strict validator the caller runs
 * on the responder's answer, against jansson as the reference:
 * - no crash, no sanitizer report, for any bytes;
 * - the same verdict as jansson wherever their rules coincide (jansson is run
 *   with JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL). Where
 *   they do not, nothing is asserted: jansson's number overflow and depth
 *   (2048) limits, our depth limit of 512, and a jansson 2.14 quirk: one raw
 *   NUL byte right after a number ends the number token and is skipped, so
 *   jansson takes `6<NUL>` or `{"a":1<NUL>}`, which are not JSON (see
 *   regressions/fuzz_json_scan/ and regressions/fuzz_payload/);
 * - a found member's span lies inside the text, starts with its type byte and
 *   is itself valid JSON equal to what jansson finds under that key.
 */
#include <stdint.h>

#include "../../common/json_scan.h"
#include "fuzz_util.h"

#define KEY "stored_data"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct json_span span = {0, 0, 0};
	char err[128];
	json_error_t jerr;
	json_t *root, *member;
	int rc, deep, has_escape;

	err[0] = '\0';
	rc = json_scan_member(text, size, KEY, &span, err, sizeof(err));
	FUZZ_CHECK(rc >= -1 && rc <= 1, "rc %d", rc);
	if (rc < 0)
		FUZZ_CHECK(err[0] != '\0' && strlen(err) < sizeof(err), "no reason given");
	deep = rc < 0 && strstr(err, "nesting too deep") != NULL;

	root = json_loadb(text, size, FUZZ_JANSSON_FLAGS, &jerr);
	if (root == NULL) {
		if (!fuzz_jansson_limit(&jerr))
			FUZZ_CHECK(rc < 0, "jansson rejects (%s, line %d col %d) but json_scan accepts",
			           jerr.text, jerr.line, jerr.column);
		return 0;
	}
	/* Our limit of 512 levels is stricter than jansson's 2048, on purpose; raw NUL: see above. */
	FUZZ_CHECK(rc >= 0 || deep || memchr(data, '\0', size) != NULL,
	           "jansson accepts but json_scan rejects: %s", err);
	if (rc < 0) {
		json_decref(root);
		return 0;
	}
	if (!json_is_object(root))
		FUZZ_CHECK(rc == 0, "a member found in a top-level %d", json_typeof(root));
	/* Keys are compared without decoding escapes, so only plain texts are compared by value. */
	has_escape = memchr(data, '\\', size) != NULL;
	member = json_is_object(root) ? json_object_get(root, KEY) : NULL;
	if (rc == 0 && !has_escape)
		FUZZ_CHECK(member == NULL, "jansson finds \"" KEY "\", json_scan does not");
	if (rc == 1) {
		json_t *value;

		FUZZ_CHECK(span.len > 0 && span.offset < size && span.len <= size - span.offset,
		           "span %zu+%zu outside %zu bytes", span.offset, span.len, size);
		FUZZ_CHECK(span.type == text[span.offset], "type '%c' but text '%c'", span.type,
		           text[span.offset]);
		FUZZ_CHECK(strchr("[{\"tfn-0123456789", span.type) != NULL, "type '%c'", span.type);
		value = json_loadb(text + span.offset, span.len, FUZZ_JANSSON_FLAGS, &jerr);
		FUZZ_CHECK(value != NULL || fuzz_jansson_limit(&jerr),
		           "the span is not valid JSON for jansson: %s", jerr.text);
		if (value != NULL && !has_escape)
			FUZZ_CHECK(member != NULL && json_equal(member, value),
			           "the span differs from jansson's value for \"" KEY "\"");
		json_decref(value);
	}
	json_decref(root);
	return 0;
}
