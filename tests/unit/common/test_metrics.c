/* Unit tests for common/metrics.c: histogram buckets and the text they render to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../common/metrics.h"

static char *
render(const struct histogram *h, const char *labels)
{
	struct buffer out;

	buffer_init(&out, 1 << 16);
	histogram_render(&out, "t_seconds", labels, h);
	assert_int_equal(buffer_append(&out, "", 1), BUFFER_OK);
	return buffer_steal(&out, NULL);
}

static void
test_buckets_are_cumulative_with_inclusive_bounds(void **state)
{
	static struct histogram h;
	char *text;

	(void)state;
	histogram_observe(&h, 0.0005);
	histogram_observe(&h, 0.003);
	histogram_observe(&h, 0.003);
	histogram_observe(&h, 7.0);
	text = render(&h, "route=\"/data\"");
	assert_non_null(strstr(text, "t_seconds_bucket{route=\"/data\",le=\"0.0005\"} 1\n"));
	assert_non_null(strstr(text, "t_seconds_bucket{route=\"/data\",le=\"0.0025\"} 1\n"));
	assert_non_null(strstr(text, "t_seconds_bucket{route=\"/data\",le=\"0.005\"} 3\n"));
	assert_non_null(strstr(text, "t_seconds_bucket{route=\"/data\",le=\"2.5\"} 3\n"));
	assert_non_null(strstr(text, "t_seconds_bucket{route=\"/data\",le=\"+Inf\"} 4\n"));
	assert_non_null(strstr(text, "t_seconds_sum{route=\"/data\"} 7.006500\n"));
	assert_non_null(strstr(text, "t_seconds_count{route=\"/data\"} 4\n"));
	free(text);
}

static void
test_no_labels_no_braces(void **state)
{
	static struct histogram h;
	char *text;

	(void)state;
	histogram_observe(&h, 0.1);
	text = render(&h, "");
	assert_non_null(strstr(text, "t_seconds_bucket{le=\"0.1\"} 1\n"));
	assert_non_null(strstr(text, "\nt_seconds_sum 0.100000\n"));
	assert_non_null(strstr(text, "\nt_seconds_count 1\n"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buckets_are_cumulative_with_inclusive_bounds),
	    cmocka_unit_test(test_no_labels_no_braces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
