/*
 * The core's view of a request: the public struct gw_request first (so a
 * plugin's pointer converts back), then what only the core touches.
 */
#ifndef GW_PROXY_H
#define GW_PROXY_H

#include <sys/queue.h>

#include <curl/curl.h>

#include "gw_request.h"
#include "snapshot.h"

struct event;
struct evbuffer;
struct gw_worker;
struct gw_conn;

struct proxy_request {
    struct gw_request pub;
    struct gw_worker *worker;
    struct gw_snapshot *snap;
    struct gw_conn *conn; /* NULL once the answer is handed over, or the client left */
    int local_port;       /* the port the client connected to */
    struct gw_headers req_headers, resp_headers;
    struct gw_chain chain;
    size_t access_next; /* index in chain of the next access hook */
    void **ctx;         /* per plugin type (gw_plugins[] index) */

    /* Shared JSON body */
    cJSON *json;
    int json_parsed, json_dirty;
    const char *json_err;

    /* Early answer */
    struct evbuffer *early_body;
    const char *early_content_type;

    /* Upstream transfer */
    CURL *easy;
    struct curl_slist *upstream_headers; /* nodes in the arena (proxy.c) */
    struct curl_slist **upstream_headers_tail;
    /* The upstream URL the core built (upstream_url()), its path and
     * query: while r->upstream_url is still this one, curl gets a CURLU. */
    const char *core_url;
    const char *core_path;
    struct event *timer;       /* read timeout; also wakes us when the client left */
    uint64_t last_progress_us; /* gw_progress_now_us(), for the stall timer */
    struct evbuffer *resp;     /* staging (streaming) or whole body (buffered) */
    int tries;
    unsigned headers_done : 1;  /* upstream's final header block is complete */
    unsigned reply_started : 1; /* status line sent to the client */
    unsigned paused : 1;        /* transfer paused: the client is slow */
    unsigned suspended : 1;     /* an access hook returned GW_AGAIN */
    unsigned shutting_down : 1; /* drain timed out while suspended: answer 503 on resume */
    unsigned client_gone : 1;
    unsigned finished : 1;
    unsigned in_multi : 1;
    unsigned upstream_connected : 1;
    unsigned send_once : 1;      /* not idempotent: curl must not send it again */
    unsigned resend_refused : 1; /* curl wanted to, connected_cb said no */
    unsigned upload_done : 1;    /* the request body has left: read_timeout applies */
    unsigned body_complete : 1;  /* the whole request body is in pub.body */
    unsigned waiting_body : 1;   /* a plugin needs the body: access waits for it */
    unsigned upload_paused : 1;  /* streamed body: curl waits for the client's bytes */
    unsigned first_event : 1;    /* filtered event stream, nothing sent yet (write_cb) */
    unsigned tls_blobs : 1;      /* the handle carries the service's CA / client certificate */
    curl_off_t uploaded;
    uint64_t body_sent;           /* streamed body bytes handed to curl */
    const char *server_addr;      /* gw_request_server_addr's answer, once asked */
    const char *forwarded_prefix; /* X-Forwarded-Prefix: the route's matched prefix, or NULL */
    const char *upstream_bad;     /* the upstream's reply cannot be framed for the client */
    const char *body_bad;         /* the body broke a rule (too large, bad chunking) */
    int body_bad_status;

    char *log_extra; /* " key=value" pairs from plugins */
    size_t log_extra_len, log_extra_cap;
};

static inline struct proxy_request *proxy_of(struct gw_request *r)
{
    return (struct proxy_request *)r;
}

/* The stall timer's clock: CLOCK_MONOTONIC_COARSE, a kernel tick's resolution
 * (1-4 ms) against timeouts in whole milliseconds, for a plain read instead
 * of the vDSO's TSC arithmetic. A request stamps progress on every socket
 * event, header line and body chunk, about ten times a proxied GET. Latency
 * figures (t_start, TTFT...) keep gw_now_us(). */
uint64_t gw_progress_now_us(void);

/* Runs the access hooks from rq->access_next on. */
void gw_proxy_continue(struct proxy_request *rq);
/* Sends the early answer prepared by gw_respond*. */
void gw_proxy_send_early(struct proxy_request *rq);
/* The core's own error answer (400, 413, 500, 502, 503, 504...), sent as
 * an early answer: the plugins' response_headers hooks and the log phase
 * run, the response_body hooks do not. */
void gw_proxy_core_error(struct proxy_request *rq, int status, const char *message);
/* Drain timeout: answer 503 (or cut a started stream) and end the request. */
void gw_proxy_shutdown_request(struct proxy_request *rq);
/* Ends the request: log phase, access log, release everything. */
void gw_proxy_finish(struct proxy_request *rq);

#endif
