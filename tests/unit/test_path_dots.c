/*
 * Dot segments of request paths (src/path_dots.c): RFC 3986 §5.2.4 on the
 * path, %2e spellings included, NULL above the root, and the common path
 * returned as it is (no copy); and Kong's normalisation before routing
 * (unreserved characters decoded, encodings in capitals, slashes merged).
 */
#include "gw_test.h"
#include "gw_arena.h"
#include "path_dots.h"

static struct gw_arena *a;

static const char *norm(const char *p)
{
    const char *out = gw_path_remove_dots(a, p);
    return out ? out : "(above root)";
}

int main(void)
{
    a = gw_arena_new(4096);
    /* Nothing to do: the very same pointer. */
    const char *plain = "/v1/chat/completions";
    CHECK(gw_path_remove_dots(a, plain) == plain);
    const char *dotted_names = "/a.b/.well-known/x..y/..z/%2ex";
    CHECK(gw_path_remove_dots(a, dotted_names) == dotted_names);
    CHECK_STR(norm("/a.b/.well-known/x..y/..z/%2ex"), "/a.b/.well-known/x..y/..z/%2ex");

    CHECK_STR(norm("/a/./b/../c"), "/a/c");
    CHECK_STR(norm("/public/../admin"), "/admin");
    CHECK_STR(norm("/a/b/.."), "/a/");
    CHECK_STR(norm("/a/b/."), "/a/b/");
    CHECK_STR(norm("/a/.."), "/");
    CHECK_STR(norm("/."), "/");
    CHECK_STR(norm("/./"), "/");
    CHECK_STR(norm("/a/./"), "/a/");
    CHECK_STR(norm("/a//../b"), "/a/b");
    CHECK_STR(norm("//a/./b"), "//a/b");
    /* Encoded dots are dots, in any case and any mix. */
    CHECK_STR(norm("/public/%2e%2e/admin"), "/admin");
    CHECK_STR(norm("/public/%2E%2E/admin"), "/admin");
    CHECK_STR(norm("/public/.%2e/admin"), "/admin");
    CHECK_STR(norm("/public/%2e./admin"), "/admin");
    CHECK_STR(norm("/a/%2e/b"), "/a/b");
    /* Three dots, or a dot with something else, are names. */
    CHECK_STR(norm("/a/.../b"), "/a/.../b");
    CHECK_STR(norm("/a/%2e%2e%2e/b"), "/a/%2e%2e%2e/b");
    CHECK_STR(norm("/a/%2f../b"), "/a/%2f../b");
    CHECK_STR(norm("/a/%2/b"), "/a/%2/b");
    /* Above the root. */
    CHECK_STR(norm("/.."), "(above root)");
    CHECK_STR(norm("/../x"), "(above root)");
    CHECK_STR(norm("/a/../../x"), "(above root)");
    CHECK_STR(norm("/%2e%2e/etc/passwd"), "(above root)");
    /* Not an origin-form path: left alone. */
    CHECK_STR(norm("*"), "*");

    /* Kong's normalisation, what the router is given. */
    const char *why = NULL;
#define gw_path_normalize(a, p) gw_path_normalize(a, p, &why)
    const char *clean = "/v1/chat/completions";
    CHECK(gw_path_normalize(a, clean) == clean);
    CHECK_STR(gw_path_normalize(a, "/%61dmin/x"), "/admin/x");
    CHECK_STR(gw_path_normalize(a, "/adm%69n"), "/admin");
    CHECK_STR(gw_path_normalize(a, "/%41%7a%30-%2E_%7E"), "/Az0-._~");
    CHECK_STR(gw_path_normalize(a, "//admin//x///"), "/admin/x/");
    CHECK_STR(gw_path_normalize(a, "/a/%2fb/%3f%20"), "/a/%2Fb/%3F%20");
    /* A '%' that is no escape is refused: it could pair with decoded text. */
    CHECK(gw_path_normalize(a, "/a/%2/b") == NULL);
    CHECK_STR(why, "The request path has a '%' that is not a %XX escape");
    CHECK(gw_path_normalize(a, "/a/%zz") == NULL);
    CHECK(gw_path_normalize(a, "/a/b%") == NULL);
    CHECK(gw_path_normalize(a, "/%%361dmin") == NULL); /* would make /%61dmin */
    CHECK_STR(gw_path_normalize(a, "/public/%2e%2E/admin"), "/admin");
    CHECK_STR(gw_path_normalize(a, "/a//..//b"), "/b");
    CHECK(gw_path_normalize(a, "//%2e%2e//x") == NULL);
    CHECK_STR(why, "The request path climbs above the root ('..')");
    CHECK_STR(gw_path_normalize(a, "*"), "*");
    gw_arena_free(a);
    return gw_test_done("path_dots");
}
