/*
 * kong.yml -> gw_config. The flow: YAML -> node tree, then top-level keys,
 * services (with nested routes), top-level routes, consumers, and last the
 * plugins, because a plugin may name any service, route or consumer of the
 * file wherever it is declared. Entity schemas live in config_entities.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "config.h"
#include "config_entities.h"
#include "name_index.h"
#include "config_certificates.h"
#include "gw_arena.h"
#include "gw_num_text.h"
#include "gw_plugin.h"
#include "url_userinfo.h"
#include "yaml_node.h"

/* A config file larger than this is refused (the biggest real ones are a
 * few tens of MB: 20 000 services take about 5 MB). */
#define GW_CONFIG_MAX_BYTES (256L * 1024 * 1024)
#define GW_CONFIG_MAX_TEXT "256 MiB"

void gw_errlist_add(struct gw_errlist *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *s = malloc((size_t)n + 1);
    if (!s) abort();
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        char **v = realloc(e->v, cap * sizeof(*v));
        if (!v) abort();
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = s;
}

void gw_errlist_free(struct gw_errlist *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
    e->v = NULL;
    e->n = e->cap = 0;
}

/* A growable array of pointers in the arena. */
struct vec {
    void **v;
    size_t n, cap;
};

static void vec_push(struct gw_arena *a, struct vec *vec, void *p)
{
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? vec->cap * 2 : 8;
        void **v = gw_alloc(a, cap * sizeof(*v));
        if (vec->n) memcpy(v, vec->v, vec->n * sizeof(*v));
        vec->v = v;
        vec->cap = cap;
    }
    vec->v[vec->n++] = p;
}

/* A plugin entry seen while reading its parent, read once every entity
 * it may refer to is known. */
struct pending_plugin {
    const struct gw_node *node;
    const char *path;
    struct gw_service *service;
    struct gw_route *route;
    struct gw_consumer *consumer;
};

struct loader {
    struct gw_arena *a;
    struct gw_conf *cf;
    struct gw_config *cfg;
    struct vec services, routes, consumers, plugins, pending; /* *_in, pending_plugin */
    struct gw_name_index service_names, route_names, consumer_names, consumer_ids;
    struct gw_name_index service_uuids, route_uuids, consumer_uuids; /* Kong's `id`s */
};

static const char *const top_level_keys[] = {"_format_version",
                                             "_comment",
                                             "_ignore",
                                             "_transform",
                                             "_workspace",
                                             "services",
                                             "routes",
                                             "consumers",
                                             "plugins",
                                             "certificates",
                                             "snis",
                                             "ca_certificates",
                                             NULL};

/* Kong entities a kong.yml may hold that sluice does not implement. */
static const char *const unsupported_keys[] = {"upstreams", "targets", "vaults",
                                               "key_sets",  "keys",    NULL};

static int in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

static const char *index_name(struct loader *L, const char *what, size_t i)
{
    return gw_sprintf(L->a, "%s[%zu]", what, i);
}

/* The list under `key` of parent, or NULL (with an error if it is not a list). */
static const struct gw_node *get_list(struct loader *L, const struct gw_node *parent,
                                      const char *key)
{
    const struct gw_node *n = gw_node_get(parent, key);
    if (!n || n->type == GW_NODE_NULL) return NULL;
    if (n->type != GW_NODE_SEQ) {
        gw_conf_error(L->cf, n, key, "expected a list");
        return NULL;
    }
    return n;
}

static void defer_plugins(struct loader *L, const struct gw_node *list, struct gw_service *svc,
                          struct gw_route *route, struct gw_consumer *consumer)
{
    if (!list) return;
    if (list->type != GW_NODE_SEQ) {
        gw_conf_error(L->cf, list, "plugins", "expected a list");
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        struct pending_plugin *pp = gw_calloc(L->a, sizeof(*pp));
        gw_conf_push(L->cf, index_name(L, "plugins", i));
        pp->path = gw_strdup(L->a, gw_conf_path(L->cf));
        gw_conf_pop(L->cf);
        pp->node = list->items[i];
        pp->service = svc;
        pp->route = route;
        pp->consumer = consumer;
        vec_push(L->a, &L->pending, pp);
    }
}

/* Kong refuses two entities of a kind with one id ("uniqueness
 * violation"): a reference by id must name one. */
