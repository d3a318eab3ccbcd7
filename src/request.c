#define _GNU_SOURCE /* memmem */
/*
 * The request API plugins call (include/gw_request.h).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>

#include "client_conn.h"
#include "gw_arena.h"
#include "gw_json.h"
#include "gw_log.h"
#include "gw_plugin.h"
#include "llm/llm.h"
#include "proxy.h"
#include "router.h"
#include "worker.h"

uint64_t gw_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t gw_progress_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const char *gw_request_body(struct gw_request *r, size_t *len)
{
    if (!proxy_of(r)->body_complete) {
        /* A plugin without needs_body: the body is streaming past. */
        gw_error("request_id=%s a plugin read a body it did not ask for (needs_body)", r->id);
        if (len) *len = 0;
        return "";
    }
    size_t n = evbuffer_get_length(r->body);
    if (len) *len = n;
    if (n == 0) return "";
    /* One linearisation per request at most; later calls find it done. */
    return (const char *)evbuffer_pullup(r->body, -1);
}

/* cJSON ends strings at a \u0000 escape, so a plugin would check (and the
 * core re-serialise) a prefix of what the client sent: a prompt guard could
 * be bypassed. No LLM API needs NUL in text, so such bodies are refused. */
static int has_nul_escape(const char *s, size_t len)
{
    const char *end = s + len, *p = s;
    while ((p = memmem(p, (size_t)(end - p), "u0000", 5)) != NULL) {
        size_t backslashes = 0, at = (size_t)(p - s);
        while (backslashes < at && s[at - 1 - backslashes] == '\\')
            backslashes++;
        if (backslashes % 2 == 1) return 1;
        p += 5;
    }
    return 0;
}

cJSON *gw_request_json(struct gw_request *r, const char **err)
{
    struct proxy_request *rq = proxy_of(r);
    if (!rq->json_parsed) {
        rq->json_parsed = 1;
        size_t len;
        const char *body = gw_request_body(r, &len);
        if (len == 0) {
            rq->json_err = "request body is empty, expected a JSON object";
        } else {
            const char *why;
            size_t at;
            if (has_nul_escape(body, len)) {
                rq->json_err = "request body contains a \\u0000 escape, which is not supported";
            } else if (!(rq->json = gw_json_parse_strict(body, len, &why, &at))) {
                rq->json_err = at ? gw_sprintf(r->arena, "request body %s (near byte %zu)", why, at)
                                  : gw_sprintf(r->arena, "request body %s", why);
            }
        }
    }
    if (!rq->json && err) *err = rq->json_err;
    return rq->json;
}

cJSON *gw_request_prompt_json(struct gw_request *r, long max_size, int *rc)
{
    if (evbuffer_get_length(r->body) > (size_t)max_size) {
        *rc =
            gw_respond_openai_error(r, 400, "invalid_request_error",
                                    "request body is larger than the %ld bytes allowed", max_size);
        return NULL;
    }
    cJSON *body = gw_request_json(r, NULL);
    if (!body)
        *rc = gw_respond_openai_error(r, 400, "invalid_request_error",
                                      "this LLM route only supports application/json requests");
    return body;
}

void gw_request_json_changed(struct gw_request *r)
{
    proxy_of(r)->json_dirty = 1;
}

int gw_request_json_is_changed(const struct gw_request *r)
{
    return proxy_of((struct gw_request *)r)->json_dirty;
}

void gw_request_json_replace(struct gw_request *r, cJSON *json)
{
    struct proxy_request *rq = proxy_of(r);
    if (rq->json && rq->json != json) cJSON_Delete(rq->json);
    rq->json = json;
    rq->json_parsed = 1;
    rq->json_dirty = 1;
}

void gw_request_set_consumer(struct gw_request *r, const struct gw_consumer *c)
{
    r->consumer = c;
}

int gw_respond(struct gw_request *r, int status, const char *content_type, const char *body,
               size_t len)
{
    struct proxy_request *rq = proxy_of(r);
    r->status = status;
    rq->early_content_type = content_type ? gw_strdup(r->arena, content_type) : NULL;
    if (!rq->early_body) rq->early_body = gw_oom_check(evbuffer_new());
    evbuffer_drain(rq->early_body, evbuffer_get_length(rq->early_body));
    if (len) evbuffer_add(rq->early_body, body, len);
    return GW_DONE;
}

