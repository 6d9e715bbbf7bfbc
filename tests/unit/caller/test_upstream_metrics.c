/* Unit tests for caller/upstream_metrics.c: counts by outcome, and the Prometheus text of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../caller/upstream_metrics.h"
#include "../../../common/log.h"

/* Checks that the text upstream_metrics_render() writes for m has each of the n lines. */
static void
assert_renders(struct upstream_metrics *m, const char *const *lines, size_t n)
{
	struct buffer out;
	char *text;
	size_t len, i;

	buffer_init(&out, 1 << 20);
	upstream_metrics_render(&out, m);
	assert_int_equal(buffer_append(&out, "", 1), BUFFER_OK);
	text = buffer_steal(&out, &len);
	assert_non_null(text);
	for (i = 0; i < n; i++)
		if (strstr(text, lines[i]) == NULL)
			fail_msg("no line %s in:\n%s", lines[i], text);
	free(text);
}

/* Figures over a budget of 20 % and a breaker that opens after threshold failures. */
struct fixture {
	struct retry_budget budget;
	struct breaker breaker;
	struct upstream_metrics m;
};

static void
fixture_init(struct fixture *f, unsigned int threshold)
{
	retry_budget_init(&f->budget, 20);
	breaker_init(&f->breaker, threshold, 1000);
	upstream_metrics_init(&f->m, &f->budget, &f->breaker);
}

static void
test_starts_at_zero_with_every_outcome(void **state)
{
	static const char *const lines[] = {
	    "upstream_requests_total{outcome=\"ok\"} 0\n",
	    "upstream_requests_total{outcome=\"refused\"} 0\n",
	    "upstream_requests_total{outcome=\"timeout\"} 0\n",
	    "upstream_requests_total{outcome=\"dns\"} 0\n",
	    "upstream_requests_total{outcome=\"http_status\"} 0\n",
	    "upstream_requests_total{outcome=\"invalid_body\"} 0\n",
	    "upstream_requests_total{outcome=\"too_large\"} 0\n",
	    "upstream_requests_total{outcome=\"breaker_open\"} 0\n",
	    "upstream_requests_total{outcome=\"error\"} 0\n",
	    "upstream_request_duration_seconds_count 0\n",
	    "upstream_retries_total 0\n",
	    "upstream_retry_budget_exhausted_total 0\n",
	    "upstream_breaker_state 0\n",
	    "upstream_breaker_transitions_total{state=\"open\"} 0\n",
	};
	struct fixture f;

	(void)state;
	fixture_init(&f, 5);
	assert_renders(&f.m, lines, sizeof(lines) / sizeof(lines[0]));
}

static void
test_counts_outcomes_latency_retries_and_the_breaker(void **state)
{
	static const char *const lines[] = {
	    "upstream_requests_total{outcome=\"ok\"} 1\n",
	    "upstream_requests_total{outcome=\"refused\"} 2\n",
	    "upstream_request_duration_seconds_count 1\n",
	    "upstream_retries_total 1\n",
	    "upstream_breaker_state 1\n",
	    "upstream_breaker_transitions_total{state=\"open\"} 1\n",
	};
	struct fixture f;
	long long wait;

	(void)state;
	fixture_init(&f, 1);
	upstream_metrics_count(&f.m, OUTCOME_OK);
	upstream_metrics_count(&f.m, OUTCOME_REFUSED);
	upstream_metrics_count(&f.m, OUTCOME_REFUSED);
	upstream_metrics_latency(&f.m, 0.002);
	assert_true(retry_budget_withdraw(&f.budget));
	assert_true(breaker_allow(&f.breaker, 0, &wait));
	breaker_record(&f.breaker, 0, 0);
	assert_renders(&f.m, lines, sizeof(lines) / sizeof(lines[0]));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_starts_at_zero_with_every_outcome),
	    cmocka_unit_test(test_counts_outcomes_latency_retries_and_the_breaker),
	};

	/* The breaker logs its change of state at warn; keep the test output to the tests. */
	log_init("test", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
