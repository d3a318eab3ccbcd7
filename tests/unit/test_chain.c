/*
 * Plugin chains: Kong's scoping precedence (the most specific instance of a
 * plugin wins) and ordering by priority, on configs loaded by the real loader.
 */
#include <string.h>

#include "config.h"
#include "gw_arena.h"
#include "gw_plugin.h"
#include "gw_test.h"
#include "snapshot.h"

static struct gw_config *load(const char *yaml)
{
    struct gw_errlist errs = {0};
    struct gw_config *cfg = gw_config_load_string("test.yml", yaml, strlen(yaml), &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.v[i]);
    gw_errlist_free(&errs);
    return cfg;
}

static const struct gw_route *route_named(const struct gw_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i]->name && strcmp(cfg->routes[i]->name, name) == 0) return cfg->routes[i];
    return NULL;
}

/* The header_name the applying correlation-id instance was configured with
 * (its config struct starts with that string). */
static const char *correlation_header(const struct gw_chain *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].inst->plugin->name, "correlation-id") == 0)
            return *(const char *const *)c->v[i].inst->conf;
    return NULL;
}

static const char *scoping_yaml = "_format_version: \"3.0\"\n"
                                  "services:\n"
                                  "- name: s1\n"
                                  "  url: http://127.0.0.1:1\n"
                                  "  plugins:\n"
                                  "  - name: correlation-id\n"
                                  "    config: {header_name: from-service}\n"
                                  "  routes:\n"
                                  "  - name: r-route-scope\n"
                                  "    paths: [/a]\n"
                                  "    plugins:\n"
                                  "    - name: correlation-id\n"
                                  "      config: {header_name: from-route}\n"
                                  "  - name: r-service-scope\n"
                                  "    paths: [/b]\n"
                                  "  - name: r-disabled\n"
                                  "    paths: [/c]\n"
                                  "    plugins:\n"
                                  "    - name: correlation-id\n"
                                  "      enabled: false\n"
                                  "      config: {header_name: disabled}\n"
                                  "  - name: r-https-plugin\n"
                                  "    paths: [/e]\n"
                                  "    plugins:\n"
                                  "    - name: correlation-id\n"
                                  "      protocols: [https]\n"
                                  "      config: {header_name: https-only}\n"
                                  "  - name: r-stream-plugin\n"
                                  "    paths: [/f]\n"
                                  "    plugins:\n"
                                  "    - name: correlation-id\n"
                                  "      protocols: [tcp, tls]\n"
                                  "      config: {header_name: stream-only}\n"
                                  "- name: s2\n"
                                  "  url: http://127.0.0.1:2\n"
                                  "  routes:\n"
                                  "  - name: r-global-scope\n"
                                  "    paths: [/d]\n"
                                  "consumers:\n"
                                  "- username: alice\n"
                                  "  plugins:\n"
                                  "  - name: correlation-id\n"
                                  "    config: {header_name: from-consumer}\n"
                                  "plugins:\n"
                                  "- name: correlation-id\n"
                                  "  config: {header_name: from-global}\n"
                                  "- name: correlation-id\n"
                                  "  route: r-route-scope\n"
                                  "  consumer: alice\n"
                                  "  config: {header_name: from-consumer-route}\n";

