/*
 * Route matching with Kong's precedence. The index is built once per config
 * snapshot; matching allocates nothing.
 */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include <stddef.h>

#include "gw_entities.h"

struct gw_arena;
struct gw_headers;
struct gw_config;

struct gw_router;

struct gw_route_match {
    const struct gw_route *route;
    size_t strip_len; /* bytes of the path the route consumed (for strip_path) */
};

/* Builds the index in arena (the config's). Cannot fail on a loaded config. */
struct gw_router *gw_router_build(const struct gw_config *cfg, struct gw_arena *arena);

/* host: lowercased, without port ("" if none). headers: the request's.
 * path: the raw request path; anything from a '?' on is ignored, and an
 * empty path is matched as "/" (strip_len then 0).
 * Returns 0 and fills m, or -1 when no route matches. Allocates nothing
 * (after a thread's first regex match) and is safe to call from several
 * threads at once. */
int gw_router_match(const struct gw_router *rt, const char *method, const char *host,
                    const char *path, const struct gw_headers *headers, struct gw_route_match *m);
/* The same, for a request that came in on listener port `port`: a route
 * host written with a port ("api.example.com:8443") matches only there, as
 * Kong's does (http.host == h and net.dst.port == PORT). gw_router_match
 * is port 0, where such hosts never match. sni: the TLS server name the
 * client asked for (lowercase, "" if it sent none), or NULL for plain
 * HTTP, where a route's snis do not apply (Kong's traditional router). */
int gw_router_match_at(const struct gw_router *rt, const char *method, const char *host, int port,
                       const char *sni, const char *path, const struct gw_headers *headers,
                       struct gw_route_match *m);

/* Kong's uri_captures: the capture `name` (a group name, or its number;
 * 0 is the whole match) of the first of route's regex paths that matches
 * path, copied into a; NULL when none matches or the group took no part. */
struct gw_arena;
const char *gw_route_capture(const struct gw_route *route, const char *path, const char *name,
                             struct gw_arena *a);

/* Number of routes indexed (the config's routes). */
size_t gw_router_route_count(const struct gw_router *rt);

#endif
