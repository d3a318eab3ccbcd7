/*
 * Loading a Kong declarative config (kong.yml) into entities.
 *
 * The file is parsed into a gw_node tree (yaml_node.c), then services,
 * routes, consumers and plugins are read with their schemas. Nested
 * entities (routes under a service, plugins under a route...) and top-level
 * ones referring to their parent by name both work, as in Kong. Every error
 * is collected with file:line:col and the field path.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>

#include "gw_entities.h"
#include "cjson/cJSON.h"

struct gw_arena;

struct gw_errlist {
    char **v; /* malloc'd strings */
    size_t n, cap;
};
void gw_errlist_add(struct gw_errlist *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void gw_errlist_free(struct gw_errlist *e);

struct gw_config {
    struct gw_arena *arena; /* owns everything below */
    const char *file;
    const char *format_version;
    struct gw_service **services;
    size_t n_services;
    struct gw_route **routes;
    size_t n_routes;
    struct gw_consumer **consumers;
    size_t n_consumers;
    struct gw_plugin_instance **plugins; /* in file order */
    size_t n_plugins;
    struct gw_certificate **certificates;
    size_t n_certificates;
    struct gw_sni *snis; /* sorted by name, unique */
    size_t n_snis;
    struct gw_ca_certificate **ca_certificates;
    size_t n_ca_certificates;
    const struct gw_node *root;
    /* Nodes whose values are secrets (GW_SECRET fields, credentials). */
    const struct gw_node **secrets;
    size_t n_secrets;
    char sha256[65]; /* hex digest of the file's bytes */
};

/* Returns NULL and fills errs (one message per problem) on failure.
 * regular_only: refuse anything but a regular file (reloads: a FIFO would
 * block the main loop); else a pipe is read to its end too. */
struct gw_config *gw_config_load_file(const char *path, int regular_only, struct gw_errlist *errs);
/* Same, from memory; `name` is what error messages call the file. */
struct gw_config *gw_config_load_string(const char *name, const char *text, size_t len,
                                        struct gw_errlist *errs);
void gw_config_free(struct gw_config *cfg);

/* The config as JSON with every secret replaced by "<redacted>" (GET /config). */
cJSON *gw_config_to_json(const struct gw_config *cfg);

/* The loading context of gw_schema.h on its own, for the loader and for
 * tests that read a node tree with a schema. Errors go to errs; everything
 * is allocated in a. */
struct gw_conf *gw_conf_new(struct gw_arena *a, struct gw_errlist *errs);
/* Extends / shortens the field path ("[3]" joins without a dot). */
void gw_conf_push(struct gw_conf *cf, const char *name);
void gw_conf_pop(struct gw_conf *cf);
void gw_conf_set_plugin(struct gw_conf *cf, const struct gw_plugin_instance *pi);
/* Errors recorded so far. */
size_t gw_conf_errors(const struct gw_conf *cf);
/* Nodes holding secrets (GW_SECRET fields), for redaction. */
void gw_conf_add_secret(struct gw_conf *cf, const struct gw_node *n);
const struct gw_node *const *gw_conf_secrets(const struct gw_conf *cf, size_t *n);

#endif
