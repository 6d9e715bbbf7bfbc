/* Unit tests for caller/judge.c: every outcome of an attempt, its reason byte for byte,
 * retryability. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../../caller/judge.h"
#include "../../../common/json_scan.h"

#define URL "http://responder:5001/data"

/* A report of a transfer libcurl completed with an HTTP status. */
static struct attempt_report
answered(long status)
{
	struct attempt_report a = {
	    .code = CURLE_OK, .error = "", .status = status, .max_bytes = 1024, .url = URL};

	return a;
}

/* A report of a transfer libcurl ended with code, its error buffer holding error. */
static struct attempt_report
failed(CURLcode code, const char *error)
{
	struct attempt_report a = {.code = code, .error = error, .max_bytes = 1024, .url = URL};

	return a;
}

/* Judges a with body (a string, or NULL for no bytes) as the answer; r is zeroed first. */
static enum upstream_outcome
judge(const struct attempt_report *a, const char *body, struct upstream_result *r)
{
	memset(r, 0, sizeof(*r));
	r->body = (char *)body;
	r->body_len = body != NULL ? strlen(body) : 0;
	return judge_attempt(a, r);
}

static void
test_200_with_stored_data_array_is_ok(void **state)
{
	static const char body[] = "{\"stored_data\": [{\"a\": 1}, 2], \"x\": 0}";
	struct attempt_report a = answered(200);
	struct upstream_result r;

	(void)state;
	assert_int_equal(judge(&a, body, &r), OUTCOME_OK);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.stored_data.type, '[');
	assert_int_equal(r.stored_data.len, strlen("[{\"a\": 1}, 2]"));
	assert_memory_equal(body + r.stored_data.offset, "[{\"a\": 1}, 2]", r.stored_data.len);
	assert_string_equal(r.reason, "");
	assert_ptr_equal(r.body, body); /* the body stays the caller's */
}

static void
test_200_with_empty_array_is_ok(void **state)
{
	struct attempt_report a = answered(200);
	struct upstream_result r;

	(void)state;
	assert_int_equal(judge(&a, "{\"stored_data\":[]}", &r), OUTCOME_OK);
	assert_int_equal(r.ok, 1);
	assert_int_equal(r.stored_data.len, 2);
}

static void
test_200_without_stored_data(void **state)
{
	static const char *const bodies[] = {"{}",
	                                     "{\"other\": [1]}",
	                                     "{\"stored_data\": {}}",
	                                     "{\"stored_data\": \"[]\"}",
	                                     "{\"stored_data\": null}",
	                                     "[1, 2]"};
	struct attempt_report a = answered(200);
	struct upstream_result r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(judge(&a, bodies[i], &r), OUTCOME_INVALID_BODY);
		assert_int_equal(r.ok, 0);
		assert_string_equal(r.reason, "answer from " URL " has no stored_data array");
	}
}

/* The reason names json_scan's own complaint, after the URL. */
static void
test_200_malformed_json(void **state)
{
	static const char *const bodies[] = {"not json", "{\"stored_data\": [1, 2", "{", "",
	                                     "{\"stored_data\": [1]} trailing"};
	struct attempt_report a = answered(200);
	struct upstream_result r;
	struct json_span span;
	char why[256], want[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_true(json_scan_member(bodies[i], strlen(bodies[i]), "stored_data", &span,
		                             why, sizeof(why)) < 0);
		snprintf(want, sizeof(want), "invalid JSON from " URL ": %s", why);
		assert_int_equal(judge(&a, bodies[i], &r), OUTCOME_INVALID_BODY);
		assert_int_equal(r.ok, 0);
		assert_string_equal(r.reason, want);
	}
}

static void
test_200_with_no_bytes_is_invalid_json(void **state)
{
	struct attempt_report a = answered(200);
	struct upstream_result r;

	(void)state;
	assert_int_equal(judge(&a, NULL, &r), OUTCOME_INVALID_BODY);
	assert_true(strncmp(r.reason, "invalid JSON from " URL ": ",
	                    strlen("invalid JSON from " URL ": ")) == 0);
}

/* Any status but 200, whatever the body says; 0 when libcurl had none. */
static void
test_non_200_statuses(void **state)
{
	static const long statuses[] = {503, 500, 502, 404, 204, 301, 0};
	struct attempt_report a;
	struct upstream_result r;
	char want[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		a = answered(statuses[i]);
		snprintf(want, sizeof(want), "HTTP %ld from " URL, statuses[i]);
		assert_int_equal(judge(&a, "{\"stored_data\": []}", &r), OUTCOME_HTTP_STATUS);
		assert_int_equal(r.ok, 0);
		assert_string_equal(r.reason, want);
	}
}

static void
test_timeouts(void **state)
{
	static const char *const errors[] = {
	    "Operation timed out after 1000 milliseconds with 0 bytes received",
	    "Connection timed out after 250 milliseconds",
	    "Operation timed out after 1001 milliseconds waiting for one of UPSTREAM_CALLS_MAX "
	    "(64) "
	    "calls"};
	struct attempt_report a;
	struct upstream_result r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		a = failed(CURLE_OPERATION_TIMEDOUT, errors[i]);
		assert_int_equal(judge(&a, NULL, &r), OUTCOME_TIMEOUT);
		assert_int_equal(r.ok, 0);
		assert_string_equal(r.reason, errors[i]);
	}
}

