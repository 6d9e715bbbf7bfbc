/* The caller ("Service A"): its own store, plus GET / that merges in the responder's. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/daemon.h"
#include "../common/data_routes.h"
#include "../common/log.h"
#include "../common/tls.h"
#include "merge.h"
#include "upstream.h"

#define URL_MAX 2048

/* GET /: holds the request while this server thread's loop asks the responder. */
static void
root_get(struct http_exchange *ex, void *unused)
{
	(void)unused;
	http_suspend(ex);
	upstream_fetch(http_loop_state(ex), http_request_id(ex), http_trace(ex), ex);
}

/* Called when the responder's answer (or the reason there is none) is known: answers GET /. */
static void
on_fetched(struct upstream_result *result, void *service, void *request)
{
	struct data_service *data = service;
	struct http_exchange *ex = request;
	struct http_part parts[MERGE_PARTS];
	const char *items;
	char *owned;
	size_t len;

	http_trace_call(ex, &result->call);
	store_snapshot(&data->store, &items, &len, NULL);
	if (merge_parts(items, len, result, parts, &owned) < 0) {
		http_reply_error(ex, 500, "Out of memory building the answer");
	} else {
		http_set_upstream(ex, result->served_by, result->version);
		http_reply_parts(ex, 200, parts, MERGE_PARTS, upstream_body_free, owned);
	}
	http_resume(ex);
}

/* Reads the caller's own settings; returns 0, or -1 after printing what is wrong. */
static int
upstream_config_load(struct upstream_config *c, char *url, size_t url_size)
{
	static const char *const url_vars[] = {"RESPONDER_URL", "SERVICE_B_URL", NULL};
	const char *base = config_string(url_vars, "http://responder:5000");
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	if ((strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) ||
	    n >= url_size || n <= 8) {
		fprintf(
		    stderr,
		    "caller: RESPONDER_URL=%s is invalid: expected an http:// or https:// URL\n",
		    base);
		return -1;
	}
	memcpy(url, base, n);
	url[n] = '\0';
	c->base_url = url;
	CONFIG_INTEGER_OR_RETURN("UPSTREAM_TIMEOUT_MS", 2000, 1, 600000, c->timeout_ms);
	CONFIG_INTEGER_OR_RETURN("UPSTREAM_CONNECT_TIMEOUT_MS", 1000, 1, 600000,
	                         c->connect_timeout_ms);
	CONFIG_INTEGER_OR_RETURN("UPSTREAM_DNS_CACHE_S", 2, 0, 3600, c->dns_cache_s);
	CONFIG_INTEGER_OR_RETURN("UPSTREAM_CONNECTION_REUSE", 1, 0, 1, c->connection_reuse);
	CONFIG_INTEGER_OR_RETURN("UPSTREAM_KEEPALIVE_MAX", 64, 1, 100000, c->keepalive_max);
	CONFIG_INTEGER_OR_RETURN("UPSTREAM_CALLS_MAX", 64, 1, 100000, c->calls_max);
	CONFIG_INTEGER_OR_RETURN("UPSTREAM_BODY_CACHE_BYTES", 4LL << 20, 0, 64LL << 30,
	                         c->body_cache_bytes);
	CONFIG_INTEGER_OR_RETURN("UPSTREAM_MAX_BYTES", 72LL << 20, 32, 64LL << 30, c->max_bytes);
	/* One attempt may use the whole deadline unless told otherwise. */
	CONFIG_INTEGER_OR_RETURN("UPSTREAM_ATTEMPT_TIMEOUT_MS", c->timeout_ms, 1, 600000,
	                         c->attempt_timeout_ms);
	CONFIG_INTEGER_OR_RETURN("RETRY_MAX", 1, 0, 5, c->retry_max);
	CONFIG_INTEGER_OR_RETURN("RETRY_BACKOFF_MS", 50, 1, 10000, c->retry_backoff_ms);
	CONFIG_INTEGER_OR_RETURN("RETRY_BUDGET_PERCENT", 20, 0, 100, c->retry_budget_percent);
	CONFIG_INTEGER_OR_RETURN("BREAKER_THRESHOLD", 5, 0, 1000, c->breaker_threshold);
	CONFIG_INTEGER_OR_RETURN("BREAKER_COOLDOWN_MS", 5000, 1, 600000, c->breaker_cooldown_ms);
	return 0;
}

int
main(int argc, char **argv)
{
	struct upstream_config ucfg = {0};
	struct daemon_hooks hooks = {0};
	struct upstream *upstream = NULL;
	struct data_service data;
	struct daemon d;
	char url[URL_MAX], err[ERROR_MAX];
	int status;

	if (daemon_init(&d, "caller", argc, argv, &status) < 0)
		return status;
	if (data_service_init(&data, "Data stored successfully in Service A", &d.config,
	                      d.metrics) < 0) {
		status = CONFIG_EXIT_STATUS;
		goto out_daemon;
	}
	if (upstream_config_load(&ucfg, url, sizeof(url)) < 0) {
		status = CONFIG_EXIT_STATUS;
		goto out;
	}
	if (upstream_tls_load(&ucfg.tls, strncmp(url, "https:", 6) == 0, err, sizeof(err)) < 0) {
		fprintf(stderr, "caller: %s\n", err);
		status = CONFIG_EXIT_STATUS;
		goto out;
	}
	if (ucfg.tls != NULL) {
		hooks.reload = upstream_tls_reload;
		hooks.arg = ucfg.tls;
	}
	/* Before any thread starts: libcurl's global set-up is not thread-safe everywhere. */
	if (curl_global_init(strncmp(url, "https:", 6) == 0 ? CURL_GLOBAL_DEFAULT
	                                                    : CURL_GLOBAL_NOTHING) != CURLE_OK) {
		log_msg(LOG_ERROR, "curl_global_init failed");
		status = 1;
		goto out;
	}
	upstream = upstream_new(&ucfg, d.metrics, on_fetched, &data);
	if (upstream == NULL) {
		status = 1;
		goto cleanup_curl;
	}
	hooks.loop = upstream_loop(upstream);
	log_msg(LOG_INFO, "responder at %s", url);
	{
		const struct http_route routes[] = {
		    {.path = "/", .get = root_get},
		    {.path = "/data",
		     .get = data_get,
		     .post = data_post,
		     .arg = &data,
		     .rate_limited = 1},
		    {.path = "/health", .get = health_get},
		    {.path = "/metrics", .get = metrics_get, .arg = d.metrics},
		};

		status = daemon_serve(&d, routes, sizeof(routes) / sizeof(routes[0]), &hooks);
	}
	upstream_free(upstream);
cleanup_curl:
	curl_global_cleanup();
out:
	upstream_tls_free(ucfg.tls);
	data_service_destroy(&data);
out_daemon:
	daemon_destroy(&d);
	return status;
}
