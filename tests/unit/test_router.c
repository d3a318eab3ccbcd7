/*
 * Router tests: Kong's traditional_compatible precedence, criteria, strip
 * lengths and the edge cases of paths. Routes are built by hand the way the
 * loader leaves them (derived paths/hosts, regexes compiled and JIT'ed).
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>

#include <sys/queue.h>

#include <event2/http.h>

#include "config.h"
#include "gw_arena.h"
#include "gw_headers.h"
#include "gw_test.h"
#include "router.h"

#define MAX_ROUTES 512

struct fixture {
    struct gw_arena *arena;
    struct gw_config cfg;
    struct gw_route *routes[MAX_ROUTES];
    uint32_t regex_options; /* PCRE2_ANCHORED, as the loader compiles them */
};

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->arena = gw_arena_new(0);
    f->cfg.arena = f->arena;
    f->cfg.routes = f->routes;
    f->regex_options = PCRE2_ANCHORED;
}

static void fixture_free(struct fixture *f)
{
    gw_arena_free(f->arena);
}

static struct gw_route *add_route(struct fixture *f, const char *name)
{
    struct gw_route *r = gw_calloc(f->arena, sizeof(*r));
    r->name = gw_strdup(f->arena, name);
    r->index = f->cfg.n_routes;
    f->routes[f->cfg.n_routes++] = r;
    return r;
}

static void code_free_cb(void *p)
{
    pcre2_code_free(p);
}

/* Paths as written in kong.yml: a leading '~' makes a regex. */
static void set_paths(struct fixture *f, struct gw_route *r, ...)
{
    va_list ap;
    const char *p;
    r->paths = gw_calloc(f->arena, 16 * sizeof(*r->paths));
    va_start(ap, r);
    while ((p = va_arg(ap, const char *))) {
        struct gw_route_path *rp = &r->paths[r->n_paths++];
        rp->is_regex = p[0] == '~';
        rp->path = gw_strdup(f->arena, rp->is_regex ? p + 1 : p);
        rp->len = strlen(rp->path);
        if (rp->is_regex) {
            int err;
            PCRE2_SIZE off;
            pcre2_code *re = pcre2_compile((PCRE2_SPTR)rp->path, PCRE2_ZERO_TERMINATED,
                                           f->regex_options, &err, &off, NULL);
            if (!re) {
                fprintf(stderr, "bad test regex %s\n", rp->path);
                abort();
            }
            pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
            gw_arena_cleanup(f->arena, code_free_cb, re);
            rp->regex = re;
        }
    }
    va_end(ap);
}

static void set_hosts(struct fixture *f, struct gw_route *r, ...)
{
    va_list ap;
    const char *h;
    r->hosts = gw_calloc(f->arena, 16 * sizeof(*r->hosts));
    va_start(ap, r);
    while ((h = va_arg(ap, const char *))) {
        struct gw_route_host *rh = &r->hosts[r->n_hosts++];
        size_t n = strlen(h);
        rh->host = gw_strdup(f->arena, h);
        rh->len = n;
        rh->wildcard = h[0] == '*' ? -1 : (n && h[n - 1] == '*') ? 1 : 0;
    }
    va_end(ap);
}

static void set_methods(struct fixture *f, struct gw_route *r, ...)
{
    va_list ap;
    const char *m;
    r->methods.v = gw_calloc(f->arena, 16 * sizeof(char *));
    va_start(ap, r);
    while ((m = va_arg(ap, const char *)))
        r->methods.v[r->methods.n++] = m;
    va_end(ap);
}

