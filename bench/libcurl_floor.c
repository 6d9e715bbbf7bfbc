/*
 * The resident memory floor of any program built on Debian's libcurl: links
 * libcurl, initializes it and makes one multi and one easy handle (what the
 * caller does before it serves), says "ready", then waits for bench.py to read
 * its VmRSS and end it with SIGTERM. Nothing of the daemons is in it.
 *
 * Built a second time with -DWITHOUT_LIBCURL and linked with the libraries the
 * caller has besides libcurl (libmicrohttpd, jansson, GnuTLS, all loaded at
 * start): the floor a caller would have if it did not load libcurl, which is
 * what separates the caller's idle RSS from the 8 MiB target.
 */
#ifndef WITHOUT_LIBCURL
#include <curl/curl.h>
#endif
#include <stdio.h>
#include <unistd.h>

int
main(void)
{
#ifndef WITHOUT_LIBCURL
	CURLM *multi;
	CURL *easy;

	/* CURL_GLOBAL_NOTHING still initializes the TLS backend (libcurl >= 7.57). */
	if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK)
		return 1;
	multi = curl_multi_init();
	easy = curl_easy_init();
	if (multi == NULL || easy == NULL)
		return 1;
#endif
	puts("ready");
	fflush(stdout);
	pause();
	return 0;
}
