/*
 * libyaml's event API -> gw_node tree. The builder keeps its own stack of
 * open collections (no recursion), so input depth cannot exhaust the C
 * stack here; GW_YAML_MAX_DEPTH protects the recursive walkers downstream.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config.h"
#include "gw_arena.h"
#include "gw_num_text.h"
#include "yaml_node.h"

#define YAML_STR_TAG "tag:yaml.org,2002:str"

/*
 * Aliases share the anchored node, so reading a file costs what it has
 * written; but the config readers walk the tree as if every alias were a
 * copy, and a 1 KB file of anchors used a hundred times at three levels
 * makes a million plugin entries (minutes and gigabytes). Each node's
 * weight is its size with aliases expanded; a document that expands past
 * YAML_EXPANDED_MAX nodes, or past YAML_ALIAS_FACTOR times what it has
 * written once past YAML_ALIAS_FREE, is refused (go-yaml's "excessive
 * aliasing" rule, in spirit). A real config of 20 000 services is about a
 * million nodes written and expands by far less than that factor.
 */
#define YAML_EXPANDED_MAX 20000000ULL
#define YAML_ALIAS_FREE 1000000ULL
#define YAML_ALIAS_FACTOR 10ULL

/* Anchors by name, in an open-addressing table: an alias finds its node
 * without a pass over every anchor (50 000 anchors took seconds). A name
 * defined again replaces the old node, which no later alias can reach. */
struct anchor {
    const char *name;
    struct gw_node *node;
    unsigned long long weight;
};

/* An open mapping or sequence. Items grow in the arena by doubling: the
 * waste is bounded by the final size and freed with everything else. */
struct frame {
    struct gw_node *node;
    const char *anchor;
    size_t cap;
    struct gw_node *key; /* mapping: key waiting for its value */
    int skip_value;      /* mapping: the key was bad, drop its value */
    unsigned long long weight;
    /* mapping: its keys by hash (index + 1 into pairs), once it has
     * KEY_INDEX_MIN of them: duplicates found without a quadratic scan */
    size_t *keys;
    size_t keys_cap;
};
#define KEY_INDEX_MIN 16

struct builder {
    struct gw_arena *a;
    const char *file;
    struct gw_errlist *errs;
    struct frame stack[GW_YAML_MAX_DEPTH];
    int depth;
    struct anchor *anchors; /* anchors_cap slots, a power of two */
    size_t anchors_n, anchors_cap;
    struct gw_node *root;
    unsigned long long root_weight, written;
    int failed;
    int too_big;               /* past YAML_EXPANDED_MAX: parsing stops */
    int alias_line, alias_col; /* where the alias being placed is written */
    int documents;
};

static unsigned long long add_weight(unsigned long long a, unsigned long long b)
{
    return a > ~0ULL - b ? ~0ULL : a + b;
}

const struct gw_node *gw_node_get(const struct gw_node *map, const char *key)
{
    if (!map || map->type != GW_NODE_MAP) return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->pairs[i].key->value, key) == 0) return map->pairs[i].value;
    return NULL;
}

struct gw_node *gw_node_new(struct gw_arena *a, enum gw_node_type type, const struct gw_node *at)
{
    struct gw_node *n = gw_calloc(a, sizeof(*n));
    n->type = type;
    n->file = at ? at->file : "";
    n->line = at ? at->line : 1;
    n->col = at ? at->col : 1;
    if (type == GW_NODE_NULL) n->value = "";
    return n;
}