static void add_id(struct loader *L, struct gw_name_index *ix, const char *id, void *val,
                   const struct gw_node *node, const char *kind)
{
    if (!id) return;
    if (gw_name_find(ix, id)) {
        gw_conf_error(L->cf, gw_node_get(node, "id"), "id", "duplicate %s id '%s'", kind, id);
        return;
    }
    gw_name_add(L->a, ix, id, val);
}

/* References are by name, or by id as `kong config db_export` writes
 * them (Kong looks up both). */
static struct service_in *find_service(struct loader *L, const char *name)
{
    struct service_in *s = gw_name_find(&L->service_names, name);
    return s ? s : gw_name_find(&L->service_uuids, name);
}

static struct route_in *find_route(struct loader *L, const char *name)
{
    struct route_in *r = gw_name_find(&L->route_names, name);
    return r ? r : gw_name_find(&L->route_uuids, name);
}

/* By username, else by custom_id, else by id. */
static struct consumer_in *find_consumer(struct loader *L, const char *name)
{
    struct consumer_in *c = gw_name_find(&L->consumer_names, name);
    if (!c) c = gw_name_find(&L->consumer_ids, name);
    return c ? c : gw_name_find(&L->consumer_uuids, name);
}

/* `service: NAME-OR-ID`, `service: {name: NAME}` or `service: {id: ID}`:
 * returns the name or id, or NULL after an error. */
static const char *ref_name(struct loader *L, const struct gw_node *ref, const char *field)
{
    const struct gw_node *n = ref;
    if (ref->type == GW_NODE_MAP) {
        for (size_t i = 0; i < ref->n; i++)
            if (strcmp(ref->pairs[i].key->value, "name") != 0 &&
                strcmp(ref->pairs[i].key->value, "id") != 0) {
                gw_conf_error(L->cf, ref->pairs[i].key,
                              gw_sprintf(L->a, "%s.%s", field, ref->pairs[i].key->value),
                              "unknown field (refer by name or id)");
                return NULL;
            }
        n = gw_node_get(ref, "name");
        if (!n) n = gw_node_get(ref, "id");
    }
    if (!n || n->type != GW_NODE_SCALAR) {
        gw_conf_error(L->cf, n ? n : ref, field,
                      "expected a name, an id, {name: NAME} or {id: ID}");
        return NULL;
    }
    return n->value;
}

static void read_route(struct loader *L, const struct gw_node *node, const char *name,
                       struct service_in *parent)
{
    struct route_in *ri = gw_calloc(L->a, sizeof(*ri));
    gw_conf_read(L->cf, &gw_route_schema, node, name, ri);
    ri->r.node = node;
    gw_conf_push(L->cf, name);
    if (ri->service_ref && parent) {
        gw_conf_error(L->cf, ri->service_ref, "service",
                      "not allowed in a route nested under a service");
    } else if (ri->service_ref) {
        const char *sname = ref_name(L, ri->service_ref, "service");
        struct service_in *s = sname ? find_service(L, sname) : NULL;
        if (sname && !s)
            gw_conf_error(L->cf, ri->service_ref, "service", "unknown service '%s'", sname);
        if (s) ri->r.service = &s->s;
    } else if (parent) {
        ri->r.service = &parent->s;
    }
    if (ri->r.name) {
        struct route_in *dup = gw_name_find(&L->route_names, ri->r.name);
        if (dup)
            gw_conf_error(L->cf, gw_node_get(node, "name"), "name",
                          "duplicate route name '%s' (first at line %d)", ri->r.name,
                          gw_node_get(dup->r.node, "name")->line);
    }
    defer_plugins(L, ri->plugins, NULL, &ri->r, NULL);
    add_id(L, &L->route_uuids, ri->id, ri, ri->r.node, "route");
    gw_conf_pop(L->cf);
    vec_push(L->a, &L->routes, ri);
    gw_name_add(L->a, &L->route_names, ri->r.name, ri);
}

