#include <stdint.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "gw_arena.h"
#include "json_alloc.h"

#define TAG_HEAP 0x68656170u
#define TAG_ARENA 0x6172656eu

/* 16 bytes, so the block after it keeps malloc's alignment. */
struct json_block {
    uint32_t tag;
    uint32_t pad[3];
};

static _Thread_local struct gw_arena *current;

static void *json_malloc(size_t n)
{
    struct json_block *b;
    if (current) {
        b = gw_alloc(current, sizeof(*b) + n);
        b->tag = TAG_ARENA;
    } else {
        b = malloc(sizeof(*b) + n);
        if (!b) return NULL;
        b->tag = TAG_HEAP;
    }
    return b + 1;
}

static void json_free(void *p)
{
    if (!p) return;
    struct json_block *b = (struct json_block *)p - 1;
    if (b->tag == TAG_HEAP) free(b); /* arena blocks go with their request */
}

void gw_json_alloc_init(void)
{
    cJSON_Hooks hooks = {json_malloc, json_free};
    cJSON_InitHooks(&hooks);
}

struct gw_arena *gw_json_alloc_enter(struct gw_arena *a)
{
    struct gw_arena *previous = current;
    current = a;
    return previous;
}

void gw_json_alloc_leave(struct gw_arena *previous)
{
    current = previous;
}
