/*
 * The server side of TLS for both daemons: TLS_CERT_FILE and TLS_KEY_FILE
 * serve HTTPS, TLS_CLIENT_CA_FILE requires a client certificate that verifies
 * against it. Each connection takes the credentials current when it opens, so
 * a reload on SIGHUP serves new connections with new certificates and leaves
 * open ones as they are.
 */
#ifndef COMMON_TLS_SERVER_H
#define COMMON_TLS_SERVER_H

#include <stddef.h>

#include <gnutls/gnutls.h>

#include "tls.h"

/*
 * What the server offers (GnuTLS priority string, for libmicrohttpd's
 * MHD_OPTION_HTTPS_PRIORITIES):
 * - TLS 1.3 first, TLS 1.2 at least.
 * - AEAD ciphers only: AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM. NORMAL
 *   would add the TLS 1.2 CBC suites (ECDHE-ECDSA-AES128/256-SHA), which
 *   scanners flag for LUCKY13 (CVE-2013-0169). AES-CCM is AEAD too but left
 *   out: no client here needs it (OpenSSL does not offer it by default) and
 *   every extra suite is surface.
 * - ECDHE key exchange only (ECDSA or RSA certificate), on elliptic-curve
 *   groups only: no RSA key transport, no finite-field DHE.
 * - The server's order, not the client's, picks the suite (%SERVER_PRECEDENCE).
 * That is nine suites, 3 for TLS 1.3 and 6 for TLS 1.2; `gnutls-cli --priority
 * '<this string>' -l` lists them. The caller's libcurl (OpenSSL) and the
 * health probe (GnuTLS defaults) both negotiate TLS 1.3 with AES-256-GCM.
 * tests/hostile/test_hostile_tls.py checks it with testssl.sh.
 */
#define TLS_SERVER_PRIORITIES                                                                      \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"                                               \
	":-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM:-MAC-ALL:+AEAD"                 \
	":-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-DH-ALL:%SERVER_PRECEDENCE"

struct tls_server;
struct tls_credentials; /* what one connection holds */

/*
 * Reads the settings. Returns 0 with *out NULL when TLS is off, 0 with *out
 * set (the caller frees it with tls_server_free()), or -1 with err filled.
 */
int tls_server_load(struct tls_server **out, char *err, size_t errlen);

/* The certificate and key as first read, NUL-terminated, for libmicrohttpd's start; borrowed. */
const char *tls_server_cert_pem(const struct tls_server *t);
const char *tls_server_key_pem(const struct tls_server *t);

/* The current credentials, borrowed until the next reload: the health probe's client identity. */
gnutls_certificate_credentials_t tls_server_credentials(const struct tls_server *t);

/*
 * Gives a new connection's session the current credentials and, with
 * TLS_CLIENT_CA_FILE, makes its handshake require and verify a client
 * certificate. Returns what the connection holds until tls_server_session_end(),
 * or NULL when the session could not be set up (the connection must be closed).
 */
struct tls_credentials *tls_server_session_start(struct tls_server *t, gnutls_session_t session);

/* The connection has closed and its session is gone: releases what it held. NULL is allowed. */
void tls_server_session_end(struct tls_credentials *c);

/* Reads every setting again; returns 0, or -1 with err filled and the old credentials kept. */
int tls_server_reload(struct tls_server *t, char *err, size_t errlen);

/* Frees t (NULL is allowed); every connection must have ended. */
void tls_server_free(struct tls_server *t);

#endif
