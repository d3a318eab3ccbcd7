/*
 * Route matching with the precedence of Kong's `traditional_compatible`
 * router (Kong 3.x, the default router_flavor).
 *
 * Sources: Kong/kong kong/router/transform.lua (get_priority() and
 * split_routes_and_services_by_path()) and the Kong docs page "Routing in
 * Kong Gateway" / "Traditional router" (section on priorities).
 *
 * As in Kong, a route whose paths mix kinds is split first: one entry for all
 * its regex paths and one per distinct plain-prefix length, each entry
 * getting its own priority. Entries are then sorted once, at build time, by
 * this order (each key only breaks ties of the ones before it):
 *
 *   1. match weight, descending: how many of methods, hosts, headers, paths,
 *      snis the route sets;
 *   2. "plain hosts only", set ones first: the route has hosts and none of
 *      them is a wildcard (Kong's PLAIN_HOST_ONLY_BIT);
 *   3. number of header names, descending;
 *   4. regex entries before plain-prefix entries (Kong's REGEX_URL_BIT: any
 *      regex path outranks any prefix path at equal keys 1-3);
 *   5. between regex entries: regex_priority, descending;
 *   6. between prefix entries: prefix length, descending (longest wins);
 *   7. config order (route index), ascending. Kong leaves equal priorities
 *      to its internal order; we make it deterministic.
 *
 * Matching walks the sorted entries and the first one whose criteria all
 * hold wins. To keep that cheap with hundreds of routes, plain-prefix entries
 * are also bucketed by the byte that follows the leading '/': a request only
 * visits the bucket of its own second byte, merged (by sorted position) with
 * the entries that cannot be bucketed (regex paths, "/" and routes without
 * paths). Nothing is allocated per match; PCRE2 match data is kept per
 * thread, since one router is shared read-only by all workers.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <assert.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "gw_arena.h"
#include "gw_headers.h"
#include "gw_log.h"
#include "router.h"

/* Kong caps the header count it sorts by at 255 (MAX_HEADER_COUNT). */
#define ROUTER_MAX_HEADER_COUNT 255

/* One accepted header value: a literal compared case-insensitively, or a
 * "~*" value that Kong treats as a case-insensitive, unanchored regex. */
struct header_value {
    const char *text;
    pcre2_code *re; /* NULL for literals */
};

struct header_rule {
    const char *name;
    struct header_value *values;
    size_t n_values;
};

/* A route, or one path group of it, with its precomputed sort keys. */
struct router_entry {
    const struct gw_route *route;
    const struct gw_route_path **paths; /* this group's paths, in route order */
    size_t n_paths;
    const struct header_rule *headers; /* shared by the route's entries */
    size_t n_headers;
    unsigned weight;
    int plain_host_only;
    unsigned header_count;
    int is_regex;
    long regex_priority;
    size_t prefix_len;
    size_t order; /* position of the route in the config */
    size_t group; /* position of the group within the route */
};

/* One candidate in a bucket. head/mask hold the first (up to 8) bytes of a
 * plain prefix, so most non-matching entries are skipped with one compare
 * and no pointer chasing; both are 0 for entries that always need a look. */
struct bucket_item {
    uint64_t head, mask;
    uint32_t pos; /* index into the sorted entries */
};

/* Items in ascending pos, i.e. in priority order. An entry with several
 * prefixes has one item per prefix; such items are adjacent. */
struct router_bucket {
    struct bucket_item *v;
    uint32_t n;
};

struct gw_router {
    struct router_entry *entries; /* sorted by priority */
    size_t n_entries;
    size_t n_routes;
    struct router_bucket by_byte[256]; /* prefix entries, keyed by path[1] */
    struct router_bucket any;          /* entries every request must visit */
    uint32_t md_pairs;                 /* ovector pairs the largest regex needs */
};

/* ---- per-thread PCRE2 match data ---- */

static _Thread_local pcre2_match_data *tl_md;
static _Thread_local uint32_t tl_md_pairs;
static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

