/* Parsing and minting trace ids for traceparent and X-Amzn-Trace-Id. */
#include "trace.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "random.h"

static int
is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int
all_zero(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != '0')
			return 0;
	return 1;
}

static void
random_hex(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t r = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (i % 16 == 0)
			r = random_next(random_thread());
		out[i] = hex[r & 0xf];
		r >>= 4;
	}
	out[n] = '\0';
}

/* version "00" - 32 hex trace id - 16 hex parent id - 2 hex flags, ids not all zero. */
static int
parse_traceparent(struct trace *t, const char *v)
{
	if (v == NULL || strlen(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' ||
	    !is_hex(v, 2) || memcmp(v, "ff", 2) == 0 || !is_hex(v + 3, 32) || !is_hex(v + 36, 16) ||
	    !is_hex(v + 53, 2) || all_zero(v + 3, 32) || all_zero(v + 36, 16) ||
	    (memcmp(v, "00", 2) == 0 && v[55] != '\0'))
		return 0;
	memcpy(t->trace_id, v + 3, TRACE_ID_LEN);
	t->trace_id[TRACE_ID_LEN] = '\0';
	memcpy(t->parent_id, v + 36, SPAN_ID_LEN);
	t->parent_id[SPAN_ID_LEN] = '\0';
	t->decided = 1;
	t->sampled = (v[54] == '1' || v[54] == '3' || v[54] == '5' || v[54] == '7' ||
	              v[54] == '9' || v[54] == 'b' || v[54] == 'd' || v[54] == 'f')
	                 ? '1'
	                 : '0';
	return 1;
}

/*
 * The value of field name ("Parent=") in an X-Amzn-Trace-Id value: at its
 * start or after a ';'. NULL when absent.
 */
static const char *
amzn_field(const char *v, const char *name)
{
	size_t n = strlen(name);
	const char *p;

	for (p = v; (p = strstr(p, name)) != NULL; p += n)
		if (p == v || p[-1] == ';')
			return p + n;
	return NULL;
}

/* Root=1-<8 hex>-<24 hex>, among other ;-separated fields such as Parent and Sampled. */
static int
parse_amzn(struct trace *t, const char *v)
{
	const char *root, *sampled, *parent;

	if (v == NULL)
		return 0;
	root = strstr(v, "Root=1-");
	if (root == NULL)
		return 0;
	root += 7;
	if (strlen(root) < 33 || !is_hex(root, 8) || root[8] != '-' || !is_hex(root + 9, 24) ||
	    (root[33] != '\0' && root[33] != ';'))
		return 0;
	memcpy(t->trace_id, root, 8);
	memcpy(t->trace_id + 8, root + 9, 24);
	t->trace_id[TRACE_ID_LEN] = '\0';
	/* All zeros is no trace id in W3C's format: tools would drop the trace. */
	if (all_zero(t->trace_id, TRACE_ID_LEN))
		return 0;
	parent = amzn_field(v, "Parent=");
	if (parent != NULL && is_hex(parent, SPAN_ID_LEN) &&
	    (parent[SPAN_ID_LEN] == '\0' || parent[SPAN_ID_LEN] == ';') &&
	    !all_zero(parent, SPAN_ID_LEN)) {
		memcpy(t->parent_id, parent, SPAN_ID_LEN);
		t->parent_id[SPAN_ID_LEN] = '\0';
	}
	sampled = amzn_field(v, "Sampled=");
	t->decided = sampled != NULL && (sampled[0] == '0' || sampled[0] == '1') &&
	             (sampled[1] == '\0' || sampled[1] == ';');
	t->sampled = t->decided && sampled[0] == '0' ? '0' : '1';
	return 1;
}

void
trace_new_span_id(char out[SPAN_ID_LEN + 1])
{
	do
		random_hex(out, SPAN_ID_LEN);
	while (all_zero(out, SPAN_ID_LEN));
}

void
trace_begin(struct trace *t, const char *traceparent, const char *amzn_trace_id)
{
	t->parent_id[0] = '\0';
	t->decided = 0;
	if (!parse_traceparent(t, traceparent) && !parse_amzn(t, amzn_trace_id)) {
		/* X-Ray wants the first 8 digits to be the start time in seconds. */
		snprintf(t->trace_id, sizeof(t->trace_id), "%08lx",
		         (unsigned long)time(NULL) & 0xffffffffUL);
		random_hex(t->trace_id + 8, TRACE_ID_LEN - 8);
		t->sampled = '1';
		t->parent_id[0] = '\0';
		t->decided = 0;
	}
	trace_new_span_id(t->span_id);
}

void
trace_child(const struct trace *t, struct trace *child)
{
	*child = *t;
	memcpy(child->parent_id, t->span_id, sizeof(child->parent_id));
	trace_new_span_id(child->span_id);
}

/*
 * The two headers are written piece by piece, every piece of a fixed length:
 * every answer carries both, and printf cost more than the rest of a small
 * answer's headers.
 */
void
trace_traceparent(const struct trace *t, char out[TRACE_HEADER_MAX])
{
	char *p = out;

	p = mempcpy(p, "00-", 3);
	p = mempcpy(p, t->trace_id, TRACE_ID_LEN);
	*p++ = '-';
	p = mempcpy(p, t->span_id, SPAN_ID_LEN);
	p = mempcpy(p, "-0", 2);
	*p++ = t->sampled;
	*p = '\0';
}

_Static_assert(sizeof("Root=1-") - 1 + TRACE_ID_LEN + 1 + sizeof(";Parent=") - 1 + SPAN_ID_LEN +
                       sizeof(";Sampled=") - 1 + 1 <
                   TRACE_HEADER_MAX,
               "X-Amzn-Trace-Id fits in TRACE_HEADER_MAX");

void
trace_amzn(const struct trace *t, char out[TRACE_HEADER_MAX])
{
	char *p = out;

	p = mempcpy(p, "Root=1-", 7);
	p = mempcpy(p, t->trace_id, 8);
	*p++ = '-';
	p = mempcpy(p, t->trace_id + 8, TRACE_ID_LEN - 8);
	p = mempcpy(p, ";Parent=", 8);
	p = mempcpy(p, t->span_id, SPAN_ID_LEN);
	p = mempcpy(p, ";Sampled=", 9);
	*p++ = t->sampled;
	*p = '\0';
}
