/*
 * The caller's TLS to the responder: RESPONDER_CA_FILE verifies the
 * responder's certificate, CLIENT_CERT_FILE and CLIENT_KEY_FILE are the
 * caller's own identity for a responder that requires one. Read again on
 * SIGHUP; calls that open a connection afterwards use what was read last.
 */
#ifndef CALLER_UPSTREAM_TLS_H
#define CALLER_UPSTREAM_TLS_H

#include <stddef.h>

#include <curl/curl.h>

struct upstream_tls;

/*
 * Reads the settings for a responder at an https URL (https is 1) or not.
 * Returns 0 with *out NULL when none is set, 0 with *out set (freed with
 * upstream_tls_free()), or -1 with err filled.
 */
int upstream_tls_load(struct upstream_tls **out, int https, char *err, size_t errlen);

/*
 * Gives easy the certificates read last, when they changed since *seen (the
 * generation the handle last took, 0 at first). t may be NULL. Returns
 * CURLE_OK or libcurl's error.
 */
CURLcode upstream_tls_apply(struct upstream_tls *t, CURL *easy, unsigned int *seen);

/* Reads every setting again (a daemon reload hook): 0, or -1 with err filled and the old kept. */
int upstream_tls_reload(void *t, char *err, size_t errlen);

/* Frees t (NULL is allowed). */
void upstream_tls_free(struct upstream_tls *t);

#endif
