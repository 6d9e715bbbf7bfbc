/* Unit tests for common/metrics.c: the registry, histogram buckets and the text they render to. */
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

/* A source that writes its own name. */
static void
render_name(struct buffer *out, void *arg)
{
	metrics_printf(out, "%s\n", (const char *)arg);
}

static char *
render_all(struct metrics *m)
{
	struct buffer out;

	buffer_init(&out, 1 << 16);
	metrics_render(m, &out);
	assert_int_equal(buffer_append(&out, "", 1), BUFFER_OK);
	return buffer_steal(&out, NULL);
}

static void
test_registry_renders_in_order_and_forgets_unregistered(void **state)
{
	static char a[] = "a", b[] = "b", c[] = "c";
	struct metrics *m = metrics_new();
	char *text;
	int i;

	(void)state;
	assert_non_null(m);
	/* More sources than any fixed table the registry once had. */
	for (i = 0; i < 20; i++)
		assert_int_equal(metrics_register(m, render_name, NULL, i % 2 ? b : a), 0);
	assert_int_equal(metrics_register(m, render_name, NULL, c), 0);
	text = render_all(m);
	assert_int_equal(strlen(text), 21 * 2);
	assert_string_equal(text + 40, "c\n");
	assert_memory_equal(text, "a\nb\na\n", 6);
	free(text);
	metrics_unregister(m, b);
	metrics_unregister(m, a);
	text = render_all(m);
	assert_string_equal(text, "c\n");
	free(text);
	metrics_free(m);
}

static void
test_page_maximum_drops_what_does_not_fit(void **state)
{
	static char line[] = "0123456789";
	struct metrics *m = metrics_new();
	struct buffer out;

	(void)state;
	assert_int_equal(metrics_register(m, render_name, NULL, line), 0);
	assert_int_equal(metrics_register(m, render_name, NULL, line), 0);
	buffer_init(&out, 15);
	metrics_render(m, &out);
	assert_int_equal(out.len, 11);
	buffer_free(&out);
	metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_buckets_are_cumulative_with_inclusive_bounds),
	    cmocka_unit_test(test_no_labels_no_braces),
	    cmocka_unit_test(test_registry_renders_in_order_and_forgets_unregistered),
	    cmocka_unit_test(test_page_maximum_drops_what_does_not_fit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
