#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "gw_log.h"
#include "settings.h"
#include "tls.h"

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

/* Looks at the file before OpenSSL does, for errors a user can act on
 * ("No such file or directory", "the key is encrypted") where OpenSSL's
 * decoders say "system lib" or "unsupported". `marker` is the PEM label
 * the file must hold. Returns 1 when OpenSSL may go on. */
static int pem_file_ok(const char *flag, const char *path, const char *marker, int is_key,
                       struct gw_errlist *errs)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        gw_errlist_add(errs, "%s %s: %s", flag, path, strerror(errno));
        return 0;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_FILE_MAX) {
        gw_errlist_add(errs, "%s %s: %s", flag, path,
                       S_ISREG(st.st_mode) ? "too large for a PEM file" : "not a regular file");
        fclose(f);
        return 0;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t n = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!text) {
        gw_errlist_add(errs, "%s %s: out of memory", flag, path);
        return 0;
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
    OPENSSL_cleanse(text, n); /* a private key: no copy left in freed memory */
    free(text);
    return ok;
}

static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, int *types, size_t n_types,
                     struct gw_errlist *errs)
{
    int ok_cert = pem_file_ok("--ssl-cert", cert, "CERTIFICATE-----", 0, errs);
    int ok_key = pem_file_ok("--ssl-cert-key", key, "PRIVATE KEY-----", 1, errs);
    if (!ok_cert || !ok_key) return -1;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        gw_errlist_add(errs, "--ssl-cert %s: not a usable PEM certificate (%s)", cert,
                       openssl_reason());
        return -1;
    }
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    EVP_PKEY *pub = leaf ? X509_get0_pubkey(leaf) : NULL;
    int type = pub ? EVP_PKEY_get_base_id(pub) : 0;
    for (size_t i = 0; i < n_types; i++)
        if (types[i] == type) {
            gw_errlist_add(errs,
                           "--ssl-cert %s: a second certificate for the same key type (%s); "
                           "pairs must differ in key type (one RSA, one ECDSA)",
                           cert, key_type_name(type));
            return -1;
        }
    types[n_types] = type;
    ERR_clear_error();
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            gw_errlist_add(errs, "--ssl-cert-key %s: does not match the certificate in %s", key,
                           cert);
        else
            gw_errlist_add(errs, "--ssl-cert-key %s: not a usable PEM private key (%s)", key,
                           openssl_reason());
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        gw_errlist_add(errs, "--ssl-cert-key %s: does not match the certificate in %s", key, cert);
        return -1;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
        gw_warn("--ssl-cert %s: the certificate has expired: clients will refuse it", cert);
    return 0;
}

SSL_CTX *gw_tls_context_load(const struct gw_settings *s, struct gw_errlist *errs)
{
    if (!s->ssl_cert && !s->ssl_cert_key) return NULL;
    size_t errs_before = errs->n;
    if (!s->ssl_cert || !s->ssl_cert_key) {
        gw_errlist_add(errs, "%s is set but %s is not: both are needed",
                       s->ssl_cert ? "--ssl-cert" : "--ssl-cert-key",
                       s->ssl_cert ? "--ssl-cert-key" : "--ssl-cert");
        return NULL;
    }
    char cbuf[4096], kbuf[4096];
    char *certs[MAX_PAIRS], *keys[MAX_PAIRS];
    size_t nc = split_list(s->ssl_cert, cbuf, sizeof(cbuf), certs, MAX_PAIRS);
    size_t nk = split_list(s->ssl_cert_key, kbuf, sizeof(kbuf), keys, MAX_PAIRS);
    if (nc > MAX_PAIRS || nk > MAX_PAIRS) {
        gw_errlist_add(errs, "--ssl-cert: at most %d certificates (one per key type)", MAX_PAIRS);
        return NULL;
    }
    if (nc == 0 || nc != nk) {
        gw_errlist_add(errs,
                       "--ssl-cert lists %zu file%s and --ssl-cert-key %zu: one key per "
                       "certificate, in the same order",
                       nc, nc == 1 ? "" : "s", nk);
        return NULL;
    }

    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        gw_errlist_add(errs, "TLS: cannot create a context (%s)", openssl_reason());
        ERR_clear_error();
        return NULL;
    }
    /* Kong's default ssl_protocols: TLS 1.2 and 1.3. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 /* a client that closes without close_notify
                                  * reads as an end, not an error */
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Partial writes and a buffer that moves: the output is an evbuffer
     * whose first bytes are handed over again after a short write.
     * Released buffers: an idle keep-alive connection keeps no 34 KB of
     * record buffers (nginx does the same). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    static const unsigned char sid_ctx[] = "sluice";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase_cb);

    int types[MAX_PAIRS];
    for (size_t i = 0; i < nc; i++)
        if (load_pair(ctx, certs[i], keys[i], types, i, errs) < 0) break;
    ERR_clear_error();
    if (errs->n != errs_before) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
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
        if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST) {
            SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            ERR_clear_error();
            return GW_TLS_PLAIN_HTTP;
        }
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
