/* The request/config arena: alignment, growth, large blocks, cleanups. */
#include <stdint.h>

#include "gw_arena.h"
#include "gw_test.h"

static int order[8], n_order;
static void record_cb(void *data)
{
    order[n_order++] = (int)(intptr_t)data;
}

int main(void)
{
    struct gw_arena *a = gw_arena_new(256);
    /* Alignment of every allocation, whatever the sizes before it. */
    for (size_t n = 1; n < 200; n += 7) {
        void *p = gw_alloc(a, n);
        CHECK(((uintptr_t)p & 15) == 0);
        memset(p, 0xAB, n); /* ASan would catch an overflow into a neighbour */
    }
    /* Growth past the first block, and a block of its own for big requests. */
    char *big = gw_alloc(a, 100000);
    memset(big, 1, 100000);
    char *after = gw_alloc(a, 16);
    CHECK(after != NULL);
    CHECK(gw_arena_used(a) >= 100000);

    int *z = gw_calloc(a, 64 * sizeof(int));
    int zero = 1;
    for (int i = 0; i < 64; i++)
        zero &= z[i] == 0;
    CHECK(zero);

    CHECK_STR(gw_strdup(a, "hello"), "hello");
    CHECK_STR(gw_strndup(a, "hello world", 5), "hello");
    CHECK(gw_strdup(a, NULL) == NULL);
    CHECK_STR(gw_sprintf(a, "%s-%d", "x", 42), "x-42");
    char longfmt[3000];
    memset(longfmt, 'q', sizeof(longfmt) - 1);
    longfmt[sizeof(longfmt) - 1] = '\0';
    CHECK_INT(strlen(gw_sprintf(a, "%s!", longfmt)), sizeof(longfmt));
    const char bytes[4] = {1, 0, 2, 0};
    CHECK(memcmp(gw_memdup(a, bytes, 4), bytes, 4) == 0);

    /* Cleanups run once each, newest first, when the arena goes. */
    gw_arena_cleanup(a, record_cb, (void *)(intptr_t)1);
    gw_arena_cleanup(a, record_cb, (void *)(intptr_t)2);
    gw_arena_cleanup(a, record_cb, (void *)(intptr_t)3);
    CHECK_INT(n_order, 0);
    gw_arena_free(a);
    CHECK_INT(n_order, 3);
    CHECK_INT(order[0], 3);
    CHECK_INT(order[1], 2);
    CHECK_INT(order[2], 1);

    gw_arena_free(NULL); /* harmless */
    return gw_test_done("test_arena");
}