static void read_services(struct loader *L, const struct gw_node *list)
{
    for (size_t i = 0; list && i < list->n; i++) {
        const struct gw_node *node = list->items[i];
        const char *name = index_name(L, "services", i);
        struct service_in *si = gw_calloc(L->a, sizeof(*si));
        gw_conf_read(L->cf, &gw_service_schema, node, name, si);
        si->s.node = node;
        gw_conf_push(L->cf, name);
        if (si->s.name) {
            /* By name only: another service's id may read the same
             * (references try names first, then ids). */
            struct service_in *dup = gw_name_find(&L->service_names, si->s.name);
            if (dup)
                gw_conf_error(L->cf, gw_node_get(node, "name"), "name",
                              "duplicate service name '%s' (first at line %d)", si->s.name,
                              gw_node_get(dup->s.node, "name")->line);
        }
        vec_push(L->a, &L->services, si);
        gw_name_add(L->a, &L->service_names, si->s.name, si);
        add_id(L, &L->service_uuids, si->id, si, si->s.node, "service");
        if (si->routes && si->routes->type != GW_NODE_SEQ)
            gw_conf_error(L->cf, si->routes, "routes", "expected a list");
        else
            for (size_t j = 0; si->routes && j < si->routes->n; j++)
                read_route(L, si->routes->items[j], index_name(L, "routes", j), si);
        defer_plugins(L, si->plugins, &si->s, NULL, NULL);
        gw_conf_pop(L->cf);
    }
}

/* Key-auth keys identify a consumer, so they must be unique in the file. */
static void check_keys(struct loader *L, struct consumer_in *ci, const struct gw_node *node)
{
    const struct gw_node *creds = gw_node_get(node, "keyauth_credentials");
    const struct gw_keyauth_credential *k = ci->c.keyauth_credentials.v;
    for (size_t j = 0; j < ci->c.keyauth_credentials.n; j++) {
        if (!k[j].key) continue;
        const struct gw_node *key_node = gw_node_get(creds->items[j], "key");
        for (size_t o = 0; o < L->consumers.n; o++) {
            const struct consumer_in *other = L->consumers.v[o];
            const struct gw_keyauth_credential *ok = other->c.keyauth_credentials.v;
            size_t limit = other == ci ? j : other->c.keyauth_credentials.n;
            for (size_t m = 0; m < limit; m++) {
                if (!ok[m].key || strcmp(ok[m].key, k[j].key) != 0) continue;
                /* Never print the key itself: it is a secret. */
                gw_conf_error(L->cf, key_node, gw_sprintf(L->a, "keyauth_credentials[%zu].key", j),
                              "duplicate key-auth key (also in consumers[%zu])", o);
                return;
            }
        }
    }
}

static void read_consumers(struct loader *L, const struct gw_node *list)
{
    for (size_t i = 0; list && i < list->n; i++) {
        const struct gw_node *node = list->items[i];
        const char *name = index_name(L, "consumers", i);
        struct consumer_in *ci = gw_calloc(L->a, sizeof(*ci));
        gw_conf_read(L->cf, &gw_consumer_schema, node, name, ci);
        ci->c.node = node;
        gw_conf_push(L->cf, name);
        const struct consumer_in *other = gw_name_find(&L->consumer_names, ci->c.username);
        if (other)
            gw_conf_error(L->cf, gw_node_get(node, "username"), "username",
                          "duplicate username '%s' (first at line %d)", ci->c.username,
                          gw_node_get(other->c.node, "username")->line);
        other = gw_name_find(&L->consumer_ids, ci->c.custom_id);
        if (other)
            gw_conf_error(L->cf, gw_node_get(node, "custom_id"), "custom_id",
                          "duplicate custom_id '%s' (first at line %d)", ci->c.custom_id,
                          gw_node_get(other->c.node, "custom_id")->line);
        vec_push(L->a, &L->consumers, ci);
        gw_name_add(L->a, &L->consumer_names, ci->c.username, ci);
        gw_name_add(L->a, &L->consumer_ids, ci->c.custom_id, ci);
        add_id(L, &L->consumer_uuids, ci->id, ci, ci->c.node, "consumer");
        check_keys(L, ci, node);
        defer_plugins(L, ci->plugins, NULL, NULL, &ci->c);
        gw_conf_pop(L->cf);
    }
}

/* A scope reference in a plugin entry. `nested` is set when the plugin's
 * place in the file already gives that scope. */
