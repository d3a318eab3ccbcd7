/*
 * TLS on the proxy listeners: the server context built from the
 * certificate and key files (Kong's ssl_cert / ssl_cert_key), and the
 * non-blocking record I/O a client connection does through it.
 *
 * The context is part of the config snapshot (snapshot.h): SIGHUP reads
 * the files again with kong.yml, a bad file refuses the whole reload, and
 * a new connection takes the context of the snapshot current when it is
 * accepted (OpenSSL counts the references: a connection keeps its own).
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct gw_errlist;
struct gw_settings;
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

/* The server context of the TLS listeners: the settings' certificate and
 * key files (comma-separated, in pairs) as the default, and cfg's
 * certificates (NULL: none) chosen by the server name the client asks
 * for, as Kong does (exact name, then *.rest, then first.*; else the
 * default, else the handshake fails with unrecognized_name). NULL with
 * errors added when a file is missing, not PEM, a key does not match, or
 * an ssl listener has no certificate at all; NULL with no error when
 * there is no certificate and no ssl listener. */
/* 1 if name is one of Kong's ssl_cipher_suite values: modern,
 * intermediate, old, fips, custom. */
int gw_tls_cipher_suite_known(const char *name);

struct gw_config;
SSL_CTX *gw_tls_context_load(const struct gw_settings *s, const struct gw_config *cfg,
                             struct gw_errlist *errs);

/* The PEM texts of a certificate (leaf, then its chain) and of its key,
 * checked as a TLS listener would use them: 0 and *key_type (an EVP_PKEY
 * id), else GW_TLS_BAD_CERT or GW_TLS_BAD_KEY with *why (OpenSSL's
 * reason), or GW_TLS_MISMATCH. */
enum { GW_TLS_BAD_CERT = 1, GW_TLS_BAD_KEY = 2, GW_TLS_MISMATCH = 3 };
int gw_tls_pem_pair_check(const char *cert, const char *key, int *key_type, const char **why);

/* A CA certificate's PEM, checked as Kong checks its ca_certificates: 0
 * and its hex SHA-256 (of the DER) in digest, else GW_TLS_BAD_CERT (*why),
 * GW_TLS_NOT_CA (no CA:TRUE basic constraint), GW_TLS_EXPIRED, or
 * GW_TLS_MULTIPLE (more than one certificate: Kong takes one each). */
enum { GW_TLS_NOT_CA = 4, GW_TLS_EXPIRED = 5, GW_TLS_MULTIPLE = 6 };
int gw_tls_ca_check(const char *pem, char digest[65], const char **why);

/* What a read or write did. GW_TLS_AGAIN: nothing now; the caller waits
 * for input, or for output room when *want_write is set. */
enum { GW_TLS_AGAIN = -1, GW_TLS_CLOSED = 0, GW_TLS_ERROR = -2 };

/* Like read(2)/write(2) on the connection's socket, through TLS: bytes
 * (> 0), GW_TLS_CLOSED (the peer closed), GW_TLS_AGAIN or GW_TLS_ERROR.
 * The handshake happens in the first reads. *want_write is set when the
 * call waits for the socket to take output (a handshake flight or a
 * session ticket the socket could not take), cleared otherwise. */
ssize_t gw_tls_read(SSL *ssl, void *buf, size_t len, int *want_write);
ssize_t gw_tls_write(SSL *ssl, const void *buf, size_t len, int *want_write);

/* The certificates the TLS listeners serve, for GET /status: one object
 * each (source, subject, issuer, key_type, not_after, not_after_unix,
 * and snis for kong.yml's), a cJSON array the caller owns. dflt may be
 * NULL (no --ssl-cert context), cfg too. */
typedef struct cJSON cJSON;
cJSON *gw_tls_describe(SSL_CTX *dflt, const struct gw_config *cfg);

/* Why the last call that returned GW_TLS_ERROR on this thread failed. */
const char *gw_tls_last_error(void);

/* Sends close_notify if the session is in a state to, never waits. */
void gw_tls_close(SSL *ssl);

#endif
