/*
 * Session ticket keys (tls_tickets.c): one ring for the process, so that a
 * ticket survives a reload, rotated every session timeout.
 */
#ifndef GW_TLS_TICKETS_H
#define GW_TLS_TICKETS_H

typedef struct ssl_ctx_st SSL_CTX;

/* How long a key seals new tickets: the session timeout. */
void gw_tls_tickets_period(long seconds);
/* ctx seals and opens its tickets with the ring's keys. */
void gw_tls_tickets_use(SSL_CTX *ctx);
/* Wipes the keys past their two periods; the main loop calls it every
 * gw_tls_tickets_sweep_every() seconds. */
void gw_tls_tickets_sweep(void);
long gw_tls_tickets_sweep_every(void);
/* Wipes every key (at exit). */
void gw_tls_tickets_wipe(void);

#endif
