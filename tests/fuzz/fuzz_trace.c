/*
 * trace_begin() (common/trace.h) with fuzzed header values: the input's first
 * line is the traceparent value, the rest the X-Amzn-Trace-Id value (either
 * absent when empty / missing).
 * - the trace id is always 32 lowercase hex digits, not all zero (W3C Trace
 *   Context: an all-zero trace id is invalid and makes the header void), the
 *   span id 16, not all zero, and the sampled flag '0' or '1';
 * - a valid version-00 traceparent is continued (same trace id, its sampled
 *   bit); a value that is not even shaped like one is never used; without a
 *   usable traceparent, a well-formed X-Amzn-Trace-Id Root is continued;
 *   otherwise a new id starts with the current epoch seconds;
 * - the parent id is empty or 16 lowercase hex digits, not all zero;
 * - trace_traceparent() and trace_amzn() give well-formed headers with the
 *   same ids.
 */
#include <stdint.h>
#include <time.h>

#include "../../common/trace.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int
zeros(const char *s, size_t n)
{
	return strspn(s, "0") >= n;
}

/* W3C Trace Context level 1, version 00, exactly. */
static int
valid_v00(const char *v)
{
	return v != NULL && strlen(v) == 55 && memcmp(v, "00-", 3) == 0 && v[35] == '-' &&
	       v[52] == '-' && lower_hex(v + 3, 32) && lower_hex(v + 36, 16) &&
	       lower_hex(v + 53, 2) && !zeros(v + 3, 32) && !zeros(v + 36, 16);
}

/* Not shaped like any version's traceparent: the dashes or the hex are wrong. */
static int
misshapen(const char *v)
{
	return v == NULL || strlen(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
	       !lower_hex(v, 2) || !lower_hex(v + 3, 32) || !lower_hex(v + 36, 16) ||
	       !lower_hex(v + 53, 2);
}

/* "Root=1-<8>-<24>" at the start, alone or followed by ";", and not all zero. */
static int
leading_root(const char *v, char id[TRACE_ID_LEN + 1])
{
	if (v == NULL || strncmp(v, "Root=1-", 7) != 0 || strlen(v) < 40 || !lower_hex(v + 7, 8) ||
	    v[15] != '-' || !lower_hex(v + 16, 24) || (v[40] != '\0' && v[40] != ';') ||
	    (zeros(v + 7, 8) && zeros(v + 16, 24)))
		return 0;
	memcpy(id, v + 7, 8);
	memcpy(id + 8, v + 16, 24);
	id[TRACE_ID_LEN] = '\0';
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *input = fuzz_strndup(data, size), *nl, *tp, *amzn;
	char root[TRACE_ID_LEN + 1], header[TRACE_HEADER_MAX], want[TRACE_HEADER_MAX];
	struct trace t;
	time_t now = time(NULL);

	nl = memchr(input, '\n', size);
	if (nl != NULL)
		*nl = '\0';
	tp = input[0] != '\0' ? input : NULL;
	amzn = nl != NULL ? nl + 1 : NULL;

	memset(&t, 'X', sizeof(t));
	trace_begin(&t, tp, amzn);
	FUZZ_CHECK(strlen(t.trace_id) == TRACE_ID_LEN && lower_hex(t.trace_id, TRACE_ID_LEN),
	           "trace id \"%.40s\"", t.trace_id);
	FUZZ_CHECK(!zeros(t.trace_id, TRACE_ID_LEN), "all-zero trace id (invalid in W3C traceparent)");
	FUZZ_CHECK(strlen(t.span_id) == SPAN_ID_LEN && lower_hex(t.span_id, SPAN_ID_LEN) &&
	               !zeros(t.span_id, SPAN_ID_LEN),
	           "span id \"%.20s\"", t.span_id);
	FUZZ_CHECK(t.sampled == '0' || t.sampled == '1', "sampled 0x%02x", (unsigned char)t.sampled);
	FUZZ_CHECK(t.decided == 0 || t.decided == 1, "decided %d", t.decided);
	FUZZ_CHECK(t.parent_id[0] == '\0' || (strlen(t.parent_id) == SPAN_ID_LEN &&
	                                      lower_hex(t.parent_id, SPAN_ID_LEN) &&
	                                      !zeros(t.parent_id, SPAN_ID_LEN)),
	           "parent id \"%.20s\"", t.parent_id);

	if (valid_v00(tp)) {
		int bit = (tp[54] >= 'a' ? tp[54] - 'a' + 10 : tp[54] - '0') & 1;

		FUZZ_CHECK(memcmp(t.trace_id, tp + 3, 32) == 0, "valid traceparent not continued");
		FUZZ_CHECK(t.sampled == (bit ? '1' : '0'), "sampled flag not kept");
	} else if (misshapen(tp)) {
		if (leading_root(amzn, root)) {
			FUZZ_CHECK(strcmp(t.trace_id, root) == 0, "X-Amzn-Trace-Id Root not continued");
		} else if (amzn == NULL || strstr(amzn, "Root=1-") == NULL) {
			unsigned long secs;

			FUZZ_CHECK(sscanf(t.trace_id, "%8lx", &secs) == 1 &&
			               (long long)secs >= (long long)now - 5 &&
			               (long long)secs <= (long long)now + 5,
			           "a new trace id does not start with the time: %s", t.trace_id);
			FUZZ_CHECK(t.sampled == '1', "a new trace is not sampled");
		}
	}

	trace_traceparent(&t, header);
	snprintf(want, sizeof(want), "00-%s-%s-0%c", t.trace_id, t.span_id, t.sampled);
	FUZZ_CHECK(strcmp(header, want) == 0 && strlen(header) == 55, "traceparent \"%s\"", header);
	trace_amzn(&t, header);
	snprintf(want, sizeof(want), "Root=1-%.8s-%s;Parent=%s;Sampled=%c", t.trace_id,
	         t.trace_id + 8, t.span_id, t.sampled);
	FUZZ_CHECK(strcmp(header, want) == 0 && strlen(header) == 74, "X-Amzn-Trace-Id \"%s\"",
	           header);
	free(input);
	return 0;
}