/* Adds one header criterion (lowercased name) with its accepted values. */
static void add_header(struct fixture *f, struct gw_route *r, const char *name, ...)
{
    struct gw_string_map *hm = &r->headers;
    const char **keys = gw_calloc(f->arena, (hm->n + 1) * sizeof(*keys));
    struct gw_strings *vals = gw_calloc(f->arena, (hm->n + 1) * sizeof(*vals));
    if (hm->n) {
        memcpy(keys, hm->keys, hm->n * sizeof(*keys));
        memcpy(vals, hm->values, hm->n * sizeof(*vals));
    }
    keys[hm->n] = name;
    struct gw_strings *s = &vals[hm->n];
    s->v = gw_calloc(f->arena, 16 * sizeof(char *));
    va_list ap;
    const char *v;
    va_start(ap, name);
    while ((v = va_arg(ap, const char *)))
        s->v[s->n++] = v;
    va_end(ap);
    hm->keys = keys;
    hm->values = vals;
    hm->n++;
}

static struct gw_router *build(struct fixture *f)
{
    return gw_router_build(&f->cfg, f->arena);
}

/* Name of the route that matches, or "-" for none; *strip gets strip_len. */
static const char *match_h(const struct gw_router *rt, const char *method, const char *host,
                           const char *path, const struct gw_headers *headers, size_t *strip)
{
    struct gw_route_match m = {0};
    if (gw_router_match(rt, method, host, path, headers, &m) != 0) return "-";
    if (strip) *strip = m.strip_len;
    return m.route->name;
}

static const char *match(const struct gw_router *rt, const char *method, const char *host,
                         const char *path, size_t *strip)
{
    return match_h(rt, method, host, path, NULL, strip);
}

static void test_longest_prefix(void)
{
    struct fixture f;
    fixture_init(&f);
    set_paths(&f, add_route(&f, "api"), "/api", NULL);
    set_paths(&f, add_route(&f, "api-v1"), "/api/v1", NULL);
    set_paths(&f, add_route(&f, "root"), "/", NULL);
    struct gw_router *rt = build(&f);
    size_t strip = 99;

    CHECK_STR(match(rt, "GET", "", "/api/v1/chat", &strip), "api-v1");
    CHECK_INT(strip, 7);
    CHECK_STR(match(rt, "GET", "", "/api/v2/chat", &strip), "api");
    CHECK_INT(strip, 4);
    CHECK_STR(match(rt, "GET", "", "/other", &strip), "root");
    CHECK_INT(strip, 1);
    CHECK_INT(gw_router_route_count(rt), 3);
    fixture_free(&f);
}

/* Kong: at equal weight/hosts/headers a regex path outranks every prefix
 * path, whatever the prefix length; regex_priority orders regexes only. */
static void test_regex_vs_prefix(void)
{
    struct fixture f;
    fixture_init(&f);
    set_paths(&f, add_route(&f, "plain-long"), "/api/v1/chat/completions", NULL);
    struct gw_route *lo = add_route(&f, "regex-lo");
    set_paths(&f, lo, "~/api/v\\d+/.*", NULL);
    struct gw_route *hi = add_route(&f, "regex-hi");
    set_paths(&f, hi, "~/api/v1/chat", NULL);
    hi->regex_priority = 10;
    struct gw_route *neg = add_route(&f, "regex-neg");
    set_paths(&f, neg, "~/api/v2/x", NULL);
    neg->regex_priority = -5;
    struct gw_router *rt = build(&f);
    size_t strip = 0;

    CHECK_STR(match(rt, "GET", "", "/api/v1/chat/completions", &strip), "regex-hi");
    CHECK_INT(strip, 12);
    CHECK_STR(match(rt, "GET", "", "/api/v1/embeddings", &strip), "regex-lo");
    CHECK_INT(strip, 18); /* the whole match: .* runs to the end */
    /* A negative regex_priority ranks below the default 0. */
    CHECK_STR(match(rt, "GET", "", "/api/v2/x", NULL), "regex-lo");
    CHECK_STR(match(rt, "GET", "", "/api/v3", NULL), "-");
    fixture_free(&f);

    /* regex_priority does not reorder prefix paths. */
    fixture_init(&f);
    struct gw_route *shortp = add_route(&f, "short");
    set_paths(&f, shortp, "/a", NULL);
    shortp->regex_priority = 100;
    set_paths(&f, add_route(&f, "long"), "/a/b", NULL);
    rt = build(&f);
    CHECK_STR(match(rt, "GET", "", "/a/b/c", NULL), "long");
    fixture_free(&f);

    /* Equal regex priority: config order. */
    fixture_init(&f);
    set_paths(&f, add_route(&f, "first"), "~/x/.*", NULL);
    set_paths(&f, add_route(&f, "second"), "~/x/y", NULL);
    rt = build(&f);
    CHECK_STR(match(rt, "GET", "", "/x/y", NULL), "first");
    fixture_free(&f);
}

