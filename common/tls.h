/*
 * Certificates and keys named by settings, shared by the server side and the
 * caller's client side. A setting NAME_FILE names a PEM file; its twin
 * NAME_PEM holds the PEM text itself, which is how ECS hands over a secret
 * from Secrets Manager. Also the TLS figures in /metrics: each certificate's
 * expiry and how SIGHUP reloads went.
 */
#ifndef COMMON_TLS_H
#define COMMON_TLS_H

#include <stddef.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "log.h"
#include "metrics.h"

/* The largest PEM text a setting may hold: far above any certificate chain. */
#define TLS_PEM_MAX_BYTES (1 << 20)

/* The text of one setting; NULL text when neither the setting nor its twin is set. */
struct tls_pem {
	const char *setting; /* the _FILE name, even when the _PEM twin was used; static */
	char *text;          /* NUL-terminated; owned */
	size_t len;
};

/* Whether setting (a _FILE name) or its _PEM twin is set and not empty. */
int tls_pem_is_set(const char *setting);

/*
 * Reads setting (a static _FILE name) or its _PEM twin into *pem, which the
 * caller frees with tls_pem_free(). Returns 0, also when neither is set, or -1
 * with err saying what is wrong (both set, unreadable, too large).
 */
int tls_pem_read(const char *setting, struct tls_pem *pem, char *err, size_t errlen);

/* The text of pem as GnuTLS takes it; borrows pem's memory. */
gnutls_datum_t tls_pem_datum(const struct tls_pem *pem);

/* Frees what tls_pem_read() read; pem stays usable for another read. */
void tls_pem_free(struct tls_pem *pem);

/*
 * Checks that pem holds at least one X.509 certificate and gives the earliest
 * expiry among them in *not_after. Returns 0, or -1 with err filled.
 */
int tls_pem_expiry(const struct tls_pem *pem, time_t *not_after, char *err, size_t errlen);

/* Publishes the expiry of setting's certificates in /metrics (setting is static). */
void tls_expiry_publish(const char *setting, time_t not_after);

/* Why a client certificate was refused, for /metrics. */
enum tls_refusal {
	TLS_REFUSED_MISSING, /* the client sent none */
	TLS_REFUSED_EXPIRED,
	TLS_REFUSED_NOT_YET_VALID,
	TLS_REFUSED_UNTRUSTED, /* not signed by TLS_CLIENT_CA_FILE's CAs */
	TLS_REFUSED_OTHER,
	TLS_REFUSED_COUNT
};

/* Counts one client certificate refused at the handshake. */
void tls_refusal_count(enum tls_refusal why);

/* Counts one SIGHUP reload in /metrics: ok is 1 when every certificate was read again. */
void tls_reload_count(int ok);

/* Adds the TLS figures to registry's /metrics; returns 0, or -1 after logging why. */
int tls_metrics_register(struct metrics *registry);

#endif
