/*
 * libFuzzer driver for dot-segment resolution (src/path_dots.c), which
 * decides which route, plugins and upstream path a request gets. The
 * result is compared with a second, deliberately naive implementation of
 * RFC 3986 §5.2.4 (a stack of segments), and must be a fixed point: an
 * already resolved path comes back as the very same pointer.
 */
#include <stdint.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "gw_arena.h"
#include "path_dots.h"

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

static int is_dot(const char *s, size_t n, int want)
{
    int count = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '.') {
            i++;
        } else if (i + 3 <= n && s[i] == '%' && s[i + 1] == '2' &&
                   (s[i + 2] == 'e' || s[i + 2] == 'E')) {
            i += 3;
        } else {
            return 0;
        }
        count++;
    }
    return count == want;
}

/* Returns 0 when a ".." climbs above the root; out gets the path. */
static int reference(const char *in, char *out)
{
    const char *seg[4096];
    size_t len[4096], n = 0;
    const char *p = in + 1;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        int last = !e;
        if (is_dot(p, l, 1)) {
            if (last) seg[n] = "", len[n++] = 0;
        } else if (is_dot(p, l, 2)) {
            if (!n) return 0;
            n--;
            if (last) seg[n] = "", len[n++] = 0;
        } else {
            seg[n] = p, len[n++] = l;
        }
        if (last) break;
        p = e + 1;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        out[o++] = '/';
        memcpy(out + o, seg[i], len[i]);
        o += len[i];
    }
    if (!o) out[o++] = '/';
    out[o] = '\0';
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4000) return 0;
    char *in = malloc(size + 2);
    char *want = malloc(size + 3);
    REQUIRE(in && want);
    in[0] = '/';
    size_t n = 1;
    for (size_t i = 0; i < size && data[i]; i++)
        in[n++] = (char)data[i];
    in[n] = '\0';

    struct gw_arena *a = gw_arena_new(1024);
    const char *got = gw_path_remove_dots(a, in);
    int ok = reference(in, want);
    REQUIRE(ok == (got != NULL));
    if (got) {
        REQUIRE(strcmp(got, want) == 0);
        REQUIRE(got[0] == '/');
        REQUIRE(gw_path_remove_dots(a, got) == got);  /* resolved: nothing left to do */
        if (strcmp(got, in) == 0) REQUIRE(got == in); /* no copy when nothing changes */
    }

    /* Kong's normalisation: its result is a fixed point (normalising it
     * again changes nothing), has no "//", no %XX of an unreserved
     * character (the upstream would decode it: a route bypass) and no
     * lowercase hex in an escape. */
    const char *why = NULL;
    const char *norm = gw_path_normalize(a, in, &why);
    REQUIRE(norm || why);
    if (norm) {
        REQUIRE(norm[0] == '/');
        const char *again = gw_path_normalize(a, norm, &why);
        REQUIRE(again && strcmp(again, norm) == 0);
        REQUIRE(!strstr(norm, "//"));
        for (const char *p = strchr(norm, '%'); p; p = strchr(p + 1, '%')) {
            if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2])) continue;
            REQUIRE(!islower((unsigned char)p[1]) && !islower((unsigned char)p[2]));
            unsigned v = (unsigned)strtoul((char[]){p[1], p[2], 0}, NULL, 16);
            REQUIRE(!(isalnum((int)v) || v == '-' || v == '.' || v == '_' || v == '~'));
        }
    }
    gw_arena_free(a);
    free(in);
    free(want);
    return 0;
}
