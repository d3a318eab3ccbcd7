/*
 * Kong's certificates and snis entities in kong.yml: the certificates the
 * TLS listeners serve by server name (tls.c builds them into contexts).
 *
 * As decK writes them, snis nest under their certificate as maps with a
 * name (Kong's Admin API shorthand, a plain list of names, is taken too),
 * or stand at the top level with `certificate:` naming the certificate's
 * id. A name belongs to one certificate in the whole file.
 *
 * ca_certificates are the CAs a service's upstream is verified against:
 * a service names them by id in its ca_certificates, and may name a
 * certificate as its client_certificate (mutual TLS to the upstream).
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_certificates.h"
#include "config_entities.h"
#include "gw_arena.h"
#include "name_index.h"

/* A name as read, with the field path its errors name. */
struct sni_entry {
    struct gw_sni s;
    const char *path;
};

struct reader {
    struct gw_conf *cf;
    struct gw_arena *a;
    struct certificate_in **certs;
    size_t n_certs;
    /* Kong's primary keys: unique, and what references name. */
    struct gw_name_index cert_ids, ca_ids;
    struct sni_entry *snis;
    size_t n_snis, cap_snis;
};

/* node: the name's node; sub: its field under the current path (NULL for
 * a name written as a plain list item). */
static void add_sni(struct reader *R, const struct gw_node *node, const char *sub, const char *name,
                    const struct gw_certificate *cert)
{
    const char *why;
    const char *s = gw_server_name_read(R->a, name, &why);
    if (why) {
        gw_conf_error(R->cf, node, sub, "%s", why);
        return;
    }
    if (R->n_snis == R->cap_snis) {
        size_t cap = R->cap_snis ? R->cap_snis * 2 : 16;
        struct sni_entry *v = gw_alloc(R->a, cap * sizeof(*v));
        if (R->n_snis) memcpy(v, R->snis, R->n_snis * sizeof(*v));
        R->snis = v;
        R->cap_snis = cap;
    }
    const char *here = gw_conf_path(R->cf);
    R->snis[R->n_snis++] = (struct sni_entry){
        .s = {.name = s, .certificate = cert, .node = node},
        .path = sub ? gw_sprintf(R->a, "%s.%s", here, sub) : gw_strdup(R->a, here),
    };
}

/* A certificate's nested snis: [{name: a.example}, ...] or [a.example, ...]. */
static void read_nested_snis(struct reader *R, struct certificate_in *ci)
{
    const struct gw_node *list = ci->snis;
    if (!list || list->type == GW_NODE_NULL) return;
    if (list->type != GW_NODE_SEQ) {
        gw_conf_error(R->cf, list, "snis", "expected a list");
        return;
    }
    for (size_t i = 0; i < list->n; i++) {
        const struct gw_node *item = list->items[i];
        const char *path = gw_sprintf(R->a, "snis[%zu]", i);
        if (item->type == GW_NODE_SCALAR) {
            gw_conf_push(R->cf, path);
            add_sni(R, item, NULL, item->value, &ci->c);
            gw_conf_pop(R->cf);
            continue;
        }
        if (item->type != GW_NODE_MAP) {
            gw_conf_error(R->cf, item, path, "expected a server name or a map with a name");
            continue;
        }
        struct sni_in si = {0};
        if (gw_conf_read(R->cf, &gw_sni_schema, item, path, &si) < 0 || !si.name) continue;
        gw_conf_push(R->cf, path);
        add_sni(R, gw_node_get(item, "name"), "name", si.name, &ci->c);
        gw_conf_pop(R->cf);
    }
}

static int sni_by_name_cb(const void *a, const void *b)
{
    const struct gw_sni *x = &((const struct sni_entry *)a)->s,
                        *y = &((const struct sni_entry *)b)->s;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->node->line != y->node->line ? (x->node->line < y->node->line ? -1 : 1)
                                          : (x->node->col < y->node->col ? -1 : 1);
}

/* An entity's id, unique among its kind (Kong's primary key): added to
 * ix, or an error at the later one. */
static void add_id(struct reader *R, struct gw_name_index *ix, const char *id, void *val,
                   const struct gw_node *node, const char *path, const char *kind)
{
    if (!id) return;
    if (gw_name_find(ix, id)) {
        gw_conf_push(R->cf, path);
        gw_conf_error(R->cf, gw_node_get(node, "id"), "id", "duplicate %s id '%s'", kind, id);
        gw_conf_pop(R->cf);
        return;
    }
    gw_name_add(R->a, ix, id, val);
}

