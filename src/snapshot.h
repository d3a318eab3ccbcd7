/*
 * A loaded configuration, ready to serve: the entities, the route index and
 * each route's plugin chain, all resolved at load. Immutable once built and
 * reference-counted: a request holds the snapshot it started with, a reload
 * builds a new one and the old one goes when its last request ends.
 */
#ifndef GW_SNAPSHOT_H
#define GW_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "router.h"

struct gw_chain_entry {
    const struct gw_plugin_instance *inst;
    unsigned plugin_index; /* position in gw_plugins[]: indexes per-request contexts */
};

/* The plugin instances that apply to a request, by descending priority. */
struct gw_chain {
    struct gw_chain_entry *v;
    size_t n;
    int has_body_filter;
    int needs_body;    /* some plugin reads the request body */
    int openai_errors; /* some plugin answers in OpenAI's error shape */
};

struct gw_snapshot {
    atomic_int refs;
    struct gw_config *cfg;
    struct gw_router *router;
    struct gw_chain *route_chains; /* by route->index, for requests without a consumer */
    struct gw_chain global_chain;  /* for requests no route matched */
    int has_consumer_plugins;
    /* A consumer-scoped instance reads the body: the chain may gain it once
     * the consumer is known, so such requests read their body whole. */
    int consumer_needs_body;
    time_t loaded_at;
    uint64_t generation;
    /* Each service's origin parsed once into a CURLU (by service->index,
     * NULL if curl refused it): a request's URL is a copy of it with the
     * path and query set, which spares libcurl parsing the whole URL again
     * on every transfer (~10k instructions of its ~87k per request). */
    void **service_urls;
    /* The TLS listeners' server context (an SSL_CTX, tls.h), NULL without
     * --ssl-cert. Loaded with the config so that SIGHUP renews both. */
    void *tls;
    /* What GET /status says of the certificates (a cJSON array, built at
     * load; NULL without TLS). */
    void *tls_info;
};

/* Takes ownership of cfg (freed with the snapshot). refs starts at 1. */
struct gw_snapshot *gw_snapshot_build(struct gw_config *cfg, uint64_t generation);
void gw_snapshot_ref(struct gw_snapshot *s);
void gw_snapshot_unref(struct gw_snapshot *s);

/* Kong's precedence: for each plugin the most specific enabled instance
 * among consumer/route/service scopes wins. Allocates in arena. */
void gw_chain_resolve(const struct gw_config *cfg, const struct gw_route *route,
                      const struct gw_service *service, const struct gw_consumer *consumer,
                      struct gw_arena *arena, struct gw_chain *out);

/* Number of plugin types in gw_plugins[] (size of per-request context arrays). */
unsigned gw_plugin_count(void);

#endif
