/*
 * The path a proxied request takes upstream: Kong's join of the service's
 * path and what the route left of the request path (path_handling v0, v1).
 */
#ifndef GW_UPSTREAM_PATH_H
#define GW_UPSTREAM_PATH_H

#include <stddef.h>

#include "gw_arena.h"
#include "gw_entities.h"

/* The joined path, in the arena (or one of the inputs when it is that):
 * path is the request's (normalised) path, strip_len the length of the
 * route prefix it matched. Dot segments the join may form are left to the
 * caller. */
const char *gw_upstream_path(struct gw_arena *a, const struct gw_route *route,
                             const struct gw_service *s, const char *path, size_t strip_len);

#endif