static int respond_json(struct gw_request *r, int status, cJSON *obj)
{
    size_t n;
    const char *s = gw_json_print(r->arena, obj, &n);
    cJSON_Delete(obj);
    return gw_respond(r, status, "application/json; charset=utf-8", s, n);
}

int gw_respond_message(struct gw_request *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = gw_vsprintf(r->arena, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddStringToObject(o, "request_id", r->id);
    return respond_json(r, status, o);
}

int gw_respond_openai_error(struct gw_request *r, int status, const char *type, const char *fmt,
                            ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = gw_vsprintf(r->arena, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type ? type : "invalid_request_error");
    cJSON_AddNullToObject(e, "param");
    cJSON_AddNullToObject(e, "code");
    return respond_json(r, status, o);
}

void gw_request_resume(struct gw_request *r, int rc)
{
    struct proxy_request *rq = proxy_of(r);
    /* A plugin that resumes twice, or without having returned GW_AGAIN: going
     * on would run the rest of the chain, or free the request, once more.
     * Debug builds stop on it (a plugin bug to fix); release builds, which
     * have no assert, warn and ignore it rather than corrupt the request. */
    assert(rq->suspended && "gw_request_resume on a request that is not suspended");
    if (!rq->suspended) {
        gw_warn("request_id=%s gw_request_resume on a request that is not suspended: ignored",
                r->id);
        return;
    }
    rq->suspended = 0;
    if (rq->client_gone) {
        gw_proxy_finish(rq);
        return;
    }
    if (rq->shutting_down) {
        /* The drain timed out while it waited: whatever the plugin made of
         * it (its outside call was cut short), the answer is ours. */
        gw_proxy_core_error(rq, 503, "The gateway is shutting down");
        return;
    }
    if (rc == GW_DONE) {
        gw_proxy_send_early(rq);
        return;
    }
    if (rc != GW_OK) {
        /* As when a plugin fails in access without suspending. */
        gw_error("request_id=%s a plugin failed after resuming", r->id);
        gw_proxy_core_error(rq, 500, "An unexpected error occurred");
        return;
    }
    gw_proxy_continue(rq);
}

/* Values with spaces, quotes or '=' are quoted so the line stays parseable. */
void gw_request_log_field(struct gw_request *r, const char *key, const char *fmt, ...)
{
    struct proxy_request *rq = proxy_of(r);
    va_list ap;
    va_start(ap, fmt);
    char *v = gw_vsprintf(r->arena, fmt, ap);
    va_end(ap);
    int quote = gw_log_needs_quotes(v);
    size_t need = strlen(key) + gw_log_escaped_len(v) + 5;
    if (rq->log_extra_len + need + 1 > rq->log_extra_cap) {
        size_t cap = (rq->log_extra_cap ? rq->log_extra_cap * 2 : 256) + need;
        char *p = realloc(rq->log_extra, cap);
        if (!p) return;
        rq->log_extra = p;
        rq->log_extra_cap = cap;
    }
    char *o = rq->log_extra + rq->log_extra_len;
    o += sprintf(o, " %s=", key);
    if (quote) {
        *o++ = '"';
        o = gw_log_escape(o, v);
        *o++ = '"';
    } else {
        size_t n = strlen(v);
        memcpy(o, v, n);
        o += n;
    }
    *o = '\0';
    rq->log_extra_len = (size_t)(o - rq->log_extra);
}

struct event_base *gw_request_event_base(struct gw_request *r)
{
    return proxy_of(r)->worker->base;
}

unsigned gw_request_worker_id(struct gw_request *r)
{
    return proxy_of(r)->worker->id;
}

const char *gw_request_server_addr(struct gw_request *r)
{
    struct proxy_request *rq = proxy_of(r);
    if (rq->server_addr) return rq->server_addr;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char buf[INET6_ADDRSTRLEN] = "";
    if (rq->conn && getsockname(rq->conn->fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, sizeof(buf));
        else if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, sizeof(buf));
    }
    rq->server_addr = gw_strdup(r->arena, buf);
    return rq->server_addr;
}

const char *gw_request_uri_capture(struct gw_request *r, const char *name)
{
    return r->route ? gw_route_capture(r->route, r->path, name, r->arena) : NULL;
}
