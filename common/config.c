/* Environment variables parsed strictly: a typo must stop the daemon, not be half-read. */
#include "config.h"

#include "address_limit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int
config_integer(const char *name, long long def, long long min, long long max, long long *out)
{
	const char *text = getenv(name);
	char *end;
	long long v;

	if (text == NULL || *text == '\0') {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtoll(text, &end, 10);
	/* strtoll() alone would also take leading spaces and a plus sign. */
	if (!((*text >= '0' && *text <= '9') || *text == '-') || errno != 0 || *end != '\0' ||
	    v < min || v > max) {
		fprintf(stderr, "%s: %s=%s is invalid: expected an integer from %lld to %lld\n",
		        log_service_name(), name, text, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int
config_number(const char *name, double def, double min, double max, double *out)
{
	const char *text = getenv(name);
	char *end;
	double v;

	if (text == NULL || *text == '\0') {
		*out = def;
		return 0;
	}
	errno = 0;
	v = strtod(text, &end);
	if (!((*text >= '0' && *text <= '9') || *text == '.') || errno != 0 || *end != '\0' ||
	    !(v >= min && v <= max)) {
		fprintf(stderr, "%s: %s=%s is invalid: expected a number from %g to %g\n",
		        log_service_name(), name, text, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

const char *
config_string(const char *const names[], const char *def)
{
	const char *v;

	for (; *names != NULL; names++) {
		v = getenv(*names);
		if (v != NULL && *v != '\0')
			return v;
	}
	return def;
}

int
server_config_load(struct server_config *c)
{
	static const char *const level_var[] = {"LOG_LEVEL", NULL};
	static const char *const namespace_var[] = {"METRICS_EMF_NAMESPACE", NULL};
	static const char *const exempt_var[] = {"CONNECTION_LIMIT_EXEMPT", NULL};
	const char *level = config_string(level_var, "info");
	long long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	c->metrics_emf_namespace = config_string(namespace_var, "ServiceConnectDemo");
	c->connection_limit_exempt = config_string(exempt_var, "127.0.0.1,::1");
	if (address_list_check(c->connection_limit_exempt) < 0) {
		fprintf(stderr,
		        "%s: CONNECTION_LIMIT_EXEMPT=%s is invalid: expected up to 16 IPv4 or IPv6 "
		        "addresses separated by commas\n",
		        log_service_name(), c->connection_limit_exempt);
		return -1;
	}
	if (cpus < 1)
		cpus = 1;
	if (cpus > 64)
		cpus = 64;
	if (log_level_parse(level, &c->log_level) < 0) {
		fprintf(stderr,
		        "%s: LOG_LEVEL=%s is invalid: expected debug, info, warn or error\n",
		        log_service_name(), level);
		return -1;
	}
	CONFIG_INTEGER_OR_RETURN("PORT", 5000, 1, 65535, c->port);
	CONFIG_INTEGER_OR_RETURN("THREADS", cpus, 1, 64, c->threads);
	CONFIG_INTEGER_OR_RETURN("BODY_MAX_BYTES", 1048576, 2, 1LL << 30, c->body_max_bytes);
	CONFIG_INTEGER_OR_RETURN("STORE_MAX_ITEMS", 1000000, 1, 1LL << 32, c->store_max_items);
	CONFIG_INTEGER_OR_RETURN("STORE_MAX_BYTES", 64LL << 20, 2, 64LL << 30, c->store_max_bytes);
	CONFIG_INTEGER_OR_RETURN("CONNECTION_LIMIT", 1024, 1, 1000000, c->connection_limit);
	CONFIG_INTEGER_OR_RETURN("CONNECTION_TIMEOUT_S", 30, 1, 3600, c->connection_timeout_s);
	CONFIG_INTEGER_OR_RETURN("DRAIN_TIMEOUT_MS", 10000, 0, 120000, c->drain_timeout_ms);
	CONFIG_INTEGER_OR_RETURN("REQUEST_READ_TIMEOUT_S", 30, 1, 3600, c->request_read_timeout_s);
	CONFIG_INTEGER_OR_RETURN("CONNECTION_LIMIT_PER_ADDRESS", 64, 0, 1000000,
	                         c->connection_limit_per_address);
	CONFIG_INTEGER_OR_RETURN("ANSWER_MEMORY_MAX_BYTES", 128LL << 20, 1LL << 20, 64LL << 30,
	                         c->answer_memory_max_bytes);
	CONFIG_INTEGER_OR_RETURN("REFUSAL_DRAIN_MS", 5000, 0, 60000, c->refusal_drain_ms);
	CONFIG_INTEGER_OR_RETURN("REFUSAL_DRAIN_BYTES", 8LL << 20, 0, 1LL << 30,
	                         c->refusal_drain_bytes);
	CONFIG_INTEGER_OR_RETURN("METRICS_EMF", 0, 0, 1, c->metrics_emf);
	CONFIG_INTEGER_OR_RETURN("METRICS_EMF_INTERVAL_S", 60, 1, 3600, c->metrics_emf_interval_s);
	CONFIG_INTEGER_OR_RETURN("RATE_LIMIT_CLIENTS", 10000, 1, 10000000, c->rate_limit_clients);
	CONFIG_INTEGER_OR_RETURN("TRUST_FORWARDED_FOR", 0, 0, 1, c->trust_forwarded_for);
	if (config_number("RATE_LIMIT_RPS", 0, 0, 1e6, &c->rate_limit_rps) < 0 ||
	    config_number("RATE_LIMIT_BURST", c->rate_limit_rps < 1 ? 1 : c->rate_limit_rps, 1, 1e6,
	                  &c->rate_limit_burst) < 0)
		return -1;
	return 0;
}