static void test_scoping(void)
{
    struct gw_config *cfg = load(scoping_yaml);
    CHECK(cfg != NULL);
    if (!cfg) return;
    struct gw_arena *a = gw_arena_new(0);
    struct gw_chain c;
    const struct gw_route *ra = route_named(cfg, "r-route-scope");
    const struct gw_route *rb = route_named(cfg, "r-service-scope");
    const struct gw_route *rc = route_named(cfg, "r-disabled");
    const struct gw_route *rd = route_named(cfg, "r-global-scope");
    const struct gw_route *re = route_named(cfg, "r-https-plugin");
    const struct gw_route *rf = route_named(cfg, "r-stream-plugin");
    const struct gw_consumer *alice = cfg->consumers[0];

    gw_chain_resolve(cfg, ra, ra->service, NULL, a, &c);
    CHECK_STR(correlation_header(&c), "from-route");
    CHECK_INT(c.n, 1); /* one instance per plugin, never several */
    gw_chain_resolve(cfg, rb, rb->service, NULL, a, &c);
    CHECK_STR(correlation_header(&c), "from-service");
    /* A disabled route instance falls back to the next most specific one. */
    gw_chain_resolve(cfg, rc, rc->service, NULL, a, &c);
    CHECK_STR(correlation_header(&c), "from-service");
    /* protocols picks the subsystem, as in Kong: an instance for https
     * runs for every request its route lets in; a stream-only one never. */
    gw_chain_resolve(cfg, re, re->service, NULL, a, &c);
    CHECK_STR(correlation_header(&c), "https-only");
    gw_chain_resolve(cfg, rf, rf->service, NULL, a, &c);
    CHECK_STR(correlation_header(&c), "from-service");
    gw_chain_resolve(cfg, rd, rd->service, NULL, a, &c);
    CHECK_STR(correlation_header(&c), "from-global");
    /* consumer+route beats route; consumer alone beats service and global. */
    gw_chain_resolve(cfg, ra, ra->service, alice, a, &c);
    CHECK_STR(correlation_header(&c), "from-consumer-route");
    gw_chain_resolve(cfg, rb, rb->service, alice, a, &c);
    CHECK_STR(correlation_header(&c), "from-consumer");
    gw_chain_resolve(cfg, NULL, NULL, NULL, a, &c);
    CHECK_STR(correlation_header(&c), "from-global");

    /* The snapshot precomputes the same per route. */
    struct gw_snapshot *snap = gw_snapshot_build(cfg, 1);
    CHECK_STR(correlation_header(&snap->route_chains[ra->index]), "from-route");
    CHECK_STR(correlation_header(&snap->global_chain), "from-global");
    CHECK(snap->has_consumer_plugins);
    gw_arena_free(a);
    gw_snapshot_unref(snap);
}

static const char *ordering_yaml =
    "_format_version: \"3.0\"\n"
    "services:\n"
    "- name: s1\n"
    "  url: http://127.0.0.1:1\n"
    "  routes:\n"
    "  - name: r\n"
    "    paths: [/]\n"
    "    plugins:\n"
    "    - name: ai-prompt-guard\n"
    "      config: {deny_patterns: [x]}\n"
    "    - name: ai-prompt-template\n"
    "      config: {templates: [{name: t, template: '{\"messages\":[]}'}]}\n"
    "    - name: ai-prompt-decorator\n"
    "      config: {prompts: {prepend: [{role: system, content: hi}]}}\n"
    "plugins:\n"
    "- name: correlation-id\n";

static void test_ordering(void)
{
    struct gw_config *cfg = load(ordering_yaml);
    CHECK(cfg != NULL);
    if (!cfg) return;
    struct gw_snapshot *snap = gw_snapshot_build(cfg, 1);
    const struct gw_chain *c = &snap->route_chains[0];
    static const char *const expected[] = {"correlation-id", "ai-prompt-template",
                                           "ai-prompt-decorator", "ai-prompt-guard"};
    CHECK_INT(c->n, 4);
    for (size_t i = 0; i < c->n && i < 4; i++)
        CHECK_STR(c->v[i].inst->plugin->name, expected[i]);
    for (size_t i = 1; i < c->n; i++)
        CHECK(c->v[i - 1].inst->plugin->priority > c->v[i].inst->plugin->priority);
    gw_snapshot_unref(snap);
}

static void test_bad_protocols(void)
{
    const char *yaml = "_format_version: \"3.0\"\n"
                       "plugins:\n"
                       "- name: correlation-id\n"
                       "  protocols: [http, ftp]\n";
    struct gw_errlist errs = {0};
    struct gw_config *cfg = gw_config_load_string("p.yml", yaml, strlen(yaml), &errs);
    CHECK(cfg == NULL);
    CHECK_INT(errs.n, 1);
    if (errs.n)
        CHECK_STR(errs.v[0],
                  "p.yml:4:21: plugins[0].protocols[1]: expected one of http, https, grpc, "
                  "grpcs, tcp, tls, tls_passthrough, udp, ws, wss");
    gw_errlist_free(&errs);
    gw_config_free(cfg);
}

int main(void)
{
    test_bad_protocols();
    test_scoping();
    test_ordering();
    return gw_test_done("test_chain");
}
