/*
 * A minimal unit-test harness: CHECK records a failure and goes on, so one
 * run reports every broken assertion. gw_test_done() prints the plain
 * "N passed, N failed" line that CI reads and returns the exit status.
 */
#ifndef GW_TEST_H
#define GW_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gw_test_passed, gw_test_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            gw_test_passed++;                                                                      \
        } else {                                                                                   \
            gw_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ && b_ && strcmp(a_, b_) == 0) {                                                     \
            gw_test_passed++;                                                                      \
        } else {                                                                                   \
            gw_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s\n  got:      %s\n  expected: %s\n",       \
                    __FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ == b_) {                                                                            \
            gw_test_passed++;                                                                      \
        } else {                                                                                   \
            gw_test_failed++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK_INT failed: %s: got %lld, expected %lld\n", __FILE__,    \
                    __LINE__, #a, a_, b_);                                                         \
        }                                                                                          \
    } while (0)

static inline int gw_test_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, gw_test_passed, gw_test_failed);
    return gw_test_failed ? 1 : 0;
}

/* Reads a whole file (malloc'd, NUL-terminated) or returns NULL. */
static inline char *gw_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

#endif
