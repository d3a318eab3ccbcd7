#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_log.h"
#include "gw_plugin.h"
#include "settings.h"
#include "tls.h"
#include "sluice.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: sluice [options]\n"
        "  -c, --config FILE          declarative config (default /etc/sluice/kong.yml)\n"
        "  -t, --test                 check the config, print every error; exit 0, 1 (invalid\n"
        "                             config), 2 (bad option)\n"
        "  -V, --version              print the version and the libraries it runs on\n"
        "  -h, --help                 this help\n"
        "      --proxy-listen 'A:P[ FLAGS]'\n"
        "                             proxy listener, repeatable (default 0.0.0.0:8000);\n"
        "                             Kong's flags: ssl (TLS 1.2/1.3, HTTP/1.1), backlog=N,\n"
        "                             deferred, reuseport, bind (http2, proxy_protocol refused)\n"
        "      --admin-listen A:P|off admin listener (default 127.0.0.1:8001)\n"
        "      --workers N            worker threads (default: CPUs it may run on)\n"
        "      --log-level L          debug|info|notice|warn|error (default info)\n"
        "      --pid-file FILE        write the pid there\n"
        "      --max-body-size BYTES  largest client body accepted (default 16777216)\n"
        "      --drain-timeout S      graceful stop waits this long for requests (default 30)\n"
        "      --client-timeout S     idle keep-alive / slow client timeout (default 60)\n"
        "      --ssl-cert FILE[,FILE] PEM certificate (leaf, then chain) of the ssl listeners;\n"
        "                             a second file for a second key type (RSA + ECDSA)\n"
        "      --ssl-cert-key FILE[,FILE]\n"
        "                             PEM private key of each certificate, same order\n"
        "                             (both files are read again on SIGHUP)\n"
        "      --ssl-cipher-suite S   Kong's: modern (TLS 1.3 only), intermediate (default:\n"
        "                             TLS 1.2/1.3, Mozilla's list), old (TLS 1.0 up), fips\n"
        "                             or custom (the three options below)\n"
        "      --ssl-protocols LIST   custom: TLSv1.2 and/or TLSv1.3 (default both)\n"
        "      --ssl-ciphers LIST     custom: OpenSSL cipher list for TLS 1.2 (default:\n"
        "                             intermediate's)\n"
        "      --ssl-prefer-server-ciphers on|off\n"
        "                             custom: the server's cipher order wins (default on)\n"
        "      --ssl-dhparam GROUP|FILE\n"
        "                             DHE group for old, fips, custom: ffdhe2048..ffdhe8192\n"
        "                             or a PEM file (default: by the key's size)\n"
        "      --ssl-session-tickets on|off\n"
        "                             resumption by session tickets (default on)\n"
        "      --ssl-session-timeout T\n"
        "                             how long a session may be resumed (default 1d, at most 7d)\n"
        "      --ssl-session-cache-size SIZE\n"
        "                             memory for the session cache, ~900 sessions a MB\n"
        "                             (default 10m)\n"
        "      --upstream-keepalive-idle-timeout S\n"
        "                             idle upstream connections are closed after S (default 60)\n"
        "Every option is also read from SLUICE_<NAME> (SLUICE_CONFIG, SLUICE_PROXY_LISTEN "
        "(comma-separated), SLUICE_WORKERS...).\n"
        "Plugins:");
    for (size_t i = 0; gw_plugins[i]; i++)
        fprintf(out, " %s", gw_plugins[i]->name);
    fputc('\n', out);
}

const char *gw_listen_text(const struct gw_listen *l, char buf[GW_LISTEN_TEXT_MAX])
{
    int v6 = strchr(l->host, ':') != NULL;
    snprintf(buf, GW_LISTEN_TEXT_MAX, v6 ? "[%s]:%s" : "%s:%s", l->host, l->port);
    return buf;
}

