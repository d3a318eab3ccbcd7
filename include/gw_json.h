/*
 * JSON string escaping, byte for byte as cJSON prints strings: for code that
 * writes JSON text straight into a buffer instead of building a tree
 * (template substitution, stream chunks on the hot path); and the strict
 * parse of a client's JSON body.
 */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stddef.h>

/* Bytes s takes once escaped as the inside of a JSON string (no quotes). */
size_t gw_json_escaped_len(const char *s);
/* Writes s escaped (no quotes) at o, which has gw_json_escaped_len(s)
 * bytes; returns the end. */
char *gw_json_escape_to(char *o, const char *s);

/* Parses JSON text as a client's body must be read when plugins decide on
 * it and something else reads it after them: the whole of s[0..len) is
 * one value (whitespace after it only), and no object repeats a key. A
 * repeated key is the classic way past a filter: cJSON's lookups return
 * the first, most providers' parsers keep the last. NULL with *why (a
 * static message) and *at (a byte offset, when there is one) otherwise. */
struct cJSON;
struct cJSON *gw_json_parse_strict(const char *s, size_t len, const char **why, size_t *at);

#endif
