/* Assembles the merged document from pieces, so neither store is copied or re-encoded. */
#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json_escape.h"

#define HEAD   "{\"caller_service_data\":["
#define MIDDLE "],\"responder_service_data\":"
#define TAIL   "}"

int
merge_parts(const char *caller_items, size_t caller_len, struct upstream_result *result,
            struct http_part parts[MERGE_PARTS], char **owned)
{
	const char *value;
	size_t value_len, n;

	if (result->ok) {
		*owned = result->body;
		value = *owned + result->stored_data.offset;
		value_len = result->stored_data.len;
	} else {
		free(result->body);
		n = 64 + sizeof(MERGE_ERROR_PREFIX) + 6 * strlen(result->reason);
		*owned = malloc(n);
		if (*owned == NULL) {
			result->body = NULL;
			return -1;
		}
		value_len = (size_t)snprintf(*owned, n, "{\"error\":\"%s", MERGE_ERROR_PREFIX);
		value_len = json_escape(*owned, n - 2, value_len, result->reason);
		memcpy(*owned + value_len, "\"}", 3);
		value_len += 2;
		value = *owned;
	}
	result->body = NULL;
	parts[0] = (struct http_part){HEAD, sizeof(HEAD) - 1};
	parts[1] = (struct http_part){caller_items, caller_len};
	parts[2] = (struct http_part){MIDDLE, sizeof(MIDDLE) - 1};
	parts[3] = (struct http_part){value, value_len};
	parts[4] = (struct http_part){TAIL, sizeof(TAIL) - 1};
	return 0;
}
