/* Turns a POST /data request body into the JSON text the store keeps. */
#ifndef COMMON_PAYLOAD_H
#define COMMON_PAYLOAD_H

#include <stddef.h>

#include "json_scan.h"

/* The message the original demo gives for an empty body or an empty object. */
#define PAYLOAD_EMPTY_MESSAGE "No data provided"

/*
 * The deepest nesting a stored object may have: GET /data puts it two levels
 * down ({"stored_data":[...]}), and the caller's scan of that answer stops at
 * JSON_SCAN_MAX_DEPTH, so anything deeper would break the caller's GET / for good.
 */
#define PAYLOAD_MAX_DEPTH (JSON_SCAN_MAX_DEPTH - 2)

enum payload_result {
	PAYLOAD_OK = 0,
	PAYLOAD_INVALID,   /* the body is at fault: err has a message a client can act on */
	PAYLOAD_NO_MEMORY, /* err says so */
};

/*
 * Checks that body is one non-empty JSON object (strict UTF-8, no duplicate
 * keys, no NUL characters) and gives its text with the insignificant white
 * space removed: keys, their order, numbers and escapes stay exactly as sent.
 * On PAYLOAD_OK, *out is a buffer the caller frees.
 */
enum payload_result payload_parse(const char *body, size_t len, char **out, size_t *out_len,
                                  char *err, size_t err_size);

#endif