/* Frees a worker's match data when the thread exits. */
static void md_free_cb(void *md)
{
    pcre2_match_data_free(md);
}

static void md_key_init(void)
{
    if (pthread_key_create(&md_key, md_free_cb) != 0) abort();
}

/* The calling thread's match data, grown once if a newer router needs more
 * capture slots. Allocates only the first time a thread runs a regex. */
static pcre2_match_data *thread_match_data(uint32_t pairs)
{
    if (tl_md && tl_md_pairs >= pairs) return tl_md;
    pthread_once(&md_once, md_key_init);
    if (tl_md) pcre2_match_data_free(tl_md);
    tl_md = pcre2_match_data_create(pairs, NULL);
    if (!tl_md) abort();
    tl_md_pairs = pairs;
    pthread_setspecific(md_key, tl_md);
    return tl_md;
}

static uint32_t regex_pairs(const pcre2_code *re)
{
    uint32_t captures = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &captures);
    return captures + 1;
}

/* Runs re on subject. Returns the end offset of a match that starts at
 * offset 0 (Kong anchors path regexes), or -1. Patterns compiled without
 * PCRE2_ANCHORED are searched and rejected unless the leftmost match starts
 * at 0, which is equivalent and keeps JIT usable (JIT ignores a match-time
 * PCRE2_ANCHORED). */
static long regex_match_at_start(const pcre2_code *re, const char *subject, size_t len,
                                 uint32_t pairs)
{
    pcre2_match_data *md = thread_match_data(pairs);
    int rc = pcre2_match(re, (PCRE2_SPTR)subject, len, 0, 0, md, NULL);
    if (rc < 0) return -1; /* no match, or a match-limit error: not a match */
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (ov[0] != 0) return -1;
    return (long)ov[1];
}

static int regex_search(const pcre2_code *re, const char *subject, size_t len, uint32_t pairs)
{
    pcre2_match_data *md = thread_match_data(pairs);
    return pcre2_match(re, (PCRE2_SPTR)subject, len, 0, 0, md, NULL) >= 0;
}

/* ---- criteria ---- */

static int method_matches(const struct gw_route *r, const char *method)
{
    if (!method) return 0;
    for (size_t i = 0; i < r->methods.n; i++)
        if (strcmp(r->methods.v[i], method) == 0) return 1;
    return 0;
}

/* Kong turns "*.x.com" into a suffix test on ".x.com" and "x.*" into a
 * prefix test on "x.". The loader may or may not keep the '*' in host, so
 * both spellings are accepted. */
static int host_matches_one(const struct gw_route_host *h, const char *host, size_t host_len)
{
    const char *s = h->host;
    size_t n = h->len;

    if (h->wildcard == 0) return n == host_len && strncasecmp(s, host, n) == 0;

    if (h->wildcard < 0) {
        if (n && s[0] == '*') s++, n--;
        if (n && s[0] == '.') return host_len >= n && strncasecmp(host + host_len - n, s, n) == 0;
        return host_len > n && host[host_len - n - 1] == '.' &&
               strncasecmp(host + host_len - n, s, n) == 0;
    }

    if (n && s[n - 1] == '*') n--;
    if (n && s[n - 1] == '.') return host_len >= n && strncasecmp(host, s, n) == 0;
    return host_len > n && host[n] == '.' && strncasecmp(host, s, n) == 0;
}

static int host_matches(const struct gw_route *r, const char *host, int port)
{
    if (!host || !*host) return 0;
    size_t host_len = strlen(host);
    for (size_t i = 0; i < r->n_hosts; i++)
        if ((!r->hosts[i].port || r->hosts[i].port == port) &&
            host_matches_one(&r->hosts[i], host, host_len))
            return 1;
    return 0;
}

/* Header names compare case-insensitively with '-' and '_' equal, as Kong
 * normalises both sides (ngx.req.get_headers lookups, replace_dashes_lower). */
static int header_name_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x == '_') x = '-';
        if (y == '_') y = '-';
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
        if (x != y) return 0;
        if (!x) return 1;
    }
}

