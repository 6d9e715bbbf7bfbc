/* The version this daemon reports: built in, or APP_VERSION from the environment. */
#include "app_version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

#ifndef APP_VERSION_DEFAULT
#define APP_VERSION_DEFAULT "dev"
#endif

static char value[APP_VERSION_MAX + 1] = APP_VERSION_DEFAULT;

/* 1 when s is a version as app_version_load() documents it. */
static int
version_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > APP_VERSION_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-") == n;
}

int
app_version_load(void)
{
	const char *text = getenv("APP_VERSION");

	if (text == NULL || *text == '\0')
		text = APP_VERSION_DEFAULT;
	if (!version_valid(text)) {
		fprintf(stderr,
		        "%s: APP_VERSION=%s is invalid: expected 1 to %d characters from "
		        "A-Z a-z 0-9 . _ + -\n",
		        log_service_name(), text, APP_VERSION_MAX);
		return -1;
	}
	memcpy(value, text, strlen(text) + 1);
	return 0;
}

const char *
app_version(void)
{
	return value;
}

/* Writes app_build_info; arg is the service name, borrowed. */
static void
render_build_info(struct buffer *out, void *arg)
{
	metrics_printf(out,
	               "# HELP app_build_info The version this daemon runs (APP_VERSION).\n"
	               "# TYPE app_build_info gauge\n"
	               "app_build_info{service=\"%s\",version=\"%s\"} 1\n",
	               (const char *)arg, value);
}

int
app_version_metrics_register(struct metrics *registry, const char *service)
{
	return metrics_register(registry, render_build_info, NULL, (void *)service);
}
