/* The task ID from ECS task metadata, or the hostname. */
#include "served_by.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_get.h"
#include "log.h"

#define METADATA_TIMEOUT 1000
#define METADATA_MAX     (256 * 1024)

static char value[SERVED_BY_MAX] = "unknown";

/* Parses http://<ipv4>[:port]/path, the form ECS gives the metadata endpoint. */
static int
split_url(const char *url, char *host, size_t host_size, unsigned int *port, const char **path)
{
	const char *p, *slash;
	size_t n;

	if (strncmp(url, "http://", 7) != 0)
		return -1;
	p = url + 7;
	slash = strchr(p, '/');
	if (slash == NULL)
		return -1;
	n = strcspn(p, ":/");
	if (n == 0 || n >= host_size)
		return -1;
	memcpy(host, p, n);
	host[n] = '\0';
	*port = p[n] == ':' ? (unsigned int)strtoul(p + n + 1, NULL, 10) : 80;
	*path = slash;
	return *port > 0 && *port < 65536 ? 0 : -1;
}

/* Asks the task metadata endpoint for the TaskARN; returns 0 when value holds the task ID. */
static int
task_id_from_metadata(const char *base)
{
	char host[64], path[1024], *body = NULL;
	const char *base_path, *arn, *id;
	unsigned int port;
	json_t *task = NULL;
	int rc = -1;

	if (split_url(base, host, sizeof(host), &port, &base_path) < 0 ||
	    (size_t)snprintf(path, sizeof(path), "%s/task", base_path) >= sizeof(path)) {
		log_msg(LOG_WARN, "ECS_CONTAINER_METADATA_URI_V4=%s is not an http://IPv4 URL",
		        base);
		return -1;
	}
	if (http_get(host, port, path, METADATA_TIMEOUT, NULL, METADATA_MAX, &body) != 200) {
		log_msg(LOG_WARN, "task metadata at %s did not answer 200", base);
		goto out;
	}
	task = json_loads(body, 0, NULL);
	arn = json_string_value(json_object_get(task, "TaskARN"));
	id = arn != NULL ? strrchr(arn, '/') : NULL;
	if (id == NULL || id[1] == '\0' || strlen(id + 1) >= sizeof(value)) {
		log_msg(LOG_WARN, "task metadata at %s has no usable TaskARN", base);
		goto out;
	}
	snprintf(value, sizeof(value), "%s", id + 1);
	rc = 0;
out:
	json_decref(task);
	free(body);
	return rc;
}

void
served_by_init(void)
{
	const char *metadata = getenv("ECS_CONTAINER_METADATA_URI_V4");

	if (metadata != NULL && *metadata != '\0' && task_id_from_metadata(metadata) == 0)
		return;
	if (gethostname(value, sizeof(value)) != 0)
		snprintf(value, sizeof(value), "unknown");
	value[sizeof(value) - 1] = '\0';
}

const char *
served_by(void)
{
	return value;
}