/* Kong's proxy_listen flags after the address ("0.0.0.0:8443 http2 ssl
 * reuseport backlog=16384"), so that its value works here unchanged where
 * it can: ssl, backlog=N and deferred act; reuseport and bind are what
 * sluice does anyway. Returns NULL, or why the flag is refused. */
static const char *listen_flag(struct gw_listen *l, const char *f)
{
    if (strcmp(f, "ssl") == 0) {
        l->ssl = 1;
    } else if (strncmp(f, "backlog=", 8) == 0) {
        char *end;
        long n = strtol(f + 8, &end, 10);
        if (!f[8] || *end || n < 1 || n > 65535) return "backlog=N: N between 1 and 65535";
        l->backlog = (int)n;
    } else if (strcmp(f, "deferred") == 0) {
        l->deferred = 1;
    } else if (strcmp(f, "reuseport") == 0 || strcmp(f, "bind") == 0) {
        /* every listener is bound on its own, once per worker, with SO_REUSEPORT */
    } else if (strcmp(f, "http2") == 0) {
        return "http2: clients speak HTTP/1.1 (over TLS too); HTTP/2 from clients is not supported";
    } else if (strcmp(f, "proxy_protocol") == 0) {
        return "proxy_protocol: the PROXY protocol is not supported";
    } else {
        return "unknown flag (known: ssl, backlog=N, deferred, reuseport, bind)";
    }
    return NULL;
}

/* "ADDR:PORT", "[v6]:PORT", "PORT", then flags (listen_flag). Returns 0,
 * -1 when the address does not parse, or -2 with *why for a flag. */
int gw_listen_parse_flags(struct gw_listen *l, const char *spec, const char **why)
{
    memset(l, 0, sizeof(*l));
    l->backlog = 4096;
    char buf[300];
    if (strlen(spec) >= sizeof(buf)) return -1;
    strcpy(buf, spec);
    char *sp = strpbrk(buf, " \t");
    if (sp) {
        *sp++ = '\0';
        char *save = NULL;
        for (char *f = strtok_r(sp, " \t", &save); f; f = strtok_r(NULL, " \t", &save))
            if ((*why = listen_flag(l, f))) return -2;
    }
    const char *host = "0.0.0.0", *port = buf;
    char *colon = strrchr(buf, ':');
    if (buf[0] == '[') {
        char *end = strchr(buf, ']');
        if (!end || end[1] != ':') return -1;
        *end = '\0';
        host = buf + 1;
        port = end + 2;
    } else if (colon) {
        *colon = '\0';
        host = buf;
        port = colon + 1;
    }
    char *endp;
    long p = strtol(port, &endp, 10);
    if (*port == '\0' || *endp || p < 1 || p > 65535)
        return -1; /* 0: each worker would get its own port */
    if (strlen(host) >= sizeof(l->host)) return -1;
    strcpy(l->host, host);
    snprintf(l->port, sizeof(l->port), "%ld", p);
    return 0;
}

int gw_listen_parse(struct gw_listen *l, const char *spec)
{
    const char *why;
    return gw_listen_parse_flags(l, spec, &why) == 0 ? 0 : -1;
}

