/*
 * The plugin interface.
 *
 * A plugin is a const struct of function pointers registered in one table
 * (src/plugin_table.c). Its config block is read at load time by its schema
 * into a typed struct; hooks get that struct read-only, plus a per-request
 * context of ctx_size zeroed bytes in the request arena.
 *
 * Phases, in the order a request meets them (cf. nginx's phase engine):
 *
 *   access            before the upstream call; plugins run by descending
 *                     priority. Return GW_OK to go on, GW_DONE after
 *                     answering (gw_respond*), GW_AGAIN after starting
 *                     something asynchronous (then gw_request_resume), or
 *                     GW_ERROR (the core answers 500).
 *   response_headers  once the status and headers are known (upstream's, or
 *                     an early answer's); may change r->status,
 *                     r->response_headers and set r->buffer_response.
 *   response_body     for every chunk of the upstream body, streaming-safe:
 *                     transform `chunk` in place (drain it to hold data back).
 *                     last = 1 on the final call. Not run for early answers.
 *   log               always, once the exchange is over, whatever happened
 *                     (errors and client aborts too).
 *
 * worker_exit runs on each worker thread as it stops, after the drain: it
 * frees what the plugin keeps per worker (connections, timers) and must
 * resume every request it still holds suspended, which at that point the
 * core answers 503 instead of proxying.
 */
#ifndef GW_PLUGIN_H
#define GW_PLUGIN_H

#include "gw_request.h"
#include "gw_schema.h"

enum gw_rc { GW_ERROR = -1, GW_OK = 0, GW_DONE = 1, GW_AGAIN = 2 };

struct gw_plugin {
    const char *name;
    int priority; /* Kong's numbers: higher runs first */
    const struct gw_schema *schema;
    size_t ctx_size;
    /* Reads the request body (gw_request_body, gw_request_json): the core
     * then reads it whole before the access phase. Without it, the body
     * streams to the upstream while it arrives and is not there to read. */
    int needs_body;
    /* The route speaks OpenAI's API (ai-proxy): every error answered on it,
     * the gateway's own before any plugin ran included (a 413 for the body
     * size), uses OpenAI's error object so that SDKs can read it. */
    int openai_errors;

    int (*access)(struct gw_request *r, const void *conf, void *ctx);
    int (*response_headers)(struct gw_request *r, const void *conf, void *ctx);
    int (*response_body)(struct gw_request *r, const void *conf, void *ctx, struct evbuffer *chunk,
                         int last);
    void (*log)(struct gw_request *r, const void *conf, void *ctx);
    void (*worker_exit)(void);
};

/* Looks a plugin up by name in the table; NULL if unknown. */
const struct gw_plugin *gw_plugin_find(const char *name);
/* The table, NULL-terminated, for `sluice -h` and error messages. */
extern const struct gw_plugin *const gw_plugins[];

#endif
