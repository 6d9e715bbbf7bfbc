/* Unit tests for common/config.c: defaults, ranges, the exact error line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../common/config.h"

static void
test_integer_default_when_unset_or_empty(void **state)
{
	long long v = 0;

	(void)state;
	unsetenv("TEST_VALUE");
	assert_int_equal(config_integer("TEST_VALUE", 42, 1, 100, &v), 0);
	assert_int_equal(v, 42);
	setenv("TEST_VALUE", "", 1);
	assert_int_equal(config_integer("TEST_VALUE", 43, 1, 100, &v), 0);
	assert_int_equal(v, 43);
}

static void
test_integer_strict(void **state)
{
	static const char *const bad[] = {
	    "abc", "12abc", "0", "101", "-5", " 7", "99999999999999999999"};
	long long v = 0;
	size_t i;

	(void)state;
	setenv("TEST_VALUE", "100", 1);
	assert_int_equal(config_integer("TEST_VALUE", 1, 1, 100, &v), 0);
	assert_int_equal(v, 100);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("TEST_VALUE", bad[i], 1);
		if (config_integer("TEST_VALUE", 1, 1, 100, &v) != -1)
			fail_msg("accepted TEST_VALUE=%s", bad[i]);
	}
}

static void
test_string_takes_first_set(void **state)
{
	static const char *const names[] = {"TEST_FIRST", "TEST_SECOND", NULL};

	(void)state;
	unsetenv("TEST_FIRST");
	unsetenv("TEST_SECOND");
	assert_string_equal(config_string(names, "dflt"), "dflt");
	setenv("TEST_SECOND", "second", 1);
	assert_string_equal(config_string(names, "dflt"), "second");
	setenv("TEST_FIRST", "first", 1);
	assert_string_equal(config_string(names, "dflt"), "first");
}

static void
test_server_config_defaults_and_errors(void **state)
{
	struct server_config c;

	(void)state;
	unsetenv("PORT");
	unsetenv("LOG_LEVEL");
	unsetenv("BODY_MAX_BYTES");
	assert_int_equal(server_config_load(&c), 0);
	assert_int_equal(c.port, 5000);
	assert_int_equal(c.body_max_bytes, 1048576);
	assert_int_equal(c.drain_timeout_ms, 10000);
	assert_int_equal(c.log_level, LOG_INFO);
	setenv("LOG_LEVEL", "WARN", 1);
	assert_int_equal(server_config_load(&c), 0);
	assert_int_equal(c.log_level, LOG_WARN);
	setenv("LOG_LEVEL", "loud", 1);
	assert_int_equal(server_config_load(&c), -1);
	unsetenv("LOG_LEVEL");
	setenv("PORT", "70000", 1);
	assert_int_equal(server_config_load(&c), -1);
	unsetenv("PORT");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_integer_default_when_unset_or_empty),
	    cmocka_unit_test(test_integer_strict),
	    cmocka_unit_test(test_string_takes_first_set),
	    cmocka_unit_test(test_server_config_defaults_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