static int header_value_ok(const struct header_rule *rule, const char *value, uint32_t pairs)
{
    for (size_t i = 0; i < rule->n_values; i++) {
        const struct header_value *hv = &rule->values[i];
        if (hv->re ? regex_search(hv->re, value, strlen(value), pairs)
                   : strcasecmp(hv->text, value) == 0)
            return 1;
    }
    return 0;
}

/* Every configured header must be present with one accepted value; when the
 * request repeats a header, any of its instances may supply it. */
static int headers_match(const struct router_entry *e, const struct gw_headers *headers,
                         uint32_t pairs)
{
    if (e->n_headers == 0) return 1;
    if (!headers) return 0;
    for (size_t i = 0; i < e->n_headers; i++) {
        const struct header_rule *rule = &e->headers[i];
        int ok = 0;
        const struct gw_header *kv;
        gw_headers_foreach(kv, headers)
        {
            if (header_name_eq(kv->name, rule->name) && header_value_ok(rule, kv->value, pairs)) {
                ok = 1;
                break;
            }
        }
        if (!ok) return 0;
    }
    return 1;
}

/* Tries the entry's plain prefixes. All share one length, so at most one
 * distinct prefix can match. Sets *strip to the prefix length. */
static int prefix_matches(const struct router_entry *e, const char *path, size_t len, size_t *strip)
{
    if (len < e->prefix_len) return 0;
    for (size_t i = 0; i < e->n_paths; i++) {
        if (memcmp(e->paths[i]->path, path, e->prefix_len) == 0) {
            *strip = e->prefix_len;
            return 1;
        }
    }
    return 0;
}

/* Tries the entry's regexes in route order; the first that matches at the
 * start of the path gives the strip length (its whole match). */
static int regex_paths_match(const struct router_entry *e, const char *path, size_t len,
                             uint32_t pairs, size_t *strip)
{
    for (size_t i = 0; i < e->n_paths; i++) {
        const pcre2_code *re = e->paths[i]->regex;
        if (!re) continue;
        long end = regex_match_at_start(re, path, len, pairs);
        if (end >= 0) {
            *strip = (size_t)end;
            return 1;
        }
    }
    return 0;
}

/* Cheap criteria first, the regex last. */
/* Kong's tls.sni conditions: "*.example.com" matches names ending in
 * ".example.com", "example.*" names starting with "example.", any other
 * one exactly (the route's names are lowercase, without the final dot). */
