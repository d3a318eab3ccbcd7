/*
 * The keys that encrypt TLS session tickets: one ring for the process,
 * shared by every server context, so that a ticket outlives a reload
 * (each reload builds new contexts, and OpenSSL's own keys are per
 * context), and rotated so that no key protects sessions for long.
 *
 * A key encrypts new tickets for one rotation period (the session
 * timeout: a ticket is no use after it anyway), then only decrypts for
 * one period more, so every ticket stays readable for its whole life; a
 * ticket under a retired key is answered with a new one. Keys are random,
 * never written anywhere, and wiped once their two periods are over: by
 * the next ticket sealed or opened, or by the main loop's sweep on an idle
 * server (main.c), and at exit. nginx and Kong keep one key per
 * configuration load, for as long as it runs.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "tls_tickets.h"

struct ticket_key {
    unsigned char name[16]; /* sent in the ticket: which key to decrypt with */
    unsigned char aes[32];
    unsigned char hmac[32];
    time_t born;
    int set;
};

static struct {
    pthread_mutex_t lock;
    struct ticket_key current, previous;
    long period; /* seconds a key encrypts */
} ring = {.lock = PTHREAD_MUTEX_INITIALIZER, .period = 86400};

/* Seconds on the monotonic clock: a wall clock set back or forward must
 * neither keep a key for longer nor drop one early. */
static time_t now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static int new_key(struct ticket_key *k, time_t now)
{
    if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
        RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
        return -1;
    k->born = now;
    k->set = 1;
    return 0;
}

/* Under the lock: wipes the keys whose two periods are over (no ticket
 * they sealed can still be valid). */
static void drop_dead_keys(time_t now)
{
    if (ring.previous.set && now - ring.previous.born >= 2 * ring.period)
        OPENSSL_cleanse(&ring.previous, sizeof(ring.previous));
    if (ring.current.set && now - ring.current.born >= 2 * ring.period)
        OPENSSL_cleanse(&ring.current, sizeof(ring.current));
}

/* Under the lock: the current key, rotated when its period is over. */
static int current_key(time_t now)
{
    if (ring.current.set && now - ring.current.born < ring.period) return 0;
    struct ticket_key fresh;
    if (new_key(&fresh, now) < 0) return -1;
    OPENSSL_cleanse(&ring.previous, sizeof(ring.previous));
    ring.previous = ring.current; /* decrypts for one period more */
    ring.current = fresh;
    OPENSSL_cleanse(&fresh, sizeof(fresh));
    return 0;
}

void gw_tls_tickets_period(long seconds)
{
    pthread_mutex_lock(&ring.lock);
    ring.period = seconds > 0 ? seconds : 1;
    pthread_mutex_unlock(&ring.lock);
}

/* A quarter period, within [1 s, 60 s]: how late a dead key may be wiped
 * on a server that seals and opens no ticket to notice it. */
long gw_tls_tickets_sweep_every(void)
{
    pthread_mutex_lock(&ring.lock);
    long every = ring.period / 4;
    pthread_mutex_unlock(&ring.lock);
    return every < 1 ? 1 : every > 60 ? 60 : every;
}

void gw_tls_tickets_sweep(void)
{
    pthread_mutex_lock(&ring.lock);
    drop_dead_keys(now_sec());
    pthread_mutex_unlock(&ring.lock);
}

void gw_tls_tickets_wipe(void)
{
    pthread_mutex_lock(&ring.lock);
    OPENSSL_cleanse(&ring.previous, sizeof(ring.previous));
    OPENSSL_cleanse(&ring.current, sizeof(ring.current));
    pthread_mutex_unlock(&ring.lock);
}

static int mac_key(EVP_MAC_CTX *hctx, unsigned char *key, size_t len)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, len),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/* OpenSSL's ticket key callback: enc 1 to seal a new ticket, 0 to open
 * one. Returns 1 (done), 2 (opened, but seal a new one: the key is
 * retired), 0 (no such key: a full handshake), -1 (error). */
static int ticket_key_cb(SSL *ssl, unsigned char key_name[16], unsigned char *iv,
                         EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    (void)ssl;
    struct ticket_key k = {0};
    int rc = 1;
    time_t now = now_sec();
    pthread_mutex_lock(&ring.lock);
    drop_dead_keys(now);
    if (enc) {
        if (current_key(now) < 0)
            rc = -1;
        else
            k = ring.current;
    } else if (ring.current.set && memcmp(key_name, ring.current.name, 16) == 0) {
        k = ring.current;
        /* Past its period when no ticket has been sealed since to rotate
         * it: retired all the same. */
        rc = now - ring.current.born < ring.period ? 1 : 2;
    } else if (ring.previous.set && memcmp(key_name, ring.previous.name, 16) == 0) {
        k = ring.previous;
        rc = 2;
    } else {
        rc = 0;
    }
    pthread_mutex_unlock(&ring.lock);
    if (rc <= 0) return rc;

    int iv_len = EVP_CIPHER_get_iv_length(EVP_aes_256_cbc());
    if (enc) {
        memcpy(key_name, k.name, 16);
        if (RAND_bytes(iv, iv_len) != 1 ||
            EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1)
            rc = -1;
    } else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) != 1) {
        rc = -1;
    }
    if (rc > 0 && mac_key(hctx, k.hmac, sizeof(k.hmac)) < 0) rc = -1;
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

void gw_tls_tickets_use(SSL_CTX *ctx)
{
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
}
