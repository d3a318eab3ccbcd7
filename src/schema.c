/*
 * The schema walker: reads a gw_node tree into typed structs by a table of
 * gw_field (gw_schema.h), collecting every error with file:line:col and the
 * field path. Also the $VAR / {vault://env/...} expansion of strings.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "gw_arena.h"
#include "gw_schema.h"
#include "yaml_node.h"

/* Past this many errors the file is hopeless and the list unreadable; the
 * cap also bounds the work a hostile file (aliases fanning out) can cause. */
#define GW_CONF_MAX_ERRORS 200

struct gw_conf {
    struct gw_arena *a;
    struct gw_errlist *errs;
    char *path; /* current field path, NUL-terminated */
    size_t path_len, path_cap;
    size_t *marks; /* path_len before each push */
    size_t depth, marks_cap;
    size_t n_errors;
    const struct gw_node **secrets;
    size_t n_secrets, secrets_cap;
    int in_default;                          /* defaults are taken literally: no $VAR expansion */
    int expanding_secret;                    /* errors must not quote the value */
    const struct gw_plugin_instance *plugin; /* whose config is being read */
    int legacy_paths;                        /* _format_version 1.1 / 2.1 */
    /* Defaults written as YAML ("[http, https]"), parsed once per load:
     * each parse costs a YAML builder, ~11 KB of arena (20 000 routes with
     * default protocols took 263 MB to load, 47 MB with them written out). */
    struct {
        const char *def;
        const struct gw_node *node;
    } defaults[32];
    size_t n_defaults;
};

void gw_conf_set_legacy_paths(struct gw_conf *cf, int on)
{
    cf->legacy_paths = on;
}

int gw_conf_legacy_paths(struct gw_conf *cf)
{
    return cf->legacy_paths;
}

void gw_conf_set_plugin(struct gw_conf *cf, const struct gw_plugin_instance *pi)
{
    cf->plugin = pi;
}

const struct gw_plugin_instance *gw_conf_plugin(struct gw_conf *cf)
{
    return cf->plugin;
}

struct gw_conf *gw_conf_new(struct gw_arena *a, struct gw_errlist *errs)
{
    struct gw_conf *cf = gw_calloc(a, sizeof(*cf));
    cf->a = a;
    cf->errs = errs;
    cf->path_cap = 256;
    cf->path = gw_calloc(a, cf->path_cap);
    cf->marks_cap = 32;
    cf->marks = gw_alloc(a, cf->marks_cap * sizeof(*cf->marks));
    return cf;
}

struct gw_arena *gw_conf_arena(struct gw_conf *cf)
{
    return cf->a;
}

const char *gw_conf_path(struct gw_conf *cf)
{
    return cf->path;
}

size_t gw_conf_errors(const struct gw_conf *cf)
{
    return cf->n_errors;
}