/* The certificate a reference names by id (a string, or {id: ...}), or
 * NULL after an error at `field`. */
static const struct gw_certificate *certificate_ref(struct reader *R, const struct gw_node *ref,
                                                    const char *field)
{
    const struct gw_node *id = ref && ref->type == GW_NODE_MAP ? gw_node_get(ref, "id") : ref;
    if (!id || id->type != GW_NODE_SCALAR) {
        gw_conf_error(R->cf, ref, field,
                      "expected the id of a certificate (a string, or {id: ...})");
        return NULL;
    }
    struct certificate_in *hit = gw_name_find(&R->cert_ids, id->value);
    if (!hit) gw_conf_error(R->cf, id, field, "unknown certificate '%s'", id->value);
    return hit ? &hit->c : NULL;
}

/* Top-level snis: `certificate:` is the id of a certificate in the file,
 * as a string or as {id: ...}. */
static void read_top_level_snis(struct reader *R, const struct gw_node *list)
{
    for (size_t i = 0; i < list->n; i++) {
        const char *path = gw_sprintf(R->a, "snis[%zu]", i);
        struct sni_in si = {0};
        if (gw_conf_read(R->cf, &gw_top_level_sni_schema, list->items[i], path, &si) < 0 ||
            !si.name || !si.certificate_ref)
            continue;
        gw_conf_push(R->cf, path);
        const struct gw_certificate *c = certificate_ref(R, si.certificate_ref, "certificate");
        if (c) add_sni(R, gw_node_get(list->items[i], "name"), "name", si.name, c);
        gw_conf_pop(R->cf);
    }
}

static void read_ca_certificates(struct reader *R, const struct gw_node *root,
                                 struct gw_config *cfg)
{
    const struct gw_node *list = gw_node_get(root, "ca_certificates");
    if (list && list->type != GW_NODE_NULL && list->type != GW_NODE_SEQ)
        gw_conf_error(R->cf, list, "ca_certificates", "expected a list");
    size_t n = list && list->type == GW_NODE_SEQ ? list->n : 0;
    cfg->ca_certificates = gw_calloc(R->a, (n ? n : 1) * sizeof(void *));
    for (size_t i = 0; i < n; i++) {
        struct gw_ca_certificate *c = gw_calloc(R->a, sizeof(*c));
        const char *path = gw_sprintf(R->a, "ca_certificates[%zu]", i);
        gw_conf_read(R->cf, &gw_ca_certificate_schema, list->items[i], path, c);
        c->node = list->items[i];
        c->index = i;
        cfg->ca_certificates[i] = c;
        add_id(R, &R->ca_ids, c->id, c, c->node, path, "ca_certificate");
    }
    cfg->n_ca_certificates = n;
}

/* Each service's ca_certificates (ids) into one PEM bundle, and its
 * client_certificate (an id) into the certificate. Kong names both by id
 * only: ca_certificates and certificates have no names. */
