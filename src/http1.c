/*
 * HTTP/1.x request head parser and chunked body decoder (RFC 9112). Both are
 * strict on purpose: a front end that reads requests more loosely than the
 * upstream (or the next proxy) is how request smuggling happens, so anything
 * the grammar does not allow is an error rather than a guess.
 */
#include "http1.h"

#include "gw_num_text.h"

#include <limits.h>
#include <string.h>

#define CHUNKED_MAX_EXT 16384         /* extensions + trailers, per body */
#define CHUNKED_MAX_SIZE (1ULL << 62) /* larger chunk sizes are refused */

/* Byte classes, one table lookup per byte on the hot loops. */
enum {
    C_TCHAR = 1,  /* token character (RFC 9110 §5.6.2) */
    C_TARGET = 2, /* request-target: visible ASCII 0x21-0x7E */
    C_VALUE = 4,  /* field value: HTAB, SP, VCHAR, obs-text 0x80-0xFF */
};

/* clang-format off */
static const unsigned char cls[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    4, 7, 6, 7, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6, /* 0x20 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, /* 0x30 */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x40 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7, /* 0x50 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x60 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0, /* 0x70 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0x80 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0x90 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xA0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xB0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xC0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xD0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xE0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 0xF0 */
};
/* clang-format on */

int gw_h1_is_token(const char *s, size_t n)
{
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(cls[(unsigned char)s[i]] & C_TCHAR)) return 0;
    return 1;
}

int gw_h1_is_field_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(cls[(unsigned char)s[i]] & C_VALUE)) return 0;
    return 1;
}

const char GW_H1_UNSUPPORTED_VERSION[] = "HTTP version not supported: only HTTP/1.x";

static int fail(struct gw_h1_head *head, const char *why)
{
    head->error = why;
    return GW_H1_ERROR;
}

/*
 * Length of the line terminator at p (p < end): 2 for CRLF, 1 for a bare LF,
 * 0 when p is not at one. A CR as the last byte so far may still become
 * CRLF, so it is PARTIAL; a CR followed by anything else is an error (a lone
 * CR is where parsers disagree, so it is never taken as a line end).
 */
static int line_end(const unsigned char *p, const unsigned char *end, struct gw_h1_head *head)
{
    if (*p == '\n') return 1;
    if (*p != '\r') return 0;
    if (p + 1 == end) return GW_H1_PARTIAL;
    return p[1] == '\n' ? 2 : fail(head, "CR not followed by LF");
}

/*
 * The scan restarts from buf[0] on every call: no state survives between
 * calls, and the loops stop (PARTIAL) only at the end of the data, so an
 * invalid byte is reported as soon as it arrives rather than once the whole
 * head is in.
 */
