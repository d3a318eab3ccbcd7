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

extern const struct gw_schema gw_service_schema;
extern const struct gw_schema gw_route_schema;
extern const struct gw_schema gw_consumer_schema;
extern const struct gw_schema gw_plugin_instance_schema;

#endif
