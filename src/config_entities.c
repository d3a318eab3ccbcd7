/*
 * Schemas of services, routes, consumers and plugin entries, with the
 * validate hooks that derive what the data plane reads (origin, compiled
 * regex paths, parsed wildcard hosts) so that requests never parse config.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pcre2.h>

#include "config_entities.h"
#include "gw_arena.h"
#include "gw_log.h"
#include "url_userinfo.h"
#include "gw_num_text.h"
#include "path_dots.h"
#include "tls.h"
#include "yaml_node.h"

/* Like GW_FIELD, for members of the public struct inside a wrapper. */
#define EF(st, fname, member, ftype, flags_, def_)                                                 \
    .name = (fname), .type = (ftype), .offset = offsetof(st, member), .flags = (flags_),           \
    .def = (def_)

static const char *const http_methods[] = {"GET",    "HEAD",    "POST",  "PUT",     "PATCH",
                                           "DELETE", "OPTIONS", "TRACE", "CONNECT", NULL};

/* Fields kept as nodes for the loader (nested lists, references). */
static int keep_node_parse(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    *(const struct gw_node **)dst = n;
    return 0;
}

/* Kong's `id`: accepted (decK writes it) and otherwise unused. */
static int id_parse(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    if (n->type != GW_NODE_SCALAR) {
        gw_conf_error(cf, n, NULL, "expected a string");
        return -1;
    }
    *(const char **)dst = n->value;
    return 0;
}

/* Kong's created_at / updated_at (db_export writes them): integers,
 * checked, not stored. */
static int timestamp_parse(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    long l;
    if (gw_node_plain_type(n, NULL, &l, NULL) != 2 || l < 0) {
        gw_conf_error(cf, n, NULL, "expected a timestamp (seconds, an integer)");
        return -1;
    }
    return 0;
}

/* `_comment` (a string) and `_ignore` (a list of anything): Kong's
 * declarative notes on any entity, kept nowhere. */
static int comment_parse(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    if (n->type == GW_NODE_SCALAR) return 0;
    gw_conf_error(cf, n, NULL, "expected a string");
    return -1;
}

static int ignore_parse(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    if (n->type == GW_NODE_SEQ) return 0;
    gw_conf_error(cf, n, NULL, "expected a list");
    return -1;
}

/* Fields every entity record accepts and ignores. */
/* clang-format off */
#define KONG_META_FIELDS                                                   \
    {.name = "created_at", .type = GW_F_CUSTOM, .parse = timestamp_parse}, \
    {.name = "updated_at", .type = GW_F_CUSTOM, .parse = timestamp_parse}, \
    {.name = "_comment", .type = GW_F_CUSTOM, .parse = comment_parse},     \
    {.name = "_ignore", .type = GW_F_CUSTOM, .parse = ignore_parse}
/* clang-format on */

/* An `id` where the struct has no room for one: checked, not stored. */
static int id_check_parse(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    const char *ignored;
    return id_parse(cf, n, &ignored);
}

/* Kong fields for features sluice lacks: null loads, a value is refused
 * with the reason (GW_F_INERT in gw_schema.h). */
#define INERT(fname, why_)                                                                         \
    {                                                                                              \
        .name = (fname), .type = GW_F_INERT, .why = (why_)                                         \
    }
#define UPSTREAM_TLS_WHY                                                                           \
    "tls_verify_depth is not available: HTTPS upstreams are verified with OpenSSL's default "      \
    "depth (100)"

static int given(const struct gw_node *map, const char *key)
{
    const struct gw_node *n = gw_node_get(map, key);
    return n && n->type != GW_NODE_NULL;
}

static char *lowercase(struct gw_arena *a, const char *s)
{
    char *c = gw_strdup(a, s);
    for (char *p = c; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return c;
}

static int parse_port(const char *p, size_t len, long *port)
{
    if (len == 0 || len > 5) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (v < 1 || v > 65535) return -1;
    *port = v;
    return 0;
}

/* `url: https://host:port/path`, Kong's shorthand. No userinfo, query or
 * fragment: they have no meaning for an upstream base. */
static void parse_url(struct gw_conf *cf, const struct gw_node *n, struct gw_service *s)
{
    struct gw_arena *a = gw_conf_arena(cf);
    /* Errors show the url with a userinfo password masked: it is refused,
     * but the operator's credential must not reach the log. */
    const char *u = s->url;
    const char *shown = gw_url_masked_refused(a, u);
    const char *sep = strstr(u, "://");
    if (!sep) {
        gw_conf_error(cf, n, "url", "invalid url '%s' (expected http(s)://host[:port][/path])",
                      shown);
        return;
    }
    char *scheme = lowercase(a, gw_strndup(a, u, (size_t)(sep - u)));
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        gw_conf_error(cf, n, "url", "unsupported scheme '%s' (expected http or https)", scheme);
        return;
    }
    const char *p = sep + 3;
    const char *host, *host_end;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            gw_conf_error(cf, n, "url", "invalid url '%s': unterminated '['", shown);
            return;
        }
        p = host_end + 1;
    } else {
        host = p;
        host_end = p + strcspn(p, ":/?#@");
        p = host_end;
    }
    if (host_end == host || strpbrk(p, "?#@")) {
        gw_conf_error(cf, n, "url", "invalid url '%s' (expected http(s)://host[:port][/path])",
                      shown);
        return;
    }
    long port = strcmp(scheme, "https") == 0 ? 443 : 80;
    if (*p == ':') {
        size_t plen = strcspn(p + 1, "/");
        if (parse_port(p + 1, plen, &port) < 0) {
            gw_conf_error(cf, n, "url", "invalid port in url '%s'", shown);
            return;
        }
        p += 1 + plen;
    }
    if (*p && *p != '/') {
        gw_conf_error(cf, n, "url", "invalid url '%s'", shown);
        return;
    }
    s->protocol = scheme;
    s->host = gw_strndup(a, host, (size_t)(host_end - host));
    s->port = port;
    s->path = *p ? gw_strdup(a, p) : NULL;
}

