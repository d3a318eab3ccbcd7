/*
 * The entities of a Kong declarative config, as plugins see them. All of
 * them live in the config snapshot's arena and are read-only while requests
 * run: a reload builds new ones and swaps the whole snapshot.
 */
#ifndef GW_ENTITIES_H
#define GW_ENTITIES_H

#include "gw_schema.h"

struct gw_plugin;

struct gw_service {
    const char *name;
    const char *url;      /* shorthand, split into the fields below at load */
    const char *protocol; /* http | https */
    const char *host;
    long port;
    const char *path;                                  /* NULL or starts with '/' */
    long connect_timeout, read_timeout, write_timeout; /* ms */
    long retries;
    int tls_verify;
    int enabled;
    struct gw_strings tags;
    /* Derived at load: "http://host:port" and the path without a trailing '/'. */
    const char *origin;
    const char *base_path;
    /* Upstream TLS, resolved at load from Kong's ca_certificates (ids of
     * ca_certificates entities) and client_certificate (a certificates
     * entity's id): the PEM of the CAs the upstream's certificate is
     * verified against (NULL: the system's bundle), and the certificate
     * and key presented to an upstream that asks for one (NULL: none). */
    const char *ca_bundle;
    size_t ca_bundle_len;
    const struct gw_certificate *client_certificate;
    size_t index;
    const struct gw_node *node;
};

struct gw_route_path {
    const char *path; /* prefix, or the regex without its leading '~' */
    size_t len;
    int is_regex;
    void *regex; /* pcre2_code *, compiled (and JIT-compiled) at load */
};

struct gw_route_host {
    const char *host; /* without its port */
    size_t len;
    int wildcard; /* 0 plain, -1 leading "*.", +1 trailing ".*" */
    int port;     /* "host:PORT": only requests that came in on PORT; 0 any */
};

struct gw_route {
    const char *name;
    struct gw_service *service;
    struct gw_strings paths_raw;
    struct gw_strings methods;
    struct gw_strings hosts_raw;
    struct gw_string_map headers;
    struct gw_strings protocols;
    struct gw_strings snis; /* TLS server names, lowercased, no trailing dot */
    int strip_path;
    int preserve_host;
    int request_buffering;  /* read the whole client body before the upstream call */
    int response_buffering; /* let the upstream run ahead of a slow client (bounded) */
    long regex_priority;
    long https_redirect_status_code;
    const char *path_handling; /* v0 | v1 */
    struct gw_strings tags;
    /* Derived at load */
    struct gw_route_path *paths;
    size_t n_paths;
    struct gw_route_host *hosts;
    size_t n_hosts;
    size_t index;
    const struct gw_node *node;
};

/* Kong's certificates entity: a PEM certificate (leaf, then its chain) and
 * its key, optionally a second pair of another key type (cert_alt,
 * key_alt), served on the TLS listeners to clients that ask for one of its
 * server names (struct gw_sni). Checked at load (tls.c builds from them). */
struct gw_certificate {
    const char *cert, *key;
    const char *cert_alt, *key_alt;
    struct gw_strings tags;
    size_t index;
    const struct gw_node *node;
};

/* Kong's ca_certificates entity: a CA certificate (PEM) services name in
 * their ca_certificates to verify their upstream against. */
struct gw_ca_certificate {
    const char *cert;
    const char *cert_digest; /* hex SHA-256 of the DER, as Kong computes it */
    struct gw_strings tags;
    const char *id;
    size_t index;
    const struct gw_node *node;
};

/* Kong's snis entity: a server name, lowercase, with at most one '*' as
 * its first or last character, and the certificate it selects. */
struct gw_sni {
    const char *name;
    const struct gw_certificate *certificate;
    const struct gw_node *node;
};

struct gw_keyauth_credential {
    const char *key;
    struct gw_strings tags;
};

struct gw_consumer {
    const char *username;
    const char *custom_id;
    struct gw_records keyauth_credentials; /* struct gw_keyauth_credential */
    struct gw_strings tags;
    size_t index;
    const struct gw_node *node;
};

/* One `plugins:` entry, at whatever scope it was declared. */
struct gw_plugin_instance {
    const struct gw_plugin *plugin;
    void *conf; /* the plugin's typed config struct */
    int enabled;
    const char *instance_name;
    struct gw_strings protocols;  /* request protocols it runs for; empty: all */
    struct gw_service *service;   /* scope; NULL: any */
    struct gw_route *route;       /* scope; NULL: any */
    struct gw_consumer *consumer; /* scope; NULL: any */
    size_t index;
    const struct gw_node *node;
};

#endif
