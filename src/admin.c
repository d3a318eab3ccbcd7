/*
 * The admin listener, on the main thread: read-only views of the running
 * process. It binds to loopback by default.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>

#include "gw_log.h"
#include "server.h"
#include "sluice.h"

/* Read-only API: nothing it answers needs a body from the client, and the
 * main thread (signals, reloads) must not buffer one without bound. */
#define ADMIN_MAX_BODY 4096
#define ADMIN_MAX_HEADERS (16 * 1024)

static void reply_json(struct evhttp_request *req, int status, cJSON *obj)
{
    char *s = cJSON_Print(obj);
    cJSON_Delete(obj);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, s, strlen(s));
    evbuffer_add(b, "\n", 1);
    cJSON_free(s); /* cJSON's allocator (json_alloc.c), not necessarily malloc */
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json; charset=utf-8");
    /* A HEAD answer has no content (RFC 9110 9.3.2): libevent leaves out
     * Content-Length but would still send the buffer, which the client
     * would then read as the start of the next answer. */
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
        evbuffer_drain(b, evbuffer_get_length(b));
    evhttp_send_reply(req, status, NULL, b);
    evbuffer_free(b);
}

static void iso8601(char *buf, size_t n, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void status_cb(struct evhttp_request *req, struct gw_server *srv)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", SLUICE_VERSION);
    cJSON_AddNumberToObject(o, "uptime_seconds",
                            (double)((gw_now_us() - srv->started_us) / 1000000));
    cJSON_AddNumberToObject(o, "workers", srv->n_workers);
    /* A stop drains first: a probe sees it here while the answers leave. */
    cJSON_AddStringToObject(o, "state", srv->stopping ? "draining" : "running");
    cJSON *c = cJSON_AddObjectToObject(o, "config");
    char when[32];
    iso8601(when, sizeof(when), srv->snapshot->loaded_at);
    cJSON_AddStringToObject(c, "file", srv->snapshot->cfg->file);
    cJSON_AddStringToObject(c, "sha256", srv->snapshot->cfg->sha256);
    cJSON_AddStringToObject(c, "loaded_at", when);
    cJSON_AddNumberToObject(c, "generation", (double)srv->snapshot->generation);
    long conns = 0, in_flight = 0;
    unsigned long total = 0;
    for (unsigned i = 0; i < srv->n_workers; i++) {
        conns += atomic_load_explicit(&srv->workers[i].connections, memory_order_relaxed);
        in_flight += atomic_load_explicit(&srv->workers[i].in_flight, memory_order_relaxed);
        total += atomic_load_explicit(&srv->workers[i].requests_total, memory_order_relaxed);
    }
    cJSON_AddNumberToObject(o, "connections", (double)conns);
    cJSON_AddNumberToObject(o, "requests_in_flight", (double)in_flight);
    cJSON_AddNumberToObject(o, "requests", (double)total);
    if (srv->snapshot->tls_info) {
        /* The certificates served (and kong.yml's client certificates),
         * with the days left, so that a probe can alert before expiry. */
        cJSON *certs = cJSON_Duplicate(srv->snapshot->tls_info, 1);
        double now = (double)time(NULL);
        cJSON *it;
        cJSON_ArrayForEach(it, certs)
        {
            cJSON *na = cJSON_GetObjectItemCaseSensitive(it, "not_after_unix");
            if (cJSON_IsNumber(na))
                cJSON_AddNumberToObject(it, "expires_in_days",
                                        (double)(long)((na->valuedouble - now) / 86400));
        }
        cJSON_AddItemToObject(o, "certificates", certs);
    }
    reply_json(req, 200, o);
}

static void admin_cb(struct evhttp_request *req, void *arg)
{
    struct gw_server *srv = arg;
    const char *uri = evhttp_request_get_uri(req);
    size_t n = strcspn(uri, "?");
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "message", "Method not allowed");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_json(req, 405, o);
        return;
    }
    if (n == 7 && strncmp(uri, "/status", 7) == 0) {
        status_cb(req, srv);
    } else if (n == 7 && strncmp(uri, "/config", 7) == 0) {
        reply_json(req, 200, gw_config_to_json(srv->snapshot->cfg));
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "message", "Not found");
        reply_json(req, 404, o);
    }
}

/* libevent hands the error callback the evhttp, not ours: there is one
 * admin listener per process, on the main thread. */
static struct gw_server *admin_server;

static void admin_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gw_server *srv = arg;
    if (srv->admin_listener) evconnlistener_enable(srv->admin_listener);
}

/* libevent calls this for errors other than EAGAIN/EINTR/ECONNABORTED, with
 * the pending connection still queued: rest as a worker does. */
static void admin_accept_error_cb(struct evconnlistener *lev, void *arg)
{
    int err = errno;
    struct gw_server *srv = admin_server;
    (void)arg;
    evconnlistener_disable(lev);
    struct timeval tv = {0, GW_ACCEPT_PAUSE_MS * 1000};
    event_add(srv->admin_resume, &tv);
    uint64_t now = gw_now_us();
    if (now - srv->admin_accept_logged_us >= 1000000u) {
        gw_warn("admin accept: %s: not accepting for %d ms", strerror(err), GW_ACCEPT_PAUSE_MS);
        srv->admin_accept_logged_us = now;
    }
}

int gw_admin_start(struct gw_server *srv)
{
    if (srv->settings.admin_off) return 0;
    srv->admin = evhttp_new(srv->base);
    evhttp_set_gencb(srv->admin, admin_cb, srv);
    evhttp_set_timeout(srv->admin, 30);
    evhttp_set_max_body_size(srv->admin, ADMIN_MAX_BODY);
    evhttp_set_max_headers_size(srv->admin, ADMIN_MAX_HEADERS);
    /* Every method reaches admin_cb, which answers 405 with Allow in JSON
     * like everything else, instead of libevent's HTML 501. */
    evhttp_set_allowed_methods(srv->admin, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                               EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                               EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    int port = atoi(srv->settings.admin.port);
    errno = 0;
    struct evhttp_bound_socket *bound =
        evhttp_bind_socket_with_handle(srv->admin, srv->settings.admin.host, (ev_uint16_t)port);
    if (!bound) {
        /* errno is bind's or listen's (libevent keeps it), or 0 when the
         * address did not resolve. */
        int err = errno;
        char where[GW_LISTEN_TEXT_MAX];
        gw_error("cannot listen on admin address %s: %s",
                 gw_listen_text(&srv->settings.admin, where),
                 err ? strerror(err) : "the address does not resolve");
        return -1;
    }
    /* Without an error callback libevent logs a failed accept() and leaves
     * the listener armed: out of descriptors, that is a busy loop. */
    srv->admin_listener = evhttp_bound_socket_get_listener(bound);
    srv->admin_resume = evtimer_new(srv->base, admin_resume_cb, srv);
    if (!srv->admin_resume) return -1;
    admin_server = srv;
    evconnlistener_set_error_cb(srv->admin_listener, admin_accept_error_cb);
    return 0;
}

void gw_admin_stop(struct gw_server *srv)
{
    if (srv->admin_resume) event_free(srv->admin_resume);
    srv->admin_resume = NULL;
    if (srv->admin) evhttp_free(srv->admin);
    srv->admin = NULL;
    srv->admin_listener = NULL;
    admin_server = NULL;
}
