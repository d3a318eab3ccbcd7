/*
 * correlation-id (Kong priority 100001): gives every request an id in a
 * header, generated unless the client already sent one, forwarded upstream
 * and optionally echoed to the client.
 *
 * This plugin is the worked example of docs/plugin-api.md.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "sluice.h"

enum generator { GEN_UUID, GEN_UUID_COUNTER, GEN_TRACKER };

struct correlation_id_conf {
    const char *header_name;
    int generator; /* enum generator */
    int echo_downstream;
};

/* The id chosen in access, for the response phase. */
struct correlation_id_ctx {
    const char *id;
};

static const char *const generators[] = {"uuid", "uuid#counter", "tracker", NULL};

static const struct gw_field correlation_id_fields[] = {
    {GW_FIELD(struct correlation_id_conf, header_name, GW_F_STRING, 0, "Kong-Request-ID"), .min = 1,
     .max = 256},
    {GW_FIELD(struct correlation_id_conf, generator, GW_F_ENUM, 0, "uuid#counter"),
     .choices = generators},
    {GW_FIELD(struct correlation_id_conf, echo_downstream, GW_F_BOOL, 0, "false")},
    {0},
};

/* The name goes on the upstream request and the answer as it is: "x:y"
 * would become another header, "a b" an invalid line. */
static int correlation_id_validate(struct gw_conf *cf, const struct gw_node *n, void *obj)
{
    const struct correlation_id_conf *conf = obj;
    if (conf->header_name && !gw_header_name_valid(conf->header_name)) {
        gw_conf_error(
            cf, gw_node_get(n, "header_name"), "header_name",
            "must be a header name (an RFC 9110 token: no spaces, colons or line breaks)");
        return -1;
    }
    return 0;
}

static const struct gw_schema correlation_id_schema = {
    .name = "correlation-id",
    .size = sizeof(struct correlation_id_conf),
    .fields = correlation_id_fields,
    .validate = correlation_id_validate,
};

static void format_uuid(char out[37], const unsigned char b[16])
{
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

static void random_uuid(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1) {
        /* The CSPRNG failing is not a reason to fail a request: an id only
         * needs to be unique, which the clock and the counter give. */
        uint64_t t = gw_now_us();
        memcpy(b, &t, sizeof(t));
        memcpy(b + 8, &b, sizeof(void *));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    format_uuid(out, b);
}

/* uuid#counter: one random uuid per worker thread, then a counter, as Kong
 * does per nginx worker: cheap, and unique across workers and restarts. */
static _Thread_local char worker_uuid[37];
static _Thread_local uint64_t worker_counter;

static const char *generate(struct gw_request *r, int generator)
{
    char buf[37];
    switch (generator) {
    case GEN_UUID:
        random_uuid(buf);
        return gw_strdup(r->arena, buf);
    case GEN_UUID_COUNTER:
        if (!worker_uuid[0]) random_uuid(worker_uuid);
        return gw_sprintf(r->arena, "%s#%llu", worker_uuid, (unsigned long long)++worker_counter);
    default: {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        /* Kong's tracker: server address and port, worker pid (ours are
         * threads of one process), connection serial, the request's number
         * on that connection, time. */
        return gw_sprintf(r->arena, "%s-%d-%d-%llu-%u-%ld.%03ld", gw_request_server_addr(r),
                          r->server_port, (int)getpid(), (unsigned long long)r->connection,
                          r->connection_requests, (long)tv.tv_sec, (long)tv.tv_usec / 1000);
    }
    }
}

static int correlation_id_access(struct gw_request *r, const void *conf_, void *ctx_)
{
    const struct correlation_id_conf *conf = conf_;
    struct correlation_id_ctx *ctx = ctx_;
    const char *id = gw_headers_get(r->headers, conf->header_name);
    if (!id || !*id) {
        id = generate(r, conf->generator);
        gw_headers_set(r->headers, conf->header_name, id);
    }
    ctx->id = id;
    /* Kong puts it in the log (set_serialize_value("correlation_id")):
     * finding a request's log line by the id its upstream saw is the point. */
    gw_request_log_field(r, "correlation_id", "%s", id);
    return GW_OK;
}

static int correlation_id_response_headers(struct gw_request *r, const void *conf_, void *ctx_)
{
    const struct correlation_id_conf *conf = conf_;
    struct correlation_id_ctx *ctx = ctx_;
    /* ctx->id is NULL when an earlier plugin answered before our access ran. */
    if (conf->echo_downstream && ctx->id) {
        gw_headers_set(r->response_headers, conf->header_name, ctx->id);
    }
    return GW_OK;
}

const struct gw_plugin gw_plugin_correlation_id = {
    .name = "correlation-id",
    .priority = 100001,
    .schema = &correlation_id_schema,
    .ctx_size = sizeof(struct correlation_id_ctx),
    .access = correlation_id_access,
    .response_headers = correlation_id_response_headers,
};
