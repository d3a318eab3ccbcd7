#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cjson/cJSON.h"
#include "config.h"
#include "gw_log.h"
#include "settings.h"
#include "tls.h"
#include "tls_tickets.h"

/* Kong's ssl_cert accepts an RSA and an ECDSA pair side by side: OpenSSL
 * keeps one certificate per key type and picks by what the client
 * supports. Four covers RSA, RSA-PSS, ECDSA and EdDSA. */
#define MAX_PAIRS 4

/* The one protocol our listeners speak. A client that offers only h2 gets
 * no ALPN answer and may go on in HTTP/1.1 or leave: both are its call. */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl, (void)arg;
    static const unsigned char h1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, h1, sizeof(h1), in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* An encrypted key would make OpenSSL ask for its passphrase on the
 * terminal, which a service does not have: refuse it instead. */
static int no_passphrase_cb(char *buf, int size, int rwflag, void *arg)
{
    (void)buf, (void)size, (void)rwflag, (void)arg;
    return -1;
}

/* The first error queued: the cause ("no start line"), where the last
 * one is where it surfaced ("PEM lib"). */
static const char *openssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

/* The comma-separated list in s, split into at most max trimmed items in
 * buf (a copy). Returns the count, or max + 1 when there are more. */
static size_t split_list(const char *s, char *buf, size_t bufsize, char **items, size_t max)
{
    snprintf(buf, bufsize, "%s", s);
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && end[-1] == ' ')
            *--end = '\0';
        if (!*tok) continue;
        if (n == max) return max + 1;
        items[n++] = tok;
    }
    return n;
}

static const char *key_type_name(int type)
{
    switch (type) {
    case EVP_PKEY_RSA:
        return "RSA";
    case EVP_PKEY_RSA_PSS:
        return "RSA-PSS";
    case EVP_PKEY_EC:
        return "ECDSA";
    case EVP_PKEY_ED25519:
        return "Ed25519";
    case EVP_PKEY_ED448:
        return "Ed448";
    default:
        return OBJ_nid2sn(type);
    }
}

/* A PEM file is a few KB: anything past this is not one. */
#define PEM_FILE_MAX (1024 * 1024)

/* The text of a PEM file, checked before OpenSSL reads it, for errors a
 * user can act on ("No such file or directory", "the key is encrypted")
 * where OpenSSL's decoders say "system lib" or "unsupported". `marker` is
 * the PEM label the file must hold. NULL with an error added, else the
 * text (malloc'd: free_pem). */
static char *read_pem_file(const char *flag, const char *path, const char *marker, int is_key,
                           struct gw_errlist *errs)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        gw_errlist_add(errs, "%s %s: %s", flag, path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_FILE_MAX) {
        gw_errlist_add(errs, "%s %s: %s", flag, path,
                       S_ISREG(st.st_mode) ? "too large for a PEM file" : "not a regular file");
        fclose(f);
        return NULL;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t n = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!text) {
        gw_errlist_add(errs, "%s %s: out of memory", flag, path);
        return NULL;
    }
    text[n] = '\0';
    int ok = 1;
    if (is_key && (strstr(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
                   strstr(text, "Proc-Type: 4,ENCRYPTED"))) {
        gw_errlist_add(errs,
                       "%s %s: the key is encrypted, and a service has no one to ask for its "
                       "passphrase: store it unencrypted, readable by sluice's user only",
                       flag, path);
        ok = 0;
    } else if (!strstr(text, marker)) {
        gw_errlist_add(errs, "%s %s: no PEM %s in it (no line ending \"%s\")", flag, path,
                       is_key ? "private key" : "certificate", marker);
        ok = 0;
    }
    if (ok) return text;
    OPENSSL_cleanse(text, n);
    free(text);
    return NULL;
}

