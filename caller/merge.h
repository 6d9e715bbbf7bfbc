/* The caller's GET / answer: both stores in one document. */
#ifndef CALLER_MERGE_H
#define CALLER_MERGE_H

#include "../common/http_server.h"
#include "upstream.h"

/* The text the original demo puts before the reason a call failed. */
#define MERGE_ERROR_PREFIX "Failed to reach Service B: "

/* How many pieces the document is sent in. */
#define MERGE_PARTS 5

/*
 * Gives in parts the pieces of {"caller_service_data":[<caller_items>],
 * "responder_service_data":X}, where X is the responder's stored_data array,
 * byte for byte, or {"error":"Failed to reach Service B: <reason>"}. Nothing is
 * copied: caller_items is borrowed and must outlive the answer. *owned is the
 * one buffer the pieces point into, which the caller frees once they are sent
 * (it takes over result->body). Returns 0, or -1 when memory runs out.
 */
int merge_parts(const char *caller_items, size_t caller_len, struct upstream_result *result,
                struct http_part parts[MERGE_PARTS], char **owned);

#endif
