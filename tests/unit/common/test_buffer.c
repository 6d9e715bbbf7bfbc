/* Unit tests for common/buffer.c: growth, the hard maximum, stealing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../common/buffer.h"

static void
test_appends_grow_and_keep_bytes(void **state)
{
	struct buffer b;
	char chunk[1000];
	int i;

	(void)state;
	memset(chunk, 'x', sizeof(chunk));
	buffer_init(&b, 1 << 20);
	for (i = 0; i < 100; i++)
		assert_int_equal(buffer_append(&b, chunk, sizeof(chunk)), BUFFER_OK);
	assert_int_equal(b.len, 100000);
	assert_true(b.cap >= b.len);
	assert_int_equal(b.data[99999], 'x');
	buffer_free(&b);
	assert_null(b.data);
}

static void
test_maximum_is_exact_and_refusal_changes_nothing(void **state)
{
	struct buffer b;

	(void)state;
	buffer_init(&b, 10);
	assert_int_equal(buffer_append(&b, "0123456789", 10), BUFFER_OK);
	assert_int_equal(buffer_append(&b, "a", 1), BUFFER_TOO_LARGE);
	assert_int_equal(b.len, 10);
	assert_memory_equal(b.data, "0123456789", 10);
	buffer_free(&b);
}

static void
test_capacity_never_passes_maximum(void **state)
{
	struct buffer b;
	char chunk[300] = {0};

	(void)state;
	buffer_init(&b, 1000);
	assert_int_equal(buffer_append(&b, chunk, 300), BUFFER_OK);
	assert_int_equal(buffer_append(&b, chunk, 300), BUFFER_OK);
	assert_int_equal(buffer_append(&b, chunk, 300), BUFFER_OK);
	assert_true(b.cap <= 1000);
	assert_int_equal(buffer_append(&b, chunk, 101), BUFFER_TOO_LARGE);
	assert_int_equal(buffer_append(&b, chunk, 100), BUFFER_OK);
	assert_int_equal(b.cap, 1000);
	buffer_free(&b);
}

static void
test_steal_hands_over_data(void **state)
{
	struct buffer b;
	size_t len = 0;
	char *data;

	(void)state;
	buffer_init(&b, 64);
	assert_int_equal(buffer_append(&b, "abc", 3), BUFFER_OK);
	data = buffer_steal(&b, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(data, "abc", 3);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(data);
	assert_null(buffer_steal(&b, &len));
	assert_int_equal(len, 0);
}

static void
test_printf_appends_short_and_long_text_within_maximum(void **state)
{
	struct buffer b;
	char long_text[2000];

	(void)state;
	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	buffer_init(&b, 2010);
	assert_int_equal(buffer_printf(&b, "%d-%s", 42, "ok"), BUFFER_OK);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "42-ok", 5);
	assert_int_equal(buffer_printf(&b, "%s", long_text), BUFFER_OK);
	assert_int_equal(b.len, 5 + 1999);
	assert_int_equal(b.data[b.len - 1], 'x');
	/* Past the maximum, short or long, nothing is appended. */
	assert_int_equal(buffer_printf(&b, "%s", "1234567"), BUFFER_TOO_LARGE);
	assert_int_equal(buffer_printf(&b, "%s", long_text), BUFFER_TOO_LARGE);
	assert_int_equal(b.len, 5 + 1999);
	assert_int_equal(buffer_printf(&b, "%s", "123456"), BUFFER_OK);
	assert_int_equal(b.len, 2010);
	buffer_free(&b);
}

static void
test_reserve_allocates_exactly_once_within_maximum(void **state)
{
	struct buffer b;
	char *before;

	(void)state;
	buffer_init(&b, 1000);
	assert_int_equal(buffer_append(&b, "ab", 2), BUFFER_OK);
	assert_int_equal(buffer_reserve(&b, 600), BUFFER_OK);
	assert_int_equal(b.cap, 602);
	before = b.data;
	/* The reserved room is used without growing again. */
	for (int i = 0; i < 600; i++)
		assert_int_equal(buffer_append(&b, "x", 1), BUFFER_OK);
	assert_ptr_equal(b.data, before);
	assert_int_equal(b.cap, 602);
	assert_memory_equal(b.data, "abx", 3);
	/* Past the maximum nothing changes; what fits already is a no-op. */
	assert_int_equal(buffer_reserve(&b, 399), BUFFER_TOO_LARGE);
	assert_int_equal(b.cap, 602);
	assert_int_equal(buffer_reserve(&b, 0), BUFFER_OK);
	assert_int_equal(b.len, 602);
	buffer_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_appends_grow_and_keep_bytes),
	    cmocka_unit_test(test_maximum_is_exact_and_refusal_changes_nothing),
	    cmocka_unit_test(test_capacity_never_passes_maximum),
	    cmocka_unit_test(test_steal_hands_over_data),
	    cmocka_unit_test(test_printf_appends_short_and_long_text_within_maximum),
	    cmocka_unit_test(test_reserve_allocates_exactly_once_within_maximum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