/* Kong's names (typedefs.utf8_name): letters, digits, '.', '-', '_', '~'
 * and UTF-8 beyond ASCII. They are also what the access line prints bare
 * (route=, service=), so a space or a line break must not get in. */
static void check_kong_name(struct gw_conf *cf, const struct gw_node *node, const char *name)
{
    if (!name) return;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '-' || *p == '_' || *p == '~' || (*p >= 0x80 && *p <= 0xf4))
            continue;
        char *shown = gw_alloc(gw_conf_arena(cf), gw_log_escaped_len(name) + 1);
        *gw_log_escape(shown, name) = '\0'; /* a line break would split the error line */
        gw_conf_error(cf, gw_node_get(node, "name"), "name",
                      "invalid value '%s': the only accepted ascii characters are alphanumerics "
                      "or ., -, _, and ~",
                      shown);
        return;
    }
}

static int service_validate(struct gw_conf *cf, const struct gw_node *node, void *obj)
{
    struct gw_service *s = &((struct service_in *)obj)->s;
    struct gw_arena *a = gw_conf_arena(cf);
    check_kong_name(cf, node, s->name);
    if (s->protocol && strcmp(s->protocol, "http") != 0 && strcmp(s->protocol, "https") != 0)
        gw_conf_error(cf, gw_node_get(node, "protocol"), "protocol", "expected one of http, https");
    if (s->url) {
        if (given(node, "protocol") || given(node, "host") || given(node, "port") ||
            given(node, "path"))
            gw_conf_error(cf, gw_node_get(node, "url"), "url",
                          "cannot be combined with protocol, host, port or path");
        else
            parse_url(cf, gw_node_get(node, "url"), s);
    } else if (!given(node, "host")) {
        gw_conf_error(cf, node, "host", "required field missing (or set url)");
    }
    if (!s->protocol) s->protocol = "http";
    if (!s->port) s->port = strcmp(s->protocol, "https") == 0 ? 443 : 80;
    if (s->path && s->path[0] != '/')
        gw_conf_error(cf, gw_node_get(node, "path"), "path", "must start with '/'");
    /* What reaches the upstream's request line must not carry a space, a
     * line break or another control byte (a $VAR may hold anything). */
    const char *bad_path = s->path ? s->path : "";
    while (*bad_path && (unsigned char)*bad_path > 0x20 && *bad_path != 0x7f && *bad_path != '#')
        bad_path++;
    if (*bad_path)
        gw_conf_error(cf, gw_node_get(node, s->url ? "url" : "path"), s->url ? "url" : "path",
                      "the path must not contain spaces, control characters or '#'");
    const char *bad_host = s->host ? s->host : "";
    while (*bad_host && (unsigned char)*bad_host > 0x20 && *bad_host != 0x7f &&
           !strchr("/?#@\\", *bad_host))
        bad_host++;
    if (*bad_host)
        gw_conf_error(cf, gw_node_get(node, s->url ? "url" : "host"), s->url ? "url" : "host",
                      "the host must not contain spaces, control characters or any of / ? # @ \\");
    if (s->host)
        s->origin = gw_sprintf(a, strchr(s->host, ':') ? "%s://[%s]:%ld" : "%s://%s:%ld",
                               s->protocol, s->host, s->port);
    size_t blen = s->path ? strlen(s->path) : 0;
    while (blen > 0 && s->path[blen - 1] == '/')
        blen--;
    s->base_path = blen ? gw_strndup(a, s->path, blen) : "";
    return 0;
}