/* Appends to an arena buffer that doubles as it fills. */
static void buf_add(struct gw_arena *a, char **buf, size_t *len, size_t *cap, const char *s,
                    size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 64;
        while (*len + n + 1 > ncap)
            ncap *= 2;
        char *nb = gw_alloc(a, ncap);
        if (*len) memcpy(nb, *buf, *len);
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

void gw_conf_push(struct gw_conf *cf, const char *name)
{
    if (cf->depth == cf->marks_cap) {
        size_t *m = gw_alloc(cf->a, cf->marks_cap * 2 * sizeof(*m));
        memcpy(m, cf->marks, cf->depth * sizeof(*m));
        cf->marks = m;
        cf->marks_cap *= 2;
    }
    cf->marks[cf->depth++] = cf->path_len;
    if (cf->path_len && name[0] != '[')
        buf_add(cf->a, &cf->path, &cf->path_len, &cf->path_cap, ".", 1);
    buf_add(cf->a, &cf->path, &cf->path_len, &cf->path_cap, name, strlen(name));
}

void gw_conf_pop(struct gw_conf *cf)
{
    if (!cf->depth) return;
    cf->path_len = cf->marks[--cf->depth];
    cf->path[cf->path_len] = '\0';
}

void gw_conf_add_secret(struct gw_conf *cf, const struct gw_node *n)
{
    if (cf->n_secrets == cf->secrets_cap) {
        size_t cap = cf->secrets_cap ? cf->secrets_cap * 2 : 8;
        const struct gw_node **s = gw_alloc(cf->a, cap * sizeof(*s));
        if (cf->n_secrets) memcpy(s, cf->secrets, cf->n_secrets * sizeof(*s));
        cf->secrets = s;
        cf->secrets_cap = cap;
    }
    cf->secrets[cf->n_secrets++] = n;
}

const struct gw_node *const *gw_conf_secrets(const struct gw_conf *cf, size_t *n)
{
    *n = cf->n_secrets;
    return cf->secrets;
}

void gw_conf_error(struct gw_conf *cf, const struct gw_node *node, const char *sub, const char *fmt,
                   ...)
{
    cf->n_errors++;
    if (cf->n_errors > GW_CONF_MAX_ERRORS + 1) return;
    if (cf->n_errors == GW_CONF_MAX_ERRORS + 1) {
        gw_errlist_add(cf->errs, "too many errors; the rest are not listed");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = gw_vsprintf(cf->a, fmt, ap);
    va_end(ap);
    const char *path = cf->path;
    if (sub && *sub)
        path = !*path ? sub : gw_sprintf(cf->a, "%s%s%s", path, sub[0] == '[' ? "" : ".", sub);
    char *where = node ? gw_sprintf(cf->a, "%s:%d:%d: ", node->file, node->line, node->col)
                       : gw_strdup(cf->a, "");
    if (*path)
        gw_errlist_add(cf->errs, "%s%s: %s", where, path, msg);
    else
        gw_errlist_add(cf->errs, "%s%s", where, msg);
}

static int is_name_start(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_name_char(int c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* {vault://env/NAME} and {vault://env/NAME/KEY}: Kong's env vault reads
 * the variable NAME uppercased with '-' turned into '_'; with KEY, the
 * variable holds a JSON object and KEY picks a string field of it. */
static const char *vault_lookup(struct gw_conf *cf, const struct gw_node *node, const char *ref,
                                size_t len)
{
    const char *p = ref + strlen("vault://");
    const char *end = ref + len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    if (!slash || (size_t)(slash - p) != 3 || memcmp(p, "env", 3) != 0) {
        size_t blen = slash ? (size_t)(slash - p) : (size_t)(end - p);
        gw_conf_error(cf, node, NULL, "vault '%.*s' is not supported (only 'env')", (int)blen, p);
        return NULL;
    }
    const char *name = slash + 1;
    const char *key = memchr(name, '/', (size_t)(end - name));
    size_t nlen = key ? (size_t)(key - name) : (size_t)(end - name);
    if (nlen == 0) {
        gw_conf_error(cf, node, NULL, "empty vault reference '{%.*s}'", (int)len, ref);
        return NULL;
    }
    char *var = gw_strndup(cf->a, name, nlen);
    for (char *c = var; *c; c++) {
        if (*c == '-')
            *c = '_';
        else if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 'a' + 'A');
    }
    const char *val = getenv(var);
    if (!val) {
        gw_conf_error(cf, node, NULL, "environment variable %s is not set", var);
        return NULL;
    }
    if (!key) return val;
    key++;
    cJSON *obj = cJSON_Parse(val);
    const cJSON *field =
        obj ? cJSON_GetObjectItemCaseSensitive(obj, gw_strndup(cf->a, key, (size_t)(end - key)))
            : NULL;
    const char *out = cJSON_IsString(field) ? gw_strdup(cf->a, field->valuestring) : NULL;
    cJSON_Delete(obj);
    if (!out)
        gw_conf_error(cf, node, NULL, "environment variable %s has no string field '%.*s'", var,
                      (int)(end - key), key);
    return out;
}

/* "${" between from and to. */
static int has_reference(const char *from, const char *to)
{
    for (const char *p = from; p + 1 < to; p++)
        if (p[0] == '$' && p[1] == '{') return 1;
    return 0;
}

const char *gw_conf_expand(struct gw_conf *cf, const struct gw_node *node, const char *s)
{
    if (!strchr(s, '$') && !strstr(s, "{vault://")) return s;
    char *out = NULL;
    size_t len = 0, cap = 0;
    buf_add(cf->a, &out, &len, &cap, "", 0);
    const char *p = s;
    while (*p) {
        if (p[0] == '{' && strncmp(p, "{vault://", 9) == 0 && strchr(p, '}')) {
            const char *close = strchr(p, '}');
            const char *v = vault_lookup(cf, node, p + 1, (size_t)(close - p - 1));
            if (!v) return NULL;
            buf_add(cf->a, &out, &len, &cap, v, strlen(v));
            p = close + 1;
            continue;
        }
        if (p[0] != '$') {
            size_t n = strcspn(p + 1, "${") + 1;
            buf_add(cf->a, &out, &len, &cap, p, n);
            p += n;
            continue;
        }
        if (p[1] == '$') {
            buf_add(cf->a, &out, &len, &cap, "$", 1);
            p += 2;
            continue;
        }
        if (is_name_start((unsigned char)p[1])) {
            size_t n = 1;
            while (is_name_char((unsigned char)p[1 + n]))
                n++;
            char *var = gw_strndup(cf->a, p + 1, n);
            const char *v = getenv(var);
            if (!v) {
                gw_conf_error(cf, node, NULL, "environment variable %s is not set", var);
                return NULL;
            }
            buf_add(cf->a, &out, &len, &cap, v, strlen(v));
            p += 1 + n;
            continue;
        }
        if (p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            const char *q = p + 2;
            if (is_name_start((unsigned char)*q))
                while (is_name_char((unsigned char)*q))
                    q++;
            if (!close || q == p + 2 || (q != close && strncmp(q, ":-", 2) != 0)) {
                if (cf->expanding_secret) /* the rest of the value is the secret */
                    gw_conf_error(cf, node, NULL,
                                  "invalid variable reference: '${' must be followed by a "
                                  "name and '}' (write '$$' for a literal '$')");
                else
                    gw_conf_error(cf, node, NULL, "invalid variable reference '%.*s'",
                                  close ? (int)(close - p + 1) : (int)strlen(p), p);
                return NULL;
            }
            if (q != close && has_reference(q + 2, close)) {
                /* ${A:-${B}}: the first '}' would end A's reference and
                 * leave a stray one; defaults are literal, say so. */
                gw_conf_error(cf, node, NULL,
                              "invalid variable reference: a default ('${NAME:-default}') is "
                              "literal text and may not hold another reference");
                return NULL;
            }
            char *var = gw_strndup(cf->a, p + 2, (size_t)(q - p - 2));
            const char *v = getenv(var);
            if (q != close && (!v || !*v)) { /* ${VAR:-default}: unset or empty */
                v = gw_strndup(cf->a, q + 2, (size_t)(close - q - 2));
            } else if (!v) {
                gw_conf_error(cf, node, NULL, "environment variable %s is not set", var);
                return NULL;
            }
            buf_add(cf->a, &out, &len, &cap, v, strlen(v));
            p = close + 1;
            continue;
        }
        buf_add(cf->a, &out, &len, &cap, "$", 1); /* a lone '$' is itself */
        p++;
    }
    return out;
}

/* Integral limits print as integers ("between 1 and 65535"). */
static const char *fmt_num(struct gw_conf *cf, double v)
{
    if (v == floor(v) && fabs(v) < 1e15) return gw_sprintf(cf->a, "%.0f", v);
    return gw_sprintf(cf->a, "%g", v);
}

/* what: "" for values, "length " for strings; unit: "" or " items". */
static int check_range(struct gw_conf *cf, const struct gw_field *f, const struct gw_node *n,
                       double v, const char *what, const char *unit)
{
    if (f->min == 0 && f->max == 0) return 0;
    if (f->max != 0 && (v < f->min || v > f->max)) {
        gw_conf_error(cf, n, NULL, "%smust %s between %s and %s%s", what, *unit ? "have" : "be",
                      fmt_num(cf, f->min), fmt_num(cf, f->max), *unit ? " items" : "");
        return -1;
    }
    if (f->max == 0 && v < f->min) {
        gw_conf_error(cf, n, NULL, "%smust %s at least %s%s", what, *unit ? "have" : "be",
                      fmt_num(cf, f->min),
                      !*unit        ? ""
                      : f->min == 1 ? " item"
                                    : " items");
        return -1;
    }
    return 0;
}

static const char *read_string(struct gw_conf *cf, const struct gw_field *f,
                               const struct gw_node *n, const char *sub)
{
    if (n->type == GW_NODE_MAP || n->type == GW_NODE_SEQ || n->type == GW_NODE_NULL) {
        gw_conf_error(cf, n, sub, "expected a string");
        return NULL;
    }
    if ((f->flags & GW_NO_ENV) || ((f->flags & GW_NO_ENV_TILDE) && n->value[0] == '~') ||
        cf->in_default)
        return n->value;
    if (sub) gw_conf_push(cf, sub);
    cf->expanding_secret = (f->flags & GW_SECRET) != 0;
    const char *s = gw_conf_expand(cf, n, n->value);
    cf->expanding_secret = 0;
    if (sub) gw_conf_pop(cf);
    return s;
}

/* A lone scalar is a list of one, as Kong accepts `methods: GET`. */
static int read_strings(struct gw_conf *cf, const struct gw_field *f, const struct gw_node *n,
                        struct gw_strings *out)
{
    if (n->type == GW_NODE_MAP) {
        gw_conf_error(cf, n, NULL, "expected a list of strings");
        return -1;
    }
    size_t count = n->type == GW_NODE_SEQ ? n->n : 1;
    const char **v = gw_calloc(cf->a, (count ? count : 1) * sizeof(*v));
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        const struct gw_node *item = n->type == GW_NODE_SEQ ? n->items[i] : n;
        char sub[32];
        snprintf(sub, sizeof(sub), "[%zu]", i);
        v[i] = read_string(cf, f, item, n->type == GW_NODE_SEQ ? sub : NULL);
        if (!v[i]) rc = -1;
    }
    if (check_range(cf, f, n, (double)count, "", " items") < 0) rc = -1;
    out->v = v;
    out->n = count;
    return rc;
}

static int read_map(struct gw_conf *cf, const struct gw_field *f, const struct gw_node *n,
                    struct gw_string_map *out)
{
    if (n->type != GW_NODE_MAP) {
        gw_conf_error(cf, n, NULL, "expected a map");
        return -1;
    }
    int rc = 0;
    out->n = n->n;
    out->keys = gw_calloc(cf->a, (n->n ? n->n : 1) * sizeof(*out->keys));
    out->values = gw_calloc(cf->a, (n->n ? n->n : 1) * sizeof(*out->values));
    for (size_t i = 0; i < n->n; i++) {
        const struct gw_node *k = n->pairs[i].key, *val = n->pairs[i].value;
        out->keys[i] = k->value;
        gw_conf_push(cf, k->value);
        if (val->type == GW_NODE_MAP || val->type == GW_NODE_NULL) {
            gw_conf_error(cf, val, NULL, "expected a string or a list of strings");
            rc = -1;
        } else {
            struct gw_field elem = *f;
            elem.min = elem.max = 0;
            if (read_strings(cf, &elem, val, &out->values[i]) < 0) rc = -1;
        }
        gw_conf_pop(cf);
    }
    if (check_range(cf, f, n, (double)n->n, "", " items") < 0) rc = -1;
    return rc;
}

static int read_records(struct gw_conf *cf, const struct gw_field *f, const struct gw_node *n,
                        struct gw_records *out)
{
    if (n->type != GW_NODE_SEQ) {
        gw_conf_error(cf, n, NULL, "expected a list");
        return -1;
    }
    size_t size = f->record->size;
    unsigned char *v = gw_calloc(cf->a, (n->n ? n->n : 1) * size);
    int rc = 0;
    for (size_t i = 0; i < n->n; i++) {
        char sub[32];
        snprintf(sub, sizeof(sub), "[%zu]", i);
        if (gw_conf_read(cf, f->record, n->items[i], sub, v + i * size) < 0) rc = -1;
    }
    if (check_range(cf, f, n, (double)n->n, "", " items") < 0) rc = -1;
    out->v = v;
    out->n = n->n;
    return rc;
}

/* An inert field's value that leaves its feature off: its Kong default
 * (a boolean default by value, so `False` is `false`) or a listed one. */
static int inert_accepts(const struct gw_field *f, const struct gw_node *n, int kind, int b)
{
    if (n->type != GW_NODE_SCALAR) return n->n == 0; /* [] or {}: nothing asked */
    if (f->def && kind == 1) return strcmp(f->def, b ? "true" : "false") == 0;
    if (f->def && strcmp(n->value, f->def) == 0) return 1;
    for (int i = 0; f->choices && f->choices[i]; i++)
        if (strcmp(n->value, f->choices[i]) == 0) return 1;
    return 0;
}

static int read_value(struct gw_conf *cf, const struct gw_field *f, const struct gw_node *n,
                      void *dst)
{
    int b = 0;
    long l = 0;
    double d = 0;
    int kind = gw_node_plain_type(n, &b, &l, &d);
    if (f->flags & GW_SECRET) gw_conf_add_secret(cf, n);
    switch (f->type) {
    case GW_F_STRING: {
        const char *s = read_string(cf, f, n, NULL);
        if (!s) return -1;
        *(const char **)dst = s;
        return check_range(cf, f, n, (double)strlen(s), "length ", "");
    }
    case GW_F_INT:
        if (kind != 2) {
            gw_conf_error(cf, n, NULL, "expected an integer");
            return -1;
        }
        *(long *)dst = l;
        return check_range(cf, f, n, (double)l, "", "");
    case GW_F_NUMBER:
        if (kind != 2 && kind != 3) {
            gw_conf_error(cf, n, NULL, "expected a number");
            return -1;
        }
        *(double *)dst = d;
        return check_range(cf, f, n, d, "", "");
    case GW_F_BOOL:
        if (kind != 1) {
            gw_conf_error(cf, n, NULL, "expected a boolean");
            return -1;
        }
        *(int *)dst = b;
        return 0;
    case GW_F_ENUM:
        if (n->type == GW_NODE_SCALAR && f->choices) {
            /* $VAR works here too: an enum is a string value. */
            const char *v = read_string(cf, f, n, NULL);
            if (!v) return -1; /* an unset variable, already reported */
            for (int i = 0; f->choices[i]; i++)
                if (strcmp(v, f->choices[i]) == 0) {
                    *(int *)dst = i;
                    return 0;
                }
        }
        {
            char *list = NULL;
            size_t len = 0, cap = 0;
            buf_add(cf->a, &list, &len, &cap, "", 0);
            for (int i = 0; f->choices && f->choices[i]; i++) {
                if (i) buf_add(cf->a, &list, &len, &cap, ", ", 2);
                buf_add(cf->a, &list, &len, &cap, f->choices[i], strlen(f->choices[i]));
            }
            gw_conf_error(cf, n, NULL, "expected one of %s", list);
        }
        return -1;
    case GW_F_STRINGS:
        return read_strings(cf, f, n, dst);
    case GW_F_RECORD:
        if (n->type != GW_NODE_MAP) {
            gw_conf_error(cf, n, NULL, "expected a map");
            return -1;
        }
        return gw_conf_read(cf, f->record, n, NULL, dst);
    case GW_F_RECORDS:
        return read_records(cf, f, n, dst);
    case GW_F_MAP:
        return read_map(cf, f, n, dst);
    case GW_F_CUSTOM:
        return f->parse ? f->parse(cf, n, dst) : 0;
    case GW_F_INERT:
        if (inert_accepts(f, n, kind, b)) return 0;
        gw_conf_error(cf, n, NULL, "not supported: %s",
                      f->why ? f->why : "sluice has no such feature");
        return -1;
    }
    return -1;
}

/* A default is written as YAML would give it ("60000", "[http, https]",
 * "{}") and read like a value found in the file, at the parent's position. */
static struct gw_node *default_node(struct gw_conf *cf, const struct gw_field *f,
                                    const struct gw_node *parent)
{
    const char *def = f->def;
    if (strchr("[{\"'", def[0])) {
        const struct gw_node *parsed = NULL;
        for (size_t i = 0; i < cf->n_defaults && !parsed; i++)
            if (cf->defaults[i].def == def) parsed = cf->defaults[i].node;
        if (!parsed) {
            parsed = gw_yaml_load(cf->a, parent->file, def, strlen(def), cf->errs);
            if (!parsed) {
                cf->n_errors++;
                return NULL;
            }
            if (cf->n_defaults < sizeof(cf->defaults) / sizeof(cf->defaults[0])) {
                cf->defaults[cf->n_defaults].def = def;
                cf->defaults[cf->n_defaults++].node = parsed;
            }
        }
        /* A copy of the top node only, at the parent's position; the
         * values below are shared and only read. */
        struct gw_node *n = gw_memdup(cf->a, parsed, sizeof(*parsed));
        n->line = parent->line;
        n->col = parent->col;
        return n;
    }
    struct gw_node *n = gw_node_new(cf->a, GW_NODE_SCALAR, parent);
    n->value = def;
    n->len = strlen(def);
    n->plain = 1;
    return n;
}

static int read_field(struct gw_conf *cf, const struct gw_field *f, const struct gw_node *map,
                      void *obj)
{
    const struct gw_node *n = gw_node_get(map, f->name);
    void *dst = (unsigned char *)obj + f->offset;
    int rc = 0;
    gw_conf_push(cf, f->name);
    if (n && n->type != GW_NODE_NULL) {
        rc = read_value(cf, f, n, dst);
    } else if (f->def) {
        struct gw_node *d = default_node(cf, f, map);
        cf->in_default++;
        rc = d ? read_value(cf, f, d, dst) : -1;
        cf->in_default--;
    } else if (f->flags & GW_REQUIRED) {
        gw_conf_error(cf, map, NULL, "required field missing");
        rc = -1;
    }
    gw_conf_pop(cf);
    return rc;
}

int gw_conf_read(struct gw_conf *cf, const struct gw_schema *schema, const struct gw_node *node,
                 const char *name, void *obj)
{
    size_t before = cf->n_errors;
    if (name) gw_conf_push(cf, name);
    if (!node || node->type != GW_NODE_MAP) {
        gw_conf_error(cf, node, NULL, "expected a map");
    } else {
        for (size_t i = 0; i < node->n; i++) {
            const struct gw_node *key = node->pairs[i].key;
            const struct gw_field *f = schema->fields;
            while (f->name && strcmp(f->name, key->value) != 0)
                f++;
            if (!f->name) gw_conf_error(cf, key, key->value, "unknown field");
        }
        for (const struct gw_field *f = schema->fields; f->name; f++)
            read_field(cf, f, node, obj);
        if (schema->validate) schema->validate(cf, node, obj);
    }
    if (name) gw_conf_pop(cf);
    return cf->n_errors > before ? -1 : 0;
}
