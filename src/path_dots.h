/*
 * Dot segments of a request path, resolved before routing (RFC 3986
 * §5.2.4), as nginx does before it matches a location.
 *
 * Why: routes match the path and the upstream path is built from it. Left
 * alone, /public/../admin matches the route for /public, and libcurl, or
 * the upstream itself, resolves it to /admin: the route (and its plugins)
 * that guard /admin are bypassed, and /svc/../../x leaves the service's
 * base path. Segments spelled with %2e count as dots too, since upstreams
 * decode before they resolve.
 *
 * gw_path_normalize is what the router is given, Kong's normalisation
 * (kong/tools/uri.lua, "to prevent trivial route match bypass"): the same
 * bypass works with /%61dmin or //admin where the upstream reads /admin,
 * so percent-encoded unreserved characters are decoded, other encodings
 * written in capitals, runs of '/' merged, then dot segments removed.
 */
#ifndef GW_PATH_DOTS_H
#define GW_PATH_DOTS_H

#include <stddef.h>

struct gw_arena;

/* Returns path itself when it has no dot segment (nearly always: no copy),
 * else the resolved path in the arena; NULL when a ".." climbs above the
 * root (the caller answers 400). path is NUL-terminated, starts with '/'. */
const char *gw_path_remove_dots(struct gw_arena *a, const char *path);
/* The same contract (path itself when there is nothing to change), and
 * NULL also for a '%' that does not start a %XX escape; *why says which,
 * as the 400's message. */
const char *gw_path_normalize(struct gw_arena *a, const char *path, const char **why);

#endif
