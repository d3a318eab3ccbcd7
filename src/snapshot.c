#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "gw_arena.h"
#include "gw_plugin.h"
#include "snapshot.h"

unsigned gw_plugin_count(void)
{
    static unsigned n;
    if (!n)
        while (gw_plugins[n])
            n++;
    return n;
}

static unsigned plugin_index(const struct gw_plugin *p)
{
    for (unsigned i = 0; gw_plugins[i]; i++)
        if (gw_plugins[i] == p) return i;
    abort(); /* instances only ever point into the table */
}

/*
 * Kong's scoping precedence, most specific first:
 *   consumer+route+service, consumer+route, consumer+service, route+service,
 *   consumer, route, service, global.
 * Returns 0 when the instance does not apply at all, else 8 (most specific)
 * down to 1 (global).
 */
static int specificity(const struct gw_plugin_instance *pi, const struct gw_route *route,
                       const struct gw_service *service, const struct gw_consumer *consumer)
{
    if (pi->route && pi->route != route) return 0;
    if (pi->service && pi->service != service) return 0;
    if (pi->consumer && pi->consumer != consumer) return 0;
    int c = pi->consumer != NULL, r = pi->route != NULL, s = pi->service != NULL;
    if (c && r && s) return 8;
    if (c && r) return 7;
    if (c && s) return 6;
    if (r && s) return 5;
    if (c) return 4;
    if (r) return 3;
    if (s) return 2;
    return 1;
}

/* Kong reads a plugin's `protocols` as a choice of subsystem: one of the
 * HTTP family (http, https, grpc, grpcs, ws, wss) and the plugin runs for
 * every request the route lets in (plugins_iterator.lua,
 * should_process_plugin); only a stream-only list (tcp, tls, udp...) keeps
 * it off. Which scheme a request may use is the route's `protocols`. */
static int runs_for_http(const struct gw_plugin_instance *pi)
{
    static const char *const http_family[] = {"http", "https", "grpc", "grpcs", "ws", "wss"};
    if (!pi->protocols.n) return 1;
    for (size_t i = 0; i < pi->protocols.n; i++)
        for (size_t k = 0; k < sizeof(http_family) / sizeof(http_family[0]); k++)
            if (strcmp(pi->protocols.v[i], http_family[k]) == 0) return 1;
    return 0;
}

static int by_priority_cb(const void *a, const void *b)
{
    const struct gw_chain_entry *x = a, *y = b;
    int px = x->inst->plugin->priority, py = y->inst->plugin->priority;
    if (px != py) return px > py ? -1 : 1;
    return strcmp(x->inst->plugin->name, y->inst->plugin->name);
}

void gw_chain_resolve(const struct gw_config *cfg, const struct gw_route *route,
                      const struct gw_service *service, const struct gw_consumer *consumer,
                      struct gw_arena *arena, struct gw_chain *out)
{
    unsigned nplug = gw_plugin_count();
    /* best[i]: the winning instance of plugin type i so far. */
    const struct gw_plugin_instance *best_stack[64];
    int rank_stack[64];
    const struct gw_plugin_instance **best =
        nplug <= 64 ? best_stack : gw_calloc(arena, nplug * sizeof(*best));
    int *rank = nplug <= 64 ? rank_stack : gw_calloc(arena, nplug * sizeof(*rank));
    memset(best, 0, nplug * sizeof(*best));
    memset(rank, 0, nplug * sizeof(*rank));

    size_t n = 0;
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        const struct gw_plugin_instance *pi = cfg->plugins[i];
        if (!pi->enabled || !runs_for_http(pi)) continue;
        int sp = specificity(pi, route, service, consumer);
        if (!sp) continue;
        unsigned k = plugin_index(pi->plugin);
        if (sp > rank[k]) {
            if (!best[k]) n++;
            best[k] = pi;
            rank[k] = sp;
        }
    }
    out->n = 0;
    out->has_body_filter = 0;
    out->needs_body = 0;
    out->openai_errors = 0;
    out->v = n ? gw_alloc(arena, n * sizeof(*out->v)) : NULL;
    for (unsigned k = 0; k < nplug; k++) {
        if (!best[k]) continue;
        out->v[out->n].inst = best[k];
        out->v[out->n].plugin_index = k;
        out->n++;
        if (best[k]->plugin->response_body) out->has_body_filter = 1;
        if (best[k]->plugin->needs_body) out->needs_body = 1;
        if (best[k]->plugin->openai_errors) out->openai_errors = 1;
    }
    if (out->n > 1) qsort(out->v, out->n, sizeof(*out->v), by_priority_cb);
}

struct gw_snapshot *gw_snapshot_build(struct gw_config *cfg, uint64_t generation)
{
    struct gw_snapshot *s = gw_calloc(cfg->arena, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->cfg = cfg;
    s->generation = generation;
    s->loaded_at = time(NULL);
    s->router = gw_router_build(cfg, cfg->arena);
    s->route_chains = gw_calloc(cfg->arena, (cfg->n_routes + 1) * sizeof(*s->route_chains));
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct gw_route *rt = cfg->routes[i];
        gw_chain_resolve(cfg, rt, rt->service, NULL, cfg->arena, &s->route_chains[i]);
    }
    gw_chain_resolve(cfg, NULL, NULL, NULL, cfg->arena, &s->global_chain);
    s->service_urls = gw_calloc(cfg->arena, (cfg->n_services + 1) * sizeof(*s->service_urls));
    for (size_t i = 0; i < cfg->n_services; i++) {
        const struct gw_service *svc = cfg->services[i];
        CURLU *u = svc->origin ? curl_url() : NULL;
        if (!u) continue;
        char *zone = NULL;
        if (curl_url_set(u, CURLUPART_URL, svc->origin, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_ZONEID, &zone, 0) == CURLUE_OK) {
            /* libcurl before 8.3 loses an IPv6 zone id (fe80::1%25eth0) when it
             * copies a CURLU: such origins go to curl as strings. */
            curl_free(zone);
            curl_url_cleanup(u);
            continue;
        }
        gw_arena_cleanup(cfg->arena, (gw_cleanup_fn)curl_url_cleanup, u);
        s->service_urls[svc->index] = u;
    }
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (cfg->plugins[i]->consumer && cfg->plugins[i]->enabled) {
            s->has_consumer_plugins = 1;
            if (cfg->plugins[i]->plugin->needs_body) s->consumer_needs_body = 1;
        }
    return s;
}

void gw_snapshot_ref(struct gw_snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void gw_snapshot_unref(struct gw_snapshot *s)
{
    if (!s) return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        gw_config_free(s->cfg); /* the snapshot itself lives in the config's arena */
}