/* A private key's text leaves no copy in freed memory. */
static void free_pem(char *text)
{
    if (!text) return;
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

static int use_pair(SSL_CTX *ctx, const char *cert, const char *key, int *key_type,
                    const char **why);

static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, int *types, size_t n_types,
                     struct gw_errlist *errs)
{
    char *cert_text = read_pem_file("--ssl-cert", cert, "CERTIFICATE-----", 0, errs);
    char *key_text = read_pem_file("--ssl-cert-key", key, "PRIVATE KEY-----", 1, errs);
    int type = 0, rc = -1;
    const char *why = "";
    if (!cert_text || !key_text) goto out;
    switch (use_pair(ctx, cert_text, key_text, &type, &why)) {
    case GW_TLS_BAD_CERT:
        gw_errlist_add(errs, "--ssl-cert %s: not a usable PEM certificate (%s)", cert, why);
        goto out;
    case GW_TLS_BAD_KEY:
        gw_errlist_add(errs, "--ssl-cert-key %s: not a usable PEM private key (%s)", key, why);
        goto out;
    case GW_TLS_MISMATCH:
        gw_errlist_add(errs, "--ssl-cert-key %s: does not match the certificate in %s", key, cert);
        goto out;
    }
    for (size_t i = 0; i < n_types; i++)
        if (types[i] == type) {
            gw_errlist_add(errs,
                           "--ssl-cert %s: a second certificate for the same key type (%s); "
                           "pairs must differ in key type (one RSA, one ECDSA)",
                           cert, key_type_name(type));
            goto out;
        }
    types[n_types] = type;
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (leaf && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
        gw_warn("--ssl-cert %s: the certificate has expired: clients will refuse it", cert);
    rc = 0;
out:
    free(cert_text);
    free_pem(key_text);
    return rc;
}

/* The certificate was chosen in client_hello_cb: this only accepts the
 * name, so that OpenSSL keeps it in the session, and SSL_get_servername on
 * a resumed TLS 1.2 session (which returns the session's) gives the name
 * the routes match on rather than NULL. */
static int accept_servername_cb(SSL *ssl, int *alert, void *arg)
{
    (void)ssl, (void)alert, (void)arg;
    return SSL_TLSEXT_ERR_OK;
}

/* Kong's ssl_cipher_suite values (kong/conf_loader/constants.lua), after
 * Mozilla's server-side TLS guidelines. "intermediate", the default: TLS 1.2
 * with forward secrecy and AEAD only (no CBC, no RSA key exchange, which
 * OpenSSL's DEFAULT still offers and scanners flag) and TLS 1.3, whose
 * suites are all AEAD. */
#define INTERMEDIATE_CIPHERS                                                                       \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"       \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
/* "old": for clients that cannot do better (TLS 1.0 and 1.1, CBC, RSA key
 * exchange; Kong's list names 3DES too, which OpenSSL 3 builds may lack).
 * OpenSSL 3 refuses all of that at its default security level 1 and up,
 * hence @SECLEVEL=0, as Kong sets it for this suite. */
#define OLD_CIPHERS                                                                                \
    INTERMEDIATE_CIPHERS ":ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:"                     \
                         "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:"  \
                         "ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"    \
                         "DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:AES128-GCM-SHA256:"          \
                         "AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA:"    \
                         "DES-CBC3-SHA:@SECLEVEL=0"
/* "fips": https://wiki.openssl.org/index.php/FIPS_mode_and_TLS, TLS 1.2. */
#define FIPS_CIPHERS "TLSv1.2+FIPS:kRSA+FIPS:!eNULL:!aNULL"

static const struct cipher_suite {
    const char *name;
    int min, max;        /* protocol versions */
    const char *ciphers; /* TLS 1.2 and below */
    int server_order;    /* Kong's prefer_server_ciphers */
} cipher_suites[] = {
    /* TLS 1.3 only: its suites are all strong, the client chooses. The
     * TLS 1.2 list is never offered. */
    {"modern", TLS1_3_VERSION, TLS1_3_VERSION, INTERMEDIATE_CIPHERS, 0},
    {"intermediate", TLS1_2_VERSION, TLS1_3_VERSION, INTERMEDIATE_CIPHERS, 0},
    {"old", TLS1_VERSION, TLS1_3_VERSION, OLD_CIPHERS, 1},
    {"fips", TLS1_2_VERSION, TLS1_2_VERSION, FIPS_CIPHERS, 1},
};

static const struct cipher_suite *find_suite(const char *name)
{
    for (size_t i = 0; i < sizeof(cipher_suites) / sizeof(cipher_suites[0]); i++)
        if (strcmp(name, cipher_suites[i].name) == 0) return &cipher_suites[i];
    return NULL;
}

int gw_tls_cipher_suite_known(const char *name)
{
    return find_suite(name) || strcmp(name, "custom") == 0;
}

/* What one entry of OpenSSL's session cache costs in memory, about. */
#define SESSION_ENTRY_BYTES 1152

/* The suite's or custom settings, and the session ones, read once per
 * load. */
struct tls_params {
    int min, max; /* protocol versions */
    const char *ciphers;
    int server_order;
    int session_tickets;
    long session_timeout;    /* seconds */
    long session_cache_size; /* bytes */
    EVP_PKEY *dh;            /* --ssl-dhparam, or NULL: OpenSSL's choice by key size */
};

/* Kong's ssl_protocols ("TLSv1.2 TLSv1.3", spaces or commas), for the
 * custom suite. 0, or -1 with errors added. */
static int read_protocols(const char *list, struct tls_params *p, struct gw_errlist *errs)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", list);
    int lo = 0, hi = 0, bad = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
        int v = strcmp(t, "TLSv1.2") == 0   ? TLS1_2_VERSION
                : strcmp(t, "TLSv1.3") == 0 ? TLS1_3_VERSION
                                            : 0;
        if (!v) {
            if (strcmp(t, "TLSv1") == 0 || strcmp(t, "TLSv1.1") == 0)
                gw_errlist_add(
                    errs,
                    "--ssl-protocols: %s is not offered: deprecated by RFC 8996 (known: "
                    "TLSv1.2, TLSv1.3; --ssl-cipher-suite old enables it, as Kong advises)",
                    t);
            else
                gw_errlist_add(
                    errs, "--ssl-protocols: unknown protocol (known: TLSv1.2, TLSv1.3): '%s'", t);
            bad = 1;
            continue;
        }
        if (!lo || v < lo) lo = v;
        if (v > hi) hi = v;
    }
    if (bad) return -1;
    if (!lo) {
        gw_errlist_add(errs, "--ssl-protocols: empty (known: TLSv1.2, TLSv1.3)");
        return -1;
    }
    p->min = lo;
    p->max = hi;
    return 0;
}

