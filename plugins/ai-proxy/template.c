/*
 * Kong's request templates in model names and options: `$(headers.X)`,
 * `$(query_params.X)` and `$(uri_captures.X)` let one route serve the model
 * (or Azure deployment) the client names, within what the operator wrote
 * around it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "ai_proxy.h"

int ai_proxy_has_template(const char *s)
{
    return s && strstr(s, "$(") != NULL;
}

const char *ai_proxy_query_param(struct gw_request *r, const char *name)
{
    if (!r->query) return NULL;
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (evhttp_parse_query_str(r->query, &q) < 0) return NULL;
    const char *v = evhttp_find_header(&q, name);
    const char *copy = v ? gw_strdup(r->arena, v) : NULL;
    evhttp_clear_headers(&q);
    return copy;
}

/* A value bound for the upstream URL stays the one segment the operator
 * wrote it in: every byte but RFC 3986's unreserved is percent-encoded
 * (libevent's encoder, as auth.c's query parameter: so no '/', '?', '#' or
 * '%' of its own), and a dot segment, which curl and servers resolve, is
 * refused. */
const char *ai_proxy_url_value(struct gw_request *r, const char *v)
{
    if (!*v || strcmp(v, ".") == 0 || strcmp(v, "..") == 0) return NULL;
    char *enc = evhttp_encode_uri(v);
    const char *res = enc ? gw_strdup(r->arena, enc) : NULL;
    free(enc);
    return res;
}

/* Appends v where the template stood, or says why it cannot stand there.
 * An azure_instance is the first label of the provider's host name:
 * letters, digits and '-', nothing else. */
static const char *place_value(struct gw_request *r, struct evbuffer *out, const char *ref,
                               const char *v, enum ai_tpl_kind kind)
{
    if (kind == AI_TPL_LABEL) {
        size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
        if (n == 0 || v[n] != '\0' || n > 63)
            return gw_sprintf(r->arena, "%s must be a host name label (letters, digits, '-')", ref);
    } else if (kind == AI_TPL_URL) {
        v = ai_proxy_url_value(r, v);
        if (!v)
            return gw_sprintf(r->arena, "%s cannot be empty, '.' or '..' in the upstream URL", ref);
    }
    evbuffer_add(out, v, strlen(v));
    return NULL;
}

const char *ai_proxy_expand(struct gw_request *r, const char *s, enum ai_tpl_kind kind,
                            const char **err)
{
    if (!ai_proxy_has_template(s)) return s;
    struct evbuffer *out = evbuffer_new();
    const char *p = s;
    const char *result = NULL;
    for (;;) {
        const char *open = strstr(p, "$(");
        const char *close = open ? strchr(open, ')') : NULL;
        if (!open || !close) {
            evbuffer_add(out, p, strlen(p));
            break;
        }
        evbuffer_add(out, p, (size_t)(open - p));
        const char *ref = gw_strndup(r->arena, open + 2, (size_t)(close - open - 2));
        const char *v = NULL;
        if (strncmp(ref, "headers.", 8) == 0)
            v = gw_headers_get(r->headers, ref + 8);
        else if (strncmp(ref, "query_params.", 13) == 0)
            v = ai_proxy_query_param(r, ref + 13);
        else if (strncmp(ref, "uri_captures.", 13) == 0)
            v = gw_request_uri_capture(r, ref + 13);
        if (!v) {
            *err = gw_sprintf(r->arena, "%s is required by this route's configuration", ref);
            goto done;
        }
        if ((*err = place_value(r, out, ref, v, kind))) goto done;
        p = close + 1;
    }
    size_t n = evbuffer_get_length(out);
    char *res = gw_alloc(r->arena, n + 1);
    evbuffer_remove(out, res, n);
    res[n] = '\0';
    result = res;
done:
    evbuffer_free(out);
    return result;
}
