/* cJSON's allocations during a request come from its arena, outside a
 * request from the heap, and cJSON's free tells them apart (json_alloc.c).
 * Run under ASan, a wrong free or a leak fails this binary. */
#include <string.h>

#include <cjson/cJSON.h>

#include "gw_arena.h"
#include "gw_test.h"
#include "json_alloc.h"

int main(void)
{
    gw_json_alloc_init();

    /* Heap: the arena does not grow, and everything is freed (LSan). */
    struct gw_arena *a = gw_arena_new(1024);
    size_t before = gw_arena_used(a);
    cJSON *heap_tree = cJSON_Parse("{\"a\":[1,2,3],\"b\":\"text\"}");
    CHECK(heap_tree != NULL);
    CHECK_INT((long)gw_arena_used(a), (long)before);

    /* Arena: a parse, a print and a tree built by hand land in it. */
    struct gw_arena *prev = gw_json_alloc_enter(a);
    cJSON *arena_tree = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    CHECK(arena_tree != NULL);
    CHECK(gw_arena_used(a) > before);
    cJSON_AddStringToObject(arena_tree, "model", "m");
    char *printed = cJSON_PrintUnformatted(arena_tree);
    CHECK_STR(printed, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"model\":\"m\"}");
    cJSON_free(printed); /* no-op for arena memory */

    /* A copy of a heap tree made during a hook lives in the arena; deleting
     * the arena tree frees nothing, the heap tree stays intact. */
    cJSON_AddItemToObject(arena_tree, "copy", cJSON_Duplicate(heap_tree, 1));
    cJSON_Delete(arena_tree);
    gw_json_alloc_leave(prev);
    CHECK(gw_json_alloc_enter(NULL) == NULL); /* leave restored the previous (none) */
    gw_json_alloc_leave(NULL);

    char *heap_print = cJSON_PrintUnformatted(heap_tree);
    CHECK_STR(heap_print, "{\"a\":[1,2,3],\"b\":\"text\"}");
    cJSON_free(heap_print);
    cJSON_Delete(heap_tree);
    gw_arena_free(a);
    return gw_test_done("test_json_alloc");
}