static int is_null_text(const char *s, size_t len)
{
    return len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/* The YAML 1.2 core schema's reading of a plain scalar, which is what a
 * person expects from `port: 80` or `enabled: true`. */
int gw_node_plain_type(const struct gw_node *n, int *b, long *l, double *d)
{
    if (!n || n->type != GW_NODE_SCALAR || !n->plain || n->len == 0) return 0;
    const char *s = n->value;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
        if (b) *b = 1;
        return 1;
    }
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
        if (b) *b = 0;
        return 1;
    }
    if (strlen(s) != n->len) return 0; /* embedded NUL */
    char *end;
    int c0 = (unsigned char)s[0];
    if (c0 == '-' || c0 == '+' || (c0 >= '0' && c0 <= '9')) {
        int digits_only = 1;
        for (size_t i = (c0 == '-' || c0 == '+'); i < n->len; i++)
            if (s[i] < '0' || s[i] > '9') digits_only = 0;
        if (digits_only && n->len > (size_t)(c0 == '-' || c0 == '+')) {
            errno = 0;
            long v = strtol(s, &end, 10);
            if (*end == '\0' && errno == 0) {
                if (l) *l = v;
                if (d) *d = (double)v;
                return 2;
            }
        }
    }
    if (c0 == '-' || c0 == '+' || c0 == '.' || (c0 >= '0' && c0 <= '9')) {
        /* strtod also takes hex, inf and nan spellings YAML does not. */
        for (size_t i = 0; i < n->len; i++)
            if (!strchr("0123456789+-.eE", s[i])) return 0;
        double v = strtod(s, &end);
        if (*end == '\0' && end != s) {
            if (d) *d = v;
            return 3;
        }
    }
    return 0;
}

static void fail_at(struct builder *b, int line, int col, const char *msg)
{
    gw_errlist_add(b->errs, "%s:%d:%d: %s", b->file, line, col, msg);
    b->failed = 1;
}

/* "services[0].routes[1].name" for the key being read in the innermost
 * mapping: the path the schema's messages give, built from the stack. */
static const char *field_path(struct builder *b, const struct gw_node *key)
{
    const char *path = "";
    for (int d = 0; d < b->depth; d++) {
        const struct frame *f = &b->stack[d];
        if (f->node->type == GW_NODE_SEQ) {
            path = gw_sprintf(b->a, "%s[%zu]", path, f->node->n);
        } else {
            const struct gw_node *k = d + 1 == b->depth ? key : f->key;
            if (!k) break;
            path = gw_sprintf(b->a, "%s%s%s", path, *path ? "." : "", k->value);
        }
    }
    return path;
}

static void grow_append(struct builder *b, struct frame *f, struct gw_node *key,
                        struct gw_node *value)
{
    struct gw_node *n = f->node;
    if (n->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        if (n->type == GW_NODE_MAP) {
            struct gw_node_pair *p = gw_alloc(b->a, cap * sizeof(*p));
            if (n->n) memcpy(p, n->pairs, n->n * sizeof(*p));
            n->pairs = p;
        } else {
            struct gw_node **p = gw_alloc(b->a, cap * sizeof(*p));
            if (n->n) memcpy(p, n->items, n->n * sizeof(*p));
            n->items = p;
        }
        f->cap = cap;
    }
    if (n->type == GW_NODE_MAP) {
        n->pairs[n->n].key = key;
        n->pairs[n->n].value = value;
    } else {
        n->items[n->n] = value;
    }
    n->n++;
}

/* The slot of key in an open-addressing index of pairs[] (index + 1, 0
 * for empty; cap a power of two): where it is, or where it would go. Used
 * by a mapping's key index and by merges. */
static size_t pair_slot(const size_t *slots, size_t cap, const struct gw_node_pair *pairs,
                        const struct gw_node *key)
{
    size_t mask = cap - 1, h = (size_t)gw_hash_bytes(key->value, key->len) & mask;
    for (; slots[h]; h = (h + 1) & mask) {
        const struct gw_node *k = pairs[slots[h] - 1].key;
        if (k->len == key->len && memcmp(k->value, key->value, k->len) == 0) break;
    }
    return h;
}

static size_t key_slot(const struct frame *f, const struct gw_node *key)
{
    return pair_slot(f->keys, f->keys_cap, f->node->pairs, key);
}

