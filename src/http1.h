/*
 * HTTP/1.x request parsing (RFC 9112), with no allocation and no copying:
 * the head parser points into the caller's buffer, the chunked decoder
 * works in place. Both are incremental in the only way that matters for a
 * non-blocking server: called again with more bytes, they pick up where the
 * data stopped (the head parser from the start of the buffer, which is
 * cheap next to a read(); the chunked decoder from its saved state).
 */
#ifndef GW_HTTP1_H
#define GW_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define GW_H1_PARTIAL (-2) /* need more bytes */
#define GW_H1_ERROR (-1)   /* malformed: answer 400 (error says why) */

/* The error of a well-formed request line whose major version is not 1: the
 * caller answers 505 (RFC 9110 15.6.6), not 400. Compare the pointer. */
extern const char GW_H1_UNSUPPORTED_VERSION[];

struct gw_h1_header {
    const char *name; /* not NUL-terminated; never empty */
    size_t name_len;
    const char *value; /* without surrounding spaces/tabs; may be empty */
    size_t value_len;
};

struct gw_h1_head {
    const char *method; /* a token (RFC 9110 tchar) */
    size_t method_len;
    const char *target; /* request-target as sent: "/p?q", "http://h/p", "*" */
    size_t target_len;
    int minor;                    /* HTTP/1.<minor>: 0 or 1 */
    struct gw_h1_header *headers; /* caller's array, max_headers entries */
    size_t n_headers;
    const char *error; /* set with GW_H1_ERROR: a short, static reason */
};

/*
 * Parses a request head from buf[0..len): request line, header fields, the
 * empty line. Returns the head's length in bytes (> 0) once complete,
 * GW_H1_PARTIAL when the empty line has not arrived yet, GW_H1_ERROR when
 * the bytes so far cannot be a valid head: bad request line, a major
 * version other than 1 (error GW_H1_UNSUPPORTED_VERSION; HTTP/1.2 and up
 * read as 1.1), a field without a colon or with a space before it,
 * obsolete line folding, control characters (other than HTAB) in a value,
 * more than max_headers fields. Lines end with CRLF or a bare LF (a CR not
 * followed by LF is an error). Empty lines before the request line are
 * skipped (RFC 9112 §2.2). An error is reported as soon as the bytes so far
 * go wrong, without waiting for the rest of the line. The fields of head
 * are meaningful only when the return is > 0. There is no size limit here:
 * the caller bounds the buffer and answers 431 when it fills up on PARTIAL.
 */
int gw_h1_parse_head(const char *buf, size_t len, struct gw_h1_head *head, size_t max_headers);

/* RFC 9110 5.1 / 5.5: a field name is a non-empty token; a field value is
 * HTAB, SP, VCHAR and obs-text only. For header lines that come from
 * elsewhere than this parser (the upstream's, through libcurl). */
int gw_h1_is_token(const char *s, size_t n);
int gw_h1_is_field_value(const char *s, size_t n);

/* State of a chunked body being decoded (zero it to start). */
struct gw_h1_chunked {
    int state;
    uint64_t remaining; /* data bytes left in the current chunk */
    size_t ext_len;     /* bytes of chunk extensions / trailers seen: bounded */
};

/* A Host field value, or an absolute-form target's authority, as RFC 9110
 * 7.2 wants it: uri-host [":" port] (reg-name, IPv4 or an IP literal in
 * brackets; no userinfo, path, query, fragment or spaces). "" is valid
 * (a Host for a target without authority); callers that need a host
 * check for that themselves. */
int gw_h1_valid_host(const char *v, size_t n);

/*
 * Decodes the chunked body bytes in buf[0..len) in place. On return the
 * first *data_len bytes of buf are body data, in order, and *consumed says
 * how many input bytes were used. Returns 0 while the body goes on (then
 * *consumed == len), 1 once the last chunk and its trailer section have
 * been read (bytes from buf + *consumed on are the next request's and are
 * left untouched), GW_H1_ERROR on a malformed body: bad chunk size, a size
 * over 2^62, no CRLF after chunk data, extensions or trailers over 16 KiB
 * (together, per body). Whitespace after a chunk size is allowed only before
 * a ";" extension. Called again after returning 1, it returns 1 with
 * *consumed == 0. After GW_H1_ERROR, *data_len and *consumed mean nothing.
 */
int gw_h1_decode_chunked(struct gw_h1_chunked *d, char *buf, size_t len, size_t *data_len,
                         size_t *consumed);

/* Case-insensitive comparison of a header name with a C string. */
int gw_h1_name_is(const struct gw_h1_header *h, const char *name);

#endif