/* Kong's ssl_cipher_suite, and for "custom" its ssl_protocols, ssl_ciphers
 * and ssl_prefer_server_ciphers; settings.c has refused a suite it does not
 * know and custom's settings beside another suite. Given without a suite,
 * those settings mean custom. 0, or -1 with errors added. */
static int read_suite(const struct gw_settings *s, struct tls_params *p, struct gw_errlist *errs)
{
    int custom_given = s->ssl_protocols || s->ssl_ciphers || s->ssl_prefer_server_ciphers;
    const char *suite = s->ssl_cipher_suite ? s->ssl_cipher_suite
                        : custom_given      ? "custom"
                                            : "intermediate";
    if (strcmp(suite, "custom") != 0) {
        const struct cipher_suite *c = find_suite(suite);
        if (!c) { /* settings.c checked */
            gw_errlist_add(errs, "--ssl-cipher-suite '%s': unknown", suite);
            return -1;
        }
        *p = (struct tls_params){
            .min = c->min, .max = c->max, .ciphers = c->ciphers, .server_order = c->server_order};
        return 0;
    }
    /* custom: Kong's defaults for each setting not given */
    *p = (struct tls_params){.min = TLS1_2_VERSION,
                             .max = TLS1_3_VERSION,
                             .ciphers = INTERMEDIATE_CIPHERS,
                             .server_order = 1};
    int rc = 0;
    if (s->ssl_prefer_server_ciphers && strcmp(s->ssl_prefer_server_ciphers, "off") == 0)
        p->server_order = 0; /* on or off: settings.c checked */
    if (s->ssl_ciphers) {
        SSL_CTX *probe = SSL_CTX_new(TLS_server_method());
        int ok = probe && SSL_CTX_set_cipher_list(probe, s->ssl_ciphers) == 1;
        SSL_CTX_free(probe);
        ERR_clear_error();
        if (!ok) {
            int suite_name = find_suite(s->ssl_ciphers) != NULL;
            gw_errlist_add(errs,
                           "--ssl-ciphers '%s': no cipher OpenSSL knows in it (an OpenSSL cipher "
                           "list for TLS 1.2, e.g. ECDHE-ECDSA-AES128-GCM-SHA256:...)%s%s",
                           s->ssl_ciphers, suite_name ? "; Kong's suite: --ssl-cipher-suite " : "",
                           suite_name ? s->ssl_ciphers : "");
            rc = -1;
        }
        p->ciphers = s->ssl_ciphers;
    }
    if (s->ssl_protocols && read_protocols(s->ssl_protocols, p, errs) < 0) rc = -1;
    return rc;
}

/* Kong's ssl_dhparam: one of RFC 7919's groups by name, a PEM file of DH
 * parameters, or their PEM text. NULL with an error added. */
static EVP_PKEY *read_dhparam(const char *v, struct gw_errlist *errs)
{
    EVP_PKEY *dh = NULL;
    if (strncmp(v, "ffdhe", 5) == 0) {
        static const char *const groups[] = {"ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144",
                                             "ffdhe8192"};
        int known = 0;
        for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
            known |= strcmp(v, groups[i]) == 0;
        EVP_PKEY_CTX *pctx = known ? EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL) : NULL;
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("group", (char *)v, 0),
                               OSSL_PARAM_construct_end()};
        if (!pctx || EVP_PKEY_paramgen_init(pctx) != 1 ||
            EVP_PKEY_CTX_set_params(pctx, params) != 1 || EVP_PKEY_paramgen(pctx, &dh) != 1) {
            EVP_PKEY_free(dh);
            dh = NULL;
        }
        EVP_PKEY_CTX_free(pctx);
        if (!dh)
            gw_errlist_add(errs,
                           "--ssl-dhparam '%s': not a group (ffdhe2048, ffdhe3072, ffdhe4096, "
                           "ffdhe6144, ffdhe8192), a PEM file or PEM text",
                           v);
    } else {
        int text = strncmp(v, "-----BEGIN", 10) == 0;
        BIO *bio = text ? BIO_new_mem_buf(v, -1) : BIO_new_file(v, "r");
        if (bio) dh = PEM_read_bio_Parameters(bio, NULL);
        BIO_free(bio);
        if (dh && EVP_PKEY_get_base_id(dh) != EVP_PKEY_DH) {
            EVP_PKEY_free(dh);
            dh = NULL;
        }
        if (!dh)
            gw_errlist_add(errs, "--ssl-dhparam %s%s%s: %s", text ? "" : "'",
                           text ? "(PEM text)" : v, text ? "" : "'",
                           !text && !bio
                               ? strerror(errno)
                               : "no DH parameters in it (openssl dhparam -out FILE 2048, "
                                 "or a group: ffdhe2048...)");
    }
    ERR_clear_error();
    return dh;
}