/* The pair at index i, entered in the key index (built, or grown by
 * doubling, as the mapping grows). */
static void index_key(struct builder *b, struct frame *f, size_t i)
{
    if (f->node->n < KEY_INDEX_MIN) return;
    if (f->keys_cap < 2 * (f->node->n + 1)) {
        size_t cap = f->keys_cap ? f->keys_cap : 64;
        while (cap < 4 * (f->node->n + 1))
            cap *= 2;
        f->keys = gw_calloc(b->a, cap * sizeof(*f->keys));
        f->keys_cap = cap;
        for (size_t j = 0; j < f->node->n; j++)
            f->keys[key_slot(f, f->node->pairs[j].key)] = j + 1;
        return;
    }
    f->keys[key_slot(f, f->node->pairs[i].key)] = i + 1;
}

/* The earlier pair of the mapping with this key, or NULL. */
static const struct gw_node *earlier_key(const struct frame *f, const struct gw_node *key)
{
    if (f->keys_cap) {
        size_t h = key_slot(f, key);
        return f->keys[h] ? f->node->pairs[f->keys[h] - 1].key : NULL;
    }
    for (size_t i = 0; i < f->node->n; i++) {
        const struct gw_node *k = f->node->pairs[i].key;
        if (k->len == key->len && memcmp(k->value, key->value, k->len) == 0) return k;
    }
    return NULL;
}

/* Places a finished node in its parent: the root, a sequence item, a
 * mapping key or a mapping value. weight: its size with aliases expanded. */
static void add_node(struct builder *b, struct gw_node *node, unsigned long long weight)
{
    if (b->depth == 0) {
        b->root = node;
        b->root_weight = weight;
        return;
    }
    struct frame *f = &b->stack[b->depth - 1];
    f->weight = add_weight(f->weight, weight);
    if (f->weight > YAML_EXPANDED_MAX && !b->too_big) {
        /* Stop here rather than build the rest (merges copy what they
         * expand): the whole document can only be larger. */
        b->too_big = 1;
        /* At the alias that passes the bound, not at the anchor it names. */
        fail_at(b, b->alias_line ? b->alias_line : node->line,
                b->alias_line ? b->alias_col : node->col,
                gw_sprintf(b->a,
                           "its aliases expand the document past %llu nodes: refused (anchors "
                           "used many times over, at several levels?)",
                           YAML_EXPANDED_MAX));
    }
    if (f->node->type == GW_NODE_SEQ) {
        grow_append(b, f, NULL, node);
        return;
    }
    if (!f->key && !f->skip_value) {
        if (node->type == GW_NODE_MAP || node->type == GW_NODE_SEQ) {
            fail_at(b, node->line, node->col, "mapping keys must be scalars");
            f->skip_value = 1;
            return;
        }
        struct gw_node *key = node;
        if (key->type != GW_NODE_SCALAR) { /* `~: x` or an empty key: a key all the same */
            key = gw_memdup(b->a, node, sizeof(*node));
            key->type = GW_NODE_SCALAR;
        }
        const struct gw_node *k = earlier_key(f, key);
        if (k) {
            /* Not fatal: the first value stands and the schema pass
             * still runs, so every other error is listed too. */
            gw_errlist_add(b->errs, "%s:%d:%d: %s: duplicate key '%s' (first at line %d)", b->file,
                           key->line, key->col, field_path(b, key), key->value, k->line);
            f->skip_value = 1;
            return;
        }
        f->key = key;
        return;
    }
    if (f->skip_value) {
        f->skip_value = 0;
        return;
    }
    grow_append(b, f, f->key, node);
    f->key = NULL;
    index_key(b, f, f->node->n - 1);
}

static struct anchor *anchor_slot(struct anchor *tab, size_t cap, const char *name)
{
    size_t h = (size_t)gw_hash_bytes(name, strlen(name)) & (cap - 1);
    while (tab[h].name && strcmp(tab[h].name, name) != 0)
        h = (h + 1) & (cap - 1);
    return &tab[h];
}

