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

/* The settings' certificate and key lists (comma-separated, in pairs),
 * loaded into a server context. NULL with errors added when a file is
 * missing, not PEM, or a key does not match its certificate; NULL with no
 * error when no certificate is configured. */
SSL_CTX *gw_tls_context_load(const struct gw_settings *s, struct gw_errlist *errs);

/* What a read or write did. GW_TLS_AGAIN: nothing now, the caller waits
 * for the event gw_tls_wants() names. */
enum { GW_TLS_AGAIN = -1, GW_TLS_CLOSED = 0, GW_TLS_ERROR = -2, GW_TLS_PLAIN_HTTP = -3 };

/* Like read(2)/write(2) on the connection's socket, through TLS: bytes
 * (> 0), GW_TLS_CLOSED (the peer closed), GW_TLS_AGAIN or GW_TLS_ERROR;
 * GW_TLS_PLAIN_HTTP is the error of a read that found a plain HTTP request
 * where the ClientHello should be (OpenSSL knows the first bytes of one).
 * The handshake happens in the first reads. *want_write is set when the
 * call waits for the socket to take output (a handshake flight or a
 * session ticket the socket could not take), cleared otherwise. */
ssize_t gw_tls_read(SSL *ssl, void *buf, size_t len, int *want_write);
ssize_t gw_tls_write(SSL *ssl, const void *buf, size_t len, int *want_write);

/* Why the last call that returned GW_TLS_ERROR on this thread failed. */
const char *gw_tls_last_error(void);

/* Sends close_notify if the session is in a state to, never waits. */
void gw_tls_close(SSL *ssl);

#endif