static int read_params(const struct gw_settings *s, struct tls_params *p, struct gw_errlist *errs)
{
    int rc = read_suite(s, p, errs);
    p->session_tickets = s->ssl_session_tickets;
    p->session_timeout = s->ssl_session_timeout;
    p->session_cache_size = s->ssl_session_cache_size;
    p->dh = NULL;
    if (s->ssl_dhparam && !(p->dh = read_dhparam(s->ssl_dhparam, errs))) rc = -1;
    return rc;
}

/* Every server context, the default one and each certificate's, alike:
 * after a switch by server name OpenSSL reads the ALPN callback and the
 * modes from the new context. */
static SSL_CTX *new_server_ctx(const struct tls_params *p)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return NULL;
    SSL_CTX_set_min_proto_version(ctx, p->min);
    SSL_CTX_set_max_proto_version(ctx, p->max);
    /* The DHE suites need a group: --ssl-dhparam's, else OpenSSL's
     * automatic choice (ffdhe2048 for a 2048-bit RSA key, as Kong's
     * intermediate sets). */
    if (p->dh && EVP_PKEY_up_ref(p->dh) == 1) {
        if (SSL_CTX_set0_tmp_dh_pkey(ctx, p->dh) != 1) EVP_PKEY_free(p->dh);
    } else {
        SSL_CTX_set_dh_auto(ctx, 1);
    }
    if (SSL_CTX_set_cipher_list(ctx, p->ciphers) != 1) { /* checked at load: cannot fail here */
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 /* a client that closes without close_notify
                                  * reads as an end, not an error */
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (p->server_order) SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Partial writes and a buffer that moves: the output is an evbuffer
     * whose first bytes are handed over again after a short write.
     * Released buffers: an idle keep-alive connection keeps no 34 KB of
     * record buffers (nginx does the same). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    /* Kong's ssl_session_* settings. OpenSSL's cache counts sessions and
     * the setting is a size: an entry costs about 1.1 KB here (RSS over
     * 4000 TLS 1.3 sessions, Release build), so "10m" holds ~9000 and costs
     * ~10 MB once full. nginx's "4000 a megabyte" is its own compact
     * shared-memory format, which would make the default ~45 MB here. With
     * tickets off, TLS 1.3 resumption still works, from this cache
     * (OpenSSL's stateful tickets: two per handshake). */
    SSL_CTX_set_timeout(ctx, p->session_timeout);
    long entries = p->session_cache_size / SESSION_ENTRY_BYTES;
    SSL_CTX_sess_set_cache_size(ctx, entries > 0 ? entries : 1);
    if (!p->session_tickets)
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    else
        gw_tls_tickets_use(ctx); /* keys that outlive a reload, rotated */
    static const unsigned char sid_ctx[] = "sluice";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase_cb);
    SSL_CTX_set_tlsext_servername_callback(ctx, accept_servername_cb);
    return ctx;
}

/* --- certificates from kong.yml ---------------------------------------- */

/* A PEM text's certificate (leaf then chain) into ctx: 0, or -1 with *why. */
static int use_pem_cert(SSL_CTX *ctx, const char *pem, const char **why)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *leaf = bio ? PEM_read_bio_X509_AUX(bio, NULL, no_passphrase_cb, NULL) : NULL;
    int ok = leaf && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    X509 *ca;
    while (ok && (ca = PEM_read_bio_X509(bio, NULL, no_passphrase_cb, NULL)))
        if (!SSL_CTX_add0_chain_cert(ctx, ca)) { /* takes ca on success */
            X509_free(ca);
            ok = 0;
        }
    if (ok) {
        /* The end of the text reads as "no start line": not an error. */
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
            ERR_clear_error();
        else if (e)
            ok = 0;
    }
    if (!ok) *why = openssl_reason();
    BIO_free(bio);
    ERR_clear_error();
    return ok ? 0 : -1;
}

static EVP_PKEY *read_pem_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase_cb, NULL) : NULL;
    BIO_free(bio);
    return key;
}

/* A certificate (leaf, then its chain) and its key, PEM texts, into ctx:
 * the one way every certificate goes in (--ssl-cert files, kong.yml's
 * certificates, and their checks at load). 0 and *key_type, or
 * GW_TLS_BAD_CERT / GW_TLS_BAD_KEY with *why, or GW_TLS_MISMATCH. */
