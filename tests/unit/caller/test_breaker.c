/* Unit tests for caller/breaker.c: open after the threshold, fail fast, one probe, close. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "../../../caller/breaker.h"
#include "../../../common/log.h"

static void
test_opens_after_threshold_and_fails_fast(void **state)
{
	struct breaker b;
	long long wait = -1;
	int i;

	(void)state;
	breaker_init(&b, 3, 1000);
	for (i = 0; i < 2; i++) {
		assert_true(breaker_allow(&b, 0, &wait));
		breaker_record(&b, 0, 0);
	}
	assert_int_equal(atomic_load(&b.state), BREAKER_CLOSED);
	assert_true(breaker_allow(&b, 10, &wait));
	breaker_record(&b, 0, 10);
	assert_int_equal(atomic_load(&b.state), BREAKER_OPEN);
	assert_false(breaker_allow(&b, 500, &wait));
	assert_int_equal(wait, 510);
	assert_int_equal(atomic_load(&b.transitions[BREAKER_OPEN]), 1);
}

static void
test_success_resets_the_count(void **state)
{
	struct breaker b;
	long long wait;

	(void)state;
	breaker_init(&b, 2, 1000);
	breaker_allow(&b, 0, &wait);
	breaker_record(&b, 0, 0);
	breaker_allow(&b, 0, &wait);
	breaker_record(&b, 1, 0);
	breaker_allow(&b, 0, &wait);
	breaker_record(&b, 0, 0);
	assert_int_equal(atomic_load(&b.state), BREAKER_CLOSED);
}

static void
test_half_open_lets_one_probe_through(void **state)
{
	struct breaker b;
	long long wait;

	(void)state;
	breaker_init(&b, 1, 100);
	breaker_allow(&b, 0, &wait);
	breaker_record(&b, 0, 0);
	assert_int_equal(atomic_load(&b.state), BREAKER_OPEN);
	assert_true(breaker_allow(&b, 100, &wait)); /* the probe */
	assert_int_equal(atomic_load(&b.state), BREAKER_HALF_OPEN);
	assert_false(breaker_allow(&b, 101, &wait)); /* everyone else waits for it */
	breaker_record(&b, 0, 150);                  /* the probe failed: open again */
	assert_int_equal(atomic_load(&b.state), BREAKER_OPEN);
	assert_false(breaker_allow(&b, 200, &wait));
	assert_int_equal(wait, 50);
	assert_true(breaker_allow(&b, 250, &wait));
	breaker_record(&b, 1, 260); /* the probe succeeded: closed */
	assert_int_equal(atomic_load(&b.state), BREAKER_CLOSED);
	assert_true(breaker_allow(&b, 261, &wait));
	assert_true(breaker_allow(&b, 261, &wait));
	assert_int_equal(atomic_load(&b.transitions[BREAKER_OPEN]), 2);
	assert_int_equal(atomic_load(&b.transitions[BREAKER_HALF_OPEN]), 2);
	assert_int_equal(atomic_load(&b.transitions[BREAKER_CLOSED]), 1);
}

static void
test_threshold_zero_never_opens(void **state)
{
	struct breaker b;
	long long wait;
	int i;

	(void)state;
	breaker_init(&b, 0, 100);
	for (i = 0; i < 100; i++) {
		assert_true(breaker_allow(&b, i, &wait));
		breaker_record(&b, 0, i);
	}
	assert_int_equal(atomic_load(&b.state), BREAKER_CLOSED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_opens_after_threshold_and_fails_fast),
	    cmocka_unit_test(test_success_resets_the_count),
	    cmocka_unit_test(test_half_open_lets_one_probe_through),
	    cmocka_unit_test(test_threshold_zero_never_opens),
	};

	/* The state changes under test are logged at warn; keep the test output to the tests. */
	log_init("test", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
