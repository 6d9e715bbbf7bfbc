/* HTTPS for both daemons: credentials per connection, client verification, reload on SIGHUP. */
#include "tls_server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct tls_credentials {
	atomic_uint refs; /* the server's, plus one per connection using them */
	gnutls_certificate_credentials_t x509;
	int verify_clients; /* 1 with TLS_CLIENT_CA_FILE */
};

struct tls_server {
	pthread_mutex_t lock; /* guards current */
	struct tls_credentials *current;
	struct tls_pem cert, key; /* as first read, for libmicrohttpd's start */
};

/*
 * Verifies a client's certificate during the handshake (a non-zero return
 * fails it), counting why it was refused. The reason is logged at debug level
 * only: anyone who can connect can cause one, and the log is not theirs to fill.
 */
static int
verify_client(gnutls_session_t session)
{
	unsigned int status = 0;
	gnutls_datum_t why;
	enum tls_refusal reason;
	int rc;

	rc = gnutls_certificate_verify_peers3(session, NULL, &status);
	if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND) {
		tls_refusal_count(TLS_REFUSED_MISSING);
		log_msg(LOG_DEBUG, "client certificate refused: the client sent none");
		return GNUTLS_E_CERTIFICATE_ERROR;
	}
	if (rc < 0)
		status = GNUTLS_CERT_INVALID;
	if (status == 0)
		return 0;
	if (status & GNUTLS_CERT_EXPIRED)
		reason = TLS_REFUSED_EXPIRED;
	else if (status & GNUTLS_CERT_NOT_ACTIVATED)
		reason = TLS_REFUSED_NOT_YET_VALID;
	else if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
		reason = TLS_REFUSED_UNTRUSTED;
	else
		reason = TLS_REFUSED_OTHER;
	tls_refusal_count(reason);
	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) == 0) {
		log_msg(LOG_DEBUG, "client certificate refused: %s", (const char *)why.data);
		gnutls_free(why.data);
	}
	return GNUTLS_E_CERTIFICATE_ERROR;
}

static void
credentials_release(struct tls_credentials *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	gnutls_certificate_free_credentials(c->x509);
	free(c);
}

/*
 * Reads the certificate, key and client CA into cert, key (kept for the
 * caller) and fresh credentials. Expiry figures are published only when all
 * of it is usable, so a failed reload leaves /metrics describing what serves.
 */
