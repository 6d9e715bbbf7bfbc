/* Strict JSON validation by recursive descent, bounded in depth. */
#include "json_scan.h"

#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

static inline void
skip_space(struct scan *s)
{
	/* Compact JSON has none: one compare for the usual case. */
	if (s->p<s->end && * s->p> ' ')
		return;
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

/*
 * The bytes a string holds as they are: printable ASCII but '"' and '\\'.
 * Everything else (the end of the string, an escape, a control character, a
 * UTF-8 sequence) is looked at closely.
 */
static const unsigned char plain_byte[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xA0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xB0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xC0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xD0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xE0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xF0 */
};

#if defined(__SSE2__)
/*
 * How many of the 16 bytes at p are plain before the first that is not (16
 * when all are): one compare per kind of byte for all 16 at once. A signed
 * compare with 0x20 catches both control characters and UTF-8 bytes (>= 0x80).
 */
static unsigned
plain_run16(const unsigned char *p)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
	                                         _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
	                            _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
	unsigned mask = (unsigned)_mm_movemask_epi8(stop);

	return mask == 0 ? 16 : (unsigned)__builtin_ctz(mask);
}
#endif

/* Steps over the plain bytes from p; returns the first byte that is not one, or end. */
static const unsigned char *
skip_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
	unsigned n;

	while (end - p >= 16) {
		n = plain_run16(p);
		p += n;
		if (n < 16)
			return p;
	}
#endif
	while (end - p >= 4 && plain_byte[p[0]] && plain_byte[p[1]] && plain_byte[p[2]] &&
	       plain_byte[p[3]])
		p += 4;
	while (p < end && plain_byte[*p])
		p++;
	return p;
}

/*
 * Scans a string, strictly (escapes, surrogate pairs, UTF-8). Runs of plain
 * bytes, most of any answer, are stepped over 16 at a time (SSE2) or by table:
 * the chain of tests per byte made this scan the caller's largest cost on
 * large answers (see the profile in BENCH.md).
 */
static int
scan_string(struct scan *s)
{
	const unsigned char *p, *end = s->end;
	unsigned cp, low;

	s->p++; /* the opening quote */
	for (;;) {
		unsigned char c;

		p = skip_plain(s->p, end);
		s->p = p;
		if (p >= end)
			break;
		c = *p;

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

/*
 * Most strings are short and plain: one 16-byte step finds the closing quote,
 * without the call. Everything else is scan_string()'s.
 */
static inline int
scan_string_quick(struct scan *s)
{
#if defined(__SSE2__)
	unsigned n;

	if (s->end - s->p >= 17) {
		n = plain_run16(s->p + 1);
		if (n < 16 && s->p[1 + n] == '"') {
			s->p += n + 2;
			return 0;
		}
	}
#endif
	return scan_string(s);
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
		if (scan_string_quick(s) < 0)
			return -1;
		match = key != NULL && (size_t)(s->p - 1 - name) == key_len &&
		        memcmp(name, key, key_len) == 0;
		skip_space(s);
		if (s->p >= s->end || *s->p != ':')
			return fail(s, "expected ':'");
		s->p++;
		skip_space(s);
		value = s->p;
		/* A string value, the usual member, without scan_value()'s dispatch (same depth
		 * rule). */
		if ((s->p < s->end && *s->p == '"' && depth < JSON_SCAN_MAX_DEPTH
		         ? scan_string_quick(s)
		         : scan_value(s, depth + 1)) < 0)
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
		return scan_string_quick(s);
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
