/* Unit tests for caller/retry.c: the budget caps retries, backoff grows with jitter, the decision.
 */
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

/* A refused first attempt at 0 ms of a 1000 ms call, RETRY_MAX 2, RETRY_BACKOFF_MS 50. */
static struct failed_attempt
refused_first(void)
{
	struct failed_attempt f = {.retryable = 1,
	                           .attempt = 1,
	                           .retry_max = 2,
	                           .base_ms = 50,
	                           .uniform = 0.5,
	                           .now_ms = 0,
	                           .deadline_ms = 1000};

	return f;
}

static void
test_decide_retries_with_the_backoff(void **state)
{
	struct failed_attempt f = refused_first();

	(void)state;
	assert_int_equal(retry_decide(&f), 25);
	f.attempt = 2;
	assert_int_equal(retry_decide(&f), 50);
	f.uniform = 0.0;
	assert_int_equal(retry_decide(&f), 1);
}

static void
test_decide_not_retryable(void **state)
{
	struct failed_attempt f = refused_first();

	(void)state;
	f.retryable = 0;
	assert_int_equal(retry_decide(&f), -1);
}

static void
test_decide_stops_at_retry_max(void **state)
{
	struct failed_attempt f = refused_first();

	(void)state;
	f.attempt = 3; /* the second retry failed: RETRY_MAX 2 are spent */
	assert_int_equal(retry_decide(&f), -1);
	f.attempt = 1;
	f.retry_max = 0;
	assert_int_equal(retry_decide(&f), -1);
}

/* The attempt after the wait needs RETRY_MIN_TIME_LEFT_MS before the deadline. */
static void
test_decide_needs_time_before_the_deadline(void **state)
{
	struct failed_attempt f = refused_first();

	(void)state;
	f.now_ms = 1000 - 25 - RETRY_MIN_TIME_LEFT_MS - 1;
	assert_int_equal(retry_decide(&f), 25);
	f.now_ms++;
	assert_int_equal(retry_decide(&f), -1);
	f.now_ms = 1000;
	assert_int_equal(retry_decide(&f), -1);
	f.now_ms = 2000;
	assert_int_equal(retry_decide(&f), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_budget_caps_retries_to_share_of_calls),
	    cmocka_unit_test(test_zero_percent_allows_only_the_reserve),
	    cmocka_unit_test(test_backoff_bounds),
	    cmocka_unit_test(test_decide_retries_with_the_backoff),
	    cmocka_unit_test(test_decide_not_retryable),
	    cmocka_unit_test(test_decide_stops_at_retry_max),
	    cmocka_unit_test(test_decide_needs_time_before_the_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