static void *resolve_scope(struct loader *L, const struct gw_node *ref, const char *field,
                           int nested)
{
    if (nested) {
        gw_conf_error(L->cf, ref, field, "not allowed in a plugin nested under a %s", field);
        return NULL;
    }
    const char *name = ref_name(L, ref, field);
    if (!name) return NULL;
    void *found = NULL;
    if (strcmp(field, "service") == 0) {
        struct service_in *s = find_service(L, name);
        found = s ? &s->s : NULL;
    } else if (strcmp(field, "route") == 0) {
        struct route_in *r = find_route(L, name);
        found = r ? &r->r : NULL;
    } else {
        struct consumer_in *c = find_consumer(L, name);
        found = c ? &c->c : NULL;
    }
    if (!found) gw_conf_error(L->cf, ref, field, "unknown %s '%s'", field, name);
    return found;
}

static void read_plugin(struct loader *L, const struct pending_plugin *pp)
{
    struct plugin_in *pi = gw_calloc(L->a, sizeof(*pi));
    const struct gw_node *node = pp->node;
    gw_conf_push(L->cf, pp->path);
    gw_conf_read(L->cf, &gw_plugin_instance_schema, node, NULL, pi);
    pi->path = pp->path;
    pi->p.node = node;
    pi->p.service = pp->service;
    pi->p.route = pp->route;
    pi->p.consumer = pp->consumer;
    if (pi->service_ref)
        pi->p.service = resolve_scope(L, pi->service_ref, "service", pp->service != NULL);
    if (pi->route_ref) pi->p.route = resolve_scope(L, pi->route_ref, "route", pp->route != NULL);
    if (pi->consumer_ref)
        pi->p.consumer = resolve_scope(L, pi->consumer_ref, "consumer", pp->consumer != NULL);

    if (pi->name) {
        pi->p.plugin = gw_plugin_find(pi->name);
        if (!pi->p.plugin)
            gw_conf_error(L->cf, gw_node_get(node, "name"), "name", "unknown plugin '%s'",
                          pi->name);
    }
    const struct gw_plugin *plugin = pi->p.plugin;
    if (plugin && node->type == GW_NODE_MAP) {
        /* No `config:` reads as an empty map: every default applies. */
        const struct gw_node *cnode = pi->config;
        if (!cnode) cnode = gw_node_new(L->a, GW_NODE_MAP, node);
        if (plugin->schema) {
            pi->p.conf = gw_calloc(L->a, plugin->schema->size ? plugin->schema->size : 1);
            gw_conf_set_plugin(L->cf, &pi->p);
            gw_conf_read(L->cf, plugin->schema, cnode, "config", pi->p.conf);
            gw_conf_set_plugin(L->cf, NULL);
        } else if (cnode->type != GW_NODE_MAP || cnode->n) {
            gw_conf_error(L->cf, cnode, "config", "plugin '%s' takes no configuration",
                          plugin->name);
        }
    }
    gw_conf_pop(L->cf);
    vec_push(L->a, &L->plugins, pi);
}

/* One instance of a plugin per service/route/consumer scope, as in Kong. A
 * hash of the four pointers, not a pass over every earlier plugin: with
 * aliases a small file can hold a million plugin entries. */
static void check_duplicate_plugins(struct loader *L)
{
    size_t cap = 16;
    while (cap < L->plugins.n * 2)
        cap *= 2;
    struct plugin_in **seen = gw_oom_check(calloc(cap, sizeof(*seen)));
    for (size_t i = 0; i < L->plugins.n; i++) {
        struct plugin_in *a = L->plugins.v[i];
        if (!a->p.plugin) continue;
        const void *key[4] = {a->p.plugin, a->p.service, a->p.route, a->p.consumer};
        size_t h = (size_t)gw_hash_bytes((const char *)key, sizeof(key)) & (cap - 1);
        for (; seen[h]; h = (h + 1) & (cap - 1)) {
            struct plugin_in *b = seen[h];
            if (a->p.plugin == b->p.plugin && a->p.service == b->p.service &&
                a->p.route == b->p.route && a->p.consumer == b->p.consumer)
                break;
        }
        if (!seen[h]) {
            seen[h] = a;
            continue;
        }
        struct plugin_in *b = seen[h];
        gw_conf_push(L->cf, a->path);
        gw_conf_error(L->cf, a->p.node, NULL,
                      "plugin '%s' is already configured for the same "
                      "service/route/consumer at %s (line %d)",
                      a->p.plugin->name, b->path, b->p.node->line);
        gw_conf_pop(L->cf);
    }
    free(seen);
}

