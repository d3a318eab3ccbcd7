/*
 * The YAML node tree and the schema walker on their own: types, defaults,
 * ranges, paths and positions in errors, env expansion.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "gw_arena.h"
#include "gw_schema.h"
#include "gw_test.h"
#include "yaml_node.h"

struct inner {
    const char *provider;
    long max_tokens;
};

struct outer {
    const char *name;
    long port;
    double ratio;
    int on;
    int mode;
    struct gw_strings list;
    struct inner model;
    struct gw_records items;
    struct gw_string_map headers;
    const char *secret;
    const char *raw;
    const char *custom;
    int validated;
};

static const char *const modes[] = {"fast", "slow", "off", NULL};

static const struct gw_field inner_fields[] = {
    {GW_FIELD(struct inner, provider, GW_F_STRING, GW_REQUIRED, NULL)},
    {GW_FIELD(struct inner, max_tokens, GW_F_INT, 0, "256"), .min = 1},
    {0},
};

static const struct gw_schema inner_schema = {
    .name = "inner", .size = sizeof(struct inner), .fields = inner_fields};

/* custom: upper-cases a scalar, to show the hook gets the node and dst */
static int upper_parse(struct gw_conf *cf, const struct gw_node *n, void *dst)
{
    if (n->type != GW_NODE_SCALAR) {
        gw_conf_error(cf, n, NULL, "expected a word");
        return -1;
    }
    char *s = gw_strdup(gw_conf_arena(cf), n->value);
    for (char *p = s; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
    *(const char **)dst = s;
    return 0;
}

static int outer_validate(struct gw_conf *cf, const struct gw_node *n, void *obj)
{
    struct outer *o = obj;
    o->validated = 1;
    if (o->port == 13) gw_conf_error(cf, n, "port", "unlucky (path %s)", gw_conf_path(cf));
    return 0;
}

static const struct gw_field outer_fields[] = {
    {GW_FIELD(struct outer, name, GW_F_STRING, GW_REQUIRED, NULL), .min = 2, .max = 8},
    {GW_FIELD(struct outer, port, GW_F_INT, 0, "80"), .min = 1, .max = 65535},
    {GW_FIELD(struct outer, ratio, GW_F_NUMBER, 0, "0.5"), .min = 0, .max = 1},
    {GW_FIELD(struct outer, on, GW_F_BOOL, 0, "true")},
    {GW_FIELD(struct outer, mode, GW_F_ENUM, 0, "slow"), .choices = modes},
    {GW_FIELD(struct outer, list, GW_F_STRINGS, 0, "[a, b]"), .max = 3},
    {GW_FIELD(struct outer, model, GW_F_RECORD, 0, NULL), .record = &inner_schema},
    {GW_FIELD(struct outer, items, GW_F_RECORDS, 0, NULL), .record = &inner_schema},
    {GW_FIELD(struct outer, headers, GW_F_MAP, 0, NULL)},
    {GW_FIELD(struct outer, secret, GW_F_STRING, GW_SECRET, NULL)},
    {GW_FIELD(struct outer, raw, GW_F_STRING, GW_NO_ENV, NULL)},
    {GW_FIELD(struct outer, custom, GW_F_CUSTOM, 0, NULL), .parse = upper_parse},
    {0},
};

static const struct gw_schema outer_schema = {.name = "outer",
                                              .size = sizeof(struct outer),
                                              .fields = outer_fields,
                                              .validate = outer_validate};

/* One load: arena, errors and the struct read, for a test to inspect. */
struct run {
    struct gw_arena *a;
    struct gw_errlist errs;
    struct gw_conf *cf;
    struct outer o;
    int rc;
};

static void run(struct run *r, const char *yaml)
{
    memset(r, 0, sizeof(*r));
    r->a = gw_arena_new(0);
    r->cf = gw_conf_new(r->a, &r->errs);
    struct gw_node *root = gw_yaml_load(r->a, "t.yml", yaml, strlen(yaml), &r->errs);
    r->rc = root ? gw_conf_read(r->cf, &outer_schema, root, "top", &r->o) : -2;
}

static void done(struct run *r)
{
    gw_errlist_free(&r->errs);
    gw_arena_free(r->a);
}

static const char *err(struct run *r, size_t i)
{
    return i < r->errs.n ? r->errs.v[i] : "(no such error)";
}

static void test_yaml_tree(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_errlist e = {0};
    const char *y = "a: &x\n  k: \"true\"\n  t: true\n  n: ~\n  e:\n  q: ''\n"
                    "b: *x\n"
                    "c: [1, {d: 2}]\n"
                    "m: |\n  line one\n  line two\n"
                    "f: >\n  folded\n  text\n";
    struct gw_node *root = gw_yaml_load(a, "x.yml", y, strlen(y), &e);
    CHECK(root != NULL);
    CHECK_INT(e.n, 0);
    if (!root) goto out;
    CHECK_INT(root->type, GW_NODE_MAP);
    CHECK_INT(root->n, 5);
    const struct gw_node *an = gw_node_get(root, "a");
    CHECK(an == gw_node_get(root, "b")); /* an alias is the anchored node */
    const struct gw_node *k = gw_node_get(an, "k");
    CHECK_STR(k->value, "true");
    CHECK_INT(k->plain, 0);
    CHECK_INT(k->line, 2);
    CHECK_INT(k->col, 6);
    CHECK_STR(k->file, "x.yml");
    CHECK_INT(gw_node_get(an, "t")->plain, 1);
    CHECK_INT(gw_node_get(an, "n")->type, GW_NODE_NULL);
    CHECK_INT(gw_node_get(an, "e")->type, GW_NODE_NULL);
    CHECK_INT(gw_node_get(an, "q")->type, GW_NODE_SCALAR); /* quoted empty is a string */
    const struct gw_node *c = gw_node_get(root, "c");
    CHECK_INT(c->type, GW_NODE_SEQ);
    CHECK_INT(c->n, 2);
    CHECK_INT(c->items[1]->type, GW_NODE_MAP);
    CHECK_INT(c->items[1]->line, 8);
    CHECK_INT(c->items[1]->col, 8);
    CHECK_STR(gw_node_get(c->items[1], "d")->value, "2");
    CHECK_STR(gw_node_get(root, "m")->value, "line one\nline two\n");
    CHECK_STR(gw_node_get(root, "f")->value, "folded text\n");
    CHECK(gw_node_get(root, "zzz") == NULL);
    int b;
    long l;
    double d;
    CHECK_INT(gw_node_plain_type(gw_node_get(an, "t"), &b, &l, &d), 1);
    CHECK_INT(b, 1);
    CHECK_INT(gw_node_plain_type(c->items[0], &b, &l, &d), 2);
    CHECK_INT(l, 1);
    CHECK_INT(gw_node_plain_type(k, &b, &l, &d), 0);
out:
    gw_errlist_free(&e);
    gw_arena_free(a);
}

static void test_yaml_merge(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_errlist e = {0};
    const char *y = "base: &base {x: 1, y: 2}\nmore: &more {y: 3, z: 4}\n"
                    "one: {<<: *base, x: 9}\n"
                    "two: {<<: [*base, *more], w: 0}\n";
    struct gw_node *root = gw_yaml_load(a, "m.yml", y, strlen(y), &e);
    CHECK(root != NULL);
    if (root) {
        const struct gw_node *one = gw_node_get(root, "one"), *two = gw_node_get(root, "two");
        CHECK_INT(one->n, 2);
        CHECK_STR(gw_node_get(one, "x")->value, "9"); /* explicit keys win */
        CHECK_STR(gw_node_get(one, "y")->value, "2");
        CHECK(gw_node_get(one, "<<") == NULL);
        CHECK_INT(two->n, 4);
        CHECK_STR(gw_node_get(two, "y")->value, "2"); /* earlier sources win */
        CHECK_STR(gw_node_get(two, "z")->value, "4");
        CHECK_INT(gw_node_get(two, "z")->line, 2); /* positions are the source's */
    }
    const char *bad = "a: {<<: 1}\n";
    CHECK(gw_yaml_load(a, "m.yml", bad, strlen(bad), &e) == NULL);
    CHECK_STR(e.n ? e.v[0] : NULL, "m.yml:1:9: a merge ('<<') takes a map or a list of maps");
    gw_errlist_free(&e);
    gw_arena_free(a);
}

static void test_yaml_errors(void)
{
    static const struct {
        const char *yaml, *err;
    } cases[] = {
        {"a: [1, 2\nb: 3\n",
         "y.yml:2:2: did not find expected ',' or ']' (while parsing a flow sequence started at "
         "1:4)"},
        {"a: *nope\n", "y.yml:1:4: unknown anchor 'nope'"},
        {"a: &x [*x]\n", "y.yml:1:8: unknown anchor 'x'"}, /* no self-reference */
        {"a: 1\n---\nb: 2\n", "y.yml:2:1: only one YAML document is supported"},
        {"? [a]\n: 1\n", "y.yml:1:3: mapping keys must be scalars"},
        {"a:\n  b: 1\n c: 2\n",
         "y.yml:3:2: did not find expected key (while parsing a block mapping started at 1:1)"},
        {"a: \"\xff\"\n", "y.yml:1:5: invalid leading UTF-8 octet (#FF)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gw_arena *a = gw_arena_new(0);
        struct gw_errlist e = {0};
        struct gw_node *root = gw_yaml_load(a, "y.yml", cases[i].yaml, strlen(cases[i].yaml), &e);
        CHECK(root == NULL);
        CHECK_STR(e.n ? e.v[0] : NULL, cases[i].err);
        gw_errlist_free(&e);
        gw_arena_free(a);
    }
    /* A repeated key is reported with its path, and the tree still comes
     * back (the first value kept) so the schema pass reports the rest. */
    {
        struct gw_arena *a = gw_arena_new(0);
        struct gw_errlist e = {0};
        const char *y = "s:\n- x: 1\n  x: 2\n  y: 3\n";
        struct gw_node *root = gw_yaml_load(a, "y.yml", y, strlen(y), &e);
        CHECK(root != NULL);
        CHECK_INT(e.n, 1);
        CHECK_STR(e.n ? e.v[0] : NULL, "y.yml:3:3: s[0].x: duplicate key 'x' (first at line 2)");
        const struct gw_node *item = root ? gw_node_get(root, "s")->items[0] : NULL;
        CHECK(item && item->n == 2 && strcmp(gw_node_get(item, "x")->value, "1") == 0);
        gw_errlist_free(&e);
        gw_arena_free(a);
    }
    /* nesting is bounded */
    size_t depth = GW_YAML_MAX_DEPTH + 10;
    char *deep = malloc(depth * 2 + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[depth * 2] = '\0';
    struct gw_arena *a = gw_arena_new(0);
    struct gw_errlist e = {0};
    CHECK(gw_yaml_load(a, "d.yml", deep, strlen(deep), &e) == NULL);
    CHECK_STR(e.n ? e.v[0] : NULL, "d.yml:1:257: nesting too deep");
    gw_errlist_free(&e);
    gw_arena_free(a);
    free(deep);
}

static void test_defaults_and_types(void)
{
    struct run r;
    run(&r, "name: abc\nmodel: {provider: openai}\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(r.errs.n, 0);
    CHECK_STR(r.o.name, "abc");
    CHECK_INT(r.o.port, 80);
    CHECK(r.o.ratio == 0.5);
    CHECK_INT(r.o.on, 1);
    CHECK_INT(r.o.mode, 1);
    CHECK_INT(r.o.list.n, 2);
    CHECK_STR(r.o.list.n == 2 ? r.o.list.v[1] : NULL, "b");
    CHECK_STR(r.o.model.provider, "openai");
    CHECK_INT(r.o.model.max_tokens, 256);
    CHECK_INT(r.o.items.n, 0);
    CHECK(r.o.custom == NULL);
    CHECK_INT(r.o.validated, 1);
    done(&r);

    run(&r, "name: 12345\nport: 8080\nratio: 1\non: false\nmode: off\nlist: one\n"
            "items: [{provider: a}, {provider: b, max_tokens: 9}]\n"
            "headers: {X-A: v, X-B: [1, 2]}\ncustom: word\nsecret: s3\n");
    CHECK_INT(r.rc, 0);
    CHECK_STR(r.o.name, "12345"); /* any scalar is a string */
    CHECK_INT(r.o.port, 8080);
    CHECK(r.o.ratio == 1.0);
    CHECK_INT(r.o.on, 0);
    CHECK_INT(r.o.mode, 2);
    CHECK_INT(r.o.list.n, 1); /* a lone scalar is a list of one */
    CHECK_STR(r.o.list.v[0], "one");
    CHECK_INT(r.o.items.n, 2);
    const struct inner *it = r.o.items.v;
    CHECK_STR(it[1].provider, "b");
    CHECK_INT(it[1].max_tokens, 9);
    CHECK_INT(it[0].max_tokens, 256);
    CHECK_INT(r.o.headers.n, 2);
    CHECK_STR(r.o.headers.keys[1], "X-B");
    CHECK_INT(r.o.headers.values[1].n, 2);
    CHECK_STR(r.o.headers.values[1].v[1], "2");
    CHECK_STR(r.o.headers.values[0].v[0], "v");
    CHECK_STR(r.o.custom, "WORD");
    size_t ns;
    const struct gw_node *const *sec = gw_conf_secrets(r.cf, &ns);
    CHECK_INT(ns, 1);
    CHECK_STR(ns ? sec[0]->value : NULL, "s3");
    done(&r);
}

static void test_type_errors(void)
{
    struct run r;
    run(&r, "name: [x]\nport: \"80\"\nratio: abc\non: yes\nmode: medium\nlist: {a: 1}\n"
            "model: [1]\nitems: {provider: a}\nheaders: [a]\ncustom: {}\nbogus: 1\n");
    CHECK_INT(r.rc, -1);
    CHECK_STR(err(&r, 0), "t.yml:11:1: top.bogus: unknown field");
    CHECK_STR(err(&r, 1), "t.yml:1:7: top.name: expected a string");
    CHECK_STR(err(&r, 2), "t.yml:2:7: top.port: expected an integer");
    CHECK_STR(err(&r, 3), "t.yml:3:8: top.ratio: expected a number");
    CHECK_STR(err(&r, 4), "t.yml:4:5: top.on: expected a boolean");
    CHECK_STR(err(&r, 5), "t.yml:5:7: top.mode: expected one of fast, slow, off");
    CHECK_STR(err(&r, 6), "t.yml:6:7: top.list: expected a list of strings");
    CHECK_STR(err(&r, 7), "t.yml:7:8: top.model: expected a map");
    CHECK_STR(err(&r, 8), "t.yml:8:8: top.items: expected a list");
    CHECK_STR(err(&r, 9), "t.yml:9:10: top.headers: expected a map");
    CHECK_STR(err(&r, 10), "t.yml:10:9: top.custom: expected a word");
    CHECK_INT(r.errs.n, 11);
    CHECK_INT(r.o.validated, 1); /* validate runs even after errors */
    done(&r);
}

static void test_ranges_and_required(void)
{
    struct run r;
    run(&r, "name: a\nport: 0\nratio: 1.5\nlist: [a, b, c, d]\n"
            "items:\n  - provider: x\n  - max_tokens: 0\n");
    CHECK_INT(r.rc, -1);
    CHECK_STR(err(&r, 0), "t.yml:1:7: top.name: length must be between 2 and 8");
    CHECK_STR(err(&r, 1), "t.yml:2:7: top.port: must be between 1 and 65535");
    CHECK_STR(err(&r, 2), "t.yml:3:8: top.ratio: must be between 0 and 1");
    CHECK_STR(err(&r, 3), "t.yml:4:7: top.list: must have between 0 and 3 items");
    CHECK_STR(err(&r, 4), "t.yml:7:5: top.items[1].provider: required field missing");
    CHECK_STR(err(&r, 5), "t.yml:7:17: top.items[1].max_tokens: must be at least 1");
    CHECK_INT(r.errs.n, 6);
    done(&r);

    run(&r, "port: 13\n");
    CHECK_STR(err(&r, 0), "t.yml:1:1: top.name: required field missing");
    CHECK_STR(err(&r, 1), "t.yml:1:1: top.port: unlucky (path top)");
    done(&r);

    run(&r, "- 1\n");
    CHECK_STR(err(&r, 0), "t.yml:1:1: top: expected a map");
    done(&r);

    /* null counts as missing: the default applies */
    run(&r, "name: ab\nport: ~\nmodel: {provider: p, max_tokens: null}\n");
    CHECK_INT(r.rc, 0);
    CHECK_INT(r.o.port, 80);
    CHECK_INT(r.o.model.max_tokens, 256);
    done(&r);
}

static void test_env(void)
{
    setenv("GW_T_KEY", "k-123", 1);
    setenv("GW_T_EMPTY", "", 1);
    setenv("MY_SECRET_NAME", "vaulted", 1);
    setenv("GW_T_JSON", "{\"user\":\"u1\",\"n\":3}", 1);
    unsetenv("GW_T_UNSET");
    struct run r;
    run(&r, "name: ab\nsecret: \"Bearer $GW_T_KEY/${GW_T_KEY}\"\n"
            "raw: \"^a$GW_T_KEY\"\n"
            "list: [\"${GW_T_UNSET:-dflt}\", \"${GW_T_EMPTY:-e}\", \"$$HOME\", \"a$\", \"$1\", "
            "\"{vault://env/my-secret-name}\", \"x{vault://env/gw_t_json/user}y\"]\n"
            "headers: {h: $GW_T_KEY}\n");
    CHECK_INT(r.rc, -1); /* the list is over its max of 3 */
    CHECK_STR(r.o.secret, "Bearer k-123/k-123");
    CHECK_STR(r.o.raw, "^a$GW_T_KEY"); /* GW_NO_ENV */
    CHECK_INT(r.o.list.n, 7);
    if (r.o.list.n == 7) {
        CHECK_STR(r.o.list.v[0], "dflt");
        CHECK_STR(r.o.list.v[1], "e");
        CHECK_STR(r.o.list.v[2], "$HOME");
        CHECK_STR(r.o.list.v[3], "a$");
        CHECK_STR(r.o.list.v[4], "$1");
        CHECK_STR(r.o.list.v[5], "vaulted");
        CHECK_STR(r.o.list.v[6], "xu1y");
    }
    CHECK_STR(r.o.headers.values[0].v[0], "k-123");
    CHECK_STR(err(&r, 0), "t.yml:4:7: top.list: must have between 0 and 3 items");
    CHECK_INT(r.errs.n, 1);
    done(&r);

    run(&r, "name: $GW_T_UNSET\nlist: [a, \"${GW_T_UNSET}\"]\nsecret: "
            "\"{vault://env/gw-t-unset}\"\nheaders: {a: \"${BAD NAME}\"}\n"
            "custom: x\nraw: \"{vault://aws/x}\"\n");
    CHECK_STR(err(&r, 0), "t.yml:1:7: top.name: environment variable GW_T_UNSET is not set");
    CHECK_STR(err(&r, 1), "t.yml:2:11: top.list[1]: environment variable GW_T_UNSET is not set");
    CHECK_STR(err(&r, 2), "t.yml:4:14: top.headers.a: invalid variable reference '${BAD NAME}'");
    CHECK_STR(err(&r, 3), "t.yml:3:9: top.secret: environment variable GW_T_UNSET is not set");
    CHECK_INT(r.errs.n, 4); /* raw is GW_NO_ENV: the vault text stays */
    CHECK_STR(r.o.raw, "{vault://aws/x}");
    done(&r);

    /* a vault other than env, and gw_conf_expand directly */
    struct gw_arena *a = gw_arena_new(0);
    struct gw_errlist e = {0};
    struct gw_conf *cf = gw_conf_new(a, &e);
    struct gw_node *at = gw_node_new(a, GW_NODE_SCALAR, NULL);
    at->file = "z.yml";
    CHECK(gw_conf_expand(cf, at, "{vault://aws/x}") == NULL);
    CHECK_STR(e.n ? e.v[0] : NULL, "z.yml:1:1: vault 'aws' is not supported (only 'env')");
    CHECK_STR(gw_conf_expand(cf, at, "plain"), "plain");
    CHECK_STR(gw_conf_expand(cf, at, "${GW_T_KEY}${GW_T_KEY}"), "k-123k-123");
    CHECK(gw_conf_expand(cf, at, "${GW_T_KEY") == NULL);
    CHECK_INT(gw_conf_errors(cf), 2);
    gw_errlist_free(&e);
    gw_arena_free(a);
}

static void test_paths(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_errlist e = {0};
    struct gw_conf *cf = gw_conf_new(a, &e);
    CHECK_STR(gw_conf_path(cf), "");
    gw_conf_push(cf, "services[0]");
    gw_conf_push(cf, "routes");
    gw_conf_push(cf, "[1]");
    gw_conf_push(cf, "plugins[0]");
    gw_conf_push(cf, "config");
    CHECK_STR(gw_conf_path(cf), "services[0].routes[1].plugins[0].config");
    gw_conf_error(cf, NULL, "model.provider", "bad");
    gw_conf_error(cf, NULL, "[2]", "worse");
    gw_conf_pop(cf);
    gw_conf_pop(cf);
    CHECK_STR(gw_conf_path(cf), "services[0].routes[1]");
    gw_conf_pop(cf);
    gw_conf_pop(cf);
    gw_conf_pop(cf);
    gw_conf_pop(cf); /* one too many is harmless */
    CHECK_STR(gw_conf_path(cf), "");
    CHECK_STR(e.n > 0 ? e.v[0] : NULL,
              "services[0].routes[1].plugins[0].config.model.provider: bad");
    CHECK_STR(e.n > 1 ? e.v[1] : NULL, "services[0].routes[1].plugins[0].config[2]: worse");
    gw_errlist_free(&e);
    gw_arena_free(a);
}

int main(void)
{
    test_yaml_tree();
    test_yaml_merge();
    test_yaml_errors();
    test_defaults_and_types();
    test_type_errors();
    test_ranges_and_required();
    test_env();
    test_paths();
    return gw_test_done("test_schema");
}