static int parse_long(const char *name, const char *v, long min, long max, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end || n < min || n > max) {
        fprintf(stderr, "sluice: %s: expected an integer between %ld and %ld, got '%s'\n", name,
                min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

/* The digits at *p (moved past them) into *n: 0 when there are none or
 * their value passes max (the loop stops growing before it overflows). */
static int read_digits(const char **p, long max, long *n)
{
    const char *s = *p;
    int ok = *s >= '0' && *s <= '9';
    *n = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (*n > (max - (*s - '0')) / 10)
            ok = 0;
        else
            *n = *n * 10 + (*s - '0');
    }
    *p = s;
    return ok;
}

/* Kong's on|off: 1 or 0, or -1 with the error printed. */
static int parse_on_off(const char *name, const char *v)
{
    if (strcmp(v, "on") == 0) return 1;
    if (strcmp(v, "off") == 0) return 0;
    fprintf(stderr, "sluice: %s: expected on or off, got '%s'\n", name, v);
    return -1;
}

/* nginx's time syntax (ngx_parse_time), which Kong's settings take: parts
 * separated by spaces, each digits and a unit, the units from the largest
 * down and each at most once ("1d", "1h 30m", "300s"); digits alone are
 * seconds and come last ("300"). Anything else is refused, as nginx does:
 * "5s5" or "30m 1h" are typing mistakes, not times. */
static int parse_time(const char *name, const char *v, long max, long *out)
{
    static const char units[] = "wdhms"; /* largest first */
    static const long unit_secs[] = {7 * 86400, 86400, 3600, 60, 1};
    long total = 0;
    size_t next = 0; /* the largest unit still allowed */
    int parts = 0, ok = 1;
    for (const char *p = v; ok && *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        long n;
        if (!read_digits(&p, max, &n)) ok = 0;
        const char *unit = *p && *p != ' ' ? strchr(units, *p) : units + 4; /* bare: s */
        if (!unit || !*unit || (size_t)(unit - units) < next) ok = 0;
        if (!ok) break;
        if (*p && *p != ' ') p++;
        if (*p && *p != ' ') ok = 0; /* "5s5", "1h30m" */
        size_t u = (size_t)(unit - units);
        next = u + 1;
        if (n > (max - total) / unit_secs[u]) ok = 0;
        total += n * unit_secs[u];
        parts++;
    }
    if (!ok || !parts || total <= 0) {
        fprintf(stderr,
                "sluice: %s: expected a time between 1s and %lds, as nginx writes it (300s, 5m, "
                "12h, 1d, \"1h 30m\": units from the largest down, each once), got '%s'\n",
                name, max, v);
        return -1;
    }
    *out = total;
    return 0;
}

/* nginx's size syntax (ngx_parse_size): digits and an optional k, m or g. */
static int parse_size(const char *name, const char *v, long min, long max, long *out)
{
    long n;
    const char *p = v;
    int ok = read_digits(&p, max, &n);
    long unit = !*p                        ? 1
                : (*p == 'k' || *p == 'K') ? 1024L
                : (*p == 'm' || *p == 'M') ? 1024L * 1024
                : (*p == 'g' || *p == 'G') ? 1024L * 1024 * 1024
                                           : 0;
    if (unit > 1 && p[1]) unit = 0;
    if (!ok || !unit || n > max / unit || n * unit < min) {
        fprintf(stderr,
                "sluice: %s: expected a size between %ldk and %ldm (512k, 10m...), got '%s'\n",
                name, min / 1024, max / (1024 * 1024), v);
        return -1;
    }
    *out = n * unit;
    return 0;
}

static int add_listen(struct gw_settings *s, const char *spec)
{
    if (s->n_proxy == GW_MAX_LISTEN) {
        fprintf(stderr, "sluice: at most %d proxy listeners\n", GW_MAX_LISTEN);
        return -1;
    }
    const char *why;
    int rc = gw_listen_parse_flags(&s->proxy[s->n_proxy], spec, &why);
    if (rc == -2) {
        fprintf(stderr, "sluice: --proxy-listen '%s': %s\n", spec, why);
        return -1;
    }
    if (rc < 0) {
        fprintf(stderr,
                "sluice: --proxy-listen: cannot parse '%s' (expected ADDR:PORT, PORT 1-65535)\n",
                spec);
        return -1;
    }
    s->n_proxy++;
    return 0;
}

static int set_option(struct gw_settings *s, int opt, const char *v)
{
    long n;
    switch (opt) {
    case 'c':
        s->config_file = v;
        return 0;
    case 'L': {
        /* The environment form takes a comma-separated list. */
        char *copy = strdup(v), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            if (add_listen(s, tok) < 0) {
                free(copy);
                return -1;
            }
        }
        free(copy); /* add_listen copied what it needs */
        return 0;
    }
    case 'A':
        if (strcmp(v, "off") == 0) {
            s->admin_off = 1;
            return 0;
        }
        s->admin_off = 0;
        if (gw_listen_parse(&s->admin, v) == 0 && strchr(v, ' ') && !s->admin.ssl) {
            fprintf(stderr, "sluice: --admin-listen '%s': the admin listener takes no flags\n", v);
            return -1;
        }
        if (gw_listen_parse(&s->admin, v) == 0 && s->admin.ssl) {
            fprintf(stderr,
                    "sluice: --admin-listen '%s': the admin listener speaks plain HTTP only "
                    "(keep it on a loopback address)\n",
                    v);
            return -1;
        }
        if (gw_listen_parse(&s->admin, v) < 0) {
            fprintf(
                stderr,
                "sluice: --admin-listen: cannot parse '%s' (ADDR:PORT with PORT 1-65535, or off)\n",
                v);
            return -1;
        }
        return 0;
    case 'W':
        if (parse_long("--workers", v, 1, 256, &n) < 0) return -1;
        s->workers = (int)n;
        return 0;
    case 'l': {
        int lvl = gw_log_level_parse(v);
        if (lvl < 0) {
            fprintf(stderr, "sluice: --log-level: expected debug|info|notice|warn|error\n");
            return -1;
        }
        s->log_level = lvl;
        return 0;
    }
    case 'p':
        s->pid_file = v;
        return 0;
    case 'B':
        if (parse_long("--max-body-size", v, 1, 1L << 40, &n) < 0) return -1;
        s->max_body_size = n;
        return 0;
    case 'D':
        if (parse_long("--drain-timeout", v, 0, 3600, &n) < 0) return -1;
        s->drain_timeout = (int)n;
        return 0;
    case 'T':
        if (parse_long("--client-timeout", v, 1, 3600, &n) < 0) return -1;
        s->client_timeout = (int)n;
        return 0;
    case 'S':
        s->ssl_cert = v;
        return 0;
    case 'k':
        s->ssl_cert_key = v;
        return 0;
    case 'P':
        s->ssl_protocols = v;
        return 0;
    case 'C':
        s->ssl_ciphers = v;
        return 0;
    case 'U':
        if (!gw_tls_cipher_suite_known(v)) {
            fprintf(stderr,
                    "sluice: --ssl-cipher-suite: expected one of modern, intermediate, old, fips, "
                    "custom, got '%s'\n",
                    v);
            return -1;
        }
        s->ssl_cipher_suite = v;
        return 0;
    case 'R':
        if (parse_on_off("--ssl-prefer-server-ciphers", v) < 0) return -1;
        s->ssl_prefer_server_ciphers = v;
        return 0;
    case 'H':
        s->ssl_dhparam = v;
        return 0;
    case 'X': {
        int on = parse_on_off("--ssl-session-tickets", v);
        if (on < 0) return -1;
        s->ssl_session_tickets = on;
        return 0;
    }
    case 'Y':
        /* A TLS 1.3 ticket may not be announced for longer (RFC 8446 4.6.1). */
        return parse_time("--ssl-session-timeout", v, 7 * 86400, &s->ssl_session_timeout);
    case 'Z':
        return parse_size("--ssl-session-cache-size", v, 1024, 1024L * 1024 * 1024,
                          &s->ssl_session_cache_size);
    case 'K':
        if (parse_long("--upstream-keepalive-idle-timeout", v, 1, 3600, &n) < 0) return -1;
        s->upstream_idle_timeout = (int)n;
        return 0;
    }
    return -1;
}

