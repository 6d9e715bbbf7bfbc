/*
 * The resident memory floor of any program built on Debian's libcurl: links
 * libcurl, initializes it and makes one multi and one easy handle (what the
 * caller does before it serves), says "ready", then waits for bench.py to read
 * its VmRSS and end it with SIGTERM. Nothing of the daemons is in it.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <unistd.h>

int
main(void)
{
	CURLM *multi;
	CURL *easy;

	if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK)
		return 1;
	multi = curl_multi_init();
	easy = curl_easy_init();
	if (multi == NULL || easy == NULL)
		return 1;
	puts("ready");
	fflush(stdout);
	pause();
	return 0;
}
