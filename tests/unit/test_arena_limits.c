/* The arena's limits: a size that cannot be allocated aborts (it used to
 * wrap to a small block), gw_oom_check, and the per-thread cache of
 * GW_ARENA_CACHED_BLOCK arenas. The aborts run in a forked child, so the
 * test binary itself goes on. */
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw_arena.h"
#include "gw_test.h"

enum { ALLOC, ALLOC_BIG_BLOCK, STRNDUP, OOM_CHECK };

/* Whether the operation ends the child with SIGABRT. */
static int aborts(int what)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* "sluice: out of memory" is expected: keep it out of the log. */
        if (!freopen("/dev/null", "w", stderr)) _exit(3);
        struct gw_arena *a = gw_arena_new(256);
        void *p = NULL;
        switch (what) {
        case ALLOC:
            p = gw_alloc(a, SIZE_MAX);
            break;
        case ALLOC_BIG_BLOCK:
            p = gw_alloc(a, SIZE_MAX - 16); /* rounds to SIZE_MAX - 15: a block of its own */
            break;
        case STRNDUP:
            p = gw_strndup(a, "x", SIZE_MAX);
            break;
        case OOM_CHECK:
            p = gw_oom_check(NULL);
            break;
        }
        _exit(p ? 0 : 2);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

int main(void)
{
    CHECK_INT(aborts(ALLOC), 1);
    CHECK_INT(aborts(ALLOC_BIG_BLOCK), 1);
    CHECK_INT(aborts(STRNDUP), 1);
    CHECK_INT(aborts(OOM_CHECK), 1);

    int x;
    CHECK(gw_oom_check(&x) == &x);

    /* An arena of the cached size comes back from the thread's cache. */
    struct gw_arena *a = gw_arena_new(GW_ARENA_CACHED_BLOCK);
    gw_alloc(a, 100);
    gw_arena_free(a);
    struct gw_arena *b = gw_arena_new(GW_ARENA_CACHED_BLOCK);
    CHECK(b == a);
    CHECK_INT(gw_arena_used(b), 0);
    gw_arena_free(b);
    gw_arena_release_cache();
    return gw_test_done("test_arena_limits");
}
