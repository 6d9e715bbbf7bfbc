/* Unit tests for common/rate_limit.c: burst, refill, separate clients, bounded table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "../../../common/rate_limit.h"
#include "../../../common/log.h"

static void
test_burst_then_rate(void **state)
{
	struct rate_limiter *l = rate_limit_new(2, 3, 100);
	double wait = 0;
	int i;

	(void)state;
	assert_non_null(l);
	for (i = 0; i < 3; i++)
		assert_true(rate_limit_take(l, "10.0.0.1", 100.0, &wait));
	assert_false(rate_limit_take(l, "10.0.0.1", 100.0, &wait));
	assert_true(wait > 0.49 && wait <= 0.5);
	assert_false(rate_limit_take(l, "10.0.0.1", 100.25, &wait));
	assert_true(rate_limit_take(l, "10.0.0.1", 100.5, &wait));
	/* Another client has its own bucket. */
	assert_true(rate_limit_take(l, "10.0.0.2", 100.5, &wait));
	rate_limit_free(l);
}

static void
test_many_clients_stay_bounded_and_fail_open(void **state)
{
	struct rate_limiter *l = rate_limit_new(1, 1, 16);
	char key[32];
	double wait;
	int i;

	(void)state;
	assert_non_null(l);
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "client-%d", i);
		assert_true(rate_limit_take(l, key, 5.0, &wait));
	}
	/* Buckets that have refilled are forgotten, so old clients look new again. */
	assert_true(rate_limit_take(l, "client-0", 10.0, &wait));
	rate_limit_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_then_rate),
	    cmocka_unit_test(test_many_clients_stay_bounded_and_fail_open),
	};

	/* The state changes under test are logged at warn; keep the test output to the tests. */
	log_init("test", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
