#ifndef RL_REDIS_LOOP_H
#define RL_REDIS_LOOP_H

struct redisAsyncContext;
struct event_base;

/* Attaches a hiredis async context to a libevent base (see redis_loop.c).
 * Returns 0, or -1 (nothing attached). */
int rl_redis_attach(struct redisAsyncContext *ac, struct event_base *base);

#endif