static int use_pair(SSL_CTX *ctx, const char *cert, const char *key, int *key_type,
                    const char **why)
{
    ERR_clear_error();
    if (use_pem_cert(ctx, cert, why) < 0) return GW_TLS_BAD_CERT;
    EVP_PKEY *pk = read_pem_key(key);
    if (!pk) {
        *why = strstr(key, "ENCRYPTED") ? "the key is encrypted (no passphrase can be given)"
                                        : openssl_reason();
        ERR_clear_error();
        return GW_TLS_BAD_KEY;
    }
    *key_type = EVP_PKEY_get_base_id(pk);
    int ok = SSL_CTX_use_PrivateKey(ctx, pk) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return ok ? 0 : GW_TLS_MISMATCH;
}

int gw_tls_pem_pair_check(const char *cert, const char *key, int *key_type, const char **why)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        *why = "out of memory";
        return GW_TLS_BAD_CERT;
    }
    int rc = use_pair(ctx, cert, key, key_type, why);
    SSL_CTX_free(ctx);
    return rc;
}

int gw_tls_ca_check(const char *pem, char digest[65], const char **why)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase_cb, NULL) : NULL;
    /* Kong's ca_certificates.lua: one certificate per entity (a second
     * one would go into the trust store unchecked). */
    X509 *more = x ? PEM_read_bio_X509(bio, NULL, no_passphrase_cb, NULL) : NULL;
    BIO_free(bio);
    if (!x) {
        *why = openssl_reason();
        ERR_clear_error();
        return GW_TLS_BAD_CERT;
    }
    int rc = 0;
    if (more)
        rc = GW_TLS_MULTIPLE;
    else if (X509_check_ca(x) != 1)
        rc = GW_TLS_NOT_CA;
    else if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        rc = GW_TLS_EXPIRED;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    digest[0] = '\0';
    if (X509_digest(x, EVP_sha256(), md, &n) == 1)
        for (unsigned i = 0; i < n && i < 32; i++)
            snprintf(digest + 2 * i, 3, "%02x", md[i]);
    X509_free(x);
    X509_free(more);
    ERR_clear_error();
    return rc;
}

/* Calls fn on each certificate ctx serves (one per key type), and leaves
 * the first one current, as loading did. */
static void each_certificate(SSL_CTX *ctx, void (*fn)(X509 *, void *), void *arg)
{
    if (SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST) == 1) {
        do {
            X509 *x = SSL_CTX_get0_certificate(ctx);
            if (x) fn(x, arg);
        } while (SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_NEXT) == 1);
        SSL_CTX_set_current_cert(ctx, SSL_CERT_SET_FIRST);
    }
    ERR_clear_error();
}

static void digest_certificate(X509 *x, void *md)
{
    unsigned char fp[EVP_MAX_MD_SIZE];
    unsigned int n;
    if (X509_digest(x, EVP_sha256(), fp, &n)) EVP_DigestUpdate(md, fp, n);
}

/* The certificates a context serves, as one digest, kept with it: part of
 * every session's id context (client_hello_cb), so that a session or a
 * ticket resumes only under the certificates it was made with. Tickets
 * outlive a reload (tls_tickets.c); one whose certificate the reload
 * replaced must not go on vouching for the old one: it gets a full
 * handshake with the new certificate. */
static int cert_digest_index = -1;

static void cert_digest_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                                void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static int remember_certificates(SSL_CTX *ctx)
{
    if (cert_digest_index < 0)
        cert_digest_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, cert_digest_free_cb);
    unsigned char *digest = malloc(SHA256_DIGEST_LENGTH);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = digest && md && cert_digest_index >= 0 && EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    if (ok) each_certificate(ctx, digest_certificate, md);
    ok = ok && EVP_DigestFinal_ex(md, digest, NULL) &&
         SSL_CTX_set_ex_data(ctx, cert_digest_index, digest);
    EVP_MD_CTX_free(md);
    if (!ok) free(digest);
    return ok ? 0 : -1;
}

/* A certificate entity (already checked at load) as a context of its own. */
static SSL_CTX *certificate_ctx(const struct gw_certificate *c, const struct tls_params *p)
{
    SSL_CTX *ctx = new_server_ctx(p);
    if (!ctx) return NULL;
    const char *why;
    int type;
    const char *pairs[2][2] = {{c->cert, c->key}, {c->cert_alt, c->key_alt}};
    for (int i = 0; i < 2 && pairs[i][0]; i++)
        if (use_pair(ctx, pairs[i][0], pairs[i][1], &type, &why) != 0) {
            SSL_CTX_free(ctx);
            return NULL;
        }
    if (remember_certificates(ctx) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Server name -> context, sorted by name: Kong's certificate lookup. It
 * belongs to the default context (ex_data, freed with it), since a
 * connection may still be in its handshake when the snapshot that built
 * it is gone: the context outlives it by its references. */
struct sni_table {
    size_t n;
    int has_default; /* the default context has a certificate (--ssl-cert) */
    struct sni_slot {
        char *name;
        SSL_CTX *ctx;
    } v[];
};

static int sni_table_index = -1;

static void sni_table_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                              void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    struct sni_table *t = ptr;
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
        SSL_CTX_free(t->v[i].ctx);
    }
    free(t);
}