static const struct gw_field service_fields[] = {
    {EF(struct service_in, "name", s.name, GW_F_STRING, GW_REQUIRED, NULL), .min = 1},
    {EF(struct service_in, "url", s.url, GW_F_STRING, 0, NULL)},
    {EF(struct service_in, "protocol", s.protocol, GW_F_STRING, 0, NULL)},
    {EF(struct service_in, "host", s.host, GW_F_STRING, 0, NULL), .min = 1},
    {EF(struct service_in, "port", s.port, GW_F_INT, 0, NULL), .min = 1, .max = 65535},
    {EF(struct service_in, "path", s.path, GW_F_STRING, 0, NULL)},
    {EF(struct service_in, "connect_timeout", s.connect_timeout, GW_F_INT, 0, "60000"), .min = 1,
     .max = 2147483646},
    {EF(struct service_in, "read_timeout", s.read_timeout, GW_F_INT, 0, "60000"), .min = 1,
     .max = 2147483646},
    {EF(struct service_in, "write_timeout", s.write_timeout, GW_F_INT, 0, "60000"), .min = 1,
     .max = 2147483646},
    {EF(struct service_in, "retries", s.retries, GW_F_INT, 0, "5"), .min = 0, .max = 32767},
    {EF(struct service_in, "tls_verify", s.tls_verify, GW_F_BOOL, 0, "true")},
    {EF(struct service_in, "enabled", s.enabled, GW_F_BOOL, 0, "true")},
    {EF(struct service_in, "tags", s.tags, GW_F_STRINGS, 0, NULL)},
    INERT("tls_verify_depth", UPSTREAM_TLS_WHY),
    {EF(struct service_in, "ca_certificates", ca_certificate_ids, GW_F_STRINGS, GW_NO_ENV, NULL)},
    {EF(struct service_in, "client_certificate", client_certificate, GW_F_CUSTOM, 0, NULL),
     .parse = keep_node_parse},
    {EF(struct service_in, "id", id, GW_F_CUSTOM, 0, NULL), .parse = id_parse},
    KONG_META_FIELDS,
    {EF(struct service_in, "routes", routes, GW_F_CUSTOM, 0, NULL), .parse = keep_node_parse},
    {EF(struct service_in, "plugins", plugins, GW_F_CUSTOM, 0, NULL), .parse = keep_node_parse},
    {0},
};

const struct gw_schema gw_service_schema = {
    .name = "service",
    .size = sizeof(struct service_in),
    .fields = service_fields,
    .validate = service_validate,
};

/* The node of element i of a list field (a lone scalar is its own list). */
static const struct gw_node *elem(const struct gw_node *list, size_t i)
{
    return list->type == GW_NODE_SEQ ? list->items[i] : list;
}

static const char *elem_sub(struct gw_conf *cf, const char *field, const struct gw_node *list,
                            size_t i)
{
    if (list->type != GW_NODE_SEQ) return field;
    return gw_sprintf(gw_conf_arena(cf), "%s[%zu]", field, i);
}

static void free_regex_cb(void *data)
{
    pcre2_code_free(data);
}

/* Kong 3 reads the paths of a 1.1 / 2.1 file as its migration rewrites
 * them (kong/db/migrations/migrate_path_280_300.lua): a path of only
 * [A-Za-z0-9._~/%-] is a plain prefix; any other is a regex, "~" added,
 * its %XX decoded (reserved characters kept encoded, regex metacharacters
 * escaped). */
