/*
 * Region allocator: a chain of blocks, bump-pointer allocation, and a list
 * of cleanups. Big requests get a block of their own so that one large body
 * does not waste the rest of a small block.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_arena.h"

#define GW_ARENA_ALIGN 16
#define GW_ARENA_DEFAULT 4096

struct arena_block {
    struct arena_block *next;
    size_t size, used;
    _Alignas(GW_ARENA_ALIGN) unsigned char data[];
};

struct arena_cleanup {
    struct arena_cleanup *next;
    gw_cleanup_fn fn;
    void *data;
};

struct gw_arena {
    struct arena_block *head;
    struct arena_cleanup *cleanups;
    size_t block_size;
    size_t used;
};

static _Noreturn void out_of_memory(void)
{
    fputs("sluice: out of memory\n", stderr);
    abort();
}

void *gw_oom_check(void *p)
{
    if (!p) out_of_memory();
    return p;
}

static void *xmalloc(size_t n)
{
    return gw_oom_check(malloc(n));
}

static struct arena_block *block_new(size_t size)
{
    /* A size near SIZE_MAX would wrap to a small block. */
    if (size > SIZE_MAX - sizeof(struct arena_block)) out_of_memory();
    struct arena_block *b = xmalloc(sizeof(*b) + size);
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

/*
 * Each thread keeps a few arenas of the common first-block size for reuse:
 * a request's arena is then no malloc/free pair at all, and glibc does not
 * churn (perf showed malloc_consolidate on the proxy path).
 */
#define ARENA_CACHE 64
static _Thread_local struct gw_arena *arena_cache[ARENA_CACHE];
static _Thread_local int arena_cached;

struct gw_arena *gw_arena_new(size_t first_block)
{
    size_t size = first_block ? first_block : GW_ARENA_DEFAULT;
    if (size == GW_ARENA_CACHED_BLOCK && arena_cached > 0) {
        struct gw_arena *a = arena_cache[--arena_cached];
        a->block_size = size;
        a->head->used = 0;
        a->cleanups = NULL;
        a->used = 0;
        return a;
    }
    struct gw_arena *a = xmalloc(sizeof(*a));
    a->block_size = size;
    a->head = block_new(a->block_size);
    a->cleanups = NULL;
    a->used = 0;
    return a;
}

void gw_arena_free(struct gw_arena *a)
{
    if (!a) return;
    for (struct arena_cleanup *c = a->cleanups; c; c = c->next)
        c->fn(c->data);
    /* Keep the first block (the last in the chain) for the cache. */
    struct arena_block *first = a->head;
    while (first->next)
        first = first->next;
    if (first->size == GW_ARENA_CACHED_BLOCK && arena_cached < ARENA_CACHE) {
        struct arena_block *b = a->head;
        while (b != first) {
            struct arena_block *next = b->next;
            free(b);
            b = next;
        }
        a->head = first;
        arena_cache[arena_cached++] = a;
        return;
    }
    struct arena_block *b = a->head;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void *gw_alloc(struct gw_arena *a, size_t n)
{
    /* Rounding up a size near SIZE_MAX would wrap to a small one. */
    if (n > SIZE_MAX - (GW_ARENA_ALIGN - 1)) out_of_memory();
    size_t need = (n + GW_ARENA_ALIGN - 1) & ~(size_t)(GW_ARENA_ALIGN - 1);
    if (need == 0) need = GW_ARENA_ALIGN;
    struct arena_block *b = a->head;
    if (b->size - b->used < need) {
        if (need > a->block_size / 4) {
            /* Large: its own block, behind the current one so the current
             * block's free space stays usable. */
            struct arena_block *big = block_new(need);
            big->used = need;
            big->next = b->next;
            b->next = big;
            a->used += need;
            return big->data;
        }
        if (a->block_size < 64 * 1024) a->block_size *= 2;
        b = block_new(a->block_size);
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->used += need;
    return p;
}

void *gw_calloc(struct gw_arena *a, size_t n)
{
    void *p = gw_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *gw_strndup(struct gw_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX) out_of_memory(); /* n + 1 would wrap */
    char *p = gw_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *gw_strdup(struct gw_arena *a, const char *s)
{
    return s ? gw_strndup(a, s, strlen(s)) : NULL;
}

void *gw_memdup(struct gw_arena *a, const void *p, size_t n)
{
    void *q = gw_alloc(a, n);
    memcpy(q, p, n);
    return q;
}

char *gw_vsprintf(struct gw_arena *a, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) n = 0;
    char *p = gw_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *gw_sprintf(struct gw_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = gw_vsprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

void gw_arena_cleanup(struct gw_arena *a, gw_cleanup_fn fn, void *data)
{
    struct arena_cleanup *c = gw_alloc(a, sizeof(*c));
    c->fn = fn;
    c->data = data;
    c->next = a->cleanups;
    a->cleanups = c;
}

size_t gw_arena_used(const struct gw_arena *a)
{
    return a->used;
}

void gw_arena_release_cache(void)
{
    while (arena_cached > 0) {
        struct gw_arena *a = arena_cache[--arena_cached];
        free(a->head);
        free(a);
    }
}
