/*
 * gw_arena: a region allocator. Everything a request (or a loaded config)
 * allocates lives in one arena and is released in one call, so no code path
 * has to remember to free individual objects. Outside resources (cJSON trees,
 * curl handles, PCRE2 code) are released by cleanups registered on the arena,
 * run in reverse order of registration before the memory goes.
 */
#ifndef GW_ARENA_H
#define GW_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct gw_arena;

typedef void (*gw_cleanup_fn)(void *data);

/* The first block size whose arenas each thread keeps for reuse: an arena
 * made with it is, most of the time, no malloc at all (requests, scratch). */
#define GW_ARENA_CACHED_BLOCK 8192

/* first_block is a hint for the size of the first block (0: default 4 KiB). */
struct gw_arena *gw_arena_new(size_t first_block);
void gw_arena_free(struct gw_arena *a);

/* Memory is 16-byte aligned and lives until gw_arena_free(). Never NULL:
 * running out of memory aborts the process, as there is no sane recovery. */
void *gw_alloc(struct gw_arena *a, size_t n);
void *gw_calloc(struct gw_arena *a, size_t n);
char *gw_strdup(struct gw_arena *a, const char *s);
char *gw_strndup(struct gw_arena *a, const char *s, size_t n);
void *gw_memdup(struct gw_arena *a, const void *p, size_t n);
char *gw_sprintf(struct gw_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *gw_vsprintf(struct gw_arena *a, const char *fmt, va_list ap);

/* Returns p, or aborts as the arena does when p is NULL: the same rule for
 * what libevent and libc allocate outside an arena, as in
 * `c->out = gw_oom_check(evbuffer_new());`. */
void *gw_oom_check(void *p);

/* Runs fn(data) when the arena is freed. */
void gw_arena_cleanup(struct gw_arena *a, gw_cleanup_fn fn, void *data);

/* Frees the calling thread's cache of reusable arenas (at thread exit). */
void gw_arena_release_cache(void);

/* Bytes handed out so far (for metrics and tests). */
size_t gw_arena_used(const struct gw_arena *a);

#endif
