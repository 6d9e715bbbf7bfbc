/* Request bodies: validated by jansson, stored as sent minus white space. */
#include "payload.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Copies valid JSON text without the white space between tokens; returns the
 * new length. *depth gets the deepest nesting of arrays and objects.
 */
static size_t
compact(const char *in, size_t len, char *out, int *depth)
{
	size_t i, n = 0;
	int in_string = 0, level = 0;

	*depth = 0;
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (in_string) {
			out[n++] = c;
			if (c == '\\' && i + 1 < len)
				out[n++] = in[++i];
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
			out[n++] = c;
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			if (c == '{' || c == '[') {
				if (++level > *depth)
					*depth = level;
			} else if (c == '}' || c == ']') {
				level--;
			}
			out[n++] = c;
		}
	}
	return n;
}

static const char *
type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	default:
		return "an object";
	}
}

enum payload_result
payload_parse(const char *body, size_t len, char **out, size_t *out_len, char *err, size_t err_size)
{
	enum payload_result rc = PAYLOAD_INVALID;
	json_error_t jerr;
	json_t *root = NULL;
	char *text = NULL;
	int depth;

	if (len == 0) {
		snprintf(err, err_size, "%s", PAYLOAD_EMPTY_MESSAGE);
		goto out;
	}
	/* jansson lets a raw NUL after a number through; stored, it would break every GET /data. */
	if (memchr(body, '\0', len) != NULL) {
		snprintf(err, err_size, "Invalid JSON: the body contains a NUL byte");
		goto out;
	}
	/*
	 * Integers too large for 64 bits are still valid JSON: decoding them as
	 * reals keeps them acceptable up to a double's range (about 1.8e308), and
	 * the stored text keeps every digit. Past that jansson reports an overflow.
	 */
	root = json_loadb(
	    body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		snprintf(err, err_size, "Invalid JSON at line %d, column %d: %s", jerr.line,
		         jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		snprintf(err, err_size, "JSON body must be an object, got %s", type_name(root));
		goto out;
	}
	if (json_object_size(root) == 0) {
		snprintf(err, err_size, "%s", PAYLOAD_EMPTY_MESSAGE);
		goto out;
	}
	text = malloc(len);
	if (text == NULL) {
		snprintf(err, err_size, "Out of memory");
		rc = PAYLOAD_NO_MEMORY;
		goto out;
	}
	*out_len = compact(body, len, text, &depth);
	if (depth > PAYLOAD_MAX_DEPTH) {
		snprintf(err, err_size, "JSON nesting of %d levels exceeds the limit of %d", depth,
		         PAYLOAD_MAX_DEPTH);
		goto out;
	}
	*out = text;
	text = NULL;
	rc = PAYLOAD_OK;
out:
	free(text);
	json_decref(root);
	return rc;
}
