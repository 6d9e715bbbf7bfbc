/* Unit tests for common/xray_sampler.c: X-Ray's reservoir and fixed rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "../../../common/xray_sampler.h"

static void
test_reservoir_then_rate(void **state)
{
	struct xray_sampler s;
	int i, sampled = 0;

	(void)state;
	xray_sampler_init(&s, 2, 0.0);
	/* The first two of second 100 are sampled whatever the draw; the rest by the rate (0). */
	assert_int_equal(xray_sample(&s, 100.1, 0.99), 1);
	assert_int_equal(xray_sample(&s, 100.5, 0.99), 1);
	for (i = 0; i < 100; i++)
		sampled += xray_sample(&s, 100.9, 0.0);
	assert_int_equal(sampled, 0);
	/* A new second refills the reservoir. */
	assert_int_equal(xray_sample(&s, 101.0, 0.99), 1);
	assert_int_equal(xray_sample(&s, 101.2, 0.99), 1);
	assert_int_equal(xray_sample(&s, 101.3, 0.99), 0);
	/* A request that read the clock before the second turned gets no reservoir back. */
	assert_int_equal(xray_sample(&s, 100.99, 0.99), 0);
}

static void
test_rate_alone(void **state)
{
	struct xray_sampler s;

	(void)state;
	xray_sampler_init(&s, 0, 0.05);
	assert_int_equal(xray_sample(&s, 5.0, 0.0499), 1);
	assert_int_equal(xray_sample(&s, 5.0, 0.05), 0);
	assert_int_equal(xray_sample(&s, 5.0, 0.9), 0);
	xray_sampler_init(&s, 0, 1.0);
	assert_int_equal(xray_sample(&s, 5.0, 0.999999), 1);
	xray_sampler_init(&s, 0, 0.0);
	assert_int_equal(xray_sample(&s, 5.0, 0.0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reservoir_then_rate),
	    cmocka_unit_test(test_rate_alone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