static int slot_cmp_cb(const void *a, const void *b)
{
    return strcmp(((const struct sni_slot *)a)->name, ((const struct sni_slot *)b)->name);
}

static SSL_CTX *sni_find(const struct sni_table *t, const char *name)
{
    struct sni_slot key = {.name = (char *)name};
    const struct sni_slot *hit = bsearch(&key, t->v, t->n, sizeof(key), slot_cmp_cb);
    return hit ? hit->ctx : NULL;
}

/* Kong's order (runloop/certificate.lua): the exact name, then "*." and
 * the name without its first label (at least two left), then the name
 * with its last label replaced by "*", then the "*" entry (Kong's default
 * SNI). `name` is lowercase. */
static SSL_CTX *sni_lookup(const struct sni_table *t, const char *name)
{
    SSL_CTX *ctx = sni_find(t, name);
    if (ctx) return ctx;
    const char *dot = strchr(name, '.');
    if (dot && dot > name && strchr(dot + 1, '.')) {
        char wild[258];
        snprintf(wild, sizeof(wild), "*%s", dot);
        if ((ctx = sni_find(t, wild))) return ctx;
    }
    const char *last = strrchr(name, '.');
    if (last && last[1]) {
        char wild[258];
        size_t keep = (size_t)(last - name) + 1;
        memcpy(wild, name, keep);
        wild[keep] = '*';
        wild[keep + 1] = '\0';
        if ((ctx = sni_find(t, wild))) return ctx;
    }
    return sni_find(t, "*");
}

/* Why client_hello_cb refused the last handshake of this thread, for the
 * debug line ("callback failed" otherwise). */
static _Thread_local char sni_refused[384];

/* The host name of a ClientHello's server_name extension (RFC 6066 3),
 * lowercased into name; 0 when there is none usable. */
static int client_hello_name(SSL *ssl, char name[256])
{
    const unsigned char *p;
    size_t len;
    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) || len < 5) return 0;
    size_t list = (size_t)p[0] << 8 | p[1];
    size_t n = (size_t)p[3] << 8 | p[4];
    if (list + 2 > len || p[2] != TLSEXT_NAMETYPE_host_name || n == 0 || n + 5 > len || n > 255 ||
        memchr(p + 5, 0, n))
        return 0;
    for (size_t i = 0; i < n; i++)
        name[i] = (char)tolower(p[5 + i]);
    name[n] = '\0';
    return 1;
}

/*
 * The certificate is chosen here, at the start of the ClientHello, rather
 * than in a servername callback: OpenSSL looks for a session to resume in
 * between, and a TLS 1.2 session of one name must not be resumed under
 * another (RFC 6066 3). Each name gets its own session id context (a hash
 * of it and of the certificates that serve it), which OpenSSL compares
 * before it resumes a session or a ticket.
 */
static int client_hello_cb(SSL *ssl, int *alert, void *arg)
{
    const struct sni_table *t = arg;
    char name[256];
    int have = client_hello_name(ssl, name);
    SSL_CTX *ctx = have ? sni_lookup(t, name) : NULL;
    if (!ctx && !have && !t->has_default) ctx = sni_find(t, "*");
    if (!ctx && !t->has_default) {
        /* No certificate for that name, and no default to fall back on. */
        if (!have)
            snprintf(sni_refused, sizeof(sni_refused),
                     "the client sent no server name, and there is no --ssl-cert to fall back on");
        else if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789.-_") == strlen(name))
            snprintf(sni_refused, sizeof(sni_refused),
                     "no certificate for server name '%s', and no --ssl-cert to fall back on",
                     name);
        else
            snprintf(sni_refused, sizeof(sni_refused),
                     "no certificate for a server name that is not a host name");
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (ctx) SSL_set_SSL_CTX(ssl, ctx);
    /* The session id context: the serving certificates, and the name. */
    const unsigned char *certs = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), cert_digest_index);
    unsigned char input[SHA256_DIGEST_LENGTH + 256] = {0};
    size_t name_len = have ? strlen(name) : 0;
    if (certs) memcpy(input, certs, SHA256_DIGEST_LENGTH);
    memcpy(input + SHA256_DIGEST_LENGTH, name, name_len);
    unsigned char sid_ctx[SHA256_DIGEST_LENGTH];
    SHA256(input, SHA256_DIGEST_LENGTH + name_len, sid_ctx);
    SSL_set_session_id_context(ssl, sid_ctx, sizeof(sid_ctx));
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Always attached, with no certificate from kong.yml too: the callback
 * also gives each server name its session context, which routes on snis
 * need as much as certificates do. cfg NULL (sluice -t on a broken file):
 * no names. */