static void read_top_level(struct loader *L, const struct gw_node *root)
{
    struct gw_conf *cf = L->cf;
    for (size_t i = 0; i < root->n; i++) {
        const struct gw_node *k = root->pairs[i].key;
        if (in_list(top_level_keys, k->value)) continue;
        if (in_list(unsupported_keys, k->value))
            gw_conf_error(cf, k, k->value, "not supported by sluice");
        else
            gw_conf_error(cf, k, k->value, "unknown field");
    }
    const struct gw_node *fv = gw_node_get(root, "_format_version");
    if (!fv || fv->type == GW_NODE_NULL) {
        gw_conf_error(cf, root, "_format_version", "required field missing");
    } else if (fv->type == GW_NODE_SCALAR &&
               (strcmp(fv->value, "3.0") == 0 || strcmp(fv->value, "2.1") == 0 ||
                strcmp(fv->value, "1.1") == 0)) {
        L->cfg->format_version = fv->value;
        gw_conf_set_legacy_paths(cf, strcmp(fv->value, "3.0") != 0);
    } else {
        gw_conf_error(cf, fv, "_format_version", "expected one of 3.0, 2.1, 1.1");
    }
    const struct gw_node *n = gw_node_get(root, "_transform");
    if (n && n->type != GW_NODE_NULL && gw_node_plain_type(n, NULL, NULL, NULL) != 1)
        gw_conf_error(cf, n, "_transform", "expected a boolean");
    static const char *const string_keys[] = {"_comment", "_workspace", NULL};
    for (size_t i = 0; string_keys[i]; i++) {
        n = gw_node_get(root, string_keys[i]);
        if (n && (n->type == GW_NODE_MAP || n->type == GW_NODE_SEQ))
            gw_conf_error(cf, n, string_keys[i], "expected a string");
    }
}

/* File order for routes and plugins, whether nested or top-level. */
static int by_position_cmp(const void *pa, const void *pb)
{
    const struct gw_node *a = *(const struct gw_node *const *)pa;
    const struct gw_node *b = *(const struct gw_node *const *)pb;
    if (a->line != b->line) return a->line < b->line ? -1 : 1;
    if (a->col != b->col) return a->col < b->col ? -1 : 1;
    return 0;
}

/* Sorts entity pointers by the position of their node (the node pointer is
 * the entity's first sort key, found at node_off). Equal positions (aliases)
 * keep insertion order. */
static void sort_by_position(struct gw_arena *a, void **v, size_t n, size_t node_off)
{
    struct item {
        const struct gw_node *node;
        size_t seq;
        void *p;
    };
    struct item *items = gw_alloc(a, (n ? n : 1) * sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        items[i].node = *(const struct gw_node **)((char *)v[i] + node_off);
        items[i].seq = i;
        items[i].p = v[i];
    }
    /* Insertion sort: the lists are short and mostly sorted already. */
    for (size_t i = 1; i < n; i++) {
        struct item x = items[i];
        size_t j = i;
        while (j > 0 && by_position_cmp(&items[j - 1].node, &x.node) > 0) {
            items[j] = items[j - 1];
            j--;
        }
        items[j] = x;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = items[i].p;
}

static void fill_config(struct loader *L)
{
    struct gw_config *cfg = L->cfg;
    cfg->n_services = L->services.n;
    cfg->services = gw_alloc(L->a, (cfg->n_services ? cfg->n_services : 1) * sizeof(void *));
    for (size_t i = 0; i < cfg->n_services; i++) {
        cfg->services[i] = &((struct service_in *)L->services.v[i])->s;
        cfg->services[i]->index = i;
    }
    sort_by_position(L->a, L->routes.v, L->routes.n, offsetof(struct route_in, r.node));
    cfg->n_routes = L->routes.n;
    cfg->routes = gw_alloc(L->a, (cfg->n_routes ? cfg->n_routes : 1) * sizeof(void *));
    for (size_t i = 0; i < cfg->n_routes; i++) {
        cfg->routes[i] = &((struct route_in *)L->routes.v[i])->r;
        cfg->routes[i]->index = i;
    }
    cfg->n_consumers = L->consumers.n;
    cfg->consumers = gw_alloc(L->a, (cfg->n_consumers ? cfg->n_consumers : 1) * sizeof(void *));
    for (size_t i = 0; i < cfg->n_consumers; i++) {
        cfg->consumers[i] = &((struct consumer_in *)L->consumers.v[i])->c;
        cfg->consumers[i]->index = i;
    }
    sort_by_position(L->a, L->plugins.v, L->plugins.n, offsetof(struct plugin_in, p.node));
    cfg->n_plugins = L->plugins.n;
    cfg->plugins = gw_alloc(L->a, (cfg->n_plugins ? cfg->n_plugins : 1) * sizeof(void *));
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        cfg->plugins[i] = &((struct plugin_in *)L->plugins.v[i])->p;
        cfg->plugins[i]->index = i;
    }
    size_t n;
    const struct gw_node *const *secrets = gw_conf_secrets(L->cf, &n);
    cfg->secrets = n ? gw_memdup(L->a, secrets, n * sizeof(*secrets)) : NULL;
    cfg->n_secrets = n;
}

