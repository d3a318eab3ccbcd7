/*
 * policy local: the counters of the whole process, shared by every worker
 * (Kong keeps them in a shared dict across nginx workers) and kept across
 * reloads, since keys name the plugin's scope, not a config snapshot.
 *
 * One chained hash table under one mutex: a check is a few lookups and
 * increments, far shorter than any contention it could cause. Entries die
 * with their period; every check sweeps a few more buckets in turn, and an
 * insert that finds the table full sweeps all of it (under the lock) before
 * it grows, so memory follows the live identifiers. That whole-table sweep
 * comes at most once per n_buckets / 2 inserts: its cost, amortised, is a
 * few buckets per insert, but the one check that pays it waits longer.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rate_limiting.h"

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t expires; /* unix seconds */
    long count;
    size_t len;
    char key[];
};

static struct {
    pthread_mutex_t mu;
    struct entry **buckets;
    size_t n_buckets, n;
    size_t sweep_at; /* next bucket of the incremental sweep */
} store = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Frees the expired entries of buckets [from, to). */
static void sweep_buckets(size_t from, size_t to, int64_t now)
{
    for (size_t i = from; i < to; i++) {
        struct entry **pp = &store.buckets[i];
        while (*pp) {
            struct entry *e = *pp;
            if (e->expires <= now) {
                *pp = e->next;
                free(e);
                store.n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static void sweep(int64_t now)
{
    sweep_buckets(0, store.n_buckets, now);
}

#define SWEEP_STEP 8 /* buckets per check */

static void sweep_some(int64_t now)
{
    if (!store.n) return;
    size_t from = store.sweep_at < store.n_buckets ? store.sweep_at : 0;
    size_t to = from + SWEEP_STEP < store.n_buckets ? from + SWEEP_STEP : store.n_buckets;
    sweep_buckets(from, to, now);
    store.sweep_at = to;
}

static void grow(void)
{
    size_t nb = store.n_buckets ? store.n_buckets * 2 : 256;
    struct entry **b = calloc(nb, sizeof(*b));
    if (!b) return; /* longer chains, still correct */
    for (size_t i = 0; i < store.n_buckets; i++) {
        struct entry *e = store.buckets[i];
        while (e) {
            struct entry *next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(store.buckets);
    store.buckets = b;
    store.n_buckets = nb;
}

static struct entry *find(const char *key, size_t len, uint64_t h, int64_t now)
{
    if (!store.n_buckets) return NULL;
    for (struct entry *e = store.buckets[h & (store.n_buckets - 1)]; e; e = e->next)
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            return e->expires > now ? e : NULL;
    return NULL;
}

static struct entry *insert(const char *key, size_t len, uint64_t h, int64_t expires, int64_t now)
{
    if (store.n >= store.n_buckets) {
        sweep(now);
        if (store.n >= store.n_buckets / 2) grow();
    }
    if (!store.n_buckets) return NULL;
    /* An expired entry of the same key may still be chained: reuse it. */
    struct entry **head = &store.buckets[h & (store.n_buckets - 1)];
    for (struct entry *e = *head; e; e = e->next)
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) {
            e->count = 0;
            e->expires = expires;
            return e;
        }
    struct entry *e = malloc(sizeof(*e) + len);
    if (!e) return NULL;
    e->hash = h;
    e->expires = expires;
    e->count = 0;
    e->len = len;
    memcpy(e->key, key, len);
    e->next = *head;
    *head = e;
    store.n++;
    return e;
}

void rl_local_check(struct rl_check *c, int64_t now)
{
    uint64_t h[RL_NPERIODS];
    struct entry *e[RL_NPERIODS];
    for (int i = 0; i < c->n; i++)
        h[i] = gw_hash_bytes(c->key[i], c->key_len[i]);
    pthread_mutex_lock(&store.mu);
    sweep_some(now);
    c->stop = 0;
    for (int i = 0; i < c->n; i++) {
        e[i] = find(c->key[i], c->key_len[i], h[i], now);
        c->usage[i] = e[i] ? e[i]->count : 0;
        if (!c->stop && c->limit[i] - (double)c->usage[i] <= 0) c->stop = i + 1;
    }
    if (!c->stop) {
        for (int i = 0; i < c->n; i++) {
            if (!e[i]) e[i] = insert(c->key[i], c->key_len[i], h[i], c->expires[i], now);
            /* Out of memory: this request is not counted; it is not refused either. */
            if (e[i]) e[i]->count++;
        }
    }
    pthread_mutex_unlock(&store.mu);
}

/* The table lives as long as the process; free it at exit so that leak
 * checkers see a clean heap. */
__attribute__((destructor)) static void local_counters_free(void)
{
    for (size_t i = 0; i < store.n_buckets; i++) {
        struct entry *e = store.buckets[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(store.buckets);
    store.buckets = NULL;
    store.n_buckets = store.n = 0;
}