int gw_h1_parse_head(const char *buf, size_t len, struct gw_h1_head *head, size_t max_headers)
{
    const unsigned char *start = (const unsigned char *)buf, *end = start + len, *p = start;
    int n;

    head->method = head->target = NULL;
    head->method_len = head->target_len = 0;
    head->minor = 0;
    head->n_headers = 0;
    head->error = NULL;

    for (;;) { /* empty lines before the request line */
        if (p == end) return GW_H1_PARTIAL;
        if ((n = line_end(p, end, head)) < 0) return n;
        if (n == 0) break;
        p += n;
    }

    const unsigned char *method = p;
    while (p < end && (cls[*p] & C_TCHAR))
        p++;
    if (p == end) return GW_H1_PARTIAL;
    if (p == method || *p != ' ') return fail(head, "malformed request line");
    head->method = (const char *)method;
    head->method_len = (size_t)(p - method);
    p++;

    const unsigned char *target = p;
    while (p < end && (cls[*p] & C_TARGET))
        p++;
    if (p == end) return GW_H1_PARTIAL;
    if (*p >= 0x7F || (*p < ' ' && *p != '\r' && *p != '\n'))
        return fail(head, "invalid character in request target");
    if (p == target || *p != ' ') return fail(head, "malformed request line");
    head->target = (const char *)target;
    head->target_len = (size_t)(p - target);
    p++;

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. */
    static const char version[] = "HTTP/1.1";
    for (size_t i = 0; i < sizeof(version) - 1; i++, p++) {
        if (p == end) return GW_H1_PARTIAL;
        if (i == 5 || i == 7) {
            if (*p < '0' || *p > '9') return fail(head, "malformed HTTP version");
            /* Only major version 1 is spoken (the caller answers 505); a
             * higher minor is read as 1.1, the highest we implement
             * (RFC 9112 2.3). */
            if (i == 5 && *p != '1') return fail(head, GW_H1_UNSUPPORTED_VERSION);
        } else if (*p != (unsigned char)version[i]) {
            return fail(head, "malformed HTTP version");
        }
    }
    head->minor = p[-1] > '0';
    if (p == end) return GW_H1_PARTIAL;
    if ((n = line_end(p, end, head)) < 0) return n;
    if (n == 0) return fail(head, "malformed request line");
    p += n;

    for (;;) { /* field-line = field-name ":" OWS field-value OWS */
        if (p == end) return GW_H1_PARTIAL;
        if ((n = line_end(p, end, head)) < 0) return n;
        if (n > 0) {
            p += n;
            break;
        }
        if (*p == ' ' || *p == '\t') return fail(head, "obsolete line folding");
        if (head->n_headers == max_headers) return fail(head, "too many header fields");

        const unsigned char *name = p;
        while (p < end && (cls[*p] & C_TCHAR))
            p++;
        if (p == end) return GW_H1_PARTIAL;
        if (*p == ' ' || *p == '\t') return fail(head, "whitespace before colon in header field");
        if (*p != ':' || p == name) return fail(head, "malformed header field");
        size_t name_len = (size_t)(p - name);
        p++;

        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const unsigned char *value = p;
        while (p < end && (cls[*p] & C_VALUE))
            p++;
        if (p == end) return GW_H1_PARTIAL;
        if ((n = line_end(p, end, head)) < 0) return n;
        if (n == 0) return fail(head, "invalid character in header value");
        const unsigned char *value_end = p;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        p += n;

        struct gw_h1_header *h = &head->headers[head->n_headers++];
        h->name = (const char *)name;
        h->name_len = name_len;
        h->value = (const char *)value;
        h->value_len = (size_t)(value_end - value);
    }
    if (p - start > INT_MAX) return fail(head, "request head too long");
    return (int)(p - start);
}

/* RFC 3986 reg-name characters besides ALPHA and DIGIT (unreserved and
 * sub-delims; '%' starts an escape). */
static int reg_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~!$&'()*+,;=", c));
}

int gw_h1_valid_host(const char *v, size_t n)
{
    size_t i = 0;
    if (n && v[0] == '[') { /* IP-literal */
        for (i = 1; i < n && v[i] != ']'; i++)
            if (gw_hex_digit((unsigned char)v[i]) < 0 && v[i] != ':' && v[i] != '.') return 0;
        if (i == n || i == 1) return 0;
        i++;
    } else {
        while (i < n && v[i] != ':') {
            if (v[i] == '%') {
                if (i + 2 >= n || gw_hex_digit((unsigned char)v[i + 1]) < 0 ||
                    gw_hex_digit((unsigned char)v[i + 2]) < 0)
                    return 0;
                i += 3;
            } else if (reg_name_char((unsigned char)v[i])) {
                i++;
            } else {
                return 0;
            }
        }
        if (i == 0 && n) return 0; /* ":80" */
    }
    if (i == n) return 1;
    if (v[i] != ':') return 0;
    for (i++; i < n; i++)
        if (v[i] < '0' || v[i] > '9') return 0;
    return 1;
}

enum {
    CH_SIZE_FIRST = 0, /* the zeroed state: expecting the first hex digit */
    CH_SIZE,           /* more hex digits, or what follows them */
    CH_SIZE_WS,        /* BWS after the size: only ";" may follow */
    CH_EXT,            /* skipping a chunk extension up to the line end */
    CH_SIZE_LF,        /* CR seen at the end of the size line */
    CH_DATA,
    CH_DATA_END, /* CRLF (or LF) expected right after the data */
    CH_DATA_LF,
    CH_TRAILER_START, /* start of a trailer line, or the final empty line */
    CH_TRAILER,       /* skipping a trailer field up to the line end */
    CH_TRAILER_LF,
    CH_LAST_LF, /* CR of the final empty line seen */
    CH_DONE,
};

/*
 * Every line of the chunked framing ends with CRLF (RFC 9112 7.1); the
 * leniency of 2.2 (a bare LF) is for the start line and header fields only.
 * A proxy in front that reads chunk lines to CRLF and one that also ends
 * them at LF disagree on where a body ends: that is a smuggling vector,
 * so a bare LF here is an error.
 *
 * One byte at a time except for chunk data, which moves with one memmove
 * per call and chunk. The output never overtakes the input (framing bytes
 * are only dropped), so decoding in place is safe. Extension and trailer
 * bytes share one budget so that a client cannot keep the decoder busy on
 * framing that carries no data.
 */
