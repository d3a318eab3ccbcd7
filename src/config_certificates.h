/*
 * Kong's certificates and snis entities (config_certificates.c).
 */
#ifndef GW_CONFIG_CERTIFICATES_H
#define GW_CONFIG_CERTIFICATES_H

struct gw_conf;
struct gw_config;
struct gw_node;

/* Reads root's `certificates` and `snis` into cfg (certificates in file
 * order, snis sorted by name), errors through cf. */
void gw_config_read_certificates(struct gw_conf *cf, const struct gw_node *root,
                                 struct gw_config *cfg);

#endif
