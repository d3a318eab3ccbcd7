/*
 * The schemas of Kong's entities, private to the loader. Each entity is
 * read into a wrapper: the public struct first, then what the file says
 * that only the loader needs (ids, nested lists, references by name).
 */
#ifndef GW_CONFIG_ENTITIES_H
#define GW_CONFIG_ENTITIES_H

#include "gw_entities.h"
#include "gw_schema.h"

struct service_in {
    struct gw_service s;
    const char *id;
    const struct gw_node *routes, *plugins;
    struct gw_strings ca_certificate_ids;     /* resolved by config_certificates.c */
    const struct gw_node *client_certificate; /* an id, or {id: ...} */
};

struct route_in {
    struct gw_route r;
    const char *id;
    const struct gw_node *service_ref, *plugins;
};

struct consumer_in {
    struct gw_consumer c;
    const char *id;
    const struct gw_node *plugins;
};

struct plugin_in {
    struct gw_plugin_instance p;
    const char *name, *id, *path;
    const struct gw_node *config, *service_ref, *route_ref, *consumer_ref;
    struct gw_strings tags;
};

/* Kong's certificates and snis entities (config_certificates.c reads them). */
struct certificate_in {
    struct gw_certificate c;
    const char *id;
    const struct gw_node *snis; /* nested: names, or maps with a name */
};

struct sni_in {
    const char *name, *id;
    const struct gw_node *certificate_ref; /* top level: the certificate's id */
    struct gw_strings tags;
};

/* A server name as Kong's typedefs.wildcard_host takes it: lowercased, the
 * final dot of an FQDN dropped, at most one '*' as its first or last
 * character, no IP, no port. Returns the name (in a); *why is NULL, or
 * the error. */
struct gw_arena;
const char *gw_server_name_read(struct gw_arena *a, const char *v, const char **why);

extern const struct gw_schema gw_certificate_schema;
extern const struct gw_schema gw_ca_certificate_schema;
extern const struct gw_schema gw_sni_schema;           /* nested under a certificate */
extern const struct gw_schema gw_top_level_sni_schema; /* with `certificate` */
extern const struct gw_schema gw_service_schema;
extern const struct gw_schema gw_route_schema;
extern const struct gw_schema gw_consumer_schema;
extern const struct gw_schema gw_plugin_instance_schema;

#endif
