/* gw_headers_add refuses what would garble the head it is written into:
 * a name that is not a token, a value with a control byte. */
#include "gw_arena.h"
#include "gw_headers.h"
#include "gw_test.h"

int main(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_headers l;
    gw_headers_init(&l, a);
    CHECK_INT(gw_headers_add(&l, "X: y", "1"), -1);
    CHECK_INT(gw_headers_add(&l, "X Y", "1"), -1);
    CHECK_INT(gw_headers_add(&l, "X-Tab\t", "1"), -1);
    CHECK_INT(gw_headers_add(&l, "(x)", "1"), -1);
    CHECK_INT(gw_headers_add(&l, "X-\x80", "1"), -1);
    CHECK_INT(gw_headers_add(&l, "X-Bell", "a\x07z"), -1);
    CHECK_INT(gw_headers_add(&l, "X-Del", "a\x7fz"), -1);
    CHECK_INT(gw_headers_set(&l, "X Y", "1"), -1);
    CHECK(l.first == NULL);

    /* What HTTP allows still goes in: tchars, HTAB, SP, obs-text, empty. */
    CHECK_INT(gw_headers_add(&l, "X-Ok_1.2~!#$%&'*+^`|", "a b\tc \xc3\xa9"), 0);
    CHECK_INT(gw_headers_add(&l, "X-Empty", ""), 0);
    CHECK_STR(gw_headers_get(&l, "x-empty"), "");
    CHECK_STR(gw_headers_get(&l, "X-Ok_1.2~!#$%&'*+^`|"), "a b\tc \xc3\xa9");
    gw_arena_free(a);
    return gw_test_done("test_headers_checks");
}