static void load_tree(struct loader *L, const struct gw_node *root)
{
    if (root->type == GW_NODE_NULL) {
        gw_conf_error(L->cf, root, NULL, "the config is empty");
        return;
    }
    if (root->type != GW_NODE_MAP) {
        gw_conf_error(L->cf, root, NULL, "expected a map at the top level");
        return;
    }
    read_top_level(L, root);
    read_services(L, get_list(L, root, "services"));
    const struct gw_node *routes = get_list(L, root, "routes");
    for (size_t i = 0; routes && i < routes->n; i++)
        read_route(L, routes->items[i], index_name(L, "routes", i), NULL);
    read_consumers(L, get_list(L, root, "consumers"));
    gw_config_read_certificates(L->cf, root, L->cfg, (struct service_in **)L->services.v,
                                L->services.n);
    const struct gw_node *plugins = get_list(L, root, "plugins");
    for (size_t i = 0; i < L->pending.n; i++)
        read_plugin(L, L->pending.v[i]);
    for (size_t i = 0; plugins && i < plugins->n; i++) {
        struct pending_plugin pp = {.node = plugins->items[i], .path = index_name(L, "plugins", i)};
        read_plugin(L, &pp);
    }
    check_duplicate_plugins(L);
}

/* Where a "FILE:LINE:COL: ..." message points; messages without a position
 * sort last. */
static void err_position(const char *msg, size_t name_len, long *line, long *col)
{
    *line = *col = 0x7fffffff;
    const char *p = msg + name_len;
    if (*p != ':') return;
    char *end;
    long l = strtol(p + 1, &end, 10);
    if (*end != ':') return;
    long c = strtol(end + 1, &end, 10);
    if (*end != ':') return;
    *line = l;
    *col = c;
}

/* Errors are found entity by entity; a person reads them top to bottom. */
static void sort_errors(struct gw_errlist *errs, size_t from, const char *name)
{
    size_t name_len = strlen(name);
    for (size_t i = from + 1; i < errs->n; i++) {
        char *x = errs->v[i];
        long xl, xc;
        err_position(x, name_len, &xl, &xc);
        size_t j = i;
        while (j > from) {
            long l, c;
            err_position(errs->v[j - 1], name_len, &l, &c);
            if (l < xl || (l == xl && c <= xc)) break;
            errs->v[j] = errs->v[j - 1];
            j--;
        }
        errs->v[j] = x;
    }
}