static struct tls_credentials *
credentials_load(struct tls_pem *cert, struct tls_pem *key, char *err, size_t errlen)
{
	struct tls_credentials *c = NULL;
	struct tls_pem ca = {0};
	gnutls_datum_t cd, kd, ad;
	time_t cert_expiry = 0, ca_expiry = 0;
	int rc;

	if (tls_pem_read("TLS_CERT_FILE", cert, err, errlen) < 0 ||
	    tls_pem_read("TLS_KEY_FILE", key, err, errlen) < 0 ||
	    tls_pem_read("TLS_CLIENT_CA_FILE", &ca, err, errlen) < 0)
		goto fail;
	if (cert->text == NULL || key->text == NULL) {
		snprintf(err, errlen,
		         "%s is not set: TLS needs both TLS_CERT_FILE and TLS_KEY_FILE",
		         cert->text == NULL ? "TLS_CERT_FILE" : "TLS_KEY_FILE");
		goto fail;
	}
	if (tls_pem_expiry(cert, &cert_expiry, err, errlen) < 0 ||
	    (ca.text != NULL && tls_pem_expiry(&ca, &ca_expiry, err, errlen) < 0))
		goto fail;
	c = calloc(1, sizeof(*c));
	if (c == NULL || gnutls_certificate_allocate_credentials(&c->x509) < 0) {
		snprintf(err, errlen, "out of memory for TLS credentials");
		free(c);
		c = NULL;
		goto fail;
	}
	atomic_init(&c->refs, 1);
	cd = tls_pem_datum(cert);
	kd = tls_pem_datum(key);
	rc = gnutls_certificate_set_x509_key_mem2(c->x509, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (rc < 0) {
		snprintf(err, errlen, "TLS_KEY_FILE cannot serve TLS_CERT_FILE's certificate: %s",
		         gnutls_strerror(rc));
		goto fail;
	}
	if (ca.text != NULL) {
		ad = tls_pem_datum(&ca);
		rc = gnutls_certificate_set_x509_trust_mem(c->x509, &ad, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			snprintf(err, errlen,
			         "TLS_CLIENT_CA_FILE holds no usable CA certificate: %s",
			         rc < 0 ? gnutls_strerror(rc) : "none found");
			goto fail;
		}
		c->verify_clients = 1;
		gnutls_certificate_set_verify_function(c->x509, verify_client);
		tls_expiry_publish("TLS_CLIENT_CA_FILE", ca_expiry);
	}
	tls_expiry_publish("TLS_CERT_FILE", cert_expiry);
	tls_pem_free(&ca);
	return c;
fail:
	credentials_release(c);
	tls_pem_free(&ca);
	tls_pem_free(cert);
	tls_pem_free(key);
	return NULL;
}

int
tls_server_load(struct tls_server **out, char *err, size_t errlen)
{
	struct tls_server *t;

	*out = NULL;
	if (!tls_pem_is_set("TLS_CERT_FILE") && !tls_pem_is_set("TLS_KEY_FILE")) {
		if (!tls_pem_is_set("TLS_CLIENT_CA_FILE"))
			return 0;
		snprintf(err, errlen,
		         "TLS_CLIENT_CA_FILE is set without TLS_CERT_FILE and "
		         "TLS_KEY_FILE: client certificates need TLS");
		return -1;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		snprintf(err, errlen, "out of memory for TLS");
		return -1;
	}
	t->current = credentials_load(&t->cert, &t->key, err, errlen);
	if (t->current == NULL) {
		free(t);
		return -1;
	}
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

const char *
tls_server_cert_pem(const struct tls_server *t)
{
	return t->cert.text;
}

const char *
tls_server_key_pem(const struct tls_server *t)
{
	return t->key.text;
}

gnutls_certificate_credentials_t
tls_server_credentials(const struct tls_server *t)
{
	return t->current->x509;
}

struct tls_credentials *
tls_server_session_start(struct tls_server *t, gnutls_session_t session)
{
	struct tls_credentials *c;

	pthread_mutex_lock(&t->lock);
	c = t->current;
	atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&t->lock);
	/* Replaces the credentials libmicrohttpd set from the certificate it started with. */
	if (gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, c->x509) < 0) {
		credentials_release(c);
		return NULL;
	}
	if (c->verify_clients) {
		/*
		 * The handshake fails unless the client sends a certificate verify_client()
		 * accepts. GNUTLS_CERT_REQUIRE would refuse a client that sends none before
		 * verify_client() runs, so the refusal would go uncounted; verify_client()
		 * refuses it instead.
		 */
		gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
	}
	return c;
}

void
tls_server_session_end(struct tls_credentials *c)
{
	credentials_release(c);
}

int
tls_server_reload(struct tls_server *t, char *err, size_t errlen)
{
	struct tls_pem cert = {0}, key = {0};
	struct tls_credentials *fresh, *old;

	fresh = credentials_load(&cert, &key, err, errlen);
	if (fresh == NULL)
		return -1;
	pthread_mutex_lock(&t->lock);
	old = t->current;
	t->current = fresh;
	pthread_mutex_unlock(&t->lock);
	/* Freed only once the last connection that took them has closed. */
	credentials_release(old);
	tls_pem_free(&cert);
	tls_pem_free(&key);
	return 0;
}

void
tls_server_free(struct tls_server *t)
{
	if (t == NULL)
		return;
	credentials_release(t->current);
	tls_pem_free(&t->cert);
	tls_pem_free(&t->key);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