/* libcurl's error buffer when it wrote one, else its text for the code. */
static void
test_connection_refused(void **state)
{
	static const char err[] = "Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't "
	                          "connect to server";
	struct attempt_report a = failed(CURLE_COULDNT_CONNECT, err);
	struct upstream_result r;

	(void)state;
	assert_int_equal(judge(&a, NULL, &r), OUTCOME_REFUSED);
	assert_string_equal(r.reason, err);
	a = failed(CURLE_COULDNT_CONNECT, "");
	assert_int_equal(judge(&a, NULL, &r), OUTCOME_REFUSED);
	assert_string_equal(r.reason, curl_easy_strerror(CURLE_COULDNT_CONNECT));
	a = failed(CURLE_COULDNT_CONNECT, NULL);
	assert_int_equal(judge(&a, NULL, &r), OUTCOME_REFUSED);
	assert_string_equal(r.reason, curl_easy_strerror(CURLE_COULDNT_CONNECT));
}

static void
test_dns(void **state)
{
	struct attempt_report a =
	    failed(CURLE_COULDNT_RESOLVE_HOST, "Could not resolve host: nowhere");
	struct upstream_result r;

	(void)state;
	assert_int_equal(judge(&a, NULL, &r), OUTCOME_DNS);
	assert_string_equal(r.reason, "Could not resolve host: nowhere");
}

/* Refused by the body callback (a write error) or by libcurl's own size check. */
static void
test_too_large(void **state)
{
	struct attempt_report a =
	    failed(CURLE_WRITE_ERROR, "Failure writing output to destination");
	struct upstream_result r;

	(void)state;
	a.too_large = 1;
	assert_int_equal(judge(&a, "{\"stored_data\": [", &r), OUTCOME_TOO_LARGE);
	assert_string_equal(r.reason, "answer larger than UPSTREAM_MAX_BYTES (1024 bytes)");
	a = failed(CURLE_FILESIZE_EXCEEDED, "Maximum file size exceeded");
	assert_int_equal(judge(&a, NULL, &r), OUTCOME_TOO_LARGE);
	assert_string_equal(r.reason, "answer larger than UPSTREAM_MAX_BYTES (1024 bytes)");
}

/* A write error the body callback did not cause is no size problem. */
static void
test_write_error_without_too_large_is_an_error(void **state)
{
	struct attempt_report a = failed(CURLE_WRITE_ERROR, "");
	struct upstream_result r;

	(void)state;
	assert_int_equal(judge(&a, NULL, &r), OUTCOME_ERROR);
	assert_string_equal(r.reason, curl_easy_strerror(CURLE_WRITE_ERROR));
}

static void
test_other_failures_are_errors(void **state)
{
	static const struct {
		CURLcode code;
		const char *error;
	} cases[] = {
	    {CURLE_PEER_FAILED_VERIFICATION,
	     "SSL: no alternative certificate subject name matches"},
	    {CURLE_SSL_CONNECT_ERROR, ""},
	    {CURLE_RECV_ERROR, "Connection reset by peer"},
	    {CURLE_GOT_NOTHING, ""},
	    {CURLE_ABORTED_BY_CALLBACK, "the caller is shutting down"},
	    {CURLE_FAILED_INIT, "could not start a retry"},
	};
	struct attempt_report a;
	struct upstream_result r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		a = failed(cases[i].code, cases[i].error);
		a.too_large = 1; /* only a write or size error is about size */
		assert_int_equal(judge(&a, NULL, &r), OUTCOME_ERROR);
		assert_int_equal(r.ok, 0);
		assert_string_equal(r.reason, cases[i].error[0] != '\0'
		                                  ? cases[i].error
		                                  : curl_easy_strerror(cases[i].code));
	}
}

/* A reason longer than the room for it is cut, never overrun. */
static void
test_long_reason_is_cut(void **state)
{
	char url[1000];
	struct attempt_report a = answered(503);
	struct upstream_result r;

	(void)state;
	memset(url, 'u', sizeof(url) - 1);
	url[sizeof(url) - 1] = '\0';
	a.url = url;
	assert_int_equal(judge(&a, NULL, &r), OUTCOME_HTTP_STATUS);
	assert_int_equal(strlen(r.reason), sizeof(r.reason) - 1);
	assert_memory_equal(r.reason, "HTTP 503 from uuu", 17);
}

static void
test_only_refused_and_503_are_retryable(void **state)
{
	int o;

	(void)state;
	assert_true(judge_retryable(OUTCOME_REFUSED, 0));
	assert_true(judge_retryable(OUTCOME_HTTP_STATUS, 503));
	assert_false(judge_retryable(OUTCOME_HTTP_STATUS, 500));
	assert_false(judge_retryable(OUTCOME_HTTP_STATUS, 502));
	assert_false(judge_retryable(OUTCOME_HTTP_STATUS, 429));
	for (o = 0; o < OUTCOME_COUNT; o++)
		if (o != OUTCOME_REFUSED && o != OUTCOME_HTTP_STATUS)
			assert_false(judge_retryable((enum upstream_outcome)o, 503));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_200_with_stored_data_array_is_ok),
	    cmocka_unit_test(test_200_with_empty_array_is_ok),
	    cmocka_unit_test(test_200_without_stored_data),
	    cmocka_unit_test(test_200_malformed_json),
	    cmocka_unit_test(test_200_with_no_bytes_is_invalid_json),
	    cmocka_unit_test(test_non_200_statuses),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_connection_refused),
	    cmocka_unit_test(test_dns),
	    cmocka_unit_test(test_too_large),
	    cmocka_unit_test(test_write_error_without_too_large_is_an_error),
	    cmocka_unit_test(test_other_failures_are_errors),
	    cmocka_unit_test(test_long_reason_is_cut),
	    cmocka_unit_test(test_only_refused_and_503_are_retryable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
