/* Handlers shared by the caller and the responder. */
#include "data_routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "payload.h"
#include "response.h"

#define DATA_PREFIX "{\"stored_data\":["
#define DATA_SUFFIX "]}"

void
data_post(struct http_exchange *ex, void *arg)
{
	struct data_service *svc = arg;
	char err[512], *object = NULL, *answer;
	const char *body;
	size_t body_len, object_len, answer_len;
	int rc;

	body = http_body(ex, &body_len);
	rc = payload_parse(body, body_len, &object, &object_len, err, sizeof(err));
	if (rc != 0) {
		http_reply_error(ex, rc == -1 ? 400 : 500, "%s", err);
		return;
	}
	switch (store_append(&svc->store, object, object_len)) {
	case STORE_FULL_ITEMS:
		http_reply_error(ex, 507, "Store is full: STORE_MAX_ITEMS (%zu objects) reached",
		                 svc->store.max_items);
		goto out;
	case STORE_FULL_BYTES:
		http_reply_error(
		    ex, 507,
		    "Store is full: the object does not fit in STORE_MAX_BYTES (%zu bytes)",
		    svc->store.max_bytes);
		goto out;
	case STORE_OK:
		break;
	}
	answer_len = object_len + strlen(svc->stored_message) + 64;
	answer = malloc(answer_len);
	if (answer == NULL) {
		http_reply_error(ex, 500, "Out of memory after storing the object");
		goto out;
	}
	answer_len =
	    (size_t)snprintf(answer, answer_len, "{\"message\":\"%s\",\"stored_data\":%.*s}",
	                     svc->stored_message, (int)object_len, object);
	http_reply_take(ex, 201, answer, answer_len);
out:
	free(object);
}

void
data_get(struct http_exchange *ex, void *arg)
{
	struct data_service *svc = arg;
	struct MHD_IoVec parts[3];
	struct MHD_Response *r;
	const char *items;
	size_t len, size;

	store_snapshot(&svc->store, &items, &len, NULL);
	parts[0].iov_base = DATA_PREFIX;
	parts[0].iov_len = sizeof(DATA_PREFIX) - 1;
	parts[1].iov_base = items;
	parts[1].iov_len = len;
	parts[2].iov_base = DATA_SUFFIX;
	parts[2].iov_len = sizeof(DATA_SUFFIX) - 1;
	r = response_from_parts(parts, 3, NULL, NULL, &size);
	http_reply(ex, 200, r, size);
}

static void
render_store(struct buffer *out, void *arg)
{
	struct data_service *svc = arg;
	const char *data;
	size_t len, items;

	store_snapshot(&svc->store, &data, &len, &items);
	metrics_printf(out,
	               "# HELP store_objects Objects in the store.\n# TYPE store_objects gauge\n"
	               "store_objects %zu\n"
	               "# HELP store_bytes JSON bytes in the store.\n# TYPE store_bytes gauge\n"
	               "store_bytes %zu\n"
	               "# HELP store_max_objects STORE_MAX_ITEMS.\n# TYPE store_max_objects gauge\n"
	               "store_max_objects %zu\n"
	               "# HELP store_max_bytes STORE_MAX_BYTES.\n# TYPE store_max_bytes gauge\n"
	               "store_max_bytes %zu\n",
	               items, len, svc->store.max_items, svc->store.max_bytes);
}

static void
emf_store(struct metrics_emf *emf, void *arg)
{
	struct data_service *svc = arg;
	const char *data;
	size_t len, items;

	store_snapshot(&svc->store, &data, &len, &items);
	metrics_emf_value(emf, "StoredObjects", "Count", (double)items);
	metrics_emf_value(emf, "StoredBytes", "Bytes", (double)len);
}

void
data_metrics_register(struct data_service *svc)
{
	metrics_register(render_store, emf_store, svc);
}

void
health_get(struct http_exchange *ex, void *unused)
{
	(void)unused;
	http_reply_static(ex, 200, "{\"status\":\"ok\"}");
}
