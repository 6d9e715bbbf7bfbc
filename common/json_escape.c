/* JSON string bodies from any bytes: the escaper every log line and error answer uses. */
#include "json_escape.h"

#include <string.h>

size_t
json_escape(char *out, size_t size, size_t len, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[7];
		size_t n;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			/* Bytes past ASCII are escaped one by one, so no input can make a line
			 * invalid UTF-8. */
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			n = 6;
		} else {
			esc[0] = (char)c;
			n = 1;
		}
		if (len + n >= size)
			break;
		memcpy(out + len, esc, n);
		len += n;
	}
	out[len] = '\0';
	return len;
}
