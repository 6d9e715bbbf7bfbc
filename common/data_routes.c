/* Handlers shared by the caller and the responder. */
#include "data_routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "payload.h"

#define DATA_PREFIX "{\"stored_data\":["
#define DATA_SUFFIX "]}"

void
data_post(struct http_exchange *ex, void *arg)
{
	struct data_service *svc = arg;
	char err[ERROR_MAX], *object = NULL, *answer;
	enum payload_result rc;
	const char *body;
	size_t body_len, object_len, answer_len;

	body = http_body(ex, &body_len);
	rc = payload_parse(body, body_len, &object, &object_len, err, sizeof(err));
	if (rc != PAYLOAD_OK) {
		http_reply_error(ex, rc == PAYLOAD_INVALID ? 400 : 500, "%s", err);
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
	struct http_part parts[3];
	const char *items;
	size_t len;

	store_snapshot(&svc->store, &items, &len, NULL);
	parts[0] = (struct http_part){DATA_PREFIX, sizeof(DATA_PREFIX) - 1};
	parts[1] = (struct http_part){items, len};
	parts[2] = (struct http_part){DATA_SUFFIX, sizeof(DATA_SUFFIX) - 1};
	http_reply_parts(ex, 200, parts, 3, NULL, NULL);
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

int
data_service_init(struct data_service *svc, const char *stored_message,
                  const struct server_config *cfg, struct metrics *registry)
{
	svc->stored_message = stored_message;
	svc->registry = registry;
	if (store_init(&svc->store, cfg->store_max_items, cfg->store_max_bytes) < 0) {
		fprintf(stderr, "%s: STORE_MAX_BYTES=%zu cannot be reserved: %s\n",
		        log_service_name(), cfg->store_max_bytes, strerror(errno));
		return -1;
	}
	if (metrics_register(registry, render_store, emf_store, svc) < 0) {
		store_destroy(&svc->store);
		return -1;
	}
	return 0;
}

void
data_service_destroy(struct data_service *svc)
{
	metrics_unregister(svc->registry, svc);
	store_destroy(&svc->store);
}

void
health_get(struct http_exchange *ex, void *unused)
{
	(void)unused;
	http_reply_static(ex, 200, "{\"status\":\"ok\"}");
}

void
metrics_get(struct http_exchange *ex, void *registry)
{
	struct buffer page;
	char *text;
	size_t len;

	buffer_init(&page, METRICS_PAGE_MAX);
	metrics_render(registry, &page);
	text = buffer_steal(&page, &len);
	http_reply_take(ex, 200, text, len);
	http_set_content_type(ex, "text/plain; version=0.0.4; charset=utf-8");
}