static int attach_certificates(SSL_CTX *dflt, int has_default, const struct gw_config *cfg,
                               const struct tls_params *p, struct gw_errlist *errs)
{
    static const struct gw_config none;
    if (!cfg) cfg = &none;
    if (sni_table_index < 0)
        sni_table_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_table_free_cb);
    struct sni_table *t = calloc(1, sizeof(*t) + cfg->n_snis * sizeof(t->v[0]));
    SSL_CTX **by_cert = calloc(cfg->n_certificates + 1, sizeof(*by_cert));
    if (!t || !by_cert || sni_table_index < 0 || !SSL_CTX_set_ex_data(dflt, sni_table_index, t)) {
        free(t);
        free(by_cert);
        gw_errlist_add(errs, "TLS: out of memory");
        return -1;
    }
    t->has_default = has_default;
    int rc = 0;
    for (size_t i = 0; i < cfg->n_snis && rc == 0; i++) {
        const struct gw_certificate *c = cfg->snis[i].certificate;
        if (!by_cert[c->index] && !(by_cert[c->index] = certificate_ctx(c, p))) {
            gw_errlist_add(errs, "TLS: cannot set up the certificate of SNI '%s'",
                           cfg->snis[i].name);
            rc = -1;
            break;
        }
        SSL_CTX_up_ref(by_cert[c->index]);
        t->v[t->n].ctx = by_cert[c->index];
        t->v[t->n].name = strdup(cfg->snis[i].name);
        if (!t->v[t->n++].name) rc = -1;
    }
    for (size_t i = 0; i < cfg->n_certificates; i++)
        SSL_CTX_free(by_cert[i]); /* the table holds its own references */
    free(by_cert);
    /* cfg->snis is sorted by name and unique: so is the table. */
    SSL_CTX_set_client_hello_cb(dflt, client_hello_cb, t);
    return rc;
}

static SSL_CTX *context_load(const struct gw_settings *s, const struct gw_config *cfg,
                             const struct tls_params *p, struct gw_errlist *errs);

SSL_CTX *gw_tls_context_load(const struct gw_settings *s, const struct gw_config *cfg,
                             struct gw_errlist *errs)
{
    /* Checked whatever else is set: a typo must not wait for the day an
     * ssl listener is added to be found. */
    struct tls_params params;
    SSL_CTX *ctx = NULL;
    if (read_params(s, &params, errs) == 0) {
        gw_tls_tickets_period(params.session_timeout);
        ctx = context_load(s, cfg, &params, errs);
    }
    EVP_PKEY_free(params.dh); /* each context holds its own reference */
    return ctx;
}

static SSL_CTX *context_load(const struct gw_settings *s, const struct gw_config *cfg,
                             const struct tls_params *p, struct gw_errlist *errs)
{
    int need = 0;
    for (size_t i = 0; i < s->n_proxy; i++)
        if (s->proxy[i].ssl) need = 1;
    int with_certs = cfg && cfg->n_snis;
    if (!s->ssl_cert && !s->ssl_cert_key) {
        /* cfg NULL: the config did not load, its errors say why, and
         * whether it has certificates is not known. */
        if (need && !with_certs && cfg) {
            gw_errlist_add(errs, "a --proxy-listen with ssl needs --ssl-cert and --ssl-cert-key "
                                 "(SLUICE_SSL_CERT, SLUICE_SSL_CERT_KEY), or certificates with "
                                 "snis in the config");
            return NULL;
        }
        if (!with_certs) return NULL;
    }
    size_t errs_before = errs->n;
    if (!s->ssl_cert != !s->ssl_cert_key) {
        gw_errlist_add(errs, "%s is set but %s is not: both are needed",
                       s->ssl_cert ? "--ssl-cert" : "--ssl-cert-key",
                       s->ssl_cert ? "--ssl-cert-key" : "--ssl-cert");
        return NULL;
    }
    char cbuf[4096], kbuf[4096];
    char *certs[MAX_PAIRS], *keys[MAX_PAIRS];
    size_t nc = 0, nk = 0;
    if (s->ssl_cert) {
        nc = split_list(s->ssl_cert, cbuf, sizeof(cbuf), certs, MAX_PAIRS);
        nk = split_list(s->ssl_cert_key, kbuf, sizeof(kbuf), keys, MAX_PAIRS);
        if (nc > MAX_PAIRS || nk > MAX_PAIRS) {
            gw_errlist_add(errs, "--ssl-cert: at most %d certificates (one per key type)",
                           MAX_PAIRS);
            return NULL;
        }
        if (nc == 0 || nc != nk) {
            gw_errlist_add(errs,
                           "--ssl-cert lists %zu file%s and --ssl-cert-key %zu: one key per "
                           "certificate, in the same order",
                           nc, nc == 1 ? "" : "s", nk);
            return NULL;
        }
    }

    SSL_CTX *ctx = new_server_ctx(p);
    if (!ctx) {
        gw_errlist_add(errs, "TLS: cannot create a context (%s)", openssl_reason());
        ERR_clear_error();
        return NULL;
    }
    int types[MAX_PAIRS];
    for (size_t i = 0; i < nc; i++)
        if (load_pair(ctx, certs[i], keys[i], types, i, errs) < 0) break;
    ERR_clear_error();
    if (errs->n == errs_before && remember_certificates(ctx) < 0)
        gw_errlist_add(errs, "TLS: out of memory");
    if (errs->n == errs_before) attach_certificates(ctx, nc > 0, cfg, p, errs);
    if (errs->n != errs_before) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* --- GET /status ------------------------------------------------------- */

static void describe_one(cJSON *arr, X509 *x, const char *source, const struct gw_config *cfg,
                         const struct gw_certificate *entity)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", source);
    char name[256];
    X509_NAME_oneline(X509_get_subject_name(x), name, sizeof(name));
    cJSON_AddStringToObject(o, "subject", name);
    X509_NAME_oneline(X509_get_issuer_name(x), name, sizeof(name));
    cJSON_AddStringToObject(o, "issuer", name);
    EVP_PKEY *pub = X509_get0_pubkey(x);
    cJSON_AddStringToObject(o, "key_type", pub ? key_type_name(EVP_PKEY_get_base_id(pub)) : "?");
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1) {
        char when[32];
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(o, "not_after", when);
        cJSON_AddNumberToObject(o, "not_after_unix", (double)timegm(&tm));
    }
    if (entity && cfg) {
        cJSON *snis = cJSON_AddArrayToObject(o, "snis");
        for (size_t i = 0; i < cfg->n_snis; i++)
            if (cfg->snis[i].certificate == entity)
                cJSON_AddItemToArray(snis, cJSON_CreateString(cfg->snis[i].name));
    }
    cJSON_AddItemToArray(arr, o);
}