static int sni_matches(const struct gw_route *r, const char *sni)
{
    size_t len = strlen(sni);
    if (!len) return 0; /* no server name: no route with snis */
    for (size_t i = 0; i < r->snis.n; i++) {
        const char *s = r->snis.v[i];
        size_t n = strlen(s);
        if (s[0] == '*') {
            if (len >= n - 1 && memcmp(sni + len - (n - 1), s + 1, n - 1) == 0) return 1;
        } else if (s[n - 1] == '*') {
            if (len >= n - 1 && memcmp(sni, s, n - 1) == 0) return 1;
        } else if (len == n && memcmp(sni, s, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int entry_matches(const struct gw_router *rt, const struct router_entry *e,
                         const char *method, const char *host, int port, const char *sni,
                         const char *path, size_t len, const struct gw_headers *headers,
                         size_t *strip)
{
    const struct gw_route *r = e->route;
    *strip = 0;
    if (e->n_paths && !e->is_regex && !prefix_matches(e, path, len, strip)) return 0;
    if (r->methods.n && !method_matches(r, method)) return 0;
    if (r->n_hosts && !host_matches(r, host, port)) return 0;
    if (r->snis.n && sni && !sni_matches(r, sni)) return 0;
    if (!headers_match(e, headers, rt->md_pairs)) return 0;
    if (e->n_paths && e->is_regex && !regex_paths_match(e, path, len, rt->md_pairs, strip))
        return 0;
    return 1;
}

/* The first 8 bytes of s (zero padded), as the head filter compares them. */
static uint64_t head_word(const char *s, size_t len)
{
    uint64_t w = 0;
    memcpy(&w, s, len < 8 ? len : 8);
    return w;
}

int gw_router_match(const struct gw_router *rt, const char *method, const char *host,
                    const char *path, const struct gw_headers *headers, struct gw_route_match *m)
{
    return gw_router_match_at(rt, method, host, 0, NULL, path, headers, m);
}

int gw_router_match_at(const struct gw_router *rt, const char *method, const char *host, int port,
                       const char *sni, const char *path, const struct gw_headers *headers,
                       struct gw_route_match *m)
{
    if (!rt) return -1;
    /* The query string is not part of the path; an empty path is "/". */
    size_t real_len = path ? strcspn(path, "?") : 0;
    if (real_len == 0) path = "/";
    size_t len = real_len ? real_len : 1;
    uint64_t head = head_word(path, len);

    static const struct router_bucket empty;
    const struct router_bucket *b = len >= 2 ? &rt->by_byte[(unsigned char)path[1]] : &empty;
    const struct router_bucket *a = &rt->any;
    uint32_t i = 0, j = 0;
    uint32_t last = UINT32_MAX; /* entry just tried, so its sibling items are skipped */

    while (i < b->n || j < a->n) {
        const struct bucket_item *it;
        if (j >= a->n || (i < b->n && b->v[i].pos < a->v[j].pos))
            it = &b->v[i++];
        else
            it = &a->v[j++];
        if ((head & it->mask) != it->head || it->pos == last) continue;
        last = it->pos;
        const struct router_entry *e = &rt->entries[it->pos];
        size_t strip;
        if (entry_matches(rt, e, method, host, port, sni, path, len, headers, &strip)) {
            m->route = e->route;
            m->strip_len = strip < real_len ? strip : real_len;
            return 0;
        }
    }
    return -1;
}

/* ---- build ---- */

/* qsort order: higher priority first (see the list at the top). */
static int entry_cmp(const void *pa, const void *pb)
{
    const struct router_entry *a = pa, *b = pb;
    if (a->weight != b->weight) return a->weight > b->weight ? -1 : 1;
    if (a->plain_host_only != b->plain_host_only) return a->plain_host_only ? -1 : 1;
    if (a->header_count != b->header_count) return a->header_count > b->header_count ? -1 : 1;
    if (a->is_regex != b->is_regex) return a->is_regex ? -1 : 1;
    if (a->is_regex && a->regex_priority != b->regex_priority)
        return a->regex_priority > b->regex_priority ? -1 : 1;
    if (a->prefix_len != b->prefix_len) return a->prefix_len > b->prefix_len ? -1 : 1;
    if (a->order != b->order) return a->order < b->order ? -1 : 1;
    if (a->group != b->group) return a->group < b->group ? -1 : 1;
    return 0;
}

static void regex_free_cb(void *re)
{
    pcre2_code_free(re);
}

/* Reads the route's header criteria, compiling "~*" values. A value that
 * does not compile (the loader should have refused it) never matches. */
static struct header_rule *build_header_rules(struct gw_router *rt, const struct gw_route *r,
                                              struct gw_arena *arena)
{
    const struct gw_string_map *hm = &r->headers;
    if (hm->n == 0) return NULL;
    struct header_rule *rules = gw_calloc(arena, hm->n * sizeof(*rules));
    for (size_t i = 0; i < hm->n; i++) {
        rules[i].name = hm->keys[i];
        rules[i].n_values = hm->values[i].n;
        rules[i].values = gw_calloc(arena, (hm->values[i].n + 1) * sizeof(*rules[i].values));
        for (size_t k = 0; k < hm->values[i].n; k++) {
            const char *v = hm->values[i].v[k];
            struct header_value *hv = &rules[i].values[k];
            hv->text = v;
            if (v[0] != '~' || v[1] != '*') continue;
            int errcode;
            PCRE2_SIZE erroff;
            hv->re = pcre2_compile((PCRE2_SPTR)(v + 2), PCRE2_ZERO_TERMINATED, PCRE2_CASELESS,
                                   &errcode, &erroff, NULL);
            if (!hv->re) {
                gw_warn("router: route %s: header %s: regex %s does not compile; it will "
                        "never match",
                        r->name ? r->name : "(unnamed)", hm->keys[i], v + 2);
                hv->text = NULL;
                hv->re = NULL;
                continue;
            }
            pcre2_jit_compile(hv->re, PCRE2_JIT_COMPLETE);
            gw_arena_cleanup(arena, regex_free_cb, hv->re);
            uint32_t pairs = regex_pairs(hv->re);
            if (pairs > rt->md_pairs) rt->md_pairs = pairs;
        }
        /* Drop literals that were broken regexes, keeping order. */
        size_t kept = 0;
        for (size_t k = 0; k < rules[i].n_values; k++)
            if (rules[i].values[k].text) rules[i].values[kept++] = rules[i].values[k];
        rules[i].n_values = kept;
    }
    return rules;
}

/* Fills entries for one route: one without paths, or one per path group
 * (all regexes together, plain prefixes grouped by length). Returns how
 * many were written. */
static size_t add_route_entries(struct gw_router *rt, const struct gw_route *r, size_t order,
                                struct router_entry *out, struct gw_arena *arena)
{
    struct router_entry base = {.route = r, .order = order};
    base.headers = build_header_rules(rt, r, arena);
    base.n_headers = r->headers.n;
    base.weight = (r->methods.n > 0) + (r->n_hosts > 0) + (r->headers.n > 0) + (r->n_paths > 0) +
                  (r->snis.n > 0);
    base.plain_host_only = r->n_hosts > 0;
    for (size_t i = 0; i < r->n_hosts; i++)
        if (r->hosts[i].wildcard) base.plain_host_only = 0;
    base.header_count =
        r->headers.n > ROUTER_MAX_HEADER_COUNT ? ROUTER_MAX_HEADER_COUNT : (unsigned)r->headers.n;

    if (r->n_paths == 0) {
        out[0] = base;
        return 1;
    }

    size_t n_out = 0;
    for (size_t i = 0; i < r->n_paths; i++) {
        const struct gw_route_path *p = &r->paths[i];
        size_t g;
        for (g = 0; g < n_out; g++) {
            if (p->is_regex ? out[g].is_regex : (!out[g].is_regex && out[g].prefix_len == p->len))
                break;
        }
        if (g == n_out) {
            out[g] = base;
            out[g].group = g;
            out[g].is_regex = p->is_regex != 0;
            out[g].regex_priority = p->is_regex ? r->regex_priority : 0;
            out[g].prefix_len = p->is_regex ? 0 : p->len;
            out[g].paths = gw_alloc(arena, r->n_paths * sizeof(*out[g].paths));
            n_out++;
        }
        out[g].paths[out[g].n_paths++] = p;
        if (p->is_regex && p->regex) {
            uint32_t pairs = regex_pairs(p->regex);
            if (pairs > rt->md_pairs) rt->md_pairs = pairs;
        }
    }
    return n_out;
}

/* Plain-prefix entries whose prefix reaches the second byte can be bucketed
 * by it; every other entry must be tried for any request. */
static int entry_bucketable(const struct router_entry *e)
{
    return e->n_paths > 0 && !e->is_regex && e->prefix_len >= 2;
}

static struct bucket_item prefix_item(const struct router_entry *e, size_t k, uint32_t pos)
{
    size_t n = e->prefix_len < 8 ? e->prefix_len : 8;
    struct bucket_item it = {.pos = pos};
    memset(&it.mask, 0xff, n);
    it.head = head_word(e->paths[k]->path, n);
    return it;
}

/* Two passes over the sorted entries: count, then fill, so each bucket is
 * one exact-size arena array already in priority order. */
static void build_buckets(struct gw_router *rt, struct gw_arena *arena)
{
    uint32_t counts[256] = {0};
    uint32_t n_any = 0;

    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < rt->n_entries; i++) {
            const struct router_entry *e = &rt->entries[i];
            if (!entry_bucketable(e)) {
                if (pass)
                    rt->any.v[rt->any.n++] = (struct bucket_item){.pos = (uint32_t)i};
                else
                    n_any++;
                continue;
            }
            for (size_t k = 0; k < e->n_paths; k++) {
                unsigned char c = (unsigned char)e->paths[k]->path[1];
                if (!pass) {
                    counts[c]++;
                    continue;
                }
                struct router_bucket *b = &rt->by_byte[c];
                b->v[b->n++] = prefix_item(e, k, (uint32_t)i);
            }
        }
        if (pass) break;
        rt->any.v = gw_alloc(arena, (n_any + 1) * sizeof(*rt->any.v));
        for (int c = 0; c < 256; c++)
            if (counts[c])
                rt->by_byte[c].v = gw_alloc(arena, counts[c] * sizeof(struct bucket_item));
    }
}

struct gw_router *gw_router_build(const struct gw_config *cfg, struct gw_arena *arena)
{
    struct gw_router *rt = gw_calloc(arena, sizeof(*rt));
    rt->md_pairs = 1;
    if (!cfg) return rt;

    size_t cap = 0;
    for (size_t i = 0; i < cfg->n_routes; i++)
        cap += cfg->routes[i]->n_paths ? cfg->routes[i]->n_paths : 1;
    assert(cap < UINT32_MAX);
    rt->entries = gw_calloc(arena, (cap + 1) * sizeof(*rt->entries));
    for (size_t i = 0; i < cfg->n_routes; i++) {
        /* Kong: the routes of a disabled service behave as if they did not
         * exist, so another route may match instead. */
        const struct gw_service *svc = cfg->routes[i]->service;
        if (svc && !svc->enabled) continue;
        rt->n_entries +=
            add_route_entries(rt, cfg->routes[i], i, rt->entries + rt->n_entries, arena);
    }
    rt->n_routes = cfg->n_routes;

    qsort(rt->entries, rt->n_entries, sizeof(*rt->entries), entry_cmp);
    build_buckets(rt, arena);
    return rt;
}

size_t gw_router_route_count(const struct gw_router *rt)
{
    return rt ? rt->n_routes : 0;
}

/* The number of the group called name that took part in the match: with
 * (?J) several groups may share a name, and the one that matched counts,
 * as PCRE2's own by-name lookups do. -1 when none did. */
static int set_group(const pcre2_code *re, const PCRE2_SIZE *ov, const char *name)
{
    PCRE2_SPTR first, last;
    int size = pcre2_substring_nametable_scan(re, (PCRE2_SPTR)name, &first, &last);
    if (size <= 0) return -1;
    for (PCRE2_SPTR e = first; e <= last; e += size) {
        int n = (e[0] << 8) | e[1];
        if (ov[2 * n] != PCRE2_UNSET) return n;
    }
    return -1;
}

const char *gw_route_capture(const struct gw_route *route, const char *path, const char *name,
                             struct gw_arena *a)
{
    size_t len = strlen(path);
    char *end;
    long num = strtol(name, &end, 10);
    int by_number = *name && *end == '\0' && num >= 0;
    for (size_t i = 0; i < route->n_paths; i++) {
        const struct gw_route_path *p = &route->paths[i];
        if (!p->is_regex) continue;
        const pcre2_code *re = p->regex;
        uint32_t pairs = regex_pairs(re);
        if (regex_match_at_start(re, path, len, pairs) < 0) continue;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(thread_match_data(pairs));
        int n = by_number ? (num < (long)pairs ? (int)num : -1) : set_group(re, ov, name);
        if (n < 0 || ov[2 * n] == PCRE2_UNSET) continue;
        return gw_strndup(a, path + ov[2 * n], ov[2 * n + 1] - ov[2 * n]);
    }
    return NULL;
}
