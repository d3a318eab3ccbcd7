/*
 * Configuration schemas.
 *
 * The YAML file is first read into a tree of gw_node that remembers the
 * file, line and column of every value. Entities (services, routes, ...) and
 * each plugin's `config:` block are then read from that tree by a schema: a
 * table of typed fields, one line per option, in the spirit of redis'
 * config table. The walker checks types, enums, ranges, required fields and
 * unknown fields, applies defaults, expands $VAR / ${VAR:-default} /
 * {vault://env/NAME} in strings, and reports every problem as
 *
 *     kong.yml:14:9: services[0].routes[1].plugins[0].config.model.provider: expected one of ...
 *
 * Errors are collected, never first-only. A plugin's validate hook runs
 * after its fields are read, for checks that span fields and to compile
 * things once (regexes, templates) so the request path only reads.
 */
#ifndef GW_SCHEMA_H
#define GW_SCHEMA_H

#include <stddef.h>

struct gw_arena;

enum gw_node_type { GW_NODE_NULL, GW_NODE_SCALAR, GW_NODE_MAP, GW_NODE_SEQ };

struct gw_node_pair;

struct gw_node {
    enum gw_node_type type;
    const char *file;
    int line, col;     /* 1-based, where the value starts */
    const char *value; /* scalar text, NUL-terminated (NULL for maps/seqs) */
    size_t len;
    int plain; /* scalar written without quotes (so `true` may be a bool) */
    size_t n;  /* number of items (seq) or pairs (map) */
    struct gw_node **items;
    struct gw_node_pair *pairs;
};

struct gw_node_pair {
    struct gw_node *key; /* always a scalar */
    struct gw_node *value;
};

/* Value of key in a map node, or NULL. */
const struct gw_node *gw_node_get(const struct gw_node *map, const char *key);

/* A list of values, as stored by GW_F_STRINGS / GW_F_RECORDS fields. */
struct gw_strings {
    const char **v;
    size_t n;
};
struct gw_records {
    void *v; /* array of n records, each schema->size bytes */
    size_t n;
};

/* A string -> strings map (route headers, request-transformer add.headers...). */
struct gw_string_map {
    const char **keys;
    struct gw_strings *values;
    size_t n;
};

enum gw_field_type {
    GW_F_STRING,  /* const char * */
    GW_F_INT,     /* long */
    GW_F_NUMBER,  /* double */
    GW_F_BOOL,    /* int, 0 or 1 */
    GW_F_ENUM,    /* int: index into choices */
    GW_F_STRINGS, /* struct gw_strings; a lone scalar is accepted as a list of one */
    GW_F_RECORD,  /* embedded struct described by record; `set` flag at set_offset */
    GW_F_RECORDS, /* struct gw_records */
    GW_F_MAP,     /* struct gw_string_map; values may be a scalar or a list */
    GW_F_CUSTOM,  /* parse() does the work */
    GW_F_INERT,   /* a Kong field for a feature sluice lacks: see below */
};

/* GW_F_INERT: a field of Kong's schema whose feature sluice does not have
 * (Bedrock's region, GCP service accounts...). A Kong file or a decK dump
 * carries such fields at their defaults, and must load: null, [] or {},
 * `def` or one of `choices` is accepted and stored nowhere (offset unused); any other
 * value is refused with `why`, never silently ignored. */

/* Field flags */
#define GW_REQUIRED 0x1u     /* missing or null is an error */
#define GW_SECRET 0x2u       /* redacted in GET /config and never logged */
#define GW_NO_ENV 0x4u       /* no $VAR expansion (regexes, templates) */
#define GW_NO_ENV_TILDE 0x8u /* values starting with '~' are regexes: not expanded */

struct gw_conf;
struct gw_schema;

struct gw_field {
    const char *name;
    enum gw_field_type type;
    size_t offset;
    unsigned flags;
    const char *def;                /* default, written as YAML would give it; NULL: none */
    double min, max;                /* numbers: value range; strings: length; lists: count.
                                       min == max == 0 means unchecked */
    const char *const *choices;     /* GW_F_ENUM, NULL-terminated */
    const struct gw_schema *record; /* GW_F_RECORD, GW_F_RECORDS */
    /* GW_F_CUSTOM: read node into dst (= obj + offset); report with gw_conf_error. */
    int (*parse)(struct gw_conf *cf, const struct gw_node *n, void *dst);
    const char *why; /* GW_F_INERT: the error for a value that asks for the feature */
};

struct gw_schema {
    const char *name;
    size_t size;                   /* sizeof the struct the fields fill */
    const struct gw_field *fields; /* terminated by an entry with name == NULL */
    /* Optional: cross-field checks and precomputation, after all fields are
     * read (also when some failed). Return 0 or -1 (errors via gw_conf_error). */
    int (*validate)(struct gw_conf *cf, const struct gw_node *n, void *obj);
};

/* Field-table helpers: GW_FIELD(struct my_conf, name, GW_F_STRING, flags, "default") */
#define GW_FIELD(stype_, member, ftype, flags_, def_)                                              \
    .name = #member, .type = (ftype), .offset = offsetof(stype_, member), .flags = (flags_),       \
    .def = (def_)

/* Loading context (one per config file load). */
struct gw_arena *gw_conf_arena(struct gw_conf *cf);

/* Reads node into obj (schema->size bytes, zeroed by the caller) with the
 * field path extended by `name` (NULL: unchanged). Returns 0 or -1. */
int gw_conf_read(struct gw_conf *cf, const struct gw_schema *schema, const struct gw_node *node,
                 const char *name, void *obj);

/* Records an error at node, prefixed by file:line:col and the current field
 * path; `sub` (may be NULL) is appended to the path, e.g. "allow_patterns[2]". */
void gw_conf_error(struct gw_conf *cf, const struct gw_node *node, const char *sub, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

/* Expands $VAR, ${VAR}, ${VAR:-default} and {vault://env/NAME} in s.
 * Returns NULL (with an error recorded at node) when a variable is unset. */
const char *gw_conf_expand(struct gw_conf *cf, const struct gw_node *node, const char *s);

/* While a plugin's `config:` is read: the instance it belongs to, its
 * scope (service, route, consumer) already resolved, so that a validate
 * hook can derive per-scope data once (rate-limiting's counter keys).
 * NULL outside a plugin's config. */
struct gw_plugin_instance;
const struct gw_plugin_instance *gw_conf_plugin(struct gw_conf *cf);

/* _format_version 1.1 or 2.1: route paths are read as Kong 3 migrates
 * them (regex-looking ones become "~" regexes). Set by the loader. */
void gw_conf_set_legacy_paths(struct gw_conf *cf, int on);
int gw_conf_legacy_paths(struct gw_conf *cf);

/* The field path the walker is at ("services[0].plugins[1].config"). */
const char *gw_conf_path(struct gw_conf *cf);

#endif
