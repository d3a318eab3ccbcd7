/*
 * Kong's certificates and snis entities (config_certificates.c).
 */
#ifndef GW_CONFIG_CERTIFICATES_H
#define GW_CONFIG_CERTIFICATES_H

#include <stddef.h>

struct gw_conf;
struct gw_config;
struct gw_node;

struct service_in;

/* Reads root's `certificates`, `snis` and `ca_certificates` into cfg
 * (certificates in file order, snis sorted by name), then resolves each
 * service's ca_certificates and client_certificate ids against them;
 * errors through cf. */
void gw_config_read_certificates(struct gw_conf *cf, const struct gw_node *root,
                                 struct gw_config *cfg, struct service_in **services,
                                 size_t n_services);

#endif
