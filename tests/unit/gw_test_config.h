/*
 * Loading a kong.yml from a string in unit tests, through the real loader.
 * Include after gw_test.h and config.h.
 */
#ifndef GW_TEST_CONFIG_H
#define GW_TEST_CONFIG_H

/* All errors of the last load, one per line ("" when it loaded). */
static char gw_test_errors[8192];

/* The config, or NULL with gw_test_errors filled. */
static inline struct gw_config *gw_test_load(const char *yaml)
{
    struct gw_errlist errs = {0};
    struct gw_config *cfg = gw_config_load_string("kong.yml", yaml, strlen(yaml), &errs);
    gw_test_errors[0] = '\0';
    for (size_t i = 0; i < errs.n; i++) {
        if (i) strncat(gw_test_errors, "\n", sizeof(gw_test_errors) - strlen(gw_test_errors) - 1);
        strncat(gw_test_errors, errs.v[i], sizeof(gw_test_errors) - strlen(gw_test_errors) - 1);
    }
    gw_errlist_free(&errs);
    return cfg;
}

/* Expects the load to fail; returns its errors. */
static inline const char *gw_test_fails(const char *yaml)
{
    struct gw_config *cfg = gw_test_load(yaml);
    CHECK(cfg == NULL);
    if (cfg) gw_config_free(cfg);
    return gw_test_errors;
}

/* Expects the load to succeed (errors printed otherwise); the caller frees. */
static inline struct gw_config *gw_test_loads(const char *yaml)
{
    struct gw_config *cfg = gw_test_load(yaml);
    if (!cfg) fprintf(stderr, "unexpected: %s\n", gw_test_errors);
    CHECK(cfg != NULL);
    return cfg;
}

#endif
