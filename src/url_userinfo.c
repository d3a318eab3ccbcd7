#include <stdlib.h>
#include <string.h>

#include "url_userinfo.h"

#define MASK "***"

/* An authority ends at '/', '?', '#' (RFC 3986 3.2) and cannot hold
 * whitespace: "a://b c:d@e" has no userinfo. */
#define AUTHORITY_END "/?# \t\r\n"

size_t gw_url_password_span(const char *url, size_t *start)
{
    for (const char *sep = strstr(url, "://"); sep; sep = strstr(sep + 3, "://")) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, AUTHORITY_END);
        const char *at = memchr(auth, '@', alen);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (!colon || colon + 1 == at) continue; /* no password, or an empty one */
        *start = (size_t)(colon + 1 - url);
        return (size_t)(at - colon - 1);
    }
    return 0;
}

const char *gw_url_masked(struct gw_arena *a, const char *url)
{
    /* Every URL's password in the string, one after the other. */
    const char *out = url;
    size_t from = 0, start, n;
    while ((n = gw_url_password_span(out + from, &start)) > 0) {
        start += from;
        size_t len = strlen(out), out_len = len - n + sizeof(MASK) - 1;
        char *next = a ? gw_alloc(a, out_len + 1) : malloc(out_len + 1);
        if (!next) return out; /* no copy: shown as it is rather than not at all */
        memcpy(next, out, start);
        memcpy(next + start, MASK, sizeof(MASK) - 1);
        memcpy(next + start + sizeof(MASK) - 1, out + start + n, len - start - n + 1);
        if (!a && out != url) free((char *)out);
        out = next;
        from = start + sizeof(MASK) - 1;
    }
    return out;
}
