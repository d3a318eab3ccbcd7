/*
 * libFuzzer driver for the HTTP/1 request parser (src/http1.c), which reads
 * every byte a client sends before anything else does. The input is tried
 * as a request head and as a chunked body; besides not crashing, the driver
 * checks the contracts client_conn.c relies on: results stay inside the
 * buffer, the head parser is monotonic (a prefix of a complete head is
 * PARTIAL, an error in a prefix stays an error), and the chunked decoder
 * gives the same bytes and verdict whether the body arrives whole or in two
 * reads split at a point scaled from the last input byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

#define MAX_HEADERS 8

/* abort() rather than assert(): the check must stay in Release builds. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

static int span_inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

/* Parses buf[0..len) and checks every field that the return value promises. */
static int parse_checked(const char *buf, size_t len, size_t max)
{
    struct gw_h1_header hdrs[MAX_HEADERS];
    struct gw_h1_head head = {.headers = hdrs};
    int rc = gw_h1_parse_head(buf, len, &head, max);

    REQUIRE(rc == GW_H1_PARTIAL || rc == GW_H1_ERROR || rc > 0);
    REQUIRE((rc == GW_H1_ERROR) == (head.error != NULL));
    if (rc <= 0) return rc;
    REQUIRE((size_t)rc <= len);
    REQUIRE(head.n_headers <= max);
    REQUIRE(head.minor == 0 || head.minor == 1);
    REQUIRE(head.method_len > 0 && span_inside(head.method, head.method_len, buf, (size_t)rc));
    REQUIRE(head.target_len > 0 && span_inside(head.target, head.target_len, buf, (size_t)rc));
    REQUIRE(buf[rc - 1] == '\n'); /* a head ends with its empty line */
    for (size_t i = 0; i < head.n_headers; i++) {
        const struct gw_h1_header *h = &hdrs[i];
        REQUIRE(h->name_len > 0 && span_inside(h->name, h->name_len, buf, (size_t)rc));
        REQUIRE(memchr(h->name, ':', h->name_len) == NULL);
        REQUIRE(span_inside(h->value, h->value_len, buf, (size_t)rc));
        REQUIRE(memchr(h->value, '\r', h->value_len) == NULL);
        REQUIRE(memchr(h->value, '\n', h->value_len) == NULL);
        if (h->value_len > 0) {
            char first = h->value[0], last = h->value[h->value_len - 1];
            REQUIRE(first != ' ' && first != '\t' && last != ' ' && last != '\t');
        }
        char *swapped = malloc(h->name_len + 1); /* the same name, letters' case flipped */
        REQUIRE(swapped);
        for (size_t j = 0; j < h->name_len; j++) {
            char c = h->name[j];
            swapped[j] = (char)((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ? c ^ 0x20 : c);
        }
        swapped[h->name_len] = '\0';
        REQUIRE(gw_h1_name_is(h, swapped) == 1);
        swapped[h->name_len - 1] = '\0';
        REQUIRE(gw_h1_name_is(h, swapped) == 0);
        free(swapped);
    }
    return rc;
}

static void fuzz_head(const char *buf, size_t len, size_t split)
{
    int whole = parse_checked(buf, len, MAX_HEADERS);
    char *part = malloc(split ? split : 1); /* exact size again, for ASan */
    REQUIRE(part);
    memcpy(part, buf, split);
    int prefix = parse_checked(part, split, MAX_HEADERS);
    free(part);

    if (whole > 0) {
        REQUIRE(parse_checked(buf, (size_t)whole, MAX_HEADERS) == whole);
        REQUIRE((size_t)whole <= split ? prefix == whole : prefix == GW_H1_PARTIAL);
    } else if (whole == GW_H1_PARTIAL) {
        REQUIRE(prefix == GW_H1_PARTIAL);
    } else if (prefix == GW_H1_ERROR) {
        REQUIRE(whole == GW_H1_ERROR);
    }
    /* Fewer allowed fields can only turn success into an error, never crash. */
    int few = parse_checked(buf, len, (size_t)len % 3);
    REQUIRE(few == whole || few == GW_H1_ERROR);
}

/* One decode call with the decoder's own invariants checked. */
static int decode_checked(struct gw_h1_chunked *d, char *buf, size_t len, size_t *data_len,
                          size_t *consumed)
{
    *data_len = *consumed = (size_t)-1;
    int rc = gw_h1_decode_chunked(d, buf, len, data_len, consumed);
    REQUIRE(rc == 0 || rc == 1 || rc == GW_H1_ERROR);
    if (rc == GW_H1_ERROR) return rc;
    REQUIRE(*consumed <= len && *data_len <= *consumed);
    if (rc == 0) REQUIRE(*consumed == len);
    return rc;
}

static void fuzz_chunked(const uint8_t *data, size_t len, size_t split)
{
    char *whole = malloc(len ? len : 1), *parts = malloc(len ? len : 1);
    REQUIRE(whole && parts);
    memcpy(whole, data, len);
    memcpy(parts, data, len);

    /* In one call. */
    struct gw_h1_chunked d1 = {0};
    size_t out1, in1;
    int rc1 = decode_checked(&d1, whole, len, &out1, &in1);
    if (rc1 == 1) {
        /* What follows the body belongs to the next request: untouched. */
        REQUIRE(memcmp(whole + in1, data + in1, len - in1) == 0);
        size_t out_again, in_again;
        REQUIRE(decode_checked(&d1, whole + in1, len - in1, &out_again, &in_again) == 1);
        REQUIRE(in_again == 0 && out_again == 0);
    }

    /* In two reads; the second starts where the first left its data. */
    struct gw_h1_chunked d2 = {0};
    size_t out_a, in_a, out_b = 0, in_b = 0;
    int rc2 = decode_checked(&d2, parts, split, &out_a, &in_a);
    if (rc2 == 0) {
        /* The caller keeps only the data: move the rest down behind it. */
        memmove(parts + out_a, parts + split, len - split);
        rc2 = decode_checked(&d2, parts + out_a, len - split, &out_b, &in_b);
        in_b += split;
    } else {
        in_b = in_a;
    }

    REQUIRE(rc1 == rc2);
    if (rc1 == GW_H1_ERROR) goto done;
    REQUIRE(in1 == in_b);
    REQUIRE(out1 == out_a + out_b);
    REQUIRE(memcmp(whole, parts, out1) == 0);
done:
    free(whole);
    free(parts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    REQUIRE(buf);
    memcpy(buf, data, size);
    size_t split = size ? (size_t)data[size - 1] * (size + 1) / 256 : 0; /* 0..size */

    fuzz_head(buf, size, split);
    REQUIRE(memcmp(buf, data, size) == 0); /* the head parser never writes */
    free(buf);

    fuzz_chunked(data, size, split);
    return 0;
}