static void sha256_hex(const char *text, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out[0] = '\0';
    if (!EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL)) return;
    for (unsigned i = 0; i < mdlen && i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

struct gw_config *gw_config_load_string(const char *name, const char *text, size_t len,
                                        struct gw_errlist *errs)
{
    struct gw_arena *a = gw_arena_new(64 * 1024);
    struct gw_config *cfg = gw_calloc(a, sizeof(*cfg));
    cfg->arena = a;
    cfg->file = gw_strdup(a, name);
    sha256_hex(text, len, cfg->sha256);
    size_t errs_before = errs->n;
    struct gw_node *root = gw_yaml_load(a, cfg->file, text, len, errs);
    if (!root) goto fail;
    cfg->root = root;
    struct loader L = {.a = a, .cfg = cfg, .cf = gw_conf_new(a, errs)};
    load_tree(&L, root);
    if (gw_conf_errors(L.cf) || errs->n > errs_before) goto fail;
    fill_config(&L);
    return cfg;
fail:
    if (errs->n == errs_before) gw_errlist_add(errs, "%s: invalid config", name);
    sort_errors(errs, errs_before, name);
    gw_arena_free(a);
    return NULL;
}

struct gw_config *gw_config_load_file(const char *path, int regular_only, struct gw_errlist *errs)
{
    /* Not blocking on open: a FIFO with no writer would hold a reload (and
     * with it the admin listener and the signals) forever. A reload reads a
     * regular file only; `-t` and a start also take a pipe (`-c <(...)`,
     * `-c /dev/stdin`), read to its end. Either way at most 256 MiB: a
     * device such as /dev/zero never ends. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        gw_errlist_add(errs, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) < 0)
        why = strerror(errno);
    else if (S_ISDIR(st.st_mode))
        why = "is a directory, not a file";
    else if (!S_ISREG(st.st_mode) && regular_only)
        why = "not a regular file (a FIFO, a device?): a reload reads regular files only";
    else if (st.st_size > GW_CONFIG_MAX_BYTES)
        why = "larger than " GW_CONFIG_MAX_TEXT ": refused";
    if (why) {
        gw_errlist_add(errs, "%s: %s", path, why);
        close(fd);
        return NULL;
    }
    /* A pipe is read blocking, as any reader of a pipe; one with no
     * writer reads as empty at once. */
    if (!S_ISREG(st.st_mode)) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    /* The size may change under us (a file being written): read to the
     * end, within the bound. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 64 * 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf) abort();
    for (;;) {
        if (len == cap) {
            if (cap > GW_CONFIG_MAX_BYTES) { /* read one byte past the bound */
                gw_errlist_add(errs, "%s: larger than " GW_CONFIG_MAX_TEXT ": refused", path);
                free(buf);
                close(fd);
                return NULL;
            }
            cap = cap * 2 > GW_CONFIG_MAX_BYTES ? GW_CONFIG_MAX_BYTES + 1 : cap * 2;
            char *nb = realloc(buf, cap);
            if (!nb) abort();
            buf = nb;
        }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            gw_errlist_add(errs, "%s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return NULL;
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    close(fd);
    struct gw_config *cfg = gw_config_load_string(path, buf, len, errs);
    free(buf);
    return cfg;
}

void gw_config_free(struct gw_config *cfg)
{
    if (cfg) gw_arena_free(cfg->arena);
}

static int is_secret(const struct gw_config *cfg, const struct gw_node *n)
{
    for (size_t i = 0; i < cfg->n_secrets; i++)
        if (cfg->secrets[i] == n) return 1;
    return 0;
}

/* Aliases make the tree a DAG that can fan out exponentially: the budget
 * bounds the output whatever the input. */
static cJSON *node_to_json(const struct gw_config *cfg, const struct gw_node *n, long *budget)
{
    if (--*budget < 0) return cJSON_CreateString("<truncated>");
    if (is_secret(cfg, n)) return cJSON_CreateString("<redacted>");
    switch (n->type) {
    case GW_NODE_NULL:
        return cJSON_CreateNull();
    case GW_NODE_SCALAR: {
        int b;
        long l;
        double d;
        switch (gw_node_plain_type(n, &b, &l, &d)) {
        case 1:
            return cJSON_CreateBool(b);
        case 2:
        case 3:
            return cJSON_CreateNumber(d);
        default: {
            /* Any URL's userinfo password (ai-proxy's upstream_url may hold
             * one: curl sends it as Basic auth) is shown masked. */
            const char *shown = gw_url_masked(NULL, n->value);
            cJSON *str = cJSON_CreateString(shown);
            if (shown != n->value) free((char *)shown);
            return str;
        }
        }
    }
    case GW_NODE_SEQ: {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < n->n; i++)
            cJSON_AddItemToArray(arr, node_to_json(cfg, n->items[i], budget));
        return arr;
    }
    case GW_NODE_MAP: {
        cJSON *obj = cJSON_CreateObject();
        for (size_t i = 0; i < n->n; i++)
            cJSON_AddItemToObject(obj, n->pairs[i].key->value,
                                  node_to_json(cfg, n->pairs[i].value, budget));
        return obj;
    }
    }
    return cJSON_CreateNull();
}

cJSON *gw_config_to_json(const struct gw_config *cfg)
{
    long budget = 1000000;
    return node_to_json(cfg, cfg->root, &budget);
}