static void add_anchor(struct builder *b, const char *name, struct gw_node *node,
                       unsigned long long weight)
{
    if (2 * (b->anchors_n + 1) > b->anchors_cap) {
        size_t cap = b->anchors_cap ? 2 * b->anchors_cap : 64;
        struct anchor *tab = gw_calloc(b->a, cap * sizeof(*tab));
        for (size_t i = 0; i < b->anchors_cap; i++)
            if (b->anchors[i].name) *anchor_slot(tab, cap, b->anchors[i].name) = b->anchors[i];
        b->anchors = tab;
        b->anchors_cap = cap;
    }
    struct anchor *an = anchor_slot(b->anchors, b->anchors_cap, name);
    if (!an->name) b->anchors_n++;
    *an = (struct anchor){name, node, weight};
}

static const struct anchor *find_anchor(struct builder *b, const char *name)
{
    if (!b->anchors_cap) return NULL;
    const struct anchor *an = anchor_slot(b->anchors, b->anchors_cap, name);
    return an->name ? an : NULL;
}

static struct gw_node *node_at(struct builder *b, enum gw_node_type type, yaml_mark_t m)
{
    b->written++;
    struct gw_node *n = gw_calloc(b->a, sizeof(*n));
    n->type = type;
    n->file = b->file;
    n->line = (int)m.line + 1;
    n->col = (int)m.column + 1;
    return n;
}

/* Tags: the YAML 1.2 core schema's, which say how to read a scalar
 * (!!str and the non-specific "!" make it a string even unquoted; !!int,
 * !!float, !!bool, !!null read it as plain even quoted) or name the kind
 * of a collection. Any other (!!binary, !!timestamp, !!set, a custom
 * !tag) would be an application's meaning sluice does not have: refused
 * rather than ignored. Returns 1 (string), 0 (plain), -1 (refused) or -2
 * (no tag: the style decides). */
#define YAML_CORE_TAG "tag:yaml.org,2002:"
/* The field path of the node about to be added ("services[0].name"):
 * the innermost mapping's waiting key, or the next item of a sequence.
 * "" at the top, or for a mapping key itself (its mapping's path). */
static const char *next_path(struct builder *b)
{
    if (!b->depth) return "";
    const struct frame *f = &b->stack[b->depth - 1];
    if (f->node->type == GW_NODE_MAP && !f->key) {
        if (b->depth == 1) return "";
        b->depth--; /* the mapping's own path, as its parent names it */
        const char *p = next_path(b);
        b->depth++;
        return p;
    }
    return field_path(b, f->key);
}

static void refuse_tag(struct builder *b, const char *tag, yaml_mark_t m)
{
    int core = strncmp(tag, YAML_CORE_TAG, sizeof(YAML_CORE_TAG) - 1) == 0;
    const char *path = next_path(b);
    fail_at(b, (int)m.line + 1, (int)m.column + 1,
            gw_sprintf(b->a,
                       "%s%sunsupported YAML tag '%s%.64s' (sluice reads the core schema: !!str, "
                       "!!int, !!float, !!bool, !!null, !!map, !!seq)",
                       path, *path ? ": " : "", core ? "!!" : "",
                       core ? tag + sizeof(YAML_CORE_TAG) - 1 : tag));
}

static int scalar_tag(struct builder *b, const char *tag, yaml_mark_t m)
{
    if (!tag) return -2; /* none: the style decides */
    if (strcmp(tag, "!") == 0 || strcmp(tag, YAML_STR_TAG) == 0) return 1;
    if (strncmp(tag, YAML_CORE_TAG, sizeof(YAML_CORE_TAG) - 1) == 0) {
        const char *t = tag + sizeof(YAML_CORE_TAG) - 1;
        if (!strcmp(t, "int") || !strcmp(t, "float") || !strcmp(t, "bool") || !strcmp(t, "null"))
            return 0;
    }
    refuse_tag(b, tag, m);
    return -1;
}

