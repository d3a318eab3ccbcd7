/*
 * gw_headers: the header lists every plugin reads and changes. What
 * matters: arrival order kept, names case-insensitive, remove/set take
 * every duplicate and leave the list appendable, nothing with CR/LF gets
 * in, and the strings are copies (the parser's buffer is reused).
 */
#include <string.h>

#include "gw_arena.h"
#include "gw_headers.h"
#include "gw_test.h"

/* "Name: value|Name: value|..." in list order, into buf. */
static const char *dump(const struct gw_headers *list, char *buf, size_t size)
{
    const struct gw_header *h;
    size_t n = 0;
    buf[0] = '\0';
    gw_headers_foreach(h, list)
    {
        CHECK_INT(h->name_len, strlen(h->name));
        CHECK_INT(h->value_len, strlen(h->value));
        n += (size_t)snprintf(buf + n, size - n, "%s%s: %s", n ? "|" : "", h->name, h->value);
    }
    return buf;
}

int main(void)
{
    char buf[512];
    struct gw_arena *a = gw_arena_new(0);
    struct gw_headers l;
    gw_headers_init(&l, a);
    CHECK(gw_headers_get(&l, "Host") == NULL);
    CHECK_STR(dump(&l, buf, sizeof(buf)), "");
    CHECK_INT(gw_headers_remove(&l, "Host"), 0);

    /* Copies: the source buffer may change right after. */
    char src[] = "X-Tenant";
    char val[] = "acme";
    CHECK_INT(gw_headers_add_n(&l, src, 8, val, 4), 0);
    memset(src, 'z', 8);
    memset(val, 'z', 4);
    CHECK_STR(gw_headers_get(&l, "x-tenant"), "acme");
    CHECK_STR(gw_headers_get(&l, "X-TENANT"), "acme");
    CHECK(gw_headers_get(&l, "X-Tenan") == NULL);   /* a prefix is not the name */
    CHECK(gw_headers_get(&l, "X-Tenants") == NULL); /* nor a longer one */

    gw_headers_add(&l, "Accept", "a/b");
    gw_headers_add(&l, "x-tenant", "initech"); /* duplicate, other case */
    gw_headers_add_ref(&l, "Via", 3, "1.1 sluice", 10);
    CHECK_STR(dump(&l, buf, sizeof(buf)),
              "X-Tenant: acme|Accept: a/b|x-tenant: initech|Via: 1.1 sluice");
    CHECK_STR(gw_headers_get(&l, "X-Tenant"), "acme"); /* the first one */

    /* Remove takes every duplicate, wherever it is. */
    CHECK_INT(gw_headers_remove(&l, "X-TENANT"), 2);
    CHECK_STR(dump(&l, buf, sizeof(buf)), "Accept: a/b|Via: 1.1 sluice");
    /* Removing the last entry: appending must still land at the end. */
    CHECK_INT(gw_headers_remove(&l, "via"), 1);
    gw_headers_add(&l, "B", "2");
    CHECK_STR(dump(&l, buf, sizeof(buf)), "Accept: a/b|B: 2");
    /* Removing everything, then appending. */
    CHECK_INT(gw_headers_remove(&l, "accept"), 1);
    CHECK_INT(gw_headers_remove(&l, "b"), 1);
    CHECK(l.first == NULL);
    gw_headers_add(&l, "C", "3");
    CHECK_STR(dump(&l, buf, sizeof(buf)), "C: 3");

    /* Set replaces every instance with one, at the end. */
    gw_headers_add(&l, "Content-Type", "text/plain");
    gw_headers_add(&l, "D", "4");
    gw_headers_add(&l, "content-type", "text/html");
    CHECK_INT(gw_headers_set(&l, "Content-Type", "application/json"), 0);
    CHECK_STR(dump(&l, buf, sizeof(buf)), "C: 3|D: 4|Content-Type: application/json");

    /* Nothing that could split a head gets in. */
    CHECK_INT(gw_headers_add(&l, "X-Evil", "a\r\nInjected: 1"), -1);
    CHECK_INT(gw_headers_add(&l, "X-Evil", "a\nb"), -1);
    CHECK_INT(gw_headers_add(&l, "X-Evil\r\nInjected", "1"), -1);
    CHECK_INT(gw_headers_add(&l, "", "1"), -1);
    CHECK_INT(gw_headers_add_n(&l, "X-Nul", 5, "a\0b", 3), -1);
    CHECK_STR(dump(&l, buf, sizeof(buf)), "C: 3|D: 4|Content-Type: application/json");
    /* A refused set still removes what was there: a refused credential must
     * not leave the client's own in its place. */
    CHECK_INT(gw_headers_set(&l, "Content-Type", "x\r\ny"), -1);
    CHECK_STR(dump(&l, buf, sizeof(buf)), "C: 3|D: 4");
    /* An empty value is a value. */
    CHECK_INT(gw_headers_add(&l, "Accept", ""), 0);
    CHECK_STR(gw_headers_get(&l, "accept"), "");

    const struct gw_header *h = l.first;
    CHECK(gw_header_is(h, "c", 1));
    CHECK(!gw_header_is(h, "cc", 2));

    gw_headers_clear(&l);
    CHECK(l.first == NULL);
    gw_headers_add(&l, "E", "5");
    CHECK_STR(dump(&l, buf, sizeof(buf)), "E: 5");

    gw_arena_free(a);
    return gw_test_done("headers");
}
