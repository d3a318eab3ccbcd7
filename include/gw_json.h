/*
 * JSON string escaping, byte for byte as cJSON prints strings: for code that
 * writes JSON text straight into a buffer instead of building a tree
 * (template substitution, stream chunks on the hot path).
 */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stddef.h>

/* Bytes s takes once escaped as the inside of a JSON string (no quotes). */
size_t gw_json_escaped_len(const char *s);
/* Writes s escaped (no quotes) at o, which has gw_json_escaped_len(s)
 * bytes; returns the end. */
char *gw_json_escape_to(char *o, const char *s);

#endif