static int collection_tag_ok(struct builder *b, const yaml_char_t *tag, const char *kind,
                             yaml_mark_t m)
{
    if (!tag || strcmp((const char *)tag, "!") == 0) return 1;
    if (strncmp((const char *)tag, YAML_CORE_TAG, sizeof(YAML_CORE_TAG) - 1) == 0 &&
        strcmp((const char *)tag + sizeof(YAML_CORE_TAG) - 1, kind) == 0)
        return 1;
    refuse_tag(b, (const char *)tag, m);
    return 0;
}

static void on_scalar(struct builder *b, yaml_event_t *ev)
{
    struct gw_node *n = node_at(b, GW_NODE_SCALAR, ev->start_mark);
    n->len = ev->data.scalar.length;
    n->value = gw_strndup(b->a, (const char *)ev->data.scalar.value, n->len);
    /* A refused tag is reported; the node still goes in (as a string), so
     * that the tree stays whole and later errors are still found. */
    int tagged = scalar_tag(b, (const char *)ev->data.scalar.tag, ev->start_mark);
    n->plain = tagged == -2 ? ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE : tagged == 0;
    if (n->plain && is_null_text(n->value, n->len)) n->type = GW_NODE_NULL;
    /* "\0" in a quoted scalar: C strings would end there, and "a\0b" would
     * be read as "a" (a name, a key) without a word. */
    if (memchr(n->value, '\0', n->len)) {
        const char *path = next_path(b);
        const struct frame *f = b->depth ? &b->stack[b->depth - 1] : NULL;
        int is_key = f && f->node->type == GW_NODE_MAP && !f->key;
        fail_at(b, n->line, n->col,
                gw_sprintf(b->a, "%s%sa NUL character (\\0) is not allowed in a %s", path,
                           *path ? ": " : "", is_key ? "key" : "value"));
    }
    if (ev->data.scalar.anchor)
        add_anchor(b, gw_strdup(b->a, (const char *)ev->data.scalar.anchor), n, 1);
    add_node(b, n, 1);
}

static void on_start(struct builder *b, yaml_event_t *ev, enum gw_node_type type,
                     const yaml_char_t *anchor)
{
    if (b->depth == GW_YAML_MAX_DEPTH) {
        fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                "nesting too deep");
        return;
    }
    struct frame *f = &b->stack[b->depth++];
    memset(f, 0, sizeof(*f));
    f->weight = 1;
    f->node = node_at(b, type, ev->start_mark);
    f->anchor = anchor ? gw_strdup(b->a, (const char *)anchor) : NULL;
}

static int is_merge_key(const struct gw_node *k)
{
    return k->plain && strcmp(k->value, "<<") == 0;
}

/* YAML's merge key (`<<: *defaults` or `<<: [*a, *b]`), which kong.yml
 * files use to share plugin configs: the mapping gets the pairs of the
 * merged ones it does not set itself; earlier sources win. */
