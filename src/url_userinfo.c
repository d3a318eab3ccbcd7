#include <stdlib.h>
#include <string.h>

#include "url_userinfo.h"

#define MASK "***"

size_t gw_url_password_span(const char *url, size_t *start)
{
    const char *sep = strstr(url, "://");
    if (!sep) return 0;
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    if (!at) return 0;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon) return 0;
    *start = (size_t)(colon + 1 - url);
    return (size_t)(at - colon - 1);
}

const char *gw_url_masked(struct gw_arena *a, const char *url)
{
    size_t start = 0, n = gw_url_password_span(url, &start);
    if (n == 0) return url;
    size_t len = strlen(url), out_len = len - n + sizeof(MASK) - 1;
    char *out = a ? gw_alloc(a, out_len + 1) : malloc(out_len + 1);
    if (!out) return url; /* no copy: shown as it is rather than not at all */
    memcpy(out, url, start);
    memcpy(out + start, MASK, sizeof(MASK) - 1);
    memcpy(out + start + sizeof(MASK) - 1, url + start + n, len - start - n + 1);
    return out;
}
