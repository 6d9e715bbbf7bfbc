/* Unit tests for caller/retry.c: the budget caps retries, backoff grows with jitter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "../../../caller/retry.h"

static void
test_budget_caps_retries_to_share_of_calls(void **state)
{
	struct retry_budget b;
	int calls, granted = 0;

	(void)state;
	retry_budget_init(&b, 20);
	/* A responder that always fails: every call wants a retry. */
	for (calls = 0; calls < 1000; calls++) {
		retry_budget_deposit(&b);
		granted += retry_budget_withdraw(&b);
	}
	assert_true(granted <= 1000 * 20 / 100 + (int)RETRY_BUDGET_RESERVE);
	assert_true(granted >= 1000 * 20 / 100 - 1);
	assert_int_equal(atomic_load(&b.retries), granted);
	assert_int_equal(atomic_load(&b.exhausted), 1000 - granted);
}

static void
test_zero_percent_allows_only_the_reserve(void **state)
{
	struct retry_budget b;
	int i, granted = 0;

	(void)state;
	retry_budget_init(&b, 0);
	for (i = 0; i < 100; i++) {
		retry_budget_deposit(&b);
		granted += retry_budget_withdraw(&b);
	}
	assert_int_equal(granted, (int)RETRY_BUDGET_RESERVE);
}

static void
test_backoff_bounds(void **state)
{
	(void)state;
	assert_int_equal(retry_backoff_ms(1, 50, 0.0), 1);
	assert_int_equal(retry_backoff_ms(1, 50, 0.5), 25);
	assert_int_equal(retry_backoff_ms(2, 50, 0.5), 50);
	assert_int_equal(retry_backoff_ms(3, 50, 0.999), 199);
	assert_true(retry_backoff_ms(60, 50, 0.5) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_budget_caps_retries_to_share_of_calls),
	    cmocka_unit_test(test_zero_percent_allows_only_the_reserve),
	    cmocka_unit_test(test_backoff_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
