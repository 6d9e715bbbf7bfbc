/* Unit tests for common/payload.c: what POST /data accepts and how it is stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../common/payload.h"

/* Parses text; on success checks the stored form equals want, on failure that err contains want. */
static void
expect(const char *text, size_t len, enum payload_result want_rc, const char *want)
{
	char err[512] = "", *out = NULL;
	size_t out_len = 0;
	enum payload_result rc = payload_parse(text, len, &out, &out_len, err, sizeof(err));

	assert_int_equal(rc, want_rc);
	if (rc == 0) {
		assert_int_equal(out_len, strlen(want));
		assert_memory_equal(out, want, out_len);
		free(out);
	} else {
		assert_non_null(strstr(err, want));
	}
}

#define EXPECT(text, rc, want) expect(text, sizeof(text) - 1, rc, want)

static void
test_object_kept_as_sent_without_white_space(void **state)
{
	(void)state;
	EXPECT("{\"key\": \"value\"}", 0, "{\"key\":\"value\"}");
	EXPECT(" {\n\t\"b\" : 1 ,\r\n \"a\" : [ 1 , 2.50 , 1e3 ] }\n", 0,
	       "{\"b\":1,\"a\":[1,2.50,1e3]}");
	EXPECT("{\"s\":\"  spaces \\\" and \\\\ kept  \"}", 0,
	       "{\"s\":\"  spaces \\\" and \\\\ kept  \"}");
	EXPECT("{\"u\":\"\\u00e9 caf\xc3\xa9\"}", 0, "{\"u\":\"\\u00e9 caf\xc3\xa9\"}");
	EXPECT("{\"big\":123456789012345678901234567890}", 0,
	       "{\"big\":123456789012345678901234567890}");
}

static void
test_empty_body_and_empty_object_say_no_data(void **state)
{
	(void)state;
	expect("", 0, PAYLOAD_INVALID, "No data provided");
	EXPECT("{}", PAYLOAD_INVALID, "No data provided");
	EXPECT(" { } ", PAYLOAD_INVALID, "No data provided");
}

static void
test_not_an_object(void **state)
{
	(void)state;
	EXPECT("[1,2]", PAYLOAD_INVALID, "must be an object, got an array");
	EXPECT("\"text\"", PAYLOAD_INVALID, "got a string");
	EXPECT("42", PAYLOAD_INVALID, "got a number");
	EXPECT("null", PAYLOAD_INVALID, "got null");
	EXPECT("true", PAYLOAD_INVALID, "got a boolean");
}

static void
test_malformed_and_hostile(void **state)
{
	char deep[5000];
	int i;

	(void)state;
	EXPECT("{\"a\":", PAYLOAD_INVALID, "Invalid JSON");
	EXPECT("{\"a\":1} trailing", PAYLOAD_INVALID, "Invalid JSON");
	EXPECT("{\"a\":1,\"a\":2}", PAYLOAD_INVALID, "duplicate");
	EXPECT("{\"a\":\"\\u0000\"}", PAYLOAD_INVALID, "Invalid JSON");
	EXPECT("{\"a\":\"\xff\"}", PAYLOAD_INVALID, "Invalid JSON");
	EXPECT("{\"a\":1e999}", PAYLOAD_INVALID, "Invalid JSON");
	expect("{\"a\":\"x\0y\"}", 11, PAYLOAD_INVALID, "Invalid JSON");
	/* jansson alone would accept a raw NUL right after a number. */
	expect("{\"a\":1\0}", 8, PAYLOAD_INVALID, "NUL byte");
	for (i = 0; i < 2500; i++)
		deep[i] = '[';
	for (; i < 5000; i++)
		deep[i] = ']';
	memcpy(deep, "{\"a\":", 5);
	expect(deep, sizeof(deep), PAYLOAD_INVALID, "Invalid JSON");
}

/* Deeper than the caller's scanner can follow inside {"stored_data":[...]} is refused. */
static void
test_nesting_limit_matches_the_callers_scanner(void **state)
{
	char text[2 * PAYLOAD_MAX_DEPTH + 16], *out = NULL, err[256];
	size_t n = 0, i, out_len;
	int levels;

	(void)state;
	for (levels = PAYLOAD_MAX_DEPTH; levels <= PAYLOAD_MAX_DEPTH + 1; levels++) {
		n = (size_t)snprintf(text, sizeof(text), "{\"a\":");
		for (i = 1; i < (size_t)levels; i++)
			text[n++] = '[';
		for (i = 1; i < (size_t)levels; i++)
			text[n++] = ']';
		text[n++] = '}';
		if (levels == PAYLOAD_MAX_DEPTH) {
			assert_int_equal(payload_parse(text, n, &out, &out_len, err, sizeof(err)),
			                 0);
			free(out);
		} else {
			assert_int_equal(payload_parse(text, n, &out, &out_len, err, sizeof(err)),
			                 PAYLOAD_INVALID);
			assert_non_null(strstr(err, "nesting"));
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_object_kept_as_sent_without_white_space),
	    cmocka_unit_test(test_empty_body_and_empty_object_say_no_data),
	    cmocka_unit_test(test_not_an_object),
	    cmocka_unit_test(test_malformed_and_hostile),
	    cmocka_unit_test(test_nesting_limit_matches_the_callers_scanner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
