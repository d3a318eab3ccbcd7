/*
 * Decimal text of an integer without printf: for the request path, where
 * snprintf's format parsing cost more than the digits (latency headers,
 * Content-Length, JSON integers).
 */
#ifndef GW_NUM_TEXT_H
#define GW_NUM_TEXT_H

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

#endif
