/*
 * Header lists in the request arena (see include/gw_headers.h for why).
 * Lists are short (tens of entries), so a linear scan that compares the
 * length before the bytes beats any index.
 */
#include <string.h>
#include <strings.h>

#include "gw_arena.h"
#include "gw_headers.h"
#include "http1.h"

void gw_headers_init(struct gw_headers *list, struct gw_arena *arena)
{
    list->first = NULL;
    list->tail = &list->first;
    list->arena = arena;
}

int gw_header_is(const struct gw_header *h, const char *name, size_t n)
{
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

const char *gw_headers_get(const struct gw_headers *list, const char *name)
{
    size_t n = strlen(name);
    for (const struct gw_header *h = list->first; h; h = h->next)
        if (gw_header_is(h, name, n)) return h->value;
    return NULL;
}

static void append(struct gw_headers *list, struct gw_header *h)
{
    h->next = NULL;
    *list->tail = h;
    list->tail = &h->next;
}

void gw_headers_add_ref(struct gw_headers *list, const char *name, size_t name_len,
                        const char *value, size_t value_len)
{
    struct gw_header *h = gw_alloc(list->arena, sizeof(*h));
    h->name = name;
    h->value = value;
    h->name_len = name_len;
    h->value_len = value_len;
    append(list, h);
}

void gw_headers_add_parsed(struct gw_headers *list, const char *name, size_t name_len,
                           const char *value, size_t value_len)
{
    /* Node, name and value in one allocation. */
    struct gw_header *h = gw_alloc(list->arena, sizeof(*h) + name_len + value_len + 2);
    char *n = (char *)(h + 1), *v = n + name_len + 1;
    memcpy(n, name, name_len);
    n[name_len] = '\0';
    memcpy(v, value, value_len);
    v[value_len] = '\0';
    h->name = n;
    h->value = v;
    h->name_len = name_len;
    h->value_len = value_len;
    append(list, h);
}

/* Names and values a plugin builds are checked as the client's are parsed
 * (RFC 9110 5.1, 5.5): a name with a colon or a space, or a value with a
 * control byte, would be written verbatim into the head. */
int gw_headers_add_n(struct gw_headers *list, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    if (!gw_h1_is_token(name, name_len) || !gw_h1_is_field_value(value, value_len)) return -1;
    gw_headers_add_parsed(list, name, name_len, value, value_len);
    return 0;
}

int gw_headers_add(struct gw_headers *list, const char *name, const char *value)
{
    return gw_headers_add_n(list, name, strlen(name), value, strlen(value));
}

int gw_headers_remove(struct gw_headers *list, const char *name)
{
    size_t n = strlen(name);
    int removed = 0;
    struct gw_header **link = &list->first;
    list->tail = &list->first;
    while (*link) {
        struct gw_header *h = *link;
        if (gw_header_is(h, name, n)) {
            *link = h->next;
            removed++;
        } else {
            link = &h->next;
            list->tail = link;
        }
    }
    return removed;
}

int gw_headers_set(struct gw_headers *list, const char *name, const char *value)
{
    /* The old values go even when the new one is refused: a refused
     * credential must not leave the client's own in its place. */
    gw_headers_remove(list, name);
    return gw_headers_add(list, name, value);
}

void gw_headers_clear(struct gw_headers *list)
{
    list->first = NULL;
    list->tail = &list->first;
}

int gw_header_name_valid(const char *name)
{
    return name && *name && gw_h1_is_token(name, strlen(name));
}
