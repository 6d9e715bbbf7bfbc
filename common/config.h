/* Configuration from the environment, checked once at start-up. */
#ifndef COMMON_CONFIG_H
#define COMMON_CONFIG_H

#include <stddef.h>

#include "log.h"

/* Exit status for a configuration error, so orchestrators can tell it from a crash. */
#define CONFIG_EXIT_STATUS 2

/* What every daemon reads; the README's configuration table documents each one. */
struct server_config {
	unsigned int port;                         /* PORT */
	enum log_level log_level;                  /* LOG_LEVEL */
	unsigned int threads;                      /* THREADS */
	size_t body_max_bytes;                     /* BODY_MAX_BYTES */
	size_t store_max_items;                    /* STORE_MAX_ITEMS */
	size_t store_max_bytes;                    /* STORE_MAX_BYTES */
	unsigned int connection_limit;             /* CONNECTION_LIMIT */
	unsigned int connection_timeout_s;         /* CONNECTION_TIMEOUT_S */
	unsigned int drain_timeout_ms;             /* DRAIN_TIMEOUT_MS */
	unsigned int request_read_timeout_s;       /* REQUEST_READ_TIMEOUT_S */
	unsigned int connection_limit_per_address; /* CONNECTION_LIMIT_PER_ADDRESS: 0 for none */
	const char
	    *connection_limit_exempt;   /* CONNECTION_LIMIT_EXEMPT; borrowed from the environment */
	size_t answer_memory_max_bytes; /* ANSWER_MEMORY_MAX_BYTES */
	unsigned int refusal_drain_ms;  /* REFUSAL_DRAIN_MS */
	size_t refusal_drain_bytes;     /* REFUSAL_DRAIN_BYTES */
	int metrics_emf;                /* METRICS_EMF: 1 to write EMF lines */
	unsigned int metrics_emf_interval_s; /* METRICS_EMF_INTERVAL_S */
	const char
	    *metrics_emf_namespace; /* METRICS_EMF_NAMESPACE; borrowed from the environment */
	double rate_limit_rps;      /* RATE_LIMIT_RPS: 0 for no limit */
	double rate_limit_burst;    /* RATE_LIMIT_BURST */
	size_t rate_limit_clients;  /* RATE_LIMIT_CLIENTS */
	int trust_forwarded_for;    /* TRUST_FORWARDED_FOR: 1 to key clients by X-Forwarded-For */
};

/*
 * Reads the integer variable name into *out, or def when it is unset or empty.
 * Returns 0, or -1 after printing one line naming the variable and the range
 * it accepts.
 */
int config_integer(const char *name, long long def, long long min, long long max, long long *out);

/*
 * Reads an integer variable into lvalue, or returns -1 from the calling
 * function after config_integer() has printed what is wrong. For the long
 * lists of settings each daemon reads at start-up.
 */
#define CONFIG_INTEGER_OR_RETURN(name, def, min, max, lvalue)                                      \
	do {                                                                                       \
		long long config_value_;                                                           \
		if (config_integer(name, def, min, max, &config_value_) < 0)                       \
			return -1;                                                                 \
		(lvalue) = config_value_;                                                          \
	} while (0)

/* The same as config_integer() for a decimal number such as 0.25. */
int config_number(const char *name, double def, double min, double max, double *out);

/* Reads the first of names that is set and not empty, or def; the result is borrowed. */
const char *config_string(const char *const names[], const char *def);

/* Fills c from the environment; returns 0, or -1 after printing what is wrong. */
int server_config_load(struct server_config *c);

#endif
