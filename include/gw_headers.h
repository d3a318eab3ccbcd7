/*
 * gw_headers: an HTTP header list in arrival order, living in an arena.
 *
 * Request and response headers are read and changed by the core and by
 * every plugin, a dozen or more per request. Keeping them in the request
 * arena makes an added header one bump allocation (name, value and node
 * together) and a finished request frees none of them one by one; libevent's
 * evkeyvalq cost three mallocs and three frees per header.
 *
 * Names compare case-insensitively (RFC 9110 5.1). Values are NUL
 * terminated; lengths are kept so that writing a head needs no strlen.
 */
#ifndef GW_HEADERS_H
#define GW_HEADERS_H

#include <stddef.h>

struct gw_arena;

struct gw_header {
    struct gw_header *next;
    const char *name;
    const char *value;
    size_t name_len, value_len;
};

struct gw_headers {
    struct gw_header *first;
    struct gw_header **tail;
    struct gw_arena *arena; /* where added headers are copied */
};

#define gw_headers_foreach(h, list) for ((h) = (list)->first; (h); (h) = (h)->next)

void gw_headers_init(struct gw_headers *list, struct gw_arena *arena);

/* The first value of that name, or NULL. */
const char *gw_headers_get(const struct gw_headers *list, const char *name);

/* Appends a copy of name and value (duplicates allowed, as in HTTP).
 * Refuses (-1, nothing added) a name that is not an RFC 9110 token (empty,
 * or with a space, a colon, a control byte...) or a value with a control
 * byte other than HTAB (CR, LF, NUL...): what a plugin builds from config
 * or client input must never split or garble the head it is written into. */
int gw_headers_add(struct gw_headers *list, const char *name, const char *value);
int gw_headers_add_n(struct gw_headers *list, const char *name, size_t name_len, const char *value,
                     size_t value_len);
/* Appends a copy without the checks: for input a parser has validated
 * already (the client's head, the upstream's header lines). */
void gw_headers_add_parsed(struct gw_headers *list, const char *name, size_t name_len,
                           const char *value, size_t value_len);
/* Appends without copying or checking: both strings must live as long as
 * the list (literals, strings in the same arena) and be known clean. */
void gw_headers_add_ref(struct gw_headers *list, const char *name, size_t name_len,
                        const char *value, size_t value_len);

/* Removes every header of that name, then appends one with a copy of
 * value: what a plugin means by "set". -1 as gw_headers_add; the old
 * values are gone then too (a refused credential must not leave the
 * client's own in its place). */
int gw_headers_set(struct gw_headers *list, const char *name, const char *value);

/* Removes every header of that name; returns how many there were. */
int gw_headers_remove(struct gw_headers *list, const char *name);

/* Empties the list (the memory stays in the arena until it is freed). */
void gw_headers_clear(struct gw_headers *list);

/* Case-insensitive comparison of a header's name with name (of length n). */
int gw_header_is(const struct gw_header *h, const char *name, size_t n);

/* Whether name can be a header field name: an RFC 9110 token (no spaces,
 * colons, CR/LF...). For plugins that let a config name a header. */
int gw_header_name_valid(const char *name);

#endif
