#include <string.h>
#include <strings.h>

#include "gw_arena.h"
#include "gw_num_text.h"
#include "path_dots.h"

/* "." is 1, ".." is 2, anything else 0; a dot may be written %2e or %2E. */
static int dots(const char *s, size_t n)
{
    int count = 0;
    size_t i = 0;
    while (i < n) {
        if (s[i] == '.') {
            i++;
        } else if (n - i >= 3 && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] | 0x20) == 'e') {
            i += 3;
        } else {
            return 0;
        }
        if (++count > 2) return 0;
    }
    return count;
}

/* Is there a dot segment at all? Nearly every path says no at once. */
static int has_dot_segment(const char *p)
{
    for (p = strchr(p, '/'); p; p = strchr(p + 1, '/')) {
        if (p[1] != '.' && p[1] != '%') continue;
        size_t n = strcspn(p + 1, "/");
        if (dots(p + 1, n)) return 1;
    }
    return 0;
}

const char *gw_path_remove_dots(struct gw_arena *a, const char *path)
{
    if (path[0] != '/' || !has_dot_segment(path)) return path;
    size_t len = strlen(path);
    char *out = gw_alloc(a, len + 2);
    size_t n = 0;
    const char *p = path, *end = path + len;
    while (p < end) { /* *p == '/' */
        const char *s = p + 1;
        const char *e = memchr(s, '/', (size_t)(end - s));
        if (!e) e = end;
        int last = e == end;
        switch (dots(s, (size_t)(e - s))) {
        case 1: /* "/./" drops out; a final "/." leaves its slash */
            if (last) out[n++] = '/';
            break;
        case 2: /* "/../" removes the segment before it, slash included */
            if (n == 0) return NULL;
            while (out[n - 1] != '/')
                n--;
            n--;
            if (last) out[n++] = '/';
            break;
        default:
            out[n++] = '/';
            memcpy(out + n, s, (size_t)(e - s));
            n += (size_t)(e - s);
        }
        p = e;
    }
    if (n == 0) out[n++] = '/';
    out[n] = '\0';
    return out;
}

/* RFC 3986 2.3: percent-encoding these changes nothing, so decoding them
 * is always safe. */
static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

const char *gw_path_normalize(struct gw_arena *a, const char *path, const char **why)
{
    static const char *const above_root = "The request path climbs above the root ('..')";
    const char *done;
    if (path[0] != '/' || (!strchr(path, '%') && !strstr(path, "//"))) {
        if (!(done = gw_path_remove_dots(a, path))) *why = above_root;
        return done;
    }
    size_t len = strlen(path);
    char *out = gw_alloc(a, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        int hi = -1, lo = -1;
        if (c == '%' && i + 2 <= len && (hi = gw_hex_digit((unsigned char)path[i + 1])) >= 0)
            lo = gw_hex_digit((unsigned char)path[i + 2]);
        if (c == '%' && (hi < 0 || lo < 0)) {
            /* Not an escape (RFC 3986 pct-encoded): refused. Kept, it could
             * pair with what decoding makes next to it: "/%%361dmin" would
             * become "/%61dmin", which the upstream reads as /admin. */
            *why = "The request path has a '%' that is not a %XX escape";
            return NULL;
        }
        if (c == '%') {
            unsigned char d = (unsigned char)(hi * 16 + lo);
            i += 2;
            if (!unreserved(d)) { /* kept encoded, in capitals: %2f and %2F are one */
                out[n++] = '%';
                out[n++] = "0123456789ABCDEF"[hi];
                out[n++] = "0123456789ABCDEF"[lo];
                continue;
            }
            c = (char)d;
        }
        if (c == '/' && n && out[n - 1] == '/') continue; /* merge slashes */
        out[n++] = c;
    }
    out[n] = '\0';
    if (!(done = gw_path_remove_dots(a, out))) *why = above_root;
    return done;
}