/* More criteria categories set wins over a longer path. */
static void test_host_specific_beats_hostless(void)
{
    struct fixture f;
    fixture_init(&f);
    set_paths(&f, add_route(&f, "any-host"), "/v1/chat", NULL);
    struct gw_route *r = add_route(&f, "with-host");
    set_paths(&f, r, "/", NULL);
    set_hosts(&f, r, "api.example.com", NULL);
    struct gw_router *rt = build(&f);

    CHECK_STR(match(rt, "GET", "api.example.com", "/v1/chat", NULL), "with-host");
    CHECK_STR(match(rt, "GET", "other.example.com", "/v1/chat", NULL), "any-host");
    CHECK_STR(match(rt, "GET", "", "/v1/chat", NULL), "any-host");
    CHECK_STR(match(rt, "GET", "other.example.com", "/v2", NULL), "-");
    fixture_free(&f);
}

static void test_plain_beats_wildcard(void)
{
    struct fixture f;
    fixture_init(&f);
    struct gw_route *w = add_route(&f, "wild");
    set_paths(&f, w, "/api/v1", NULL); /* longer path does not help it */
    set_hosts(&f, w, "*.example.com", NULL);
    struct gw_route *p = add_route(&f, "plain");
    set_paths(&f, p, "/api", NULL);
    set_hosts(&f, p, "api.example.com", NULL);
    struct gw_router *rt = build(&f);

    CHECK_STR(match(rt, "GET", "api.example.com", "/api/v1/x", NULL), "plain");
    CHECK_STR(match(rt, "GET", "www.example.com", "/api/v1/x", NULL), "wild");
    fixture_free(&f);

    /* A route with one plain and one wildcard host is not "plain only". */
    fixture_init(&f);
    struct gw_route *mixed = add_route(&f, "mixed");
    set_paths(&f, mixed, "/", NULL);
    set_hosts(&f, mixed, "api.example.com", "*.example.org", NULL);
    struct gw_route *plain = add_route(&f, "plain");
    set_paths(&f, plain, "/", NULL);
    set_hosts(&f, plain, "api.example.com", NULL);
    rt = build(&f);
    CHECK_STR(match(rt, "GET", "api.example.com", "/", NULL), "plain");
    CHECK_STR(match(rt, "GET", "x.example.org", "/", NULL), "mixed");
    fixture_free(&f);

    /* Kong's PLAIN_HOST_ONLY bit also ranks a plain-host route above a
     * methods route of equal weight, even with a shorter path. */
    fixture_init(&f);
    struct gw_route *m = add_route(&f, "methods");
    set_paths(&f, m, "/long/path", NULL);
    set_methods(&f, m, "GET", NULL);
    struct gw_route *h = add_route(&f, "host");
    set_paths(&f, h, "/", NULL);
    set_hosts(&f, h, "h.test", NULL);
    rt = build(&f);
    CHECK_STR(match(rt, "GET", "h.test", "/long/path", NULL), "host");
    CHECK_STR(match(rt, "GET", "other.test", "/long/path", NULL), "methods");
    fixture_free(&f);
}

