/*
 * cJSON's memory during a request comes from the request's arena.
 *
 * Parsing a body, building a provider request, parsing a reply: callgrind
 * counted about a hundred malloc/free pairs a request on the ai-proxy path,
 * all of them cJSON's. While a plugin hook runs, the core points cJSON at
 * the request's arena; a tree then dies with the request, and cJSON_Delete
 * on it frees nothing. Outside hooks (config load, admin) cJSON uses the
 * heap as usual. Each block carries a small tag so that cJSON's free knows
 * which is which, whatever mix a tree ends up with.
 *
 * Rule for plugins: a cJSON tree made during a request must not outlive it.
 */
#ifndef GW_JSON_ALLOC_H
#define GW_JSON_ALLOC_H

struct gw_arena;

/* Once, at start, before any cJSON allocation (main). */
void gw_json_alloc_init(void);
/* Makes a the arena of this thread's cJSON allocations (NULL: the heap);
 * returns the previous one, for gw_json_alloc_leave. */
struct gw_arena *gw_json_alloc_enter(struct gw_arena *a);
void gw_json_alloc_leave(struct gw_arena *previous);

#endif
