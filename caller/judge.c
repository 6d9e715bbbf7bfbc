/* Outcome, reason and stored_data span of an attempt, from what libcurl reported and the bytes. */
#include "judge.h"

#include <stdio.h>

#include "../common/json_scan.h"

/* The outcome of an attempt libcurl ended with an error, with libcurl's words as the reason. */
static enum upstream_outcome
judge_failure(const struct attempt_report *a, struct upstream_result *r)
{
	snprintf(r->reason, sizeof(r->reason), "%s",
	         a->error != NULL && a->error[0] != '\0' ? a->error : curl_easy_strerror(a->code));
	switch (a->code) {
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		/* A write error the body callback did not cause is some other failure. */
		if (!a->too_large && a->code == CURLE_WRITE_ERROR)
			return OUTCOME_ERROR;
		snprintf(r->reason, sizeof(r->reason),
		         "answer larger than UPSTREAM_MAX_BYTES (%zu bytes)", a->max_bytes);
		return OUTCOME_TOO_LARGE;
	case CURLE_COULDNT_CONNECT:
		return OUTCOME_REFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return OUTCOME_TIMEOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return OUTCOME_DNS;
	default:
		return OUTCOME_ERROR;
	}
}

/* libcurl's error first, then the status, then the JSON: the first thing wrong is the reason. */
enum upstream_outcome
judge_attempt(const struct attempt_report *a, struct upstream_result *r)
{
	char why[256];
	int found;

	if (a->code != CURLE_OK)
		return judge_failure(a, r);
	if (a->status != 200) {
		snprintf(r->reason, sizeof(r->reason), "HTTP %ld from %s", a->status, a->url);
		return OUTCOME_HTTP_STATUS;
	}
	found = json_scan_member(r->body, r->body_len, "stored_data", &r->stored_data, why,
	                         sizeof(why));
	if (found < 0) {
		snprintf(r->reason, sizeof(r->reason), "invalid JSON from %s: %s", a->url, why);
		return OUTCOME_INVALID_BODY;
	}
	if (found == 0 || r->stored_data.type != '[') {
		snprintf(r->reason, sizeof(r->reason), "answer from %s has no stored_data array",
		         a->url);
		return OUTCOME_INVALID_BODY;
	}
	r->ok = 1;
	return OUTCOME_OK;
}

/* A refused connection never reached the responder, and a 503 says it did no work. */
int
judge_retryable(enum upstream_outcome o, long status)
{
	return o == OUTCOME_REFUSED || (o == OUTCOME_HTTP_STATUS && status == 503);
}
