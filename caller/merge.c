/* Assembles the merged document from pieces, so neither store is copied or re-encoded. */
#include "merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/response.h"
#include "../common/log.h"

#define HEAD   "{\"caller_service_data\":["
#define MIDDLE "],\"responder_service_data\":"
#define TAIL   "}"

int
merge_parts(const char *caller_items, size_t caller_len, struct upstream_result *result,
            struct MHD_IoVec parts[MERGE_PARTS], char **owned)
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
		value_len = log_escape(*owned, n - 2, value_len, result->reason);
		memcpy(*owned + value_len, "\"}", 3);
		value_len += 2;
		value = *owned;
	}
	result->body = NULL;
	parts[0] = (struct MHD_IoVec){HEAD, sizeof(HEAD) - 1};
	parts[1] = (struct MHD_IoVec){caller_items, caller_len};
	parts[2] = (struct MHD_IoVec){MIDDLE, sizeof(MIDDLE) - 1};
	parts[3] = (struct MHD_IoVec){value, value_len};
	parts[4] = (struct MHD_IoVec){TAIL, sizeof(TAIL) - 1};
	return 0;
}

struct MHD_Response *
merge_answer(const char *caller_items, size_t caller_len, struct upstream_result *result,
             size_t *size)
{
	struct MHD_IoVec parts[MERGE_PARTS];
	char *owned;

	if (merge_parts(caller_items, caller_len, result, parts, &owned) < 0)
		return NULL;
	return response_from_parts(parts, MERGE_PARTS, free, owned, size);
}