static void describe_pem(cJSON *arr, const char *pem, const char *source,
                         const struct gw_config *cfg, const struct gw_certificate *entity)
{
    BIO *bio = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase_cb, NULL) : NULL;
    if (x) describe_one(arr, x, source, cfg, entity);
    X509_free(x);
    BIO_free(bio);
    ERR_clear_error();
}

static void describe_ssl_cert(X509 *x, void *arr)
{
    describe_one(arr, x, "--ssl-cert", NULL, NULL);
}

cJSON *gw_tls_describe(SSL_CTX *dflt, const struct gw_config *cfg)
{
    cJSON *arr = cJSON_CreateArray();
    /* --ssl-cert: one certificate per key type in the default context. */
    if (dflt) each_certificate(dflt, describe_ssl_cert, arr);
    for (size_t i = 0; cfg && i < cfg->n_certificates; i++) {
        const struct gw_certificate *c = cfg->certificates[i];
        char source[48];
        snprintf(source, sizeof(source), "certificates[%zu]", i);
        describe_pem(arr, c->cert, source, cfg, c);
        if (c->cert_alt) {
            snprintf(source, sizeof(source), "certificates[%zu].cert_alt", i);
            describe_pem(arr, c->cert_alt, source, cfg, c);
        }
    }
    return arr;
}

/* Why the last failed call of this thread failed: a static string of
 * OpenSSL's, for the debug line about a handshake that did not happen. */
static _Thread_local const char *last_error = "";

const char *gw_tls_last_error(void)
{
    return last_error;
}

static ssize_t failed(SSL *ssl, int r, int *want_write)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return GW_TLS_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want_write = 1;
        return GW_TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return GW_TLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        /* With SSL_OP_IGNORE_UNEXPECTED_EOF an EOF is ZERO_RETURN: this is
         * a socket error (ECONNRESET...). */
        last_error = strerror(errno);
        break;
    default: {
        unsigned long e = ERR_peek_last_error();
        last_error = openssl_reason();
        if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CALLBACK_FAILED &&
            sni_refused[0])
            last_error = sni_refused;
        break;
    }
    }
    /* The session is unusable: no close_notify after a fatal error (the
     * OpenSSL manual forbids SSL_shutdown then), and no error left queued
     * for the next OpenSSL user on this thread (libcurl's upstream TLS). */
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    ERR_clear_error();
    return GW_TLS_ERROR;
}

ssize_t gw_tls_read(SSL *ssl, void *buf, size_t len, int *want_write)
{
    size_t n = 0;
    *want_write = 0;
    int r = SSL_read_ex(ssl, buf, len, &n);
    if (r == 1) return (ssize_t)n;
    return failed(ssl, r, want_write);
}

ssize_t gw_tls_write(SSL *ssl, const void *buf, size_t len, int *want_write)
{
    size_t n = 0;
    *want_write = 0;
    int r = SSL_write_ex(ssl, buf, len, &n);
    if (r == 1) return (ssize_t)n;
    return failed(ssl, r, want_write);
}

void gw_tls_close(SSL *ssl)
{
    if (SSL_is_init_finished(ssl) && !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN))
        SSL_shutdown(ssl);
    ERR_clear_error();
}