static void apply_merges(struct builder *b, struct gw_node *m)
{
    size_t merges = 0;
    for (size_t i = 0; i < m->n; i++)
        merges += is_merge_key(m->pairs[i].key);
    if (!merges) return;
    size_t cap = m->n;
    for (size_t i = 0; i < m->n; i++) {
        const struct gw_node *v = m->pairs[i].value;
        if (!is_merge_key(m->pairs[i].key)) continue;
        if (v->type == GW_NODE_MAP) cap += v->n;
        for (size_t j = 0; v->type == GW_NODE_SEQ && j < v->n; j++)
            if (v->items[j]->type == GW_NODE_MAP) cap += v->items[j]->n;
    }
    struct gw_node_pair *out = gw_alloc(b->a, cap * sizeof(*out));
    /* The keys of out[] by hash: a merge of K keys costs K lookups, not
     * K * K comparisons (a hostile 50 000-key anchor). */
    size_t slots = 16;
    while (slots < 2 * cap)
        slots *= 2;
    size_t *ix = gw_oom_check(calloc(slots, sizeof(*ix)));
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        if (!is_merge_key(m->pairs[i].key)) {
            ix[pair_slot(ix, slots, out, m->pairs[i].key)] = n + 1;
            out[n++] = m->pairs[i];
        }
    for (size_t i = 0; i < m->n; i++) {
        const struct gw_node *v = m->pairs[i].value;
        if (!is_merge_key(m->pairs[i].key)) continue;
        size_t nsrc = v->type == GW_NODE_SEQ ? v->n : 1;
        for (size_t j = 0; j < nsrc; j++) {
            const struct gw_node *src = v->type == GW_NODE_SEQ ? v->items[j] : v;
            if (src->type != GW_NODE_MAP) {
                fail_at(b, src->line, src->col, "a merge ('<<') takes a map or a list of maps");
                free(ix);
                return;
            }
            for (size_t k = 0; k < src->n; k++) {
                size_t h = pair_slot(ix, slots, out, src->pairs[k].key);
                if (ix[h]) continue; /* set already: the map's own, or an earlier source */
                ix[h] = n + 1;
                out[n++] = src->pairs[k];
            }
        }
    }
    free(ix);
    m->pairs = out;
    m->n = n;
}

static void on_end(struct builder *b)
{
    struct frame *f = &b->stack[--b->depth];
    if (f->node->type == GW_NODE_MAP) apply_merges(b, f->node);
    /* An anchor is only usable once its node is complete: no cycles. */
    if (f->anchor) add_anchor(b, f->anchor, f->node, f->weight);
    add_node(b, f->node, f->weight);
}

static void on_alias(struct builder *b, yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    const struct anchor *an = find_anchor(b, name);
    if (!an) {
        char *msg = gw_sprintf(b->a, "unknown anchor '%s'", name);
        fail_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1, msg);
        struct gw_node *n = node_at(b, GW_NODE_NULL, ev->start_mark); /* keys, values paired */
        n->value = "";
        add_node(b, n, 1);
        return;
    }
    b->alias_line = (int)ev->start_mark.line + 1;
    b->alias_col = (int)ev->start_mark.column + 1;
    add_node(b, an->node, an->weight);
    b->alias_line = b->alias_col = 0;
}

/* libyaml reports reader errors (bad UTF-8, control characters) by byte
 * offset only. In UTF-16 (unit 2; big-endian or not) a character is two
 * bytes and the byte order mark is none; UTF-8 columns count bytes. */
