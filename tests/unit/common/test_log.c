/* Unit tests for common/log.c: escaping keeps every line valid JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../../../common/log.h"

static void
test_escape_quotes_controls_and_high_bytes(void **state)
{
	char out[64];
	size_t len;

	(void)state;
	len = log_escape(out, sizeof(out), 0, "a\"b\\c\n\x01\xc3\xa9");
	assert_string_equal(out, "a\\\"b\\\\c\\u000a\\u0001\\u00c3\\u00a9");
	assert_int_equal(len, strlen(out));
}

static void
test_escape_appends_and_never_overflows(void **state)
{
	char out[8] = "ab";
	size_t len;

	(void)state;
	len = log_escape(out, sizeof(out), 2, "\"\"\"\"\"\"");
	assert_true(len < sizeof(out));
	assert_string_equal(out, "ab\\\"\\\"");
	len = log_escape(out, sizeof(out), 2, "\n");
	assert_string_equal(out, "ab");
	assert_int_equal(len, 2);
}

static void
test_level_parse(void **state)
{
	enum log_level level;

	(void)state;
	assert_int_equal(log_level_parse("debug", &level), 0);
	assert_int_equal(level, LOG_DEBUG);
	assert_int_equal(log_level_parse("ERROR", &level), 0);
	assert_int_equal(level, LOG_ERROR);
	assert_int_equal(log_level_parse("verbose", &level), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_quotes_controls_and_high_bytes),
	    cmocka_unit_test(test_escape_appends_and_never_overflows),
	    cmocka_unit_test(test_level_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