static const struct {
    const char *env;
    int opt;
} env_options[] = {
    {"SLUICE_CONFIG", 'c'},
    {"SLUICE_PROXY_LISTEN", 'L'},
    {"SLUICE_ADMIN_LISTEN", 'A'},
    {"SLUICE_WORKERS", 'W'},
    {"SLUICE_LOG_LEVEL", 'l'},
    {"SLUICE_PID_FILE", 'p'},
    {"SLUICE_MAX_BODY_SIZE", 'B'},
    {"SLUICE_DRAIN_TIMEOUT", 'D'},
    {"SLUICE_CLIENT_TIMEOUT", 'T'},
    {"SLUICE_UPSTREAM_KEEPALIVE_IDLE_TIMEOUT", 'K'},
    {"SLUICE_SSL_CERT", 'S'},
    {"SLUICE_SSL_CERT_KEY", 'k'},
    {"SLUICE_SSL_PROTOCOLS", 'P'},
    {"SLUICE_SSL_CIPHERS", 'C'},
    {"SLUICE_SSL_CIPHER_SUITE", 'U'},
    {"SLUICE_SSL_PREFER_SERVER_CIPHERS", 'R'},
    {"SLUICE_SSL_DHPARAM", 'H'},
    {"SLUICE_SSL_SESSION_TICKETS", 'X'},
    {"SLUICE_SSL_SESSION_TIMEOUT", 'Y'},
    {"SLUICE_SSL_SESSION_CACHE_SIZE", 'Z'},
};