static void offset_to_line_col(const char *text, size_t len, size_t off, int unit, int big_endian,
                               int *line, int *col)
{
    *line = 1;
    *col = 1;
    size_t i =
        unit == 2 && len >= 2 && ((unsigned char)text[0] == 0xFF || (unsigned char)text[0] == 0xFE)
            ? 2
            : 0;
    for (; i + (size_t)unit <= off && i + (size_t)unit <= len; i += (size_t)unit) {
        int nl = unit == 1 ? text[i] == '\n'
                           : (big_endian ? text[i] == 0 && text[i + 1] == '\n'
                                         : text[i] == '\n' && text[i + 1] == 0);
        if (nl) {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void report_parser_error(struct builder *b, yaml_parser_t *p, const char *text, size_t len,
                                int unit, int big_endian)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR) problem = "out of memory";
    if (p->error == YAML_READER_ERROR) {
        int line, col;
        offset_to_line_col(text, len, p->problem_offset, unit, big_endian, &line, &col);
        char *msg = p->problem_value != -1
                        ? gw_sprintf(b->a, "%s (#%X)", problem, (unsigned)p->problem_value)
                        : gw_strdup(b->a, problem);
        fail_at(b, line, col, msg);
        return;
    }
    char *msg = p->context
                    ? gw_sprintf(b->a, "%s (%s started at %d:%d)", problem, p->context,
                                 (int)p->context_mark.line + 1, (int)p->context_mark.column + 1)
                    : gw_strdup(b->a, problem);
    fail_at(b, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1, msg);
}

struct gw_node *gw_yaml_load(struct gw_arena *a, const char *file, const char *text, size_t len,
                             struct gw_errlist *errs)
{
    struct builder *b = gw_calloc(a, sizeof(*b));
    b->a = a;
    b->file = gw_strdup(a, file);
    b->errs = errs;

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fail_at(b, 1, 1, "out of memory");
        return NULL;
    }
    /* A UTF-8 byte order mark may start a YAML stream and is not content
     * (YAML 1.2 5.2). With the encoding forced, libyaml keeps it and counts
     * it as a column, so every line after the first looked indented. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        text += 3;
        len -= 3;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    /* UTF-16 (YAML 1.2 5.2: a processor must read it; PowerShell 5 writes
     * it): with its byte order mark libyaml detects and converts it;
     * without, a stream that starts with an ASCII character shows its
     * encoding by where the zero bytes are ("x\0" UTF-16LE, "\0x" BE).
     * Everything else is read as UTF-8. */
    const unsigned char *u = (const unsigned char *)text;
    int le = len >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] && !u[1]));
    int be = len >= 2 && ((u[0] == 0xFE && u[1] == 0xFF) || (!u[0] && u[1]));
    int bom = len >= 2 && (u[0] == 0xFF || u[0] == 0xFE);
    if (bom)
        ; /* libyaml reads the mark, sets the encoding and skips it */
    else if (le)
        yaml_parser_set_encoding(&parser, YAML_UTF16LE_ENCODING);
    else if (be)
        yaml_parser_set_encoding(&parser, YAML_UTF16BE_ENCODING);
    else
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

    int done = 0;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            report_parser_error(b, &parser, text, len, le || be ? 2 : 1, be);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++b->documents > 1) {
                fail_at(b, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                        "only one YAML document is supported");
                done = 1;
            }
            break;
        case YAML_SCALAR_EVENT:
            on_scalar(b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            collection_tag_ok(b, ev.data.sequence_start.tag, "seq", ev.start_mark);
            on_start(b, &ev, GW_NODE_SEQ, ev.data.sequence_start.anchor);
            break;
        case YAML_MAPPING_START_EVENT:
            collection_tag_ok(b, ev.data.mapping_start.tag, "map", ev.start_mark);
            on_start(b, &ev, GW_NODE_MAP, ev.data.mapping_start.anchor);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            on_end(b);
            break;
        case YAML_ALIAS_EVENT:
            on_alias(b, &ev);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        /* Structural errors leave the stack unusable; duplicate keys do not,
         * so keep going to report them all. */
        if (b->failed && b->depth == GW_YAML_MAX_DEPTH) done = 1;
        if (b->failed && parser.error != YAML_NO_ERROR) done = 1;
        if (b->too_big) done = 1;
    }
    yaml_parser_delete(&parser);
    if (!b->failed && b->root &&
        (b->root_weight > YAML_EXPANDED_MAX ||
         (b->root_weight > YAML_ALIAS_FREE && b->root_weight / YAML_ALIAS_FACTOR > b->written))) {
        char *msg =
            gw_sprintf(b->a,
                       "its aliases expand it to %s%llu nodes from the %llu written: "
                       "refused (anchors used many times over, at several levels?)",
                       b->root_weight == ~0ULL ? "more than " : "", b->root_weight, b->written);
        fail_at(b, b->root->line, b->root->col, msg);
    }
    if (b->failed) return NULL;
    if (!b->root) {
        b->root = gw_calloc(a, sizeof(*b->root));
        b->root->type = GW_NODE_NULL;
        b->root->file = b->file;
        b->root->line = b->root->col = 1;
        b->root->value = "";
    }
    return b->root;
}
