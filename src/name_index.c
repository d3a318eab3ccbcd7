#include <string.h>

#include "gw_arena.h"
#include "gw_num_text.h"
#include "name_index.h"

static size_t slot(const struct gw_name_index *ix, const char *name)
{
    size_t i = (size_t)gw_hash_bytes(name, strlen(name)) & (ix->cap - 1);
    while (ix->keys[i] && strcmp(ix->keys[i], name) != 0)
        i = (i + 1) & (ix->cap - 1);
    return i;
}

void *gw_name_find(const struct gw_name_index *ix, const char *name)
{
    if (!ix->cap || !name) return NULL;
    return ix->vals[slot(ix, name)];
}

void gw_name_add(struct gw_arena *a, struct gw_name_index *ix, const char *name, void *val)
{
    if (!name) return;
    if (2 * (ix->n + 1) > ix->cap) {
        struct gw_name_index old = *ix;
        ix->cap = old.cap ? old.cap * 2 : 64;
        ix->keys = gw_calloc(a, ix->cap * sizeof(*ix->keys));
        ix->vals = gw_calloc(a, ix->cap * sizeof(*ix->vals));
        ix->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.keys[i]) gw_name_add(a, ix, old.keys[i], old.vals[i]);
    }
    size_t i = slot(ix, name);
    if (ix->keys[i]) return; /* the first of a name stays */
    ix->keys[i] = name;
    ix->vals[i] = val;
    ix->n++;
}
