/*
 * Masks the passwords of URLs written in configured strings (see
 * url_userinfo.h): a copy only when there is one to mask.
 */
#include <stdlib.h>
#include <string.h>

#include "url_userinfo.h"

#define MASK "***"

/* An authority ends at '/', '?', '#' (RFC 3986 3.2) and cannot hold
 * whitespace: "a://b c:d@e" has no userinfo. */
#define AUTHORITY_END "/?# \t\r\n"

/* The offset and length in s of the first non-empty password of a URL:
 * from the first ':' of its userinfo to the last '@' of its authority (a
 * refused URL may hold a raw '@' in its password). 0 when there is none. */
static size_t password_span(const char *s, size_t *start)
{
    for (const char *sep = strstr(s, "://"); sep; sep = strstr(sep + 3, "://")) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, AUTHORITY_END);
        const char *at = NULL;
        for (const char *p = auth; p < auth + alen; p++)
            if (*p == '@') at = p;
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (!colon || colon + 1 == at) continue; /* no password, or an empty one */
        *start = (size_t)(colon + 1 - s);
        return (size_t)(at - colon - 1);
    }
    return 0;
}

/* s with its n bytes at start replaced by MASK: in the arena, or from
 * malloc when a is NULL. */
static char *splice_mask(struct gw_arena *a, const char *s, size_t start, size_t n)
{
    size_t len = strlen(s), out_len = len - n + sizeof(MASK) - 1;
    char *out = a ? gw_alloc(a, out_len + 1) : gw_oom_check(malloc(out_len + 1));
    memcpy(out, s, start);
    memcpy(out + start, MASK, sizeof(MASK) - 1);
    memcpy(out + start + sizeof(MASK) - 1, s + start + n, len - start - n + 1);
    return out;
}

const char *gw_url_masked(struct gw_arena *a, const char *url)
{
    const char *out = url;
    size_t from = 0, start, n;
    while ((n = password_span(out + from, &start)) > 0) {
        start += from;
        char *next = splice_mask(a, out, start, n);
        if (!a && out != url) free((char *)out);
        out = next;
        from = start + sizeof(MASK) - 1;
    }
    return out;
}

const char *gw_url_masked_refused(struct gw_arena *a, const char *url)
{
    /* A URL refused for its syntax may hold anything in its password, '#',
     * '?' and '/' included, which end an authority: mask from the first ':'
     * after the scheme to the last '@' of the whole string. */
    const char *sep = strstr(url, "://");
    const char *at = strrchr(url, '@');
    const char *colon = sep && at && at > sep ? memchr(sep + 3, ':', (size_t)(at - sep - 3)) : NULL;
    if (!colon || colon + 1 == at) return gw_url_masked(a, url);
    return splice_mask(a, url, (size_t)(colon + 1 - url), (size_t)(at - colon - 1));
}