static void test_wildcard_hosts(void)
{
    struct fixture f;
    fixture_init(&f);
    set_hosts(&f, add_route(&f, "leading"), "*.example.com", NULL);
    set_hosts(&f, add_route(&f, "trailing"), "example.*", NULL);
    struct gw_router *rt = build(&f);

    CHECK_STR(match(rt, "GET", "a.example.com", "/", NULL), "leading");
    CHECK_STR(match(rt, "GET", "a.b.example.com", "/x", NULL), "leading");
    CHECK_STR(match(rt, "GET", "A.Example.COM", "/x", NULL), "leading");
    CHECK_STR(match(rt, "GET", "badexample.com", "/", NULL), "-");
    CHECK_STR(match(rt, "GET", "example.com", "/", NULL), "trailing");
    CHECK_STR(match(rt, "GET", "example.co.uk", "/", NULL), "trailing");
    CHECK_STR(match(rt, "GET", "example", "/", NULL), "-");
    CHECK_STR(match(rt, "GET", "www.example.org", "/", NULL), "-");
    CHECK_STR(match(rt, "GET", "examples.com", "/", NULL), "-");
    CHECK_STR(match(rt, "GET", "", "/", NULL), "-");
    CHECK_STR(match(rt, "GET", NULL, "/", NULL), "-");
    fixture_free(&f);

    /* The loader may store wildcard hosts without the '*'. */
    fixture_init(&f);
    struct gw_route *a = add_route(&f, "suffix");
    set_hosts(&f, a, "x", NULL);
    a->hosts[0] = (struct gw_route_host){.host = "example.com", .len = 11, .wildcard = -1};
    struct gw_route *b = add_route(&f, "prefix");
    set_hosts(&f, b, "x", NULL);
    b->hosts[0] = (struct gw_route_host){.host = "example", .len = 7, .wildcard = 1};
    rt = build(&f);
    CHECK_STR(match(rt, "GET", "a.example.com", "/", NULL), "suffix");
    CHECK_STR(match(rt, "GET", "aexample.com", "/", NULL), "-");
    CHECK_STR(match(rt, "GET", "example.net", "/", NULL), "prefix");
    CHECK_STR(match(rt, "GET", "examplenet", "/", NULL), "-");
    fixture_free(&f);
}

static void test_methods(void)
{
    struct fixture f;
    fixture_init(&f);
    struct gw_route *post = add_route(&f, "post");
    set_paths(&f, post, "/chat", NULL);
    set_methods(&f, post, "POST", "PUT", NULL);
    set_paths(&f, add_route(&f, "any"), "/chat", NULL);
    struct gw_route *only_get = add_route(&f, "get-only");
    set_paths(&f, only_get, "/models", NULL);
    set_methods(&f, only_get, "GET", NULL);
    struct gw_router *rt = build(&f);

    CHECK_STR(match(rt, "POST", "", "/chat", NULL), "post");
    CHECK_STR(match(rt, "PUT", "", "/chat", NULL), "post");
    CHECK_STR(match(rt, "GET", "", "/chat", NULL), "any");
    CHECK_STR(match(rt, "GET", "", "/models", NULL), "get-only");
    CHECK_STR(match(rt, "DELETE", "", "/models", NULL), "-");
    CHECK_STR(match(rt, NULL, "", "/models", NULL), "-");
    fixture_free(&f);
}

