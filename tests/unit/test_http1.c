/*
 * HTTP/1.x head parser and chunked decoder: valid heads field by field,
 * every prefix of a valid head is PARTIAL, malformed heads fail early with
 * their reason, and chunked bodies decode the same whatever way the bytes
 * are split across reads.
 */
#include <stdint.h>

#include "gw_test.h"
#include "http1.h"

#define MAX_HEADERS 16

static struct gw_h1_header hdrs[MAX_HEADERS];
static struct gw_h1_head head;
static char *copy; /* the buffer of the last parse: the head points into it */

/* Parses a copy of exactly n bytes (ASan sees any read past the end). */
static int parse_n(const char *s, size_t n, size_t max_headers)
{
    free(copy);
    copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    head.headers = hdrs;
    return gw_h1_parse_head(copy, n, &head, max_headers);
}

static int parse(const char *s)
{
    return parse_n(s, strlen(s), MAX_HEADERS);
}

static int span_is(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

static int header_is(size_t i, const char *name, const char *value)
{
    return i < head.n_headers && span_is(hdrs[i].name, hdrs[i].name_len, name) &&
           span_is(hdrs[i].value, hdrs[i].value_len, value);
}

/* Every strict prefix of a complete head must ask for more bytes. */
static void check_prefixes_partial(const char *s, size_t n)
{
    size_t bad = 0, first_bad = 0;
    for (size_t k = 0; k < n; k++) {
        if (parse_n(s, k, MAX_HEADERS) != GW_H1_PARTIAL && bad++ == 0) first_bad = k;
    }
    if (bad) fprintf(stderr, "prefix of %zu bytes not PARTIAL: %.*s\n", first_bad, (int)n, s);
    CHECK_INT(bad, 0);
}

static void test_valid_heads(void)
{
    const char *get = "GET /search?q=a%20b&x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    CHECK_INT(parse(get), strlen(get));
    CHECK(span_is(head.method, head.method_len, "GET"));
    CHECK(span_is(head.target, head.target_len, "/search?q=a%20b&x=1"));
    CHECK_INT(head.minor, 1);
    CHECK_INT(head.n_headers, 1);
    CHECK(header_is(0, "Host", "example.com"));
    CHECK(head.error == NULL);
    check_prefixes_partial(get, strlen(get));

    /* The body that follows is not part of the head. */
    const char *post = "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
                       "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    CHECK_INT(parse(post), strlen(post) - 2);
    CHECK(span_is(head.method, head.method_len, "POST"));
    CHECK(span_is(head.target, head.target_len, "/v1/chat/completions"));
    CHECK_INT(head.n_headers, 3);
    CHECK(header_is(0, "Host", "gw"));
    CHECK(header_is(1, "Content-Type", "application/json"));
    CHECK(header_is(2, "Content-Length", "2"));
    CHECK(gw_h1_name_is(&hdrs[2], "content-length"));
    check_prefixes_partial(post, strlen(post) - 2);

    const char *absolute =
        "GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
    CHECK_INT(parse(absolute), strlen(absolute));
    CHECK(span_is(head.target, head.target_len, "http://example.com:8080/p?q=1"));
    CHECK(header_is(0, "Host", "example.com:8080"));
    check_prefixes_partial(absolute, strlen(absolute));

    const char *star = "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_INT(parse(star), strlen(star));
    CHECK(span_is(head.method, head.method_len, "OPTIONS"));
    CHECK(span_is(head.target, head.target_len, "*"));

    const char *http10 = "GET / HTTP/1.0\r\n\r\n";
    CHECK_INT(parse(http10), strlen(http10));
    CHECK_INT(head.minor, 0);
    CHECK_INT(head.n_headers, 0);
    check_prefixes_partial(http10, strlen(http10));

    const char *bare_lf = "GET /x HTTP/1.1\nHost: h\nX-A: b\n\n";
    CHECK_INT(parse(bare_lf), strlen(bare_lf));
    CHECK_INT(head.n_headers, 2);
    CHECK(header_is(0, "Host", "h"));
    CHECK(header_is(1, "X-A", "b"));
    check_prefixes_partial(bare_lf, strlen(bare_lf));

    const char *leading = "\r\n\n\r\nDELETE /r HTTP/1.1\r\n\r\n";
    CHECK_INT(parse(leading), strlen(leading));
    CHECK(span_is(head.method, head.method_len, "DELETE"));
    CHECK(head.method != NULL && head.method[-1] == '\n');
    check_prefixes_partial(leading, strlen(leading));

    const char *ows = "GET / HTTP/1.1\r\nX-Pad: \t  padded \t value \t \r\nX-Tight:v\r\n\r\n";
    CHECK_INT(parse(ows), strlen(ows));
    CHECK(header_is(0, "X-Pad", "padded \t value"));
    CHECK(header_is(1, "X-Tight", "v"));
    check_prefixes_partial(ows, strlen(ows));

    const char *empty = "GET / HTTP/1.1\r\nX-Empty:\r\nX-Blank: \t \r\nX-Last: z\r\n\r\n";
    CHECK_INT(parse(empty), strlen(empty));
    CHECK_INT(head.n_headers, 3);
    CHECK(header_is(0, "X-Empty", ""));
    CHECK(header_is(1, "X-Blank", ""));
    CHECK(header_is(2, "X-Last", "z"));
    check_prefixes_partial(empty, strlen(empty));

    const char *obs_text = "GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9 \xff\x80\r\n\r\n";
    CHECK_INT(parse(obs_text), strlen(obs_text));
    CHECK(header_is(0, "X-Name", "caf\xc3\xa9 \xff\x80"));
    check_prefixes_partial(obs_text, strlen(obs_text));

    /* Token methods beyond the usual ones, and every tchar in a name. */
    const char *token = "M-SEARCH * HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: t\r\n\r\n";
    CHECK_INT(parse(token), strlen(token));
    CHECK(span_is(head.method, head.method_len, "M-SEARCH"));
    CHECK(header_is(0, "!#$%&'*+-.^_`|~09azAZ", "t"));

    /* Exactly max_headers fields is fine; with max 0 a head without fields too. */
    const char *two = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
    CHECK_INT(parse_n(two, strlen(two), 2), strlen(two));
    CHECK_INT(head.n_headers, 2);
    CHECK_INT(parse_n(http10, strlen(http10), 0), strlen(http10));
}

/*
 * A malformed head fails with the given reason, and fails as early as the
 * first bad byte: every prefix is PARTIAL up to some point and ERROR from
 * there on (never PARTIAL again, never a success).
 */
static void check_error_n(const char *s, size_t n, size_t max_headers, const char *why, int line)
{
    int rc = parse_n(s, n, max_headers);
    if (rc != GW_H1_ERROR || !head.error || strcmp(head.error, why) != 0)
        fprintf(stderr, "line %d: input %.*s\n", line, (int)n, s);
    CHECK_INT(rc, GW_H1_ERROR);
    CHECK_STR(head.error, why);

    int seen_error = 0, monotonic = 1;
    for (size_t k = 0; k <= n; k++) {
        rc = parse_n(s, k, max_headers);
        if (rc == GW_H1_ERROR)
            seen_error = 1;
        else if (rc != GW_H1_PARTIAL || seen_error)
            monotonic = 0;
    }
    if (!monotonic) fprintf(stderr, "line %d: prefixes not PARTIAL then ERROR\n", line);
    CHECK(monotonic);
}

#define CHECK_ERROR(s, why) check_error_n(s, strlen(s), MAX_HEADERS, why, __LINE__)

static void test_malformed_heads(void)
{
    CHECK_ERROR("GET / HTTP/1.1\r\nHost : h\r\n\r\n", "whitespace before colon in header field");
    CHECK_ERROR("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", "whitespace before colon in header field");
    CHECK_ERROR("GET / HTTP/1.1\r\nX-A: b\r\n  continued\r\n\r\n", "obsolete line folding");
    CHECK_ERROR("GET / HTTP/1.1\r\nX-A: b\r\n\tcontinued\r\n\r\n", "obsolete line folding");
    CHECK_ERROR("GET / HTTP/1.1\r\n Host: h\r\n\r\n", "obsolete line folding");

    const char nul[] = "GET / HTTP/1.1\r\nX-A: b\0c\r\n\r\n";
    check_error_n(nul, sizeof(nul) - 1, MAX_HEADERS, "invalid character in header value", __LINE__);
    CHECK_ERROR("GET / HTTP/1.1\r\nX-A: b\x7f\r\n\r\n", "invalid character in header value");
    CHECK_ERROR("GET / HTTP/1.1\r\nX-A: b\x01\r\n\r\n", "invalid character in header value");

    CHECK_ERROR("GET / HTTP/2.0\r\n\r\n", GW_H1_UNSUPPORTED_VERSION);
    CHECK_ERROR("GET / HTTP/0.9\r\n\r\n", GW_H1_UNSUPPORTED_VERSION);
    CHECK_ERROR("GET / http/1.1\r\n\r\n", "malformed HTTP version");
    CHECK_ERROR("GET / HTTP/1.x\r\n\r\n", "malformed HTTP version");
    CHECK_ERROR("GET / HTTP/1.10\r\n\r\n", "malformed request line");
    CHECK_ERROR("GET / HTTP/1.1 \r\n\r\n", "malformed request line");

    CHECK_ERROR("GET HTTP/1.1\r\n\r\n", "malformed request line"); /* missing target */
    CHECK_ERROR("GET /\r\n\r\n", "malformed request line");        /* HTTP/0.9 style */
    CHECK_ERROR("GET  / HTTP/1.1\r\n\r\n", "malformed request line");
    CHECK_ERROR("GET /  HTTP/1.1\r\n\r\n", "malformed HTTP version");
    CHECK_ERROR(" GET / HTTP/1.1\r\n\r\n", "malformed request line");
    CHECK_ERROR("G(T / HTTP/1.1\r\n\r\n", "malformed request line");
    CHECK_ERROR("GET\t/ HTTP/1.1\r\n\r\n", "malformed request line");
    CHECK_ERROR("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", "invalid character in request target");
    CHECK_ERROR("GET /a\tb HTTP/1.1\r\n\r\n", "invalid character in request target");

    const char *three = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    check_error_n(three, strlen(three), 2, "too many header fields", __LINE__);

    CHECK_ERROR("GET / HTTP/1.1\rHost: h\r\n\r\n", "CR not followed by LF");
    CHECK_ERROR("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", "CR not followed by LF");
    CHECK_ERROR("GET / HTTP/1.1\r\nX-A: a\r\n\rX", "CR not followed by LF");
    CHECK_ERROR("\rGET / HTTP/1.1\r\n\r\n", "CR not followed by LF");

    CHECK_ERROR("GET / HTTP/1.1\r\nHost\r\n\r\n", "malformed header field");
    CHECK_ERROR("GET / HTTP/1.1\r\n: empty name\r\n\r\n", "malformed header field");
    CHECK_ERROR("GET / HTTP/1.1\r\nX(A): b\r\n\r\n", "malformed header field");

    /* Early errors: no need to wait for the line end. */
    CHECK_INT(parse("GE T /"), GW_H1_ERROR);
    CHECK_INT(parse("GET / HTTP/2"), GW_H1_ERROR);
    CHECK_INT(head.error == GW_H1_UNSUPPORTED_VERSION, 1);
    CHECK_INT(parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nX"), GW_H1_PARTIAL);
    const char *third = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nX";
    CHECK_INT(parse_n(third, strlen(third), 2), GW_H1_ERROR);
    CHECK_STR(head.error, "too many header fields");
}

/*
 * Decodes `in` handed over in pieces (cuts are the piece boundaries), each
 * piece in a buffer of its own exact size, as a connection layer would after
 * each read. Appends the data to out; returns the final status and, on 1,
 * the total input consumed, after checking the bytes past it were left as
 * they came.
 */
static int decode_pieces(const char *in, size_t n, const size_t *cuts, size_t n_cuts, char *out,
                         size_t *out_len, size_t *total_consumed)
{
    struct gw_h1_chunked d;
    memset(&d, 0, sizeof(d));
    size_t pos = 0;
    *out_len = 0;
    *total_consumed = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t stop = i < n_cuts ? cuts[i] : n;
        size_t piece = stop - pos;
        char *buf = malloc(piece ? piece : 1);
        memcpy(buf, in + pos, piece);
        size_t data_len = 0, consumed = 0;
        int rc = gw_h1_decode_chunked(&d, buf, piece, &data_len, &consumed);
        if (rc >= 0) {
            memcpy(out + *out_len, buf, data_len);
            *out_len += data_len;
        }
        if (rc == 0 && consumed != piece) rc = -100; /* contract broken */
        if (rc == 1 && memcmp(buf + consumed, in + pos + consumed, piece - consumed) != 0)
            rc = -101; /* the next request's bytes were touched */
        free(buf);
        if (rc != 0) {
            *total_consumed = pos + consumed;
            return rc;
        }
        pos = stop;
    }
    return 0;
}

static const char next_request[] = "GET /next HTTP/1.1\r\n\r\n";

/*
 * Decodes body + next_request all at once, split in two at every position,
 * and byte by byte: each way must give exactly `want` and stop right at the
 * end of the body.
 */
static void check_chunked(const char *body, size_t body_len, const char *want, size_t want_len,
                          int line)
{
    size_t n = body_len + sizeof(next_request) - 1;
    char *in = malloc(n);
    memcpy(in, body, body_len);
    memcpy(in + body_len, next_request, sizeof(next_request) - 1);
    char *out = malloc(n);
    size_t *cuts = malloc(n * sizeof(*cuts));
    size_t out_len, consumed, bad = 0;

    for (size_t split = 0; split <= n; split++) {
        int rc = decode_pieces(in, n, &split, 1, out, &out_len, &consumed);
        if (rc != 1 || consumed != body_len || out_len != want_len ||
            memcmp(out, want, want_len) != 0) {
            if (bad++ == 0)
                fprintf(stderr, "line %d: split at %zu: rc %d consumed %zu data %zu\n", line, split,
                        rc, consumed, out_len);
        }
    }
    CHECK_INT(bad, 0);

    for (size_t i = 0; i < n; i++)
        cuts[i] = i + 1;
    int rc = decode_pieces(in, n, cuts, n - 1, out, &out_len, &consumed);
    CHECK_INT(rc, 1);
    CHECK_INT(consumed, body_len);
    CHECK_INT(out_len, want_len);
    CHECK(out_len == want_len && memcmp(out, want, want_len) == 0);

    /* A body cut short is never complete, however it is split. */
    rc = decode_pieces(in, body_len - 1, cuts, body_len > 2 ? body_len - 2 : 0, out, &out_len,
                       &consumed);
    CHECK_INT(rc, 0);
    free(in);
    free(out);
    free(cuts);
}

#define CHECK_CHUNKED(body, want)                                                                  \
    check_chunked(body, sizeof(body) - 1, want, sizeof(want) - 1, __LINE__)

/* Decodes all at once; returns the status. */
static int decode_all(const char *in, size_t n, size_t *data_len, size_t *consumed)
{
    struct gw_h1_chunked d;
    memset(&d, 0, sizeof(d));
    char *buf = malloc(n ? n : 1);
    memcpy(buf, in, n);
    int rc = gw_h1_decode_chunked(&d, buf, n, data_len, consumed);
    free(buf);
    return rc;
}

/* A malformed body fails whether it comes at once or byte by byte. */
static void check_chunked_error(const char *in, size_t n, int line)
{
    size_t data_len, consumed;
    int rc = decode_all(in, n, &data_len, &consumed);
    if (rc != GW_H1_ERROR) fprintf(stderr, "line %d: at once: rc %d\n", line, rc);
    CHECK_INT(rc, GW_H1_ERROR);

    struct gw_h1_chunked d;
    memset(&d, 0, sizeof(d));
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char c = in[i];
        rc = gw_h1_decode_chunked(&d, &c, 1, &data_len, &consumed);
    }
    if (rc != GW_H1_ERROR) fprintf(stderr, "line %d: byte by byte: rc %d\n", line, rc);
    CHECK_INT(rc, GW_H1_ERROR);
}

