/* Environment variables parsed strictly: a typo must stop the daemon, not be half-read. */
#include "config.h"

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
	const char *level = config_string(level_var, "info");
	long long cpus = sysconf(_SC_NPROCESSORS_ONLN), v;

	c->metrics_emf_namespace = config_string(namespace_var, "ServiceConnectDemo");
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
#define READ(name, def, min, max, field)                                                           \
	do {                                                                                       \
		if (config_integer(name, def, min, max, &v) < 0)                                   \
			return -1;                                                                 \
		c->field = v;                                                                      \
	} while (0)
	READ("PORT", 5000, 1, 65535, port);
	READ("THREADS", cpus, 1, 64, threads);
	READ("BODY_MAX_BYTES", 1048576, 2, 1LL << 30, body_max_bytes);
	READ("STORE_MAX_ITEMS", 1000000, 1, 1LL << 32, store_max_items);
	READ("STORE_MAX_BYTES", 64LL << 20, 2, 64LL << 30, store_max_bytes);
	READ("CONNECTION_LIMIT", 1024, 1, 1000000, connection_limit);
	READ("CONNECTION_TIMEOUT_S", 30, 1, 3600, connection_timeout_s);
	READ("DRAIN_TIMEOUT_MS", 10000, 0, 120000, drain_timeout_ms);
	READ("REQUEST_READ_TIMEOUT_S", 30, 1, 3600, request_read_timeout_s);
	READ("METRICS_EMF", 0, 0, 1, metrics_emf);
	READ("METRICS_EMF_INTERVAL_S", 60, 1, 3600, metrics_emf_interval_s);
	READ("RATE_LIMIT_CLIENTS", 10000, 1, 10000000, rate_limit_clients);
	READ("TRUST_FORWARDED_FOR", 0, 0, 1, trust_forwarded_for);
#undef READ
	if (config_number("RATE_LIMIT_RPS", 0, 0, 1e6, &c->rate_limit_rps) < 0 ||
	    config_number("RATE_LIMIT_BURST", c->rate_limit_rps < 1 ? 1 : c->rate_limit_rps, 1, 1e6,
	                  &c->rate_limit_burst) < 0)
		return -1;
	return 0;
}