static void test_headers(void)
{
    struct fixture f;
    fixture_init(&f);
    struct gw_route *two = add_route(&f, "two-headers");
    set_paths(&f, two, "/", NULL);
    add_header(&f, two, "x-tenant", "acme", NULL);
    add_header(&f, two, "x-tier", "gold", NULL);
    struct gw_route *one = add_route(&f, "one-header");
    set_paths(&f, one, "/", NULL);
    add_header(&f, one, "x-tenant", "acme", "globex", NULL);
    struct gw_route *re = add_route(&f, "regex-header");
    set_paths(&f, re, "/", NULL);
    add_header(&f, re, "x-model", "~*^gpt-4", NULL);
    struct gw_route *us = add_route(&f, "underscore");
    set_paths(&f, us, "/", NULL);
    add_header(&f, us, "x_team", "blue", NULL);
    set_paths(&f, add_route(&f, "none"), "/v1", NULL);
    struct gw_router *rt = build(&f);

    struct gw_headers h;
    gw_headers_init(&h, f.arena);
    CHECK_STR(match_h(rt, "GET", "", "/v1/x", &h, NULL), "none");
    CHECK_STR(match_h(rt, "GET", "", "/v1/x", NULL, NULL), "none");

    gw_headers_add(&h, "X-Tenant", "ACME");
    CHECK_STR(match_h(rt, "GET", "", "/v1/x", &h, NULL), "one-header");
    gw_headers_add(&h, "X-Tier", "silver");
    CHECK_STR(match_h(rt, "GET", "", "/v1/x", &h, NULL), "one-header");
    gw_headers_add(&h, "X-Tier", "Gold"); /* a repeated header: any instance */
    CHECK_STR(match_h(rt, "GET", "", "/v1/x", &h, NULL), "two-headers");
    gw_headers_clear(&h);

    gw_headers_add(&h, "x-tenant", "initech");
    CHECK_STR(match_h(rt, "GET", "", "/", &h, NULL), "-");
    CHECK_STR(match_h(rt, "GET", "", "/v1", &h, NULL), "none");
    gw_headers_clear(&h);

    gw_headers_add(&h, "X-Model", "GPT-4o-mini");
    CHECK_STR(match_h(rt, "GET", "", "/", &h, NULL), "regex-header");
    gw_headers_clear(&h);
    gw_headers_add(&h, "X-Model", "claude gpt-4");
    CHECK_STR(match_h(rt, "GET", "", "/", &h, NULL), "-");
    gw_headers_clear(&h);

    gw_headers_add(&h, "X-Team", "BLUE");
    CHECK_STR(match_h(rt, "GET", "", "/", &h, NULL), "underscore");
    gw_headers_clear(&h);
    fixture_free(&f);
}

static void test_config_order_ties(void)
{
    struct fixture f;
    fixture_init(&f);
    set_paths(&f, add_route(&f, "a"), "/same", NULL);
    set_paths(&f, add_route(&f, "b"), "/same", NULL);
    struct gw_router *rt = build(&f);
    CHECK_STR(match(rt, "GET", "", "/same/x", NULL), "a");
    fixture_free(&f);

    fixture_init(&f);
    set_paths(&f, add_route(&f, "b"), "/same", NULL);
    set_paths(&f, add_route(&f, "a"), "/same", NULL);
    rt = build(&f);
    CHECK_STR(match(rt, "GET", "", "/same/x", NULL), "b");
    fixture_free(&f);

    /* Same length, different prefixes: not a tie, only one matches. */
    fixture_init(&f);
    set_paths(&f, add_route(&f, "abc"), "/abc", NULL);
    set_paths(&f, add_route(&f, "abd"), "/abd", NULL);
    rt = build(&f);
    CHECK_STR(match(rt, "GET", "", "/abd", NULL), "abd");
    fixture_free(&f);
}

/* Kong's tls.sni: a route's snis apply to TLS requests only (plain HTTP
 * ignores them), wildcards at either end, and they add to the weight. */
static const char *match_sni(const struct gw_router *rt, const char *sni, const char *path)
{
    struct gw_route_match m = {0};
    if (gw_router_match_at(rt, "GET", "", 443, sni, path, NULL, &m) != 0) return "-";
    return m.route->name;
}

static void test_snis(void)
{
    struct fixture f;
    fixture_init(&f);
    struct gw_route *named = add_route(&f, "named");
    set_paths(&f, named, "/", NULL);
    named->snis.v = gw_calloc(f.arena, 4 * sizeof(char *));
    named->snis.v[named->snis.n++] = "a.example.com";
    named->snis.v[named->snis.n++] = "*.wild.test";
    named->snis.v[named->snis.n++] = "api.*";
    set_paths(&f, add_route(&f, "any"), "/", NULL);
    struct gw_router *rt = build(&f);

    CHECK_STR(match_sni(rt, "a.example.com", "/x"), "named");
    CHECK_STR(match_sni(rt, "b.a.example.com", "/x"), "any"); /* exact, not a suffix */
    CHECK_STR(match_sni(rt, "x.wild.test", "/x"), "named");
    CHECK_STR(match_sni(rt, "wild.test", "/x"), "any");
    CHECK_STR(match_sni(rt, "api.example.org", "/x"), "named");
    CHECK_STR(match_sni(rt, "apis.example.org", "/x"), "any");
    CHECK_STR(match_sni(rt, "", "/x"), "any");     /* TLS without a server name */
    CHECK_STR(match_sni(rt, NULL, "/x"), "named"); /* plain HTTP: snis do not apply */
    fixture_free(&f);
}