int gw_h1_decode_chunked(struct gw_h1_chunked *d, char *buf, size_t len, size_t *data_len,
                         size_t *consumed)
{
    size_t in = 0, out = 0;
    int rc = 0;

    while (in < len && rc == 0) {
        unsigned char c = (unsigned char)buf[in];
        int x;

        switch (d->state) {
        case CH_SIZE_FIRST:
        case CH_SIZE:
            if ((x = gw_hex_digit(c)) >= 0) {
                if (d->remaining > (CHUNKED_MAX_SIZE - (uint64_t)x) / 16) {
                    rc = GW_H1_ERROR;
                    break;
                }
                d->remaining = d->remaining * 16 + (uint64_t)x;
                d->state = CH_SIZE;
            } else if (d->state == CH_SIZE_FIRST) {
                rc = GW_H1_ERROR;
            } else if (c == ';') {
                d->state = CH_EXT;
            } else if (c == ' ' || c == '\t') {
                d->state = CH_SIZE_WS;
            } else if (c == '\r') {
                d->state = CH_SIZE_LF;
            } else {
                rc = GW_H1_ERROR; /* a bare LF too: see the comment above */
            }
            in++;
            break;
        case CH_SIZE_WS:
            if (c == ';')
                d->state = CH_EXT;
            else if (c != ' ' && c != '\t')
                rc = GW_H1_ERROR;
            if (++d->ext_len > CHUNKED_MAX_EXT) rc = GW_H1_ERROR;
            in++;
            break;
        case CH_EXT:
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (c == '\n')
                rc = GW_H1_ERROR;
            else if (++d->ext_len > CHUNKED_MAX_EXT)
                rc = GW_H1_ERROR;
            in++;
            break;
        case CH_SIZE_LF:
            if (c != '\n') rc = GW_H1_ERROR;
            d->state = d->remaining ? CH_DATA : CH_TRAILER_START;
            in++;
            break;
        case CH_DATA: {
            size_t n = len - in;
            if ((uint64_t)n > d->remaining) n = (size_t)d->remaining;
            memmove(buf + out, buf + in, n);
            out += n;
            in += n;
            d->remaining -= n;
            if (d->remaining == 0) d->state = CH_DATA_END;
            break;
        }
        case CH_DATA_END:
            if (c == '\r')
                d->state = CH_DATA_LF;
            else
                rc = GW_H1_ERROR;
            in++;
            break;
        case CH_DATA_LF:
            if (c != '\n') rc = GW_H1_ERROR;
            d->state = CH_SIZE_FIRST;
            in++;
            break;
        case CH_TRAILER_START:
            if (c == '\r') {
                d->state = CH_LAST_LF;
            } else if (c == '\n') {
                rc = GW_H1_ERROR;
            } else {
                d->state = CH_TRAILER;
                if (++d->ext_len > CHUNKED_MAX_EXT) rc = GW_H1_ERROR;
            }
            in++;
            break;
        case CH_TRAILER:
            if (c == '\r')
                d->state = CH_TRAILER_LF;
            else if (c == '\n')
                rc = GW_H1_ERROR;
            else if (++d->ext_len > CHUNKED_MAX_EXT)
                rc = GW_H1_ERROR;
            in++;
            break;
        case CH_TRAILER_LF:
            if (c != '\n') rc = GW_H1_ERROR;
            d->state = CH_TRAILER_START;
            in++;
            break;
        case CH_LAST_LF:
            if (c != '\n') {
                rc = GW_H1_ERROR;
            } else {
                d->state = CH_DONE;
                rc = 1;
            }
            in++;
            break;
        case CH_DONE:
            rc = 1;
            break;
        default:
            rc = GW_H1_ERROR;
            break;
        }
    }
    if (rc == 0 && d->state == CH_DONE) rc = 1; /* called again after the end */
    *data_len = out;
    *consumed = in;
    return rc;
}

int gw_h1_name_is(const struct gw_h1_header *h, const char *name)
{
    size_t n = strlen(name);
    if (n != h->name_len) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)h->name[i], b = (unsigned char)name[i];
        if (a >= 'A' && a <= 'Z') a |= 0x20;
        if (b >= 'A' && b <= 'Z') b |= 0x20;
        if (a != b) return 0;
    }
    return 1;
}
