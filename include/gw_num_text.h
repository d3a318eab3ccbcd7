/*
 * Small helpers for the request path, where printf's format parsing costs
 * more than the work: decimal text of an integer (latency headers,
 * Content-Length, JSON integers, rate-limiting's keys and headers), the
 * value of a hex digit (chunk sizes, %XX escapes) and a string hash
 * (FNV-1a) for the small tables of the core and plugins.
 */
#ifndef GW_NUM_TEXT_H
#define GW_NUM_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The digits of v, NUL-terminated, at the end of buf; returns their start. */
static inline char *gw_u64_text(char buf[24], uint64_t v)
{
    char *p = buf + 23;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

/* 0-15 for a hex digit in either case, -1 for anything else. */
static inline int gw_hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20; /* ASCII lower case; leaves non-letters outside a-f */
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* FNV-1a of s[0..n). */
static inline uint64_t gw_hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

#endif