static const char *legacy_path(struct gw_arena *a, const char *raw)
{
    if (raw[strspn(raw, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~/%-")] ==
        '\0')
        return raw;
    char *out = gw_alloc(a, 2 * strlen(raw) + 2), *o = out;
    *o++ = '~';
    for (const char *p = raw; *p; p++) {
        int hi, lo;
        if (*p == '%' && (hi = gw_hex_digit((unsigned char)p[1])) >= 0 &&
            (lo = gw_hex_digit((unsigned char)p[2])) >= 0) {
            unsigned char c = (unsigned char)(hi * 16 + lo);
            if (!c || strchr("!#$%&'()*+,/:;=?@[]", c)) { /* reserved: stays encoded */
                *o++ = '%';
                *o++ = (char)toupper((unsigned char)p[1]);
                *o++ = (char)toupper((unsigned char)p[2]);
            } else {
                if (strchr(".^-{}\\|", c)) *o++ = '\\';
                *o++ = (char)c;
            }
            p += 2;
            continue;
        }
        *o++ = *p;
    }
    *o = '\0';
    return out;
}

/* "~..." is a regex, anchored at the start of the path as Kong's router
 * does, compiled (and JIT-compiled when the platform allows) once here.
 * As in Kong (typedefs.router_path), a path starts with '/' or "~/", and a
 * plain one is written normalised: requests are normalised before they are
 * matched (path_dots.h), so "/a/../b" or "//x" could never match. */
static void compile_paths(struct gw_conf *cf, const struct gw_node *node, struct gw_route *r)
{
    struct gw_arena *a = gw_conf_arena(cf);
    const struct gw_node *list = gw_node_get(node, "paths");
    r->n_paths = r->paths_raw.n;
    r->paths = gw_calloc(a, (r->n_paths ? r->n_paths : 1) * sizeof(*r->paths));
    for (size_t i = 0; i < r->n_paths; i++) {
        const char *raw = r->paths_raw.v[i];
        struct gw_route_path *p = &r->paths[i];
        if (!raw) continue;
        if (gw_conf_legacy_paths(cf) && raw[0] != '~') {
            raw = legacy_path(a, raw);
            const char *why;
            const char *normal = raw[0] == '/' ? gw_path_normalize(a, raw, &why) : NULL;
            if (normal) raw = normal; /* Kong's migration normalises plain paths */
        }
        if (raw[0] != '~') {
            const char *why;
            const char *normal = raw[0] == '/' ? gw_path_normalize(a, raw, &why) : raw;
            if (raw[0] != '/')
                gw_conf_error(cf, elem(list, i), elem_sub(cf, "paths", list, i),
                              "should start with: / (fixed path) or ~/ (regex path)");
            else if (!normal || strcmp(normal, raw) != 0)
                gw_conf_error(cf, elem(list, i), elem_sub(cf, "paths", list, i),
                              "non-normalized path: requests are matched normalized%s%s%s",
                              normal ? " ('" : "", normal ? normal : "", normal ? "')" : "");
            p->path = raw;
            p->len = strlen(raw);
            continue;
        }
        if (raw[1] != '/')
            gw_conf_error(cf, elem(list, i), elem_sub(cf, "paths", list, i),
                          "should start with: / (fixed path) or ~/ (regex path)");
        p->path = raw + 1;
        p->len = strlen(p->path);
        p->is_regex = 1;
        int code;
        PCRE2_SIZE off;
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)p->path, p->len, PCRE2_ANCHORED, &code, &off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof(msg));
            gw_conf_error(cf, elem(list, i), elem_sub(cf, "paths", list, i),
                          "invalid regex '%s': %s at offset %zu", p->path, (const char *)msg,
                          (size_t)off);
            continue;
        }
        gw_arena_cleanup(a, free_regex_cb, re);
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* failure: the interpreter still works */
        p->regex = re;
    }
}

/* Hosts are lowercased; one '*' is allowed, as "*.example.com" or
 * "example.*". The stored host keeps its '*'. */
static void parse_hosts(struct gw_conf *cf, const struct gw_node *node, struct gw_route *r)
{
    struct gw_arena *a = gw_conf_arena(cf);
    const struct gw_node *list = gw_node_get(node, "hosts");
    r->n_hosts = r->hosts_raw.n;
    r->hosts = gw_calloc(a, (r->n_hosts ? r->n_hosts : 1) * sizeof(*r->hosts));
    for (size_t i = 0; i < r->n_hosts; i++) {
        if (!r->hosts_raw.v[i]) continue;
        char *h = lowercase(a, r->hosts_raw.v[i]);
        size_t len = strlen(h);
        struct gw_route_host *rh = &r->hosts[i];
        /* "host:PORT" (Kong's host_with_optional_port): the port is the one
         * the request came in on, matched apart from the Host header. */
        char *colon = strrchr(h, ':');
        if (colon && colon > h && !strchr(h, ']') && colon[1]) {
            char *end;
            long port = strtol(colon + 1, &end, 10);
            if (*end || port < 1 || port > 65535 || colon[1] == '+' || colon[1] == '-') {
                gw_conf_error(cf, elem(list, i), elem_sub(cf, "hosts", list, i),
                              "invalid port in host '%s'", h);
                continue;
            }
            rh->port = (int)port;
            *colon = '\0';
            len = (size_t)(colon - h);
        }
        rh->host = h;
        rh->len = len;
        const char *star = strchr(h, '*');
        if (!star && len) continue;
        if (star && !strchr(star + 1, '*') && len > 2 && h[0] == '*' && h[1] == '.')
            rh->wildcard = -1;
        else if (star && !strchr(star + 1, '*') && len > 2 && h[len - 1] == '*' &&
                 h[len - 2] == '.')
            rh->wildcard = 1;
        else
            gw_conf_error(cf, elem(list, i), elem_sub(cf, "hosts", list, i),
                          len ? "invalid wildcard host '%s' (one '*' at the start, as in "
                                "'*.example.com', or at the end, as in 'example.*')"
                              : "empty host%s",
                          h);
    }
}

