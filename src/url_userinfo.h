/*
 * A password in a URL's userinfo ("scheme://user:password@host/...") is a
 * credential: RFC 3986 3.2.1 says it is not to be rendered as clear text.
 * Every place that shows a configured URL (config errors, the debug log,
 * GET /config) masks it with these.
 */
#ifndef GW_URL_USERINFO_H
#define GW_URL_USERINFO_H

#include <stddef.h>

#include "gw_arena.h"

/* url (or any string holding URLs) with each password shown as "***": url
 * itself when it has none, else a copy in the arena, or from malloc when a
 * is NULL (free() it then). */
const char *gw_url_masked(struct gw_arena *a, const char *url);

/* For a URL being refused (quoted in an error): everything from the first
 * ':' after "scheme://" to the last '@' is masked, since a password written
 * raw may hold '#', '?' or '/'. Arena only. */
const char *gw_url_masked_refused(struct gw_arena *a, const char *url);

#endif