static void resolve_services(struct reader *R, struct service_in **services, size_t n_services)
{
    for (size_t i = 0; i < n_services; i++) {
        struct service_in *si = services[i];
        gw_conf_push(R->cf, gw_sprintf(R->a, "services[%zu]", i));
        /* Kong's services.lua: both must be null unless the protocol is
         * https; configured on an http:// service they would be ignored
         * while the traffic goes out in clear. */
        int https = si->s.protocol && strcmp(si->s.protocol, "https") == 0;
        const struct gw_node *ccn = si->client_certificate;
        int has_cc = ccn && ccn->type != GW_NODE_NULL;
        if (!https && (si->ca_certificate_ids.n || has_cc)) {
            static const char why[] = "value must be null: only an https service verifies its "
                                      "upstream against CAs or presents a client certificate";
            if (si->ca_certificate_ids.n)
                gw_conf_error(R->cf, gw_node_get(si->s.node, "ca_certificates"), "ca_certificates",
                              why);
            if (has_cc) gw_conf_error(R->cf, ccn, "client_certificate", why);
            gw_conf_pop(R->cf);
            continue;
        }
        const struct gw_node *list = gw_node_get(si->s.node, "ca_certificates");
        size_t total = 0;
        const struct gw_ca_certificate **picked =
            gw_calloc(R->a, (si->ca_certificate_ids.n + 1) * sizeof(*picked));
        for (size_t k = 0; k < si->ca_certificate_ids.n; k++) {
            const char *id = si->ca_certificate_ids.v[k];
            struct gw_ca_certificate *hit = gw_name_find(&R->ca_ids, id);
            const struct gw_node *at = list && list->type == GW_NODE_SEQ ? list->items[k] : list;
            if (!hit) {
                gw_conf_error(R->cf, at, gw_sprintf(R->a, "ca_certificates[%zu]", k),
                              "unknown ca_certificate '%s'", id ? id : "");
                continue;
            }
            if (!hit->cert) continue; /* its own error says why */
            picked[k] = hit;
            total += strlen(hit->cert) + 1;
        }
        if (total) {
            char *pem = gw_alloc(R->a, total + 1), *p = pem;
            for (size_t k = 0; k < si->ca_certificate_ids.n; k++) {
                if (!picked[k]) continue;
                size_t len = strlen(picked[k]->cert);
                memcpy(p, picked[k]->cert, len);
                p += len;
                *p++ = '\n'; /* a PEM that does not end its last line */
            }
            *p = '\0';
            si->s.ca_bundle = pem;
            si->s.ca_bundle_len = (size_t)(p - pem);
        }
        if (has_cc) si->s.client_certificate = certificate_ref(R, ccn, "client_certificate");
        gw_conf_pop(R->cf);
    }
}

void gw_config_read_certificates(struct gw_conf *cf, const struct gw_node *root,
                                 struct gw_config *cfg, struct service_in **services,
                                 size_t n_services)
{
    struct reader R = {.cf = cf, .a = gw_conf_arena(cf)};
    const struct gw_node *list = gw_node_get(root, "certificates");
    if (list && list->type != GW_NODE_NULL && list->type != GW_NODE_SEQ) {
        gw_conf_error(cf, list, "certificates", "expected a list");
        list = NULL;
    }
    size_t n = list && list->type == GW_NODE_SEQ ? list->n : 0;
    R.certs = gw_calloc(R.a, (n ? n : 1) * sizeof(*R.certs));
    for (size_t i = 0; i < n; i++) {
        const char *path = gw_sprintf(R.a, "certificates[%zu]", i);
        struct certificate_in *ci = gw_calloc(R.a, sizeof(*ci));
        gw_conf_read(cf, &gw_certificate_schema, list->items[i], path, ci);
        ci->c.node = list->items[i];
        ci->c.index = R.n_certs;
        R.certs[R.n_certs++] = ci;
        add_id(&R, &R.cert_ids, ci->id, ci, ci->c.node, path, "certificate");
        gw_conf_push(cf, path);
        read_nested_snis(&R, ci);
        gw_conf_pop(cf);
    }

    read_ca_certificates(&R, root, cfg);
    resolve_services(&R, services, n_services);

    const struct gw_node *top = gw_node_get(root, "snis");
    if (top && top->type != GW_NODE_NULL && top->type != GW_NODE_SEQ)
        gw_conf_error(cf, top, "snis", "expected a list");
    else if (top && top->type == GW_NODE_SEQ)
        read_top_level_snis(&R, top);

    /* One certificate per name (Kong: snis.name is unique). */
    if (R.n_snis) qsort(R.snis, R.n_snis, sizeof(*R.snis), sni_by_name_cb);
    struct gw_sni *snis = gw_alloc(R.a, (R.n_snis ? R.n_snis : 1) * sizeof(*snis));
    size_t kept = 0;
    for (size_t i = 0; i < R.n_snis; i++) {
        const struct sni_entry *e = &R.snis[i];
        if (kept && strcmp(snis[kept - 1].name, e->s.name) == 0) {
            /* At the top level the current path is empty: sub is the whole path. */
            gw_conf_error(cf, e->s.node, e->path, "duplicate SNI name '%s' (first at line %d)",
                          e->s.name, snis[kept - 1].node->line);
            continue;
        }
        snis[kept++] = e->s;
    }

    cfg->n_certificates = R.n_certs;
    cfg->certificates = gw_alloc(R.a, (R.n_certs ? R.n_certs : 1) * sizeof(void *));
    for (size_t i = 0; i < R.n_certs; i++)
        cfg->certificates[i] = &R.certs[i]->c;
    cfg->snis = snis;
    cfg->n_snis = kept;
}
