#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>

#include "gw_request.h"
#include "request_id.h"

static _Thread_local uint64_t rng_state[2];

static uint64_t rng_next(void)
{
    if (!rng_state[0] && !rng_state[1]) {
        if (getrandom(rng_state, sizeof(rng_state), GRND_NONBLOCK) != (ssize_t)sizeof(rng_state)) {
            rng_state[0] = gw_now_us() | 1;
            rng_state[1] = (uint64_t)(uintptr_t)&rng_state;
        }
    }
    uint64_t s1 = rng_state[0];
    const uint64_t s0 = rng_state[1];
    rng_state[0] = s0;
    s1 ^= s1 << 23;
    rng_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng_state[1] + s0;
}

void gw_request_id_new(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng_next(), b = rng_next();
    for (int i = 15; i >= 0; i--, a >>= 4, b >>= 4) {
        out[i] = hex[a & 15];
        out[16 + i] = hex[b & 15];
    }
    out[32] = '\0';
}
