/*
 * Kong's upstream path: the service path, then what the route left of the
 * request path (all of it without strip_path). path_handling v0 puts a '/'
 * between the two, v1 concatenates them after dropping the leading '/' of
 * the request's part; both fold the '//' of a slash on each side (Kong's
 * admin API table: /s with /fv1req is /s/fv1req in v0, /sfv1req in v1).
 */
#include <string.h>

#include "upstream_path.h"

/* x[0..xn) then y then z, in the arena (no printf on the request path). */
static const char *concat3(struct gw_arena *a, const char *x, size_t xn, const char *y,
                           const char *z)
{
    size_t yn = strlen(y), zn = strlen(z);
    char *out = gw_alloc(a, xn + yn + zn + 1);
    memcpy(out, x, xn);
    memcpy(out + xn, y, yn);
    memcpy(out + xn + yn, z, zn + 1);
    return out;
}

/* Kong's path_handling v0 (kong/router/utils.lua get_upstream_uri_v0),
 * case for case: base is the service's path ("/" when it has none),
 * postfix what strip_path left of the request path (the route's whole
 * prefix taken), req the request path. Where the route consumed all of
 * the path, the upstream path ends with '/' only if the request's did. */
static const char *join_v0(struct gw_arena *a, const char *base, int strip, const char *postfix,
                           const char *req)
{
    size_t bl = strlen(base), rl = strlen(req);
    if (base[bl - 1] == '/') {
        if (!strip) return req[1] ? concat3(a, base, bl, req + 1, "") : base;
        if (*postfix == '\0') {
            if (bl == 1 || req[rl - 1] == '/') return base;
            return gw_strndup(a, base, bl - 1);
        }
        return concat3(a, base, *postfix == '/' ? bl - 1 : bl, postfix, "");
    }
    if (!strip) return strcmp(req, "/") == 0 ? base : concat3(a, base, bl, req, "");
    if (*postfix == '\0')
        return rl > 1 && req[rl - 1] == '/' ? concat3(a, base, bl, "/", "") : base;
    return concat3(a, base, bl, *postfix == '/' ? "" : "/", postfix);
}

/* Kong's path_handling v1: the request's part without its leading '/'
 * appended to the service path, a '/' added only between an empty base
 * and a relative rest, and one of two adjacent slashes dropped. */
static const char *join_v1(struct gw_arena *a, const char *base, const char *rest)
{
    size_t blen = strlen(base);
    int base_slash = blen > 0 && base[blen - 1] == '/';
    const char *sep = "";
    if (*rest == '/') rest++;
    if (*rest == '\0') {
        if (!blen) rest = "/";
    } else if (*rest == '/') {
        if (base_slash) rest++;
    } else if (!blen) {
        sep = "/";
    }
    return concat3(a, base, blen, sep, rest);
}

const char *gw_upstream_path(struct gw_arena *a, const struct gw_route *route,
                             const struct gw_service *s, const char *path, size_t strip_len)
{
    if (route->path_handling && strcmp(route->path_handling, "v1") == 0) {
        const char *rest = route->strip_path ? path + strip_len : path;
        return join_v1(a, s->path && strcmp(s->path, "/") != 0 ? s->path : "", rest);
    }
    /* A route without paths matched the prefix "/" (Kong's router). */
    size_t strip = route->n_paths ? strip_len : 1;
    return join_v0(a, s->path && *s->path ? s->path : "/", route->strip_path, path + strip, path);
}
