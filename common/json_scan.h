/*
 * A strict JSON validator that also finds where one top-level member's value
 * lies in the text. The caller uses it on the responder's answer so that it
 * can pass the stored objects on byte for byte, without building a tree and
 * encoding it again.
 */
#ifndef COMMON_JSON_SCAN_H
#define COMMON_JSON_SCAN_H

#include <stddef.h>

/* Deeper nesting than this is refused rather than followed. */
#define JSON_SCAN_MAX_DEPTH 512

struct json_span {
	size_t offset; /* where the value starts in the text */
	size_t len;    /* its length in bytes */
	char type;     /* its first byte: '[', '{', '"', 't', 'f', 'n' or a digit or '-' */
};

/*
 * Checks that text is exactly one JSON value (RFC 8259, UTF-8) and, when it is
 * an object with a member named key (compared byte for byte, without decoding
 * escapes), gives the span of the last such member's value. Returns 1 when the
 * member was found, 0 when the text is valid but has no such member, and -1
 * when the text is not valid JSON, with the reason in err.
 */
int json_scan_member(const char *text, size_t len, const char *key, struct json_span *span,
                     char *err, size_t err_size);

#endif
