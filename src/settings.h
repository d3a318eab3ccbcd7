/*
 * Process settings: everything that is not in kong.yml (so that a file valid
 * for Kong loads unchanged). Each comes from a flag or a SLUICE_* variable;
 * the flag wins.
 */
#ifndef GW_SETTINGS_H
#define GW_SETTINGS_H

#include <stddef.h>

#define GW_MAX_LISTEN 16

struct gw_listen {
    char host[256];
    char port[8];
    int ssl;      /* "ADDR:PORT ssl": the listener speaks TLS (tls.h) */
    int backlog;  /* listen(2) queue: Kong's backlog=N (default 4096) */
    int deferred; /* TCP_DEFER_ACCEPT: accept once the client has sent bytes */
};

struct gw_settings {
    const char *config_file;
    int check_only;
    int show_version; /* -V: main.c prints the version and the libraries' */
    struct gw_listen proxy[GW_MAX_LISTEN];
    size_t n_proxy;
    struct gw_listen admin;
    int admin_off;
    int workers;
    int log_level;
    const char *pid_file;
    long max_body_size;        /* bytes */
    int drain_timeout;         /* seconds */
    int client_timeout;        /* seconds: keep-alive idle and slow clients */
    int upstream_idle_timeout; /* seconds an idle upstream connection is kept */
    /* Kong's ssl_cert / ssl_cert_key: PEM files, comma-separated pairs
     * (tls.c reads them at start and on every reload). */
    const char *ssl_cert;
    const char *ssl_cert_key;
    /* Kong's ssl_cipher_suite: modern, intermediate (the default), old,
     * fips or custom; the three below apply to custom only (tls.c). NULL:
     * not given. */
    const char *ssl_cipher_suite;
    const char *ssl_protocols;             /* Kong's ssl_protocols: "TLSv1.2 TLSv1.3" */
    const char *ssl_ciphers;               /* Kong's ssl_ciphers (TLS 1.2) */
    const char *ssl_prefer_server_ciphers; /* Kong's: on (default) or off */
    /* Kong's ssl_dhparam: ffdhe2048..ffdhe8192, a PEM file or PEM text;
     * old, fips and custom only. */
    const char *ssl_dhparam;
    /* Kong's ssl_session_tickets, ssl_session_timeout and
     * ssl_session_cache_size (nginx's value syntax: "1d", "10m"). */
    int ssl_session_tickets;     /* 1: on */
    long ssl_session_timeout;    /* seconds */
    long ssl_session_cache_size; /* bytes */
};

/* Returns 0, 1 when the program should exit 0 (-h, -V), or -1 on a bad flag. */
int gw_settings_parse(struct gw_settings *s, int argc, char **argv);
int gw_listen_parse(struct gw_listen *l, const char *spec);
/* The same, telling a bad flag (-2, *why) from a bad address (-1). */
int gw_listen_parse_flags(struct gw_listen *l, const char *spec, const char **why);
/* "host:port", or "[host]:port" for an IPv6 address, as it was given. */
#define GW_LISTEN_TEXT_MAX (sizeof(((struct gw_listen *)0)->host) + 12)
const char *gw_listen_text(const struct gw_listen *l, char buf[GW_LISTEN_TEXT_MAX]);

#endif
