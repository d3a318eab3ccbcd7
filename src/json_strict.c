/*
 * The strict parse of a client's JSON body (gw_json.h): cJSON, then the two
 * checks it does not make. Duplicate keys are found per object by sorting
 * its key pointers when it is large, so that an object of many keys costs
 * n log n and not n^2.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gw_json.h"

#define SMALL_OBJECT 16

static int key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 1 if an object at or below item repeats a key (or memory ran out). */
static int has_duplicate_key(const cJSON *item)
{
    for (; item; item = item->next) {
        if (cJSON_IsObject(item)) {
            size_t n = 0;
            for (const cJSON *c = item->child; c; c = c->next)
                n++;
            if (n <= SMALL_OBJECT) {
                for (const cJSON *a = item->child; a; a = a->next)
                    for (const cJSON *b = a->next; b; b = b->next)
                        if (strcmp(a->string, b->string) == 0) return 1;
            } else {
                const char **keys = malloc(n * sizeof(*keys));
                if (!keys) return 1;
                size_t i = 0;
                for (const cJSON *c = item->child; c; c = c->next)
                    keys[i++] = c->string;
                qsort(keys, n, sizeof(*keys), key_cmp);
                int dup = 0;
                for (i = 1; i < n && !dup; i++)
                    dup = strcmp(keys[i - 1], keys[i]) == 0;
                free(keys);
                if (dup) return 1;
            }
        }
        if (item->child && has_duplicate_key(item->child)) return 1;
    }
    return 0;
}

cJSON *gw_json_parse_strict(const char *s, size_t len, const char **why, size_t *at)
{
    const char *end = NULL;
    *at = 0;
    cJSON *json = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!json) {
        *why = "is not valid JSON";
        *at = end && end >= s ? (size_t)(end - s) : 0;
        return NULL;
    }
    size_t i = (size_t)(end - s);
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    if (i < len) {
        cJSON_Delete(json);
        *why = "has data after its JSON value";
        *at = i;
        return NULL;
    }
    if (has_duplicate_key(json)) {
        cJSON_Delete(json);
        *why = "repeats a key in a JSON object";
        return NULL;
    }
    return json;
}