#define CHECK_CHUNKED_ERROR(s) check_chunked_error(s, sizeof(s) - 1, __LINE__)

/* Every chunked framing line ends with CRLF: a bare LF anywhere is a
 * desync between proxies that read lines differently. */
static void test_chunked_bare_lf(void)
{
    CHECK_CHUNKED_ERROR("4\nwxyz\r\n0\r\n\r\n");
    CHECK_CHUNKED_ERROR("4;ext\nwxyz\r\n0\r\n\r\n");
    CHECK_CHUNKED_ERROR("4\r\nwxyz\n0\r\n\r\n");
    CHECK_CHUNKED_ERROR("4\r\nwxyz\r\n0\r\n\n");
    CHECK_CHUNKED_ERROR("1\r\n!\r\n0\r\nTrailer: lf\n\r\n");
}

static void test_valid_host(void)
{
    static const char *const good[] = {
        "",          "a",         "example.com", "EXAMPLE.com:8080", "h:", "127.0.0.1:80", "[::1]",
        "[::1]:443", "a-b_c~d.e", "%41b",        "x!$&'()*+,;=y"};
    static const char *const bad[] = {"evil.com/x", "a b",  "user:pw@h", "h:80:80", "h:port",
                                      ":80",        "[::1", "[]",        "[::1]x",  "h#f",
                                      "h?q",        "%4",   "%zz",       "h\\x",    "[g::1]"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        CHECK(gw_h1_valid_host(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (gw_h1_valid_host(bad[i], strlen(bad[i]))) fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(!gw_h1_valid_host(bad[i], strlen(bad[i])));
    }
}

static void test_chunked(void)
{
    CHECK_CHUNKED("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
    CHECK_CHUNKED("0\r\n\r\n", "");
    CHECK_CHUNKED("4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"); /* data that looks like framing */
    CHECK_CHUNKED("3;name=value\r\nabc\r\n4 ; a=\"q;x\"\r\ndefg\r\n0;last\r\n\r\n", "abcdefg");
    CHECK_CHUNKED("2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n", "hi");
    CHECK_CHUNKED("A\r\n0123456789\r\n0000001a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                  "1F\r\n0123456789abcdefghijklmnopqrstu\r\n0\r\n\r\n",
                  "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstu");

    /* A chunk of 255 bytes, with lower/upper case mixed in its size. */
    char big[400], big_want[256];
    size_t off = (size_t)snprintf(big, sizeof(big), "fF\r\n");
    for (int i = 0; i < 255; i++)
        big_want[i] = big[off++] = (char)('a' + i % 26);
    memcpy(big + off, "\r\n0\r\n\r\n", 7);
    check_chunked(big, off + 7, big_want, 255, __LINE__);

    /* Called again once the body is over: nothing more is consumed. */
    struct gw_h1_chunked d;
    memset(&d, 0, sizeof(d));
    char buf[] = "0\r\n\r\nGET";
    size_t data_len, consumed;
    CHECK_INT(gw_h1_decode_chunked(&d, buf, 8, &data_len, &consumed), 1);
    CHECK_INT(consumed, 5);
    CHECK_INT(gw_h1_decode_chunked(&d, buf + 5, 3, &data_len, &consumed), 1);
    CHECK_INT(consumed, 0);
    CHECK_INT(data_len, 0);

    /* 2^62 is the largest size taken (the body just goes on). */
    const char limit[] = "4000000000000000\r\nabc";
    CHECK_INT(decode_all(limit, sizeof(limit) - 1, &data_len, &consumed), 0);
    CHECK_INT(consumed, sizeof(limit) - 1);
    CHECK_INT(data_len, 3);

    /* Extensions just under the budget pass. */
    size_t ext_n = 16000;
    char *ext = malloc(ext_n + 32);
    off = (size_t)snprintf(ext, 32, "1;");
    memset(ext + off, 'e', ext_n);
    off += ext_n;
    memcpy(ext + off, "\r\nx\r\n0\r\n\r\n", 10);
    CHECK_INT(decode_all(ext, off + 10, &data_len, &consumed), 1);
    CHECK_INT(data_len, 1);
    free(ext);
}

static void test_chunked_malformed(void)
{
    CHECK_CHUNKED_ERROR("zz\r\nab\r\n0\r\n\r\n");
    CHECK_CHUNKED_ERROR("\r\n");
    CHECK_CHUNKED_ERROR(";ext\r\n");
    CHECK_CHUNKED_ERROR(" 5\r\nhello\r\n0\r\n\r\n");
    CHECK_CHUNKED_ERROR("0x5\r\nhello\r\n0\r\n\r\n");
    CHECK_CHUNKED_ERROR("-1\r\n");
    CHECK_CHUNKED_ERROR("5 \r\nhello\r\n0\r\n\r\n"); /* whitespace not before ";" */
    CHECK_CHUNKED_ERROR("5\rXhello\r\n0\r\n\r\n");
    CHECK_CHUNKED_ERROR("3\r\nabcd\r\n0\r\n\r\n"); /* no CRLF right after the data */
    CHECK_CHUNKED_ERROR("3\r\nabc\rX0\r\n\r\n");
    CHECK_CHUNKED_ERROR("3\r\nabc\r\n0\r\nX: y\rZ\r\n\r\n");
    CHECK_CHUNKED_ERROR("3\r\nabc\r\n0\r\n\rX");
    CHECK_CHUNKED_ERROR("4000000000000001\r\n"); /* 2^62 + 1 */
    CHECK_CHUNKED_ERROR("ffffffffffffffffffff\r\n");
    CHECK_CHUNKED_ERROR("00000000000000000000000000000000010000000000000000\r\n");

    /* One extension over 16 KiB, then many small ones adding up to it, then trailers. */
    size_t n = 16385;
    char *s = malloc(n + 64);
    size_t off = (size_t)snprintf(s, 64, "1;");
    memset(s + off, 'e', n);
    off += n;
    memcpy(s + off, "\r\nx\r\n0\r\n\r\n", 10);
    check_chunked_error(s, off + 10, __LINE__);
    free(s);

    char *many = malloc(3000 * 16 + 8); /* 8 extension bytes a chunk */
    off = 0;
    for (int i = 0; i < 3000; i++) {
        memcpy(many + off, "1;abcdefgh\r\nx\r\n", 15);
        off += 15;
    }
    memcpy(many + off, "0\r\n\r\n", 5);
    check_chunked_error(many, off + 5, __LINE__);
    free(many);

    char *trailers = malloc(3000 * 16 + 8);
    memcpy(trailers, "0\r\n", 3);
    off = 3;
    for (int i = 0; i < 3000; i++) {
        memcpy(trailers + off, "X-T: abcdefgh\r\n", 15);
        off += 15;
    }
    memcpy(trailers + off, "\r\n", 2);
    check_chunked_error(trailers, off + 2, __LINE__);
    free(trailers);
}

static void test_name_is(void)
{
    const char buf[] = "Content-Length2";
    struct gw_h1_header h = {.name = buf, .name_len = 14, .value = buf, .value_len = 0};
    CHECK(gw_h1_name_is(&h, "content-length"));
    CHECK(gw_h1_name_is(&h, "CONTENT-LENGTH"));
    CHECK(gw_h1_name_is(&h, "Content-Length"));
    CHECK(!gw_h1_name_is(&h, "Content-Lengt"));
    CHECK(!gw_h1_name_is(&h, "Content-Length2"));
    CHECK(!gw_h1_name_is(&h, "Content_Length"));
    CHECK(!gw_h1_name_is(&h, ""));
}

int main(void)
{
    test_valid_heads();
    test_malformed_heads();
    test_chunked();
    test_chunked_malformed();
    test_chunked_bare_lf();
    test_valid_host();
    test_name_is();
    free(copy);
    return gw_test_done("test_http1");
}