static void test_strip_len(void)
{
    struct fixture f;
    fixture_init(&f);
    set_paths(&f, add_route(&f, "users"), "~/users/(?<id>\\d+)", NULL);
    set_paths(&f, add_route(&f, "prefix"), "/openai", NULL);
    set_paths(&f, add_route(&f, "lazy"), "~/l/.*?", NULL);
    struct gw_router *rt = build(&f);
    size_t strip = 0;

    CHECK_STR(match(rt, "GET", "", "/users/42/profile", &strip), "users");
    CHECK_INT(strip, 9);
    CHECK_STR(match(rt, "GET", "", "/users/x", &strip), "-");
    CHECK_STR(match(rt, "GET", "", "/openai/v1/chat", &strip), "prefix");
    CHECK_INT(strip, 7);
    CHECK_STR(match(rt, "GET", "", "/l/abc", &strip), "lazy");
    CHECK_INT(strip, 3);
    /* The query string is never part of the match. */
    CHECK_STR(match(rt, "GET", "", "/openai?x=/users/1", &strip), "prefix");
    CHECK_INT(strip, 7);
    fixture_free(&f);
}

/* Regexes compiled without PCRE2_ANCHORED still only match at the start. */
static void test_unanchored_regex(void)
{
    struct fixture f;
    fixture_init(&f);
    f.regex_options = 0;
    set_paths(&f, add_route(&f, "v"), "~/v\\d+", NULL);
    set_paths(&f, add_route(&f, "end"), "~/e$", NULL);
    struct gw_router *rt = build(&f);
    size_t strip = 0;

    CHECK_STR(match(rt, "GET", "", "/v12/x", &strip), "v");
    CHECK_INT(strip, 4);
    CHECK_STR(match(rt, "GET", "", "/x/v1", NULL), "-");
    CHECK_STR(match(rt, "GET", "", "/e", NULL), "end");
    CHECK_STR(match(rt, "GET", "", "/e?q=1", NULL), "end");
    CHECK_STR(match(rt, "GET", "", "/x/e", NULL), "-");
    fixture_free(&f);
}

static void test_no_match(void)
{
    struct fixture f;
    fixture_init(&f);
    struct gw_router *rt = build(&f);
    struct gw_route_match m = {0};
    CHECK_INT(gw_router_match(rt, "GET", "", "/", NULL, &m), -1);
    CHECK_INT(gw_router_route_count(rt), 0);
    CHECK_INT(gw_router_match(NULL, "GET", "", "/", NULL, &m), -1);

    set_paths(&f, add_route(&f, "a"), "/a", NULL);
    rt = build(&f);
    CHECK_INT(gw_router_match(rt, "GET", "", "/b", NULL, &m), -1);
    CHECK_INT(gw_router_match(rt, "GET", "", "/a", NULL, &m), 0);
    CHECK_STR(m.route->name, "a");
    fixture_free(&f);
}

/* Kong prefixes are plain string prefixes: "/foo" also matches "/foobar",
 * and "/foo/" does not match "/foo". */
