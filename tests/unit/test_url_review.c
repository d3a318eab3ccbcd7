/*
 * The per-worker cache of parsed plugin-set upstream URLs (src/upstream.c,
 * gw_upstream_parsed_url): a URL parses once and is handed back as the same
 * CURLU; at most 64 are kept and none is ever evicted (transfers in flight
 * point at them); a URL libcurl refuses takes no slot; everything is freed
 * by gw_upstream_cleanup (ASan's leak check).
 */
#include <stdio.h>

#include <curl/curl.h>

#include "gw_test.h"
#include "worker.h"

static char *url_of(void *u)
{
    char *s = NULL;
    curl_url_get(u, CURLUPART_URL, &s, 0);
    return s;
}

int main(void)
{
    struct gw_worker *w = calloc(1, sizeof(*w));
    char buf[128];

    void *first = gw_upstream_parsed_url(w, "https://api.example.com/v1/chat?key=%2F");
    CHECK(first != NULL);
    CHECK(gw_upstream_parsed_url(w, "https://api.example.com/v1/chat?key=%2F") == first);
    char *s = url_of(first);
    CHECK_STR(s, "https://api.example.com/v1/chat?key=%2F");
    curl_free(s);

    /* Refused by libcurl: NULL (the caller passes the string), no slot. */
    CHECK(gw_upstream_parsed_url(w, "api.example.com:443/v1") == NULL);
    CHECK(gw_upstream_parsed_url(w, "http://bad host/") == NULL);

    void *kept[64];
    kept[0] = first;
    for (int i = 1; i < 64; i++) {
        snprintf(buf, sizeof buf, "http://127.0.0.1:%d/t/%d", 1000 + i, i);
        kept[i] = gw_upstream_parsed_url(w, buf);
        CHECK(kept[i] != NULL);
    }
    /* Full: new URLs go as strings, the kept ones stay what they were. */
    CHECK(gw_upstream_parsed_url(w, "http://127.0.0.1:9/new") == NULL);
    CHECK(gw_upstream_parsed_url(w, "http://127.0.0.1:9/new") == NULL);
    CHECK(gw_upstream_parsed_url(w, "https://api.example.com/v1/chat?key=%2F") == first);
    for (int i = 1; i < 64; i++) {
        snprintf(buf, sizeof buf, "http://127.0.0.1:%d/t/%d", 1000 + i, i);
        CHECK(gw_upstream_parsed_url(w, buf) == kept[i]);
        s = url_of(kept[i]);
        CHECK_STR(s, buf);
        curl_free(s);
    }

    gw_upstream_cleanup(w);
    CHECK(w->url_cache == NULL);
    free(w);
    return gw_test_done("url_review");
}
