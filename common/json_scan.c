/* Strict JSON validation by recursive descent, bounded in depth. */
#include "json_scan.h"

#include <stdio.h>
#include <string.h>

struct scan {
	const unsigned char *p;   /* next byte */
	const unsigned char *end; /* one past the last byte */
	const unsigned char *start;
	const char *error; /* static text, set on the first failure */
};

static int scan_value(struct scan *s, int depth);

static int
fail(struct scan *s, const char *why)
{
	if (s->error == NULL)
		s->error = why;
	return -1;
}

static void
skip_space(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
hex4(struct scan *s, unsigned *out)
{
	unsigned v = 0;
	int i;

	if (s->end - s->p < 4)
		return fail(s, "truncated \\u escape");
	for (i = 0; i < 4; i++) {
		unsigned char c = *s->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return fail(s, "invalid \\u escape");
	}
	*out = v;
	return 0;
}

/* Checks one UTF-8 sequence starting at s->p (first byte >= 0x80), rejecting overlong forms and
 * surrogates. */
static int
utf8_sequence(struct scan *s)
{
	unsigned char c = *s->p;
	unsigned cp;
	int n, i;

	if (c >= 0xC2 && c <= 0xDF) {
		n = 1;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 2;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 3;
		cp = c & 0x07;
	} else {
		return fail(s, "invalid UTF-8");
	}
	if (s->end - s->p <= n)
		return fail(s, "truncated UTF-8");
	for (i = 1; i <= n; i++) {
		if ((s->p[i] & 0xC0) != 0x80)
			return fail(s, "invalid UTF-8");
		cp = (cp << 6) | (s->p[i] & 0x3F);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return fail(s, "invalid UTF-8");
	s->p += n + 1;
	return 0;
}

static int
scan_string(struct scan *s)
{
	unsigned cp, low;

	s->p++; /* the opening quote */
	while (s->p < s->end) {
		unsigned char c = *s->p;

		if (c == '"') {
			s->p++;
			return 0;
		}
		if (c < 0x20)
			return fail(s, "control character in string");
		if (c >= 0x80) {
			if (utf8_sequence(s) < 0)
				return -1;
			continue;
		}
		s->p++;
		if (c != '\\')
			continue;
		if (s->p >= s->end)
			break;
		c = *s->p++;
		if (c == 'u') {
			if (hex4(s, &cp) < 0)
				return -1;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return fail(s, "lone low surrogate");
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
					return fail(s, "lone high surrogate");
				s->p += 2;
				if (hex4(s, &low) < 0)
					return -1;
				if (low < 0xDC00 || low > 0xDFFF)
					return fail(s, "lone high surrogate");
			}
		} else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
			return fail(s, "invalid escape");
		}
	}
	return fail(s, "unterminated string");
}

static int
digits(struct scan *s)
{
	const unsigned char *from = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > from ? 0 : fail(s, "invalid number");
}

static int
scan_number(struct scan *s)
{
	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (digits(s) < 0)
		return -1;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (digits(s) < 0)
			return -1;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (digits(s) < 0)
			return -1;
	}
	return 0;
}

static int
scan_literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return fail(s, "invalid literal");
	s->p += n;
	return 0;
}

/* Scans the members of an object; when key is not NULL, records the span of its value. */
static int
scan_object(struct scan *s, int depth, const char *key, struct json_span *span, int *found)
{
	size_t key_len = key != NULL ? strlen(key) : 0;

	s->p++; /* the opening brace */
	skip_space(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	for (;;) {
		const unsigned char *name, *value;
		int match;

		if (s->p >= s->end || *s->p != '"')
			return fail(s, "expected a member name");
		name = s->p + 1;
		if (scan_string(s) < 0)
			return -1;
		match = key != NULL && (size_t)(s->p - 1 - name) == key_len &&
		        memcmp(name, key, key_len) == 0;
		skip_space(s);
		if (s->p >= s->end || *s->p != ':')
			return fail(s, "expected ':'");
		s->p++;
		skip_space(s);
		value = s->p;
		if (scan_value(s, depth + 1) < 0)
			return -1;
		if (match) {
			span->offset = (size_t)(value - s->start);
			span->len = (size_t)(s->p - value);
			span->type = (char)*value;
			*found = 1;
		}
		skip_space(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			skip_space(s);
			continue;
		}
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			return 0;
		}
		return fail(s, "expected ',' or '}'");
	}
}

static int
scan_array(struct scan *s, int depth)
{
	s->p++; /* the opening bracket */
	skip_space(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return 0;
	}
	for (;;) {
		if (scan_value(s, depth + 1) < 0)
			return -1;
		skip_space(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			skip_space(s);
			continue;
		}
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			return 0;
		}
		return fail(s, "expected ',' or ']'");
	}
}

static int
scan_value(struct scan *s, int depth)
{
	if (depth > JSON_SCAN_MAX_DEPTH)
		return fail(s, "nesting too deep");
	if (s->p >= s->end)
		return fail(s, "unexpected end of text");
	switch (*s->p) {
	case '{':
		return scan_object(s, depth, NULL, NULL, NULL);
	case '[':
		return scan_array(s, depth);
	case '"':
		return scan_string(s);
	case 't':
		return scan_literal(s, "true");
	case 'f':
		return scan_literal(s, "false");
	case 'n':
		return scan_literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return scan_number(s);
		return fail(s, "unexpected character");
	}
}

int
json_scan_member(const char *text, size_t len, const char *key, struct json_span *span, char *err,
                 size_t err_size)
{
	struct scan s;
	int found = 0, rc;

	s.start = (const unsigned char *)text;
	s.p = s.start;
	s.end = s.start + len;
	s.error = NULL;
	skip_space(&s);
	if (s.p < s.end && *s.p == '{')
		rc = scan_object(&s, 1, key, span, &found);
	else
		rc = scan_value(&s, 1);
	if (rc == 0) {
		skip_space(&s);
		if (s.p != s.end)
			rc = fail(&s, "text after the end of the value");
	}
	if (rc < 0) {
		snprintf(err, err_size, "%s at byte %zu", s.error, (size_t)(s.p - s.start));
		return -1;
	}
	return found;
}