static void test_slashes_and_root(void)
{
    struct fixture f;
    fixture_init(&f);
    set_paths(&f, add_route(&f, "slash"), "/foo/", NULL);
    set_paths(&f, add_route(&f, "bare"), "/foo", NULL);
    set_paths(&f, add_route(&f, "root"), "/", NULL);
    struct gw_router *rt = build(&f);
    size_t strip = 0;

    CHECK_STR(match(rt, "GET", "", "/foo", &strip), "bare");
    CHECK_INT(strip, 4);
    CHECK_STR(match(rt, "GET", "", "/foo/", &strip), "slash");
    CHECK_INT(strip, 5);
    CHECK_STR(match(rt, "GET", "", "/foo/bar", &strip), "slash");
    CHECK_INT(strip, 5);
    CHECK_STR(match(rt, "GET", "", "/foobar", &strip), "bare");
    CHECK_INT(strip, 4);
    CHECK_STR(match(rt, "GET", "", "/", &strip), "root");
    CHECK_INT(strip, 1);
    CHECK_STR(match(rt, "GET", "", "/fo", &strip), "root");
    CHECK_INT(strip, 1);
    /* An empty path is "/", but nothing can be stripped from it. */
    strip = 99;
    CHECK_STR(match(rt, "GET", "", "", &strip), "root");
    CHECK_INT(strip, 0);
    CHECK_STR(match(rt, "GET", "", NULL, &strip), "root");
    CHECK_INT(strip, 0);
    fixture_free(&f);

    fixture_init(&f);
    set_paths(&f, add_route(&f, "foo"), "/foo", NULL);
    rt = build(&f);
    CHECK_STR(match(rt, "GET", "", "", NULL), "-");
    CHECK_STR(match(rt, "GET", "", "/", NULL), "-");
    fixture_free(&f);

    /* A route without paths matches any path and strips nothing. */
    fixture_init(&f);
    set_methods(&f, add_route(&f, "no-paths"), "GET", NULL);
    rt = build(&f);
    strip = 99;
    CHECK_STR(match(rt, "GET", "", "/anything/at/all", &strip), "no-paths");
    CHECK_INT(strip, 0);
    fixture_free(&f);
}

