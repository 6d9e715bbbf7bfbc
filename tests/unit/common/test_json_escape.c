/* Unit tests for common/json_escape.c: escaping keeps every line and answer valid JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../../common/json_escape.h"

static void
test_escape_quotes_controls_and_high_bytes(void **state)
{
	char out[64];
	size_t len;

	(void)state;
	len = json_escape(out, sizeof(out), 0, "a\"b\\c\n\x01\xc3\xa9");
	assert_string_equal(out, "a\\\"b\\\\c\\u000a\\u0001\\u00c3\\u00a9");
	assert_int_equal(len, strlen(out));
}

static void
test_escape_appends_and_never_overflows(void **state)
{
	char out[8] = "ab";
	size_t len;

	(void)state;
	len = json_escape(out, sizeof(out), 2, "\"\"\"\"\"\"");
	assert_true(len < sizeof(out));
	assert_string_equal(out, "ab\\\"\\\"");
	len = json_escape(out, sizeof(out), 2, "\n");
	assert_string_equal(out, "ab");
	assert_int_equal(len, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_quotes_controls_and_high_bytes),
	    cmocka_unit_test(test_escape_appends_and_never_overflows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
