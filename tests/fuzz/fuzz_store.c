/*
 * The store (common/store.h) as POST /data and GET /data use it: the input is
 * a series of request bodies separated by 0x1E (RFC 7464's record separator);
 * each body payload_parse() accepts is appended; then the snapshot is served
 * as {"stored_data":[<snapshot>]}.
 * - store_append() refuses only past STORE_MAX_ITEMS or STORE_MAX_BYTES (a
 *   small store here, so both limits are reached), and the snapshot counts
 *   exactly the objects appended, in exactly the bytes they take;
 * - the served document is valid JSON (jansson) whose array holds exactly the
 *   appended objects, in order, each equal to the body it came from;
 * - json_scan_member(), the caller's check of that answer, accepts it.
 */
#include <stdint.h>

#include "../../common/json_scan.h"
#include "../../common/payload.h"
#include "../../common/store.h"
#include "fuzz_util.h"

#define MAX_ITEMS 8
#define MAX_BYTES 1024
#define SEPARATOR 0x1E

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char head[] = "{\"stored_data\":[", tail[] = "]}";
	struct store s;
	json_t *sent[MAX_ITEMS], *doc, *array;
	json_error_t jerr;
	size_t count = 0, bytes = 0, pos = 0, len, items, i, n;
	const char *snap;
	char *text, *served, err[256], why[128];
	struct json_span span;
	int found;

	FUZZ_CHECK(store_init(&s, MAX_ITEMS, MAX_BYTES) == 0, "store_init failed");
	while (pos <= size) {
		const uint8_t *end = memchr(data + pos, SEPARATOR, size - pos);
		size_t body_len = (end != NULL ? (size_t)(end - data) : size) - pos;
		size_t text_len, need;
		enum store_result res;

		if (payload_parse((const char *)data + pos, body_len, &text, &text_len, err,
		                  sizeof(err)) == 0) {
			need = text_len + (count > 0 ? 1 : 0);
			res = store_append(&s, text, text_len);
			if (count >= MAX_ITEMS) {
				FUZZ_CHECK(res == STORE_FULL_ITEMS, "item %zu accepted, result %d",
				           count + 1, res);
			} else if (need > MAX_BYTES - bytes) {
				FUZZ_CHECK(res == STORE_FULL_BYTES, "%zu bytes past the limit, result %d",
				           need, res);
			} else {
				FUZZ_CHECK(res == STORE_OK, "refused with room left, result %d", res);
				sent[count] = json_loadb(text, text_len, JSON_DECODE_INT_AS_REAL, &jerr);
				FUZZ_CHECK(sent[count] != NULL, "stored text invalid: %s", jerr.text);
				count++;
				bytes += need;
			}
			free(text);
		}
		pos += body_len + 1;
	}

	store_snapshot(&s, &snap, &len, &items);
	FUZZ_CHECK(items == count && len == bytes, "snapshot has %zu items in %zu bytes, want %zu in %zu",
	           items, len, count, bytes);
	n = sizeof(head) - 1 + len + sizeof(tail) - 1;
	served = malloc(n);
	FUZZ_CHECK(served != NULL, "out of memory");
	memcpy(served, head, sizeof(head) - 1);
	if (len > 0)
		memcpy(served + sizeof(head) - 1, snap, len);
	memcpy(served + sizeof(head) - 1 + len, tail, sizeof(tail) - 1);

	doc = json_loadb(served, n, JSON_DECODE_INT_AS_REAL, &jerr);
	FUZZ_CHECK(doc != NULL, "GET /data answer is not valid JSON: %s (col %d)", jerr.text,
	           jerr.column);
	array = json_object_get(doc, "stored_data");
	FUZZ_CHECK(json_is_array(array) && json_array_size(array) == count,
	           "stored_data holds %zu objects, %zu were appended", json_array_size(array),
	           count);
	for (i = 0; i < count; i++)
		FUZZ_CHECK(json_equal(json_array_get(array, i), sent[i]),
		           "object %zu differs from the one appended", i);

	found = json_scan_member(served, n, "stored_data", &span, why, sizeof(why));
	/* Objects nested too deep for the caller are fuzz_payload's finding; not repeated here. */
	if (!(found < 0 && strstr(why, "nesting too deep") != NULL))
		FUZZ_CHECK(found == 1 && span.type == '[' && span.len == len + 2,
		           "the caller would reject this GET /data answer: %s",
		           found < 0 ? why : "no stored_data array");

	for (i = 0; i < count; i++)
		json_decref(sent[i]);
	json_decref(doc);
	free(served);
	store_destroy(&s);
	return 0;
}
