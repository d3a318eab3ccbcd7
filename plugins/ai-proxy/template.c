/*
 * Kong's request templates in model names and options: `$(headers.X)` and
 * `$(query_params.X)` let one route serve the model (or Azure deployment)
 * the client names, within what the operator wrote around it.
 */
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

const char *ai_proxy_expand(struct gw_request *r, const char *s, const char **missing)
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
        if (!v) {
            *missing = ref;
            goto done;
        }
        evbuffer_add(out, v, strlen(v));
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
