#include <string.h>

#include "gw_json.h"

size_t gw_json_escaped_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\' || *p == '\b' || *p == '\f' || *p == '\n' || *p == '\r' ||
            *p == '\t')
            n += 2;
        else if (*p < 0x20)
            n += 6;
        else
            n++;
    }
    return n;
}

char *gw_json_escape_to(char *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e = 0;
        switch (*p) {
        case '"':
            e = '"';
            break;
        case '\\':
            e = '\\';
            break;
        case '\b':
            e = 'b';
            break;
        case '\f':
            e = 'f';
            break;
        case '\n':
            e = 'n';
            break;
        case '\r':
            e = 'r';
            break;
        case '\t':
            e = 't';
            break;
        default:
            if (*p < 0x20) {
                memcpy(o, "\\u00", 4);
                o[4] = hex[*p >> 4];
                o[5] = hex[*p & 15];
                o += 6;
            } else {
                *o++ = (char)*p;
            }
            continue;
        }
        *o++ = '\\';
        *o++ = e;
    }
    return o;
}
