/* The CA and client certificate the caller uses towards the responder, and their reload. */
#include "upstream_tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "../common/tls.h"

/* What one reading of the settings gave. */
struct material {
	struct tls_pem ca, cert, key;
};

struct upstream_tls {
	pthread_mutex_t lock;   /* guards now */
	atomic_uint generation; /* 1 for the first reading, one more per reload */
	struct material now;
};

static void
material_free(struct material *m)
{
	tls_pem_free(&m->ca);
	tls_pem_free(&m->cert);
	tls_pem_free(&m->key);
}

/* Checks that the key belongs to the certificate before libcurl meets them mid-call. */
static int
key_pair_check(const struct material *m, char *err, size_t errlen)
{
	gnutls_certificate_credentials_t creds;
	gnutls_datum_t cd = tls_pem_datum(&m->cert), kd = tls_pem_datum(&m->key);
	int rc;

	if (gnutls_certificate_allocate_credentials(&creds) < 0) {
		snprintf(err, errlen, "out of memory checking CLIENT_KEY_FILE");
		return -1;
	}
	rc = gnutls_certificate_set_x509_key_mem2(creds, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_certificate_free_credentials(creds);
	if (rc < 0)
		snprintf(err, errlen,
		         "CLIENT_KEY_FILE cannot serve CLIENT_CERT_FILE's certificate: %s",
		         gnutls_strerror(rc));
	return rc < 0 ? -1 : 0;
}

/* Reads and checks the three settings; expiry figures are published only when all is usable. */
static int
material_read(struct material *m, char *err, size_t errlen)
{
	time_t ca_expiry = 0, cert_expiry = 0;

	memset(m, 0, sizeof(*m));
	if (tls_pem_read("RESPONDER_CA_FILE", &m->ca, err, errlen) < 0 ||
	    tls_pem_read("CLIENT_CERT_FILE", &m->cert, err, errlen) < 0 ||
	    tls_pem_read("CLIENT_KEY_FILE", &m->key, err, errlen) < 0)
		goto fail;
	if ((m->cert.text == NULL) != (m->key.text == NULL)) {
		snprintf(err, errlen,
		         "%s is not set: a client certificate needs CLIENT_CERT_FILE and "
		         "CLIENT_KEY_FILE",
		         m->cert.text == NULL ? "CLIENT_CERT_FILE" : "CLIENT_KEY_FILE");
		goto fail;
	}
	if ((m->ca.text != NULL && tls_pem_expiry(&m->ca, &ca_expiry, err, errlen) < 0) ||
	    (m->cert.text != NULL && (tls_pem_expiry(&m->cert, &cert_expiry, err, errlen) < 0 ||
	                              key_pair_check(m, err, errlen) < 0)))
		goto fail;
	if (m->ca.text != NULL)
		tls_expiry_publish("RESPONDER_CA_FILE", ca_expiry);
	if (m->cert.text != NULL)
		tls_expiry_publish("CLIENT_CERT_FILE", cert_expiry);
	return 0;
fail:
	material_free(m);
	return -1;
}

int
upstream_tls_load(struct upstream_tls **out, int https, char *err, size_t errlen)
{
	static const char *const settings[] = {"RESPONDER_CA_FILE", "CLIENT_CERT_FILE",
	                                       "CLIENT_KEY_FILE"};
	struct upstream_tls *t;
	size_t i;

	*out = NULL;
	for (i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		if (tls_pem_is_set(settings[i]))
			break;
	if (i == sizeof(settings) / sizeof(settings[0]))
		return 0;
	if (!https) {
		snprintf(err, errlen, "%s is set but RESPONDER_URL is not an https:// URL",
		         settings[i]);
		return -1;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		snprintf(err, errlen, "out of memory for TLS");
		return -1;
	}
	if (material_read(&t->now, err, errlen) < 0) {
		free(t);
		return -1;
	}
	pthread_mutex_init(&t->lock, NULL);
	atomic_init(&t->generation, 1);
	*out = t;
	return 0;
}

/* Hands libcurl one PEM text; libcurl keeps its own copy (CURL_BLOB_COPY). */
static CURLcode
blob_set(CURL *easy, CURLoption option, const struct tls_pem *pem)
{
	struct curl_blob blob = {pem->text, pem->len, CURL_BLOB_COPY};

	return curl_easy_setopt(easy, option, pem->text != NULL ? &blob : NULL);
}

CURLcode
upstream_tls_apply(struct upstream_tls *t, CURL *easy, unsigned int *seen)
{
	CURLcode rc = CURLE_OK;

	if (t == NULL || atomic_load(&t->generation) == *seen)
		return CURLE_OK;
	pthread_mutex_lock(&t->lock);
	/* Without RESPONDER_CA_FILE, libcurl's default: the system's CAs. */
	if (t->now.ca.text != NULL)
		rc = blob_set(easy, CURLOPT_CAINFO_BLOB, &t->now.ca);
	if (rc == CURLE_OK)
		rc = blob_set(easy, CURLOPT_SSLCERT_BLOB, &t->now.cert);
	if (rc == CURLE_OK)
		rc = blob_set(easy, CURLOPT_SSLKEY_BLOB, &t->now.key);
	if (rc == CURLE_OK)
		*seen = atomic_load(&t->generation);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int
upstream_tls_reload(void *arg, char *err, size_t errlen)
{
	struct upstream_tls *t = arg;
	struct material fresh, old;

	if (material_read(&fresh, err, errlen) < 0)
		return -1;
	pthread_mutex_lock(&t->lock);
	old = t->now;
	t->now = fresh;
	atomic_fetch_add(&t->generation, 1);
	pthread_mutex_unlock(&t->lock);
	material_free(&old);
	return 0;
}

void
upstream_tls_free(struct upstream_tls *t)
{
	if (t == NULL)
		return;
	material_free(&t->now);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