/* Like Kong, a route's paths are split into groups ranked on their own. */
static void test_mixed_paths_split(void)
{
    struct fixture f;
    fixture_init(&f);
    set_paths(&f, add_route(&f, "mixed"), "/a", "/abc/def", "~/r/\\d+", "/zz", NULL);
    set_paths(&f, add_route(&f, "abc"), "/abc", NULL);
    set_paths(&f, add_route(&f, "r"), "~/r/.*", NULL);
    struct gw_router *rt = build(&f);
    size_t strip = 0;

    CHECK_STR(match(rt, "GET", "", "/abc/def/x", &strip), "mixed");
    CHECK_INT(strip, 8);
    CHECK_STR(match(rt, "GET", "", "/abc/x", &strip), "abc");
    CHECK_STR(match(rt, "GET", "", "/ax", &strip), "mixed");
    CHECK_INT(strip, 2);
    CHECK_STR(match(rt, "GET", "", "/zzz", &strip), "mixed");
    CHECK_INT(strip, 3);
    /* Regex group of "mixed" comes first in config order. */
    CHECK_STR(match(rt, "GET", "", "/r/12/x", &strip), "mixed");
    CHECK_INT(strip, 5);
    CHECK_STR(match(rt, "GET", "", "/r/x", &strip), "r");
    CHECK_INT(strip, 4);
    fixture_free(&f);

    /* Same-length prefixes of one route share a group and a bucket. */
    fixture_init(&f);
    set_paths(&f, add_route(&f, "siblings"), "/abcdefgh1", "/abcdefgh2", "/ab", NULL);
    set_paths(&f, add_route(&f, "other"), "/abcdefgh", NULL);
    rt = build(&f);
    CHECK_STR(match(rt, "GET", "", "/abcdefgh2/x", &strip), "siblings");
    CHECK_INT(strip, 10);
    CHECK_STR(match(rt, "GET", "", "/abcdefgh1", &strip), "siblings");
    CHECK_STR(match(rt, "GET", "", "/abcdefgh3", &strip), "other");
    CHECK_INT(strip, 9);
    CHECK_STR(match(rt, "GET", "", "/abc", &strip), "siblings");
    CHECK_INT(strip, 3);
    CHECK_STR(match(rt, "GET", "", "/a", &strip), "-");
    fixture_free(&f);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void test_200_routes(void)
{
    struct fixture f;
    fixture_init(&f);
    char buf[64];
    for (int i = 0; i < 200; i++) {
        snprintf(buf, sizeof(buf), "svc%d", i);
        struct gw_route *r = add_route(&f, buf);
        snprintf(buf, sizeof(buf), "/svc%d/v1", i);
        set_paths(&f, r, gw_strdup(f.arena, buf), NULL);
        if (i % 10 == 0) set_methods(&f, r, "POST", NULL);
    }
    struct gw_route *re = add_route(&f, "regex");
    set_paths(&f, re, "~/models/[a-z]+$", NULL);
    set_paths(&f, add_route(&f, "root"), "/", NULL);
    struct gw_router *rt = build(&f);
    CHECK_INT(gw_router_route_count(rt), 202);

    int wrong = 0;
    for (int i = 0; i < 200; i++) {
        char path[64], want[32];
        snprintf(path, sizeof(path), "/svc%d/v1/chat", i);
        snprintf(want, sizeof(want), "svc%d", i);
        size_t strip = 0;
        const char *got = match(rt, "POST", "", path, &strip);
        if (strcmp(got, want) != 0 || strip != strlen(path) - 5) wrong++;
        got = match(rt, "GET", "", path, &strip);
        if (strcmp(got, i % 10 == 0 ? "root" : want) != 0) wrong++;
    }
    CHECK_INT(wrong, 0);
    CHECK_STR(match(rt, "GET", "", "/svc1/v2", NULL), "root");
    CHECK_STR(match(rt, "GET", "", "/models/gpt", NULL), "regex");
    CHECK_STR(match(rt, "GET", "", "/models/gpt4", NULL), "root");

    /* Informational only: the cost of a match at the end of the scan. */
    const int iters = 200000;
    double t0 = now_ns();
    int hits = 0;
    for (int k = 0; k < iters; k++) {
        struct gw_route_match m;
        hits += gw_router_match(rt, "GET", "", "/svc199/v1/chat", NULL, &m) == 0;
        hits += gw_router_match(rt, "GET", "", "/nothing/here", NULL, &m) == 0;
    }
    double per = (now_ns() - t0) / (2.0 * iters);
    CHECK_INT(hits, 2 * iters);
    printf("router: %.0f ns per match over 202 routes\n", per);
    fixture_free(&f);
}

struct thread_arg {
    const struct gw_router *rt;
    int wrong;
};

static void *matcher_thread(void *p)
{
    struct thread_arg *a = p;
    char path[64];
    for (int k = 0; k < 20000; k++) {
        snprintf(path, sizeof(path), "/id/%d/rest", k);
        struct gw_route_match m;
        if (gw_router_match(a->rt, "GET", "", path, NULL, &m) != 0 ||
            strcmp(m.route->name, "id") != 0 || m.strip_len != strlen(path) - 5)
            a->wrong++;
    }
    return NULL;
}

/* One router, several workers: per-thread match data keeps them apart. */
static void test_threads(void)
{
    struct fixture f;
    fixture_init(&f);
    set_paths(&f, add_route(&f, "id"), "~/id/(\\d)(\\d*)", NULL);
    set_paths(&f, add_route(&f, "root"), "/", NULL);
    struct gw_router *rt = build(&f);
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){.rt = rt};
        pthread_create(&th[i], NULL, matcher_thread, &args[i]);
    }
    int wrong = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        wrong += args[i].wrong;
    }
    CHECK_INT(wrong, 0);
    fixture_free(&f);
}

int main(void)
{
    test_longest_prefix();
    test_regex_vs_prefix();
    test_host_specific_beats_hostless();
    test_plain_beats_wildcard();
    test_wildcard_hosts();
    test_methods();
    test_headers();
    test_config_order_ties();
    test_snis();
    test_strip_len();
    test_unanchored_regex();
    test_no_match();
    test_slashes_and_root();
    test_mixed_paths_split();
    test_200_routes();
    test_threads();
    return gw_test_done("test_router");
}
