/* Unit tests for common/store.c: order, limits, stable snapshots, concurrent writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../../common/store.h"

static void
test_objects_are_joined_oldest_first(void **state)
{
	struct store s;
	const char *data;
	size_t len, items;

	(void)state;
	assert_int_equal(store_init(&s, 10, 1024), 0);
	store_snapshot(&s, &data, &len, &items);
	assert_int_equal(len, 0);
	assert_int_equal(items, 0);
	assert_int_equal(store_append(&s, "{\"a\":1}", 7), STORE_OK);
	assert_int_equal(store_append(&s, "{\"b\":2}", 7), STORE_OK);
	store_snapshot(&s, &data, &len, &items);
	assert_int_equal(items, 2);
	assert_int_equal(len, 15);
	assert_memory_equal(data, "{\"a\":1},{\"b\":2}", 15);
	store_destroy(&s);
}

static void
test_item_limit(void **state)
{
	struct store s;
	const char *data;
	size_t len, items;

	(void)state;
	assert_int_equal(store_init(&s, 2, 1024), 0);
	assert_int_equal(store_append(&s, "{}", 2), STORE_OK);
	assert_int_equal(store_append(&s, "{}", 2), STORE_OK);
	assert_int_equal(store_append(&s, "{}", 2), STORE_FULL_ITEMS);
	store_snapshot(&s, &data, &len, &items);
	assert_int_equal(items, 2);
	assert_int_equal(len, 5);
	store_destroy(&s);
}

static void
test_byte_limit_counts_separators(void **state)
{
	struct store s;
	const char *data;
	size_t len, items;

	(void)state;
	assert_int_equal(store_init(&s, 100, 10), 0);
	assert_int_equal(store_append(&s, "{\"a\":1}", 7), STORE_OK);
	/* 7 + 1 comma + 2 = 10 fits exactly; one more byte does not. */
	assert_int_equal(store_append(&s, "{\"b\":2}", 7), STORE_FULL_BYTES);
	assert_int_equal(store_append(&s, "{}", 2), STORE_OK);
	assert_int_equal(store_append(&s, "1", 1), STORE_FULL_BYTES);
	store_snapshot(&s, &data, &len, &items);
	assert_int_equal(len, 10);
	assert_memory_equal(data, "{\"a\":1},{}", 10);
	store_destroy(&s);
}

static void
test_snapshot_bytes_stay_valid_after_appends(void **state)
{
	struct store s;
	const char *before, *after;
	size_t len_before, len_after;
	int i;

	(void)state;
	assert_int_equal(store_init(&s, 100000, 8 << 20), 0);
	assert_int_equal(store_append(&s, "{\"first\":true}", 14), STORE_OK);
	store_snapshot(&s, &before, &len_before, NULL);
	for (i = 0; i < 50000; i++)
		assert_int_equal(store_append(&s, "{\"k\":\"0123456789\"}", 18), STORE_OK);
	store_snapshot(&s, &after, &len_after, NULL);
	assert_ptr_equal(before, after);
	assert_memory_equal(before, "{\"first\":true}", len_before);
	assert_int_equal(len_after, 14 + 50000 * 19);
	store_destroy(&s);
}

#define WRITERS    4
#define PER_WRITER 5000

static void *
writer(void *arg)
{
	struct store *s = arg;
	int i;

	for (i = 0; i < PER_WRITER; i++)
		if (store_append(s, "{\"w\":1}", 7) != STORE_OK)
			return (void *)1;
	return NULL;
}

static void
test_concurrent_writers_lose_nothing(void **state)
{
	pthread_t threads[WRITERS];
	struct store s;
	const char *data;
	size_t len, items, i, commas = 0;
	void *failed;
	int t;

	(void)state;
	assert_int_equal(store_init(&s, WRITERS * PER_WRITER, 1 << 20), 0);
	for (t = 0; t < WRITERS; t++)
		assert_int_equal(pthread_create(&threads[t], NULL, writer, &s), 0);
	for (t = 0; t < WRITERS; t++) {
		assert_int_equal(pthread_join(threads[t], &failed), 0);
		assert_null(failed);
	}
	store_snapshot(&s, &data, &len, &items);
	assert_int_equal(items, WRITERS * PER_WRITER);
	assert_int_equal(len, WRITERS * PER_WRITER * 8 - 1);
	for (i = 0; i < len; i++)
		commas += data[i] == ',';
	assert_int_equal(commas, WRITERS * PER_WRITER - 1);
	store_destroy(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_objects_are_joined_oldest_first),
	    cmocka_unit_test(test_item_limit),
	    cmocka_unit_test(test_byte_limit_counts_separators),
	    cmocka_unit_test(test_snapshot_bytes_stay_valid_after_appends),
	    cmocka_unit_test(test_concurrent_writers_lose_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
