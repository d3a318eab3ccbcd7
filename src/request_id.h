/*
 * Request ids: 128 random bits as 32 hex chars, from a per-thread xorshift
 * generator seeded from the kernel. They must be unique, not secret, and
 * cost nothing.
 */
#ifndef GW_REQUEST_ID_H
#define GW_REQUEST_ID_H

void gw_request_id_new(char out[33]);

#endif
