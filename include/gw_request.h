/*
 * A request as plugins see it. The core embeds this struct as the first
 * member of its own request struct (h2o's `super` idiom), so plugins get
 * direct field access without seeing the core's private state.
 *
 * Memory: everything hangs off r->arena and dies with the request.
 * Headers are gw_headers lists in the request arena (gw_headers.h):
 * gw_headers_get, gw_headers_add, gw_headers_set, gw_headers_remove.
 */
#ifndef GW_REQUEST_H
#define GW_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gw_entities.h"
#include "gw_headers.h"

struct gw_arena;
struct evbuffer;
struct event_base;

/* What ai-proxy learnt about an LLM call, read by logging, metrics and
 * rate-limiting plugins. All strings live in the request arena. */
struct gw_ai_stats {
    int present;                /* set by ai-proxy once it handled the request */
    const char *provider;       /* "anthropic" */
    const char *route_type;     /* "llm/v1/chat" */
    const char *request_model;  /* model asked of the provider */
    const char *response_model; /* model the provider says answered */
    int streaming;
    long prompt_tokens;
    long completion_tokens;
    long total_tokens;
    long cached_tokens; /* -1: not reported */
    double cost;        /* from input_cost / output_cost, per million tokens */
    double llm_latency_ms;
    double ttft_ms; /* time to first token (streaming), -1 otherwise */
    int log_statistics;
    int log_payloads;
    const char *request_payload;  /* with log_payloads */
    const char *response_payload; /* with log_payloads */
};

struct gw_request {
    struct gw_arena *arena;
    const char *id; /* 32 hex chars, also sent as X-Request-Id */

    /* Client side, as received. */
    const char *method; /* "GET" */
    const char *uri;    /* path and query, as sent */
    const char *path;   /* path without the query, not decoded */
    const char *query;  /* after '?', or NULL */
    const char *host;   /* Host header without port, lowercased, or "" */
    const char *client_ip;
    int client_port;
    int server_port;              /* the listener's port */
    uint64_t connection;          /* serial of the client connection (nginx's $connection) */
    unsigned connection_requests; /* this request's number on it, from 1 */
    int tls;                      /* arrived over TLS */
    const char *tls_sni;          /* over TLS: the server name asked for, lowercased ("" if none) */
    struct gw_headers *headers;   /* request headers: what plugins leave here goes upstream */
    /* Request body, decoded. Whole before the access phase when a plugin
     * of the route sets needs_body; otherwise it streams to the upstream
     * and is not there to read (gw_request_body then logs an error). */
    struct evbuffer *body;

    /* What the router and authentication resolved. */
    const struct gw_route *route;
    const struct gw_service *service;
    const struct gw_consumer *consumer; /* set by auth plugins via gw_request_set_consumer */

    /* The upstream request, prepared by the core before the access phase
     * from service + route; plugins may replace any of it (ai-proxy does). */
    const char *upstream_url;    /* absolute, with query */
    const char *upstream_method; /* NULL: same as client */
    /* Body to send upstream; NULL: the client's body (or the JSON body,
     * re-serialised once, if a plugin changed it). */
    const char *upstream_body;
    size_t upstream_body_len;
    long connect_timeout_ms, read_timeout_ms, write_timeout_ms;
    /* Set in access by a plugin that reads the reply (ai-proxy translates
     * it): the core sends no Accept-Encoding, and a reply that comes
     * compressed all the same (RFC 9110 12.5.3 allows it) is decoded
     * before the plugins see it. The upstream's Content-Encoding
     * and Content-Length then describe bytes the client never gets: the
     * plugin drops them. */
    int upstream_decoded;

    /* Response. status is the upstream's (or ours, for early answers);
     * plugins may change it and response_headers in the response_headers
     * phase, or in response_body when they asked for buffer_response. */
    int status;
    struct gw_headers *response_headers;
    /* Set in response_headers to get the whole body in one response_body
     * call (last = 1) before anything is sent to the client. */
    int buffer_response;

    /* Set by plugins of OpenAI-shaped routes (ai-proxy): the core's own
     * errors (502, 504...) then use OpenAI's error object too. */
    int openai_errors;

    /* State of the exchange, for log plugins. */
    int upstream_status; /* 0: never reached */
    int early_response;  /* answered by a plugin or the core, not proxied */
    int client_aborted;
    const char *error;   /* why the core answered 4xx/5xx itself, or NULL */
    uint64_t bytes_sent; /* response body bytes to the client */

    /* Monotonic microseconds. */
    uint64_t t_start, t_upstream_start, t_upstream_headers, t_upstream_first_byte, t_end;

    struct gw_ai_stats ai;
};

/* The request body parsed as JSON, parsed on first use and shared by every
 * plugin. NULL when the body is not valid JSON (*err then says why, in the
 * arena). The tree belongs to the request. */
cJSON *gw_request_json(struct gw_request *r, const char **err);
/* The JSON body of an OpenAI-shaped request for the prompt plugins, or
 * NULL after answering 400 (*rc = GW_DONE): a body over max_size bytes, or
 * one that is not JSON, with Kong's messages. */
cJSON *gw_request_prompt_json(struct gw_request *r, long max_size, int *rc);
/* A plugin that changed the tree says so; the core serialises it once. */
void gw_request_json_changed(struct gw_request *r);
/* Whether a plugin changed (or replaced) the tree. */
int gw_request_json_is_changed(const struct gw_request *r);
/* Replaces the tree (the old one is freed with the request). */
void gw_request_json_replace(struct gw_request *r, cJSON *json);

/* Whole request body as one contiguous buffer (linearised once). */
const char *gw_request_body(struct gw_request *r, size_t *len);

void gw_request_set_consumer(struct gw_request *r, const struct gw_consumer *c);

/* Early answers from the access phase; they return GW_DONE so a plugin can
 * `return gw_respond(...)`. body is copied. content_type NULL: JSON. */
int gw_respond(struct gw_request *r, int status, const char *content_type, const char *body,
               size_t len);
/* {"message": msg, "request_id": id}: the gateway's own errors. */
int gw_respond_message(struct gw_request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"error": {"message", "type", "param", "code"}}: errors on OpenAI-shaped routes. */
int gw_respond_openai_error(struct gw_request *r, int status, const char *type, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));

/* The local address the client connected to (nginx's $server_addr), read
 * from the socket when first asked (a syscall, so not for every request);
 * "" once the connection is gone. */
const char *gw_request_server_addr(struct gw_request *r);

/* A capture of the regex path that routed this request (Kong's
 * uri_captures: by group name, or by number), or NULL. */
const char *gw_request_uri_capture(struct gw_request *r, const char *name);

/* A suspended access phase (it returned GW_AGAIN) continues with GW_OK (next
 * plugin) or GW_DONE (it answered). A suspended request is never freed, even
 * when the client goes away, until it is resumed. */
void gw_request_resume(struct gw_request *r, int rc);

/* Adds " key=value" to the request's log line: quoted when the value is
 * empty or holds a space or "=", with quotes, backslashes and control bytes
 * escaped (gw_log_escape), so no value can forge a field or a line. */
void gw_request_log_field(struct gw_request *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct event_base *gw_request_event_base(struct gw_request *r);
unsigned gw_request_worker_id(struct gw_request *r);

/* Monotonic clock in microseconds. */
uint64_t gw_now_us(void);

#endif