/* The CPUs this process may run on (taskset, systemd's CPUAffinity=, a
 * container's cpuset), not every CPU the machine has: more workers than
 * that only take turns on the same cores. */
static int usable_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

int gw_settings_parse(struct gw_settings *s, int argc, char **argv)
{
    memset(s, 0, sizeof(*s));
    s->config_file = "/etc/sluice/kong.yml";
    gw_listen_parse(&s->admin, "127.0.0.1:8001");
    s->workers = usable_cores();
    s->log_level = GW_LOG_INFO;
    s->max_body_size = 16L * 1024 * 1024;
    s->drain_timeout = 30;
    s->client_timeout = 60;
    s->upstream_idle_timeout = 60; /* Kong's upstream_keepalive_idle_timeout */
    /* Kong's defaults: tickets on, 1d, 10m */
    s->ssl_session_tickets = 1;
    s->ssl_session_timeout = 86400;
    s->ssl_session_cache_size = 10L * 1024 * 1024;

    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {"proxy-listen", required_argument, NULL, 'L'},
        {"admin-listen", required_argument, NULL, 'A'},
        {"workers", required_argument, NULL, 'W'},
        {"log-level", required_argument, NULL, 'l'},
        {"pid-file", required_argument, NULL, 'p'},
        {"max-body-size", required_argument, NULL, 'B'},
        {"drain-timeout", required_argument, NULL, 'D'},
        {"client-timeout", required_argument, NULL, 'T'},
        {"upstream-keepalive-idle-timeout", required_argument, NULL, 'K'},
        {"ssl-cert", required_argument, NULL, 'S'},
        {"ssl-cert-key", required_argument, NULL, 'k'},
        {"ssl-protocols", required_argument, NULL, 'P'},
        {"ssl-ciphers", required_argument, NULL, 'C'},
        {"ssl-cipher-suite", required_argument, NULL, 'U'},
        {"ssl-prefer-server-ciphers", required_argument, NULL, 'R'},
        {"ssl-dhparam", required_argument, NULL, 'H'},
        {"ssl-session-tickets", required_argument, NULL, 'X'},
        {"ssl-session-timeout", required_argument, NULL, 'Y'},
        {"ssl-session-cache-size", required_argument, NULL, 'Z'},
        {NULL, 0, NULL, 0},
    };
    /* A flag wins over its SLUICE_* variable, which is then not read at all:
     * a bad value there must not stop a start that overrides it. A first
     * pass finds which options the command line sets (quietly: the real
     * pass below reports). --proxy-listen flags replace the variable's
     * list rather than add to it. */
    unsigned char given[128] = {0};
    const char *origin[128] = {0}; /* the SLUICE_* variable an option came from */
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1)
        if (opt > 0 && opt < 128) given[opt] = 1;
    opterr = 1;
    for (size_t i = 0; i < sizeof(env_options) / sizeof(env_options[0]); i++) {
        const char *v = getenv(env_options[i].env);
        if (given[env_options[i].opt] || !v || !*v) continue;
        origin[env_options[i].opt] = env_options[i].env;
        if (set_option(s, env_options[i].opt, v) < 0) {
            fprintf(stderr, "sluice: (from %s)\n", env_options[i].env);
            return -1;
        }
    }

    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 't':
            s->check_only = 1;
            break;
        case 'V':
            s->show_version = 1;
            return 1;
        case 'h':
            usage(stdout);
            return 1;
        case '?':
            usage(stderr);
            return -1;
        default:
            if (set_option(s, opt, optarg) < 0) return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (s->n_proxy == 0) gw_listen_parse(&s->proxy[s->n_proxy++], "0.0.0.0:8000");
    /* Kong ignores ssl_protocols, ssl_ciphers and ssl_prefer_server_ciphers
     * under any suite but custom; here that is a mistake, said as such,
     * naming each setting as it was given (flag or variable). */
    if (s->ssl_cipher_suite && strcmp(s->ssl_cipher_suite, "custom") != 0) {
        static const struct {
            int opt;
            const char *flag;
        } custom_only[] = {
            {'P', "--ssl-protocols"}, {'C', "--ssl-ciphers"}, {'R', "--ssl-prefer-server-ciphers"}};
        const char *custom_given[] = {s->ssl_protocols, s->ssl_ciphers,
                                      s->ssl_prefer_server_ciphers};
        for (size_t i = 0; i < 3; i++) {
            if (!custom_given[i]) continue;
            int o = custom_only[i].opt;
            fprintf(
                stderr,
                "sluice: %s applies to --ssl-cipher-suite custom only, and %s is %s (Kong would "
                "ignore it)\n",
                origin[o] ? origin[o] : custom_only[i].flag,
                origin['U'] ? origin['U'] : "--ssl-cipher-suite", s->ssl_cipher_suite);
            return -1;
        }
    }
    /* Kong ignores ssl_dhparam under modern (no DHE suite) and intermediate
     * (ffdhe2048); here it is refused there, as above. */
    if (s->ssl_dhparam &&
        (!s->ssl_cipher_suite || strcmp(s->ssl_cipher_suite, "modern") == 0 ||
         strcmp(s->ssl_cipher_suite, "intermediate") == 0) &&
        !(s->ssl_protocols || s->ssl_ciphers || s->ssl_prefer_server_ciphers)) {
        fprintf(stderr,
                "sluice: %s applies to --ssl-cipher-suite old, fips or custom only, and %s is %s: "
                "intermediate takes the DHE group from the key's size and modern has no DHE suite "
                "(Kong would ignore it)\n",
                origin['H'] ? origin['H'] : "--ssl-dhparam",
                origin['U'] ? origin['U'] : "--ssl-cipher-suite",
                s->ssl_cipher_suite ? s->ssl_cipher_suite : "intermediate (the default)");
        return -1;
    }
    /* Two listeners on one address would each take half its connections
     * (SO_REUSEPORT): the second is a mistake, said as such (nginx:
     * "duplicate listen"). */
    for (size_t i = 0; i < s->n_proxy; i++)
        for (size_t k = 0; k < i; k++)
            if (strcmp(s->proxy[i].host, s->proxy[k].host) == 0 &&
                strcmp(s->proxy[i].port, s->proxy[k].port) == 0) {
                char where[GW_LISTEN_TEXT_MAX];
                fprintf(stderr, "sluice: --proxy-listen: %s is given twice\n",
                        gw_listen_text(&s->proxy[i], where));
                return -1;
            }
    /* An ssl listener's certificate: --ssl-cert or kong.yml's certificates,
     * which only the config load knows (tls.c). */
    return 0;
}
