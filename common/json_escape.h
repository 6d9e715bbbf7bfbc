/* The body of a JSON string, escaped so that any input stays valid JSON and valid UTF-8. */
#ifndef COMMON_JSON_ESCAPE_H
#define COMMON_JSON_ESCAPE_H

#include <stddef.h>

/*
 * Appends s to out as the body of a JSON string (no quotes), escaping every
 * byte that is not printable ASCII; returns the new length, at most size - 1.
 */
size_t json_escape(char *out, size_t size, size_t len, const char *s);

#endif
