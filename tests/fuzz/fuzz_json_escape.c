/*
 * json_escape() (common/json_escape.h): whatever a client sends (method, path, request
 * id) ends up inside a JSON string of a log line. The input's first byte picks
 * the buffer size (1-256), the second the length already in it, the rest is the
 * string (up to its first NUL, as a C string).
 * - nothing is written outside the buffer (exact-size heap buffer, ASan), the
 *   bytes already there are kept, the result is NUL-terminated and at most
 *   size - 1 long;
 * - what was appended is printable ASCII and, between quotes, one valid JSON
 *   string (jansson) whose characters are the input's bytes (each byte past
 *   ASCII as one \u00XX), a prefix of the input cut only where the next escape
 *   would not fit.
 */
#include <stdint.h>

#include "../../common/json_escape.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
escaped_len(unsigned char c)
{
	if (c == '"' || c == '\\')
		return 2;
	return c < 0x20 || c >= 0x7f ? 6 : 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t buf_size, start, ret, i, k, dlen, slen;
	char *buf, *s, *quoted;
	const unsigned char *d;
	json_error_t jerr;
	json_t *str;

	if (size < 2)
		return 0;
	buf_size = 1 + (size_t)data[0];
	start = data[1] % buf_size;
	s = fuzz_strndup(data + 2, size - 2);
	slen = strlen(s);
	buf = malloc(buf_size);
	FUZZ_CHECK(buf != NULL, "out of memory");
	memset(buf, 'P', buf_size);

	ret = json_escape(buf, buf_size, start, s);
	FUZZ_CHECK(ret >= start && ret < buf_size, "returned %zu for size %zu, start %zu", ret,
	           buf_size, start);
	FUZZ_CHECK(buf[ret] == '\0', "not terminated");
	for (i = 0; i < start; i++)
		FUZZ_CHECK(buf[i] == 'P', "byte %zu before the start was changed", i);
	for (i = start; i < ret; i++)
		FUZZ_CHECK(buf[i] >= 0x20 && buf[i] < 0x7f, "byte 0x%02x written at %zu",
		           (unsigned char)buf[i], i);

	quoted = malloc(ret - start + 2);
	FUZZ_CHECK(quoted != NULL, "out of memory");
	quoted[0] = '"';
	memcpy(quoted + 1, buf + start, ret - start);
	quoted[ret - start + 1] = '"';
	str = json_loadb(quoted, ret - start + 2, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	FUZZ_CHECK(json_is_string(str), "not a valid JSON string body: %s: \"%.*s\"", jerr.text,
	           (int)(ret - start), buf + start);

	/* Decode: each character must be one input byte (U+0000-U+00FF). */
	d = (const unsigned char *)json_string_value(str);
	dlen = json_string_length(str);
	for (i = 0, k = 0; i < dlen; k++) {
		unsigned cp;

		if (d[i] < 0x80) {
			cp = d[i++];
		} else {
			FUZZ_CHECK((d[i] == 0xC2 || d[i] == 0xC3) && i + 1 < dlen,
			           "a character past U+00FF");
			cp = ((unsigned)(d[i] & 0x1F) << 6) | (d[i + 1] & 0x3F);
			i += 2;
		}
		FUZZ_CHECK(k < slen && cp == (unsigned char)s[k],
		           "character %zu is not input byte %zu", k, k);
	}
	if (k < slen)
		FUZZ_CHECK(ret + escaped_len((unsigned char)s[k]) >= buf_size,
		           "cut at byte %zu of %zu with room left", k, slen);

	json_decref(str);
	free(quoted);
	free(buf);
	free(s);
	return 0;
}