static void check_methods(struct gw_conf *cf, const struct gw_node *node, struct gw_route *r)
{
    const struct gw_node *list = gw_node_get(node, "methods");
    for (size_t i = 0; i < r->methods.n; i++) {
        if (!r->methods.v[i]) continue;
        char *m = gw_strdup(gw_conf_arena(cf), r->methods.v[i]);
        for (char *p = m; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        r->methods.v[i] = m;
        size_t k = 0;
        while (http_methods[k] && strcmp(http_methods[k], m) != 0)
            k++;
        if (!http_methods[k])
            gw_conf_error(cf, elem(list, i), elem_sub(cf, "methods", list, i),
                          "invalid method '%s'", m);
    }
}

const char *gw_server_name_read(struct gw_arena *a, const char *v, const char **why)
{
    char *s = lowercase(a, v);
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.') s[--n] = '\0';
    unsigned char ip[16];
    const char *star = strchr(s, '*');
    *why = NULL;
    if (star && star != s && star != s + n - 1)
        *why = "wildcard must be leftmost or rightmost character";
    else if (star && strchr(star + 1, '*'))
        *why = "only one wildcard must be specified";
    else if (inet_pton(AF_INET, s, ip) == 1 || inet_pton(AF_INET6, s, ip) == 1)
        *why = "must not be an IP";
    else if (strchr(s, ':'))
        *why = "must not have a port";
    else if (n == 0 || n > 253 || s[0] == '.' ||
             strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-_*") != n)
        *why = gw_sprintf(a, "invalid value: %s", v);
    return s;
}

static int takes_https(const struct gw_route *r)
{
    for (size_t i = 0; i < r->protocols.n; i++)
        if (r->protocols.v[i] && strcmp(r->protocols.v[i], "https") == 0) return 1;
    return 0;
}

/* Kong's snis on a route (typedefs.wildcard_host, the traditional_compatible
 * router): server names as gw_server_name_read reads them. Only on a route
 * that takes https, among other protocols or alone (routes.lua: the check
 * fires when none of them is a TLS one); plain HTTP requests ignore them. */
static void check_snis(struct gw_conf *cf, const struct gw_node *node, struct gw_route *r)
{
    if (!r->snis.n) return;
    const struct gw_node *list = gw_node_get(node, "snis");
    struct gw_arena *a = gw_conf_arena(cf);
    if (!takes_https(r)) {
        gw_conf_error(cf, list, "snis",
                      "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or "
                      "'tls_passthrough'");
        return;
    }
    for (size_t i = 0; i < r->snis.n; i++) {
        if (!r->snis.v[i]) continue;
        const char *why;
        r->snis.v[i] = gw_server_name_read(a, r->snis.v[i], &why);
        if (why) gw_conf_error(cf, elem(list, i), elem_sub(cf, "snis", list, i), "%s", why);
    }
}

static int route_validate(struct gw_conf *cf, const struct gw_node *node, void *obj)
{
    struct gw_route *r = &((struct route_in *)obj)->r;
    struct gw_arena *a = gw_conf_arena(cf);
    check_kong_name(cf, node, r->name);
    check_methods(cf, node, r);
    const struct gw_node *hn = gw_node_get(node, "headers");
    for (size_t i = 0; i < r->headers.n; i++) {
        r->headers.keys[i] = lowercase(a, r->headers.keys[i]);
        if (strcmp(r->headers.keys[i], "host") == 0)
            gw_conf_error(cf, hn->pairs[i].key,
                          gw_sprintf(a, "headers.%s", hn->pairs[i].key->value),
                          "cannot contain 'host' header, which must be specified in the "
                          "'hosts' attribute");
        /* "~*regex" values: compiled here as the router will (which only
         * warns), so that a bad one fails the load instead of leaving the
         * route silently dead. */
        for (size_t k = 0; k < r->headers.values[i].n; k++) {
            const char *v = r->headers.values[i].v[k];
            if (!v || v[0] != '~' || v[1] != '*') continue;
            int code;
            PCRE2_SIZE off;
            pcre2_code *re = pcre2_compile((PCRE2_SPTR)(v + 2), PCRE2_ZERO_TERMINATED,
                                           PCRE2_CASELESS, &code, &off, NULL);
            if (re) {
                pcre2_code_free(re);
                continue;
            }
            PCRE2_UCHAR msg[120];
            pcre2_get_error_message(code, msg, sizeof(msg));
            gw_conf_error(
                cf, hn->pairs[i].key, gw_sprintf(a, "headers.%s[%zu]", hn->pairs[i].key->value, k),
                "invalid regex '%s': %s at offset %zu", v + 2, (const char *)msg, (size_t)off);
        }
    }
    const struct gw_node *pn = gw_node_get(node, "protocols");
    for (size_t i = 0; i < r->protocols.n; i++) {
        const char *p = r->protocols.v[i];
        if (p && strcmp(p, "http") != 0 && strcmp(p, "https") != 0)
            gw_conf_error(cf, pn ? elem(pn, i) : node,
                          pn ? elem_sub(cf, "protocols", pn, i) : "protocols",
                          "expected one of http, https");
    }
    if (r->path_handling && strcmp(r->path_handling, "v0") != 0 &&
        strcmp(r->path_handling, "v1") != 0)
        gw_conf_error(cf, gw_node_get(node, "path_handling"), "path_handling",
                      "expected one of v0, v1");
    long code = r->https_redirect_status_code;
    if (code != 426 && code != 301 && code != 302 && code != 307 && code != 308)
        gw_conf_error(cf, gw_node_get(node, "https_redirect_status_code"),
                      "https_redirect_status_code", "expected one of 426, 301, 302, 307, 308");
    check_snis(cf, node, r);
    /* Kong's routes_subschemas: a route that takes https may match on snis
     * alone. */
    int https = takes_https(r);
    if (!r->paths_raw.n && !r->hosts_raw.n && !r->methods.n && !r->headers.n &&
        !(https && r->snis.n))
        gw_conf_error(cf, node, NULL,
                      https ? "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when "
                              "'protocols' is 'https'"
                            : "must set one of 'methods', 'hosts', 'headers', 'paths' when "
                              "'protocols' is 'http'");
    compile_paths(cf, node, r);
    parse_hosts(cf, node, r);
    return 0;
}

static const struct gw_field route_fields[] = {
    {EF(struct route_in, "name", r.name, GW_F_STRING, 0, NULL), .min = 1},
    {EF(struct route_in, "paths", r.paths_raw, GW_F_STRINGS, GW_NO_ENV, NULL)},
    {EF(struct route_in, "methods", r.methods, GW_F_STRINGS, 0, NULL)},
    {EF(struct route_in, "hosts", r.hosts_raw, GW_F_STRINGS, 0, NULL)},
    {EF(struct route_in, "headers", r.headers, GW_F_MAP, GW_NO_ENV_TILDE, NULL)},
    {EF(struct route_in, "protocols", r.protocols, GW_F_STRINGS, 0, "[http, https]"), .min = 1},
    {EF(struct route_in, "strip_path", r.strip_path, GW_F_BOOL, 0, "true")},
    {EF(struct route_in, "preserve_host", r.preserve_host, GW_F_BOOL, 0, "false")},
    /* Kong's defaults are true; ours stream with backpressure unless asked
     * (docs/configuration.md). decK writes both on every route. */
    {EF(struct route_in, "request_buffering", r.request_buffering, GW_F_BOOL, 0, "false")},
    {EF(struct route_in, "response_buffering", r.response_buffering, GW_F_BOOL, 0, "false")},
    {EF(struct route_in, "regex_priority", r.regex_priority, GW_F_INT, 0, "0")},
    {EF(struct route_in, "path_handling", r.path_handling, GW_F_STRING, 0, "v0")},
    {EF(struct route_in, "https_redirect_status_code", r.https_redirect_status_code, GW_F_INT, 0,
        "426")},
    {EF(struct route_in, "tags", r.tags, GW_F_STRINGS, 0, NULL)},
    {EF(struct route_in, "snis", r.snis, GW_F_STRINGS, 0, NULL)},
    INERT("sources", "stream (tcp, tls, udp) routes are not supported"),
    INERT("destinations", "stream (tcp, tls, udp) routes are not supported"),
    {EF(struct route_in, "id", id, GW_F_CUSTOM, 0, NULL), .parse = id_parse},
    KONG_META_FIELDS,
    {EF(struct route_in, "service", service_ref, GW_F_CUSTOM, 0, NULL), .parse = keep_node_parse},
    {EF(struct route_in, "plugins", plugins, GW_F_CUSTOM, 0, NULL), .parse = keep_node_parse},
    {0},
};

const struct gw_schema gw_route_schema = {
    .name = "route",
    .size = sizeof(struct route_in),
    .fields = route_fields,
    .validate = route_validate,
};

static const struct gw_field credential_fields[] = {
    {EF(struct gw_keyauth_credential, "key", key, GW_F_STRING, GW_REQUIRED | GW_SECRET, NULL),
     .min = 1},
    {EF(struct gw_keyauth_credential, "tags", tags, GW_F_STRINGS, 0, NULL)},
    {.name = "id", .type = GW_F_CUSTOM, .parse = id_check_parse},
    KONG_META_FIELDS,
    {0},
};

static const struct gw_schema credential_schema = {
    .name = "keyauth_credential",
    .size = sizeof(struct gw_keyauth_credential),
    .fields = credential_fields,
};

static int consumer_validate(struct gw_conf *cf, const struct gw_node *node, void *obj)
{
    if (!given(node, "username") && !given(node, "custom_id"))
        gw_conf_error(cf, node, NULL, "must set one of 'username', 'custom_id'");
    return 0;
}

static const struct gw_field consumer_fields[] = {
    {EF(struct consumer_in, "username", c.username, GW_F_STRING, 0, NULL), .min = 1},
    {EF(struct consumer_in, "custom_id", c.custom_id, GW_F_STRING, 0, NULL), .min = 1},
    {EF(struct consumer_in, "keyauth_credentials", c.keyauth_credentials, GW_F_RECORDS, 0, NULL),
     .record = &credential_schema},
    {EF(struct consumer_in, "tags", c.tags, GW_F_STRINGS, 0, NULL)},
    {EF(struct consumer_in, "id", id, GW_F_CUSTOM, 0, NULL), .parse = id_parse},
    KONG_META_FIELDS,
    {EF(struct consumer_in, "plugins", plugins, GW_F_CUSTOM, 0, NULL), .parse = keep_node_parse},
    {0},
};

const struct gw_schema gw_consumer_schema = {
    .name = "consumer",
    .size = sizeof(struct consumer_in),
    .fields = consumer_fields,
    .validate = consumer_validate,
};

/* Kong's certificate entity checks (certificates.lua), with its messages:
 * each PEM parses, each key matches its certificate, the alternative pair
 * is complete and of another key type. */
static void check_pair(struct gw_conf *cf, const struct gw_node *node, const char *cert,
                       const char *key, const char *cert_field, const char *key_field,
                       const char *mismatch, int *type)
{
    const char *why;
    switch (gw_tls_pem_pair_check(cert, key, type, &why)) {
    case GW_TLS_BAD_CERT:
        gw_conf_error(cf, gw_node_get(node, cert_field), cert_field, "invalid certificate: %s",
                      why);
        break;
    case GW_TLS_BAD_KEY:
        gw_conf_error(cf, gw_node_get(node, key_field), key_field, "invalid key: %s", why);
        break;
    case GW_TLS_MISMATCH:
        gw_conf_error(cf, node, NULL, "%s", mismatch);
        break;
    }
}

static int certificate_validate(struct gw_conf *cf, const struct gw_node *node, void *obj)
{
    struct gw_certificate *c = &((struct certificate_in *)obj)->c;
    int type = 0, alt_type = 0;
    if (c->cert && c->key)
        check_pair(cf, node, c->cert, c->key, "cert", "key", "certificate does not match key",
                   &type);
    if (!c->cert_alt != !c->key_alt) {
        gw_conf_error(cf, node, NULL,
                      "all or none of these fields must be set: 'cert_alt', 'key_alt'");
    } else if (c->cert_alt) {
        check_pair(cf, node, c->cert_alt, c->key_alt, "cert_alt", "key_alt",
                   "alternative certificate does not match key", &alt_type);
        if (type && type == alt_type)
            gw_conf_error(cf, node, NULL,
                          "certificate and alternative certificate need to have different type "
                          "(e.g. RSA and ECDSA), the provided certificates were both of the same "
                          "type");
    }
    return 0;
}

static const struct gw_field certificate_fields[] = {
    {EF(struct certificate_in, "cert", c.cert, GW_F_STRING, GW_REQUIRED, NULL), .min = 1},
    {EF(struct certificate_in, "key", c.key, GW_F_STRING, GW_REQUIRED | GW_SECRET, NULL), .min = 1},
    {EF(struct certificate_in, "cert_alt", c.cert_alt, GW_F_STRING, 0, NULL), .min = 1},
    {EF(struct certificate_in, "key_alt", c.key_alt, GW_F_STRING, GW_SECRET, NULL), .min = 1},
    {EF(struct certificate_in, "tags", c.tags, GW_F_STRINGS, 0, NULL)},
    {EF(struct certificate_in, "id", id, GW_F_CUSTOM, 0, NULL), .parse = id_parse},
    KONG_META_FIELDS,
    {EF(struct certificate_in, "snis", snis, GW_F_CUSTOM, 0, NULL), .parse = keep_node_parse},
    {0},
};

const struct gw_schema gw_certificate_schema = {
    .name = "certificate",
    .size = sizeof(struct certificate_in),
    .fields = certificate_fields,
    .validate = certificate_validate,
};

/* Kong's ca_certificates.lua checks, with its messages. */
static int ca_certificate_validate(struct gw_conf *cf, const struct gw_node *node, void *obj)
{
    struct gw_ca_certificate *c = obj;
    if (!c->cert) return 0;
    const struct gw_node *cn = gw_node_get(node, "cert");
    char digest[65];
    const char *why;
    switch (gw_tls_ca_check(c->cert, digest, &why)) {
    case GW_TLS_BAD_CERT:
        gw_conf_error(cf, cn, "cert", "invalid certificate: %s", why);
        return 0;
    case GW_TLS_NOT_CA:
        gw_conf_error(cf, cn, "cert",
                      "certificate does not appear to be a CA because it is missing the \"CA\" "
                      "basic constraint");
        return 0;
    case GW_TLS_EXPIRED:
        gw_conf_error(cf, cn, "cert", "certificate expired, \"Not After\" time is in the past");
        return 0;
    case GW_TLS_MULTIPLE:
        gw_conf_error(cf, cn, "cert", "please submit only one certificate at a time");
        return 0;
    }
    if (c->cert_digest && strcasecmp(c->cert_digest, digest) != 0)
        gw_conf_error(cf, gw_node_get(node, "cert_digest"), "cert_digest",
                      "does not match the certificate (its SHA-256 is %s)", digest);
    return 0;
}

static const struct gw_field ca_certificate_fields[] = {
    {GW_FIELD(struct gw_ca_certificate, cert, GW_F_STRING, GW_REQUIRED, NULL), .min = 1},
    {GW_FIELD(struct gw_ca_certificate, cert_digest, GW_F_STRING, 0, NULL), .min = 1},
    {GW_FIELD(struct gw_ca_certificate, tags, GW_F_STRINGS, 0, NULL)},
    {GW_FIELD(struct gw_ca_certificate, id, GW_F_CUSTOM, 0, NULL), .parse = id_parse},
    KONG_META_FIELDS,
    {0},
};

const struct gw_schema gw_ca_certificate_schema = {
    .name = "ca_certificate",
    .size = sizeof(struct gw_ca_certificate),
    .fields = ca_certificate_fields,
    .validate = ca_certificate_validate,
};

static const struct gw_field sni_fields[] = {
    {EF(struct sni_in, "name", name, GW_F_STRING, GW_REQUIRED, NULL), .min = 1},
    {EF(struct sni_in, "tags", tags, GW_F_STRINGS, 0, NULL)},
    {EF(struct sni_in, "id", id, GW_F_CUSTOM, 0, NULL), .parse = id_parse},
    KONG_META_FIELDS,
    {0},
};

const struct gw_schema gw_sni_schema = {
    .name = "sni",
    .size = sizeof(struct sni_in),
    .fields = sni_fields,
};

static const struct gw_field top_level_sni_fields[] = {
    {EF(struct sni_in, "name", name, GW_F_STRING, GW_REQUIRED, NULL), .min = 1},
    {EF(struct sni_in, "certificate", certificate_ref, GW_F_CUSTOM, GW_REQUIRED, NULL),
     .parse = keep_node_parse},
    {EF(struct sni_in, "tags", tags, GW_F_STRINGS, 0, NULL)},
    {EF(struct sni_in, "id", id, GW_F_CUSTOM, 0, NULL), .parse = id_parse},
    KONG_META_FIELDS,
    {0},
};

const struct gw_schema gw_top_level_sni_schema = {
    .name = "sni",
    .size = sizeof(struct sni_in),
    .fields = top_level_sni_fields,
};

static const struct gw_field plugin_fields[] = {
    {EF(struct plugin_in, "name", name, GW_F_STRING, GW_REQUIRED | GW_NO_ENV, NULL)},
    {EF(struct plugin_in, "config", config, GW_F_CUSTOM, 0, NULL), .parse = keep_node_parse},
    {EF(struct plugin_in, "enabled", p.enabled, GW_F_BOOL, 0, "true")},
    {EF(struct plugin_in, "instance_name", p.instance_name, GW_F_STRING, 0, NULL), .min = 1},
    {EF(struct plugin_in, "protocols", p.protocols, GW_F_STRINGS, 0, NULL)},
    {EF(struct plugin_in, "tags", tags, GW_F_STRINGS, 0, NULL)},
    {EF(struct plugin_in, "id", id, GW_F_CUSTOM, 0, NULL), .parse = id_parse},
    KONG_META_FIELDS,
    {EF(struct plugin_in, "service", service_ref, GW_F_CUSTOM, 0, NULL), .parse = keep_node_parse},
    {EF(struct plugin_in, "route", route_ref, GW_F_CUSTOM, 0, NULL), .parse = keep_node_parse},
    {EF(struct plugin_in, "consumer", consumer_ref, GW_F_CUSTOM, 0, NULL),
     .parse = keep_node_parse},
    INERT("ordering", "plugins run in the order of their priority (no dynamic ordering)"),
    {0},
};

/* Kong's plugin protocols; only http and https requests exist here, so a
 * plugin listing neither never runs, which is what Kong would do too. */
static int plugin_validate(struct gw_conf *cf, const struct gw_node *node, void *obj)
{
    static const char *const known[] = {"http", "https",           "grpc", "grpcs", "tcp",
                                        "tls",  "tls_passthrough", "udp",  "ws",    "wss",
                                        NULL};
    const struct gw_strings *ps = &((struct plugin_in *)obj)->p.protocols;
    const struct gw_node *pn = gw_node_get(node, "protocols");
    int rc = 0;
    for (size_t i = 0; i < ps->n; i++) {
        size_t k = 0;
        while (known[k] && (!ps->v[i] || strcmp(known[k], ps->v[i]) != 0))
            k++;
        if (!known[k]) {
            gw_conf_error(cf, pn ? elem(pn, i) : node,
                          pn ? elem_sub(cf, "protocols", pn, i) : "protocols",
                          "expected one of http, https, grpc, grpcs, tcp, tls, tls_passthrough, "
                          "udp, ws, wss");
            rc = -1;
        }
    }
    return rc;
}

const struct gw_schema gw_plugin_instance_schema = {
    .name = "plugin",
    .size = sizeof(struct plugin_in),
    .fields = plugin_fields,
    .validate = plugin_validate,
};
