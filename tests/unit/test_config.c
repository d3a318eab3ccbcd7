/*
 * kong.yml loading: the entities a good file gives (nested and top-level
 * declarations, url shorthand, defaults, env and vault references, plugin
 * configs), and the exact errors of bad ones.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "config.h"
#include "gw_plugin.h"
#include "gw_test.h"

/* Mirrors the correlation-id plugin's private config struct. */
struct correlation_id_conf {
    const char *header_name;
    int generator;
    int echo_downstream;
};

static const char *fixture(const char *name)
{
    static char path[4096];
    const char *dir = getenv("SLUICE_SOURCE_DIR");
    snprintf(path, sizeof(path), "%s/tests/unit/configs/%s", dir ? dir : ".", name);
    return path;
}

static struct gw_config *load(const char *yaml, struct gw_errlist *errs)
{
    return gw_config_load_string("kong.yml", yaml, strlen(yaml), errs);
}

static int regex_matches(const struct gw_route_path *p, const char *subject)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->regex, NULL);
    int rc = pcre2_match(p->regex, (PCRE2_SPTR)subject, strlen(subject), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static void check_good_entities(struct gw_config *cfg)
{
    CHECK_STR(cfg->format_version, "3.0");
    CHECK_INT(strlen(cfg->sha256), 64);

    CHECK_INT(cfg->n_services, 2);
    struct gw_service *openai = cfg->services[0], *local = cfg->services[1];
    CHECK_STR(openai->name, "openai");
    CHECK_STR(openai->protocol, "https");
    CHECK_STR(openai->host, "api.openai.com");
    CHECK_INT(openai->port, 443);
    CHECK_STR(openai->path, "/v1/");
    CHECK_STR(openai->origin, "https://api.openai.com:443");
    CHECK_STR(openai->base_path, "/v1");
    CHECK_INT(openai->read_timeout, 120000);
    CHECK_INT(openai->connect_timeout, 60000);
    CHECK_INT(openai->write_timeout, 60000);
    CHECK_INT(openai->retries, 5);
    CHECK_INT(openai->tls_verify, 1);
    CHECK_INT(openai->enabled, 1);
    CHECK_INT(openai->tags.n, 2);
    CHECK_STR(openai->tags.v[1], "team-x");
    CHECK_INT(openai->index, 0);
    CHECK_INT(openai->node->line, 5);
    CHECK_STR(local->origin, "http://[::1]:8080");
    CHECK_STR(local->base_path, "");
    CHECK_INT(local->retries, 0);
    CHECK_INT(local->tls_verify, 0);
    CHECK_INT(local->index, 1);

    CHECK_INT(cfg->n_routes, 4);
    if (cfg->n_routes != 4) return;
    struct gw_route *chat = cfg->routes[0];
    CHECK_STR(chat->name, "chat");
    CHECK(chat->service == openai);
    CHECK_INT(chat->n_paths, 2);
    CHECK_INT(chat->paths[0].is_regex, 1);
    CHECK_STR(chat->paths[0].path, "/v1/chat/(completions|responses)$");
    CHECK(chat->paths[0].regex != NULL);
    if (chat->paths[0].regex) {
        CHECK(regex_matches(&chat->paths[0], "/v1/chat/completions"));
        CHECK(!regex_matches(&chat->paths[0], "/x/v1/chat/completions")); /* anchored */
        CHECK(!regex_matches(&chat->paths[0], "/v1/chat/other"));
    }
    CHECK_INT(chat->paths[1].is_regex, 0);
    CHECK_STR(chat->paths[1].path, "/openai");
    CHECK_INT(chat->paths[1].len, 7);
    CHECK_INT(chat->methods.n, 2);
    CHECK_STR(chat->methods.v[0], "POST");
    CHECK_STR(chat->methods.v[1], "GET");
    CHECK_INT(chat->n_hosts, 3);
    CHECK_STR(chat->hosts[0].host, "*.example.com");
    CHECK_INT(chat->hosts[0].wildcard, -1);
    CHECK_INT(chat->hosts[1].wildcard, 1);
    CHECK_INT(chat->hosts[2].wildcard, 0);
    CHECK_INT(chat->hosts[2].len, strlen("plain.example.com"));
    CHECK_INT(chat->headers.n, 2);
    CHECK_STR(chat->headers.keys[0], "x-team");
    CHECK_INT(chat->headers.values[0].n, 2);
    CHECK_STR(chat->headers.values[1].v[0], "prod");
    CHECK_INT(chat->strip_path, 0);
    CHECK_INT(chat->preserve_host, 0);
    CHECK_INT(chat->regex_priority, 0);
    CHECK_STR(chat->path_handling, "v0");
    CHECK_INT(chat->https_redirect_status_code, 426);
    CHECK_INT(chat->protocols.n, 2);
    CHECK_STR(chat->protocols.v[1], "https");

    struct gw_route *lr = cfg->routes[1], *bm = cfg->routes[2], *orphan = cfg->routes[3];
    CHECK_STR(lr->name, "local-route");
    CHECK(lr->service == local);
    CHECK_INT(lr->strip_path, 1);
    CHECK_INT(lr->protocols.n, 1);
    CHECK_STR(bm->name, "by-map");
    CHECK(bm->service == openai);
    CHECK_INT(bm->n_paths, 1);
    CHECK_STR(bm->paths[0].path, "/by-map");
    CHECK(orphan->name == NULL);
    CHECK(orphan->service == NULL);
    CHECK_INT(orphan->index, 3);

    CHECK_INT(cfg->n_consumers, 2);
    struct gw_consumer *alice = cfg->consumers[0], *bob = cfg->consumers[1];
    CHECK_STR(alice->username, "alice");
    CHECK_INT(alice->keyauth_credentials.n, 2);
    const struct gw_keyauth_credential *creds = alice->keyauth_credentials.v;
    CHECK_STR(creds[0].key, "alice-from-vault");
    CHECK_STR(creds[1].key, "plain-key-2");
    CHECK(bob->username == NULL);
    CHECK_STR(bob->custom_id, "bob-1");
    CHECK_INT(cfg->n_secrets, 2);

    /* plugins in file order, nested or not */
    CHECK_INT(cfg->n_plugins, 5);
    if (cfg->n_plugins != 5) return;
    const struct gw_plugin *cid = gw_plugin_find("correlation-id");
    for (size_t i = 0; i < 5; i++) {
        CHECK(cfg->plugins[i]->plugin == cid);
        CHECK_INT(cfg->plugins[i]->index, i);
        CHECK(cfg->plugins[i]->conf != NULL);
    }
    struct gw_plugin_instance **p = cfg->plugins;
    const struct correlation_id_conf *c0 = p[0]->conf, *c1 = p[1]->conf;
    CHECK(p[0]->route == chat && !p[0]->service && !p[0]->consumer);
    CHECK_STR(c0->header_name, "X-Default-Id"); /* ${GW_TEST_HEADER:-X-Default-Id} */
    CHECK_INT(c0->echo_downstream, 1);
    CHECK_INT(c0->generator, 1);
    CHECK(p[1]->service == openai && !p[1]->route && !p[1]->consumer);
    CHECK_STR(c1->header_name, "Kong-Request-ID");
    CHECK_INT(c1->generator, 1); /* uuid#counter */
    CHECK_INT(c1->echo_downstream, 0);
    CHECK_INT(p[1]->enabled, 1);
    CHECK(p[2]->consumer == alice && p[2]->route == chat && !p[2]->service);
    CHECK(!p[3]->service && !p[3]->route && !p[3]->consumer);
    CHECK_INT(p[3]->enabled, 0);
    CHECK_STR(((const struct correlation_id_conf *)p[3]->conf)->header_name, "Kong-Request-ID");
    CHECK(p[4]->service == local && p[4]->consumer == bob && !p[4]->route);
    CHECK_STR(p[4]->instance_name, "local-bob");
    CHECK_INT(p[4]->node->line, 54);
}

static void test_good_file(void)
{
    setenv("GW_TEST_TAG", "team-x", 1);
    setenv("GW_TEST_ALICE_KEY", "alice-from-vault", 1);
    unsetenv("GW_TEST_HEADER");
    struct gw_errlist errs = {0};
    struct gw_config *cfg = gw_config_load_file(fixture("good.yml"), 0, &errs);
    CHECK(cfg != NULL);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "unexpected: %s\n", errs.v[i]);
    CHECK_INT(errs.n, 0);
    if (cfg) {
        CHECK_STR(cfg->file, fixture("good.yml"));
        check_good_entities(cfg);

        cJSON *json = gw_config_to_json(cfg);
        char *text = cJSON_PrintUnformatted(json);
        CHECK(strstr(text, "plain-key-2") == NULL);
        CHECK(strstr(text, "vault://env/gw-test-alice-key") == NULL);
        CHECK(strstr(text, "\"key\":\"<redacted>\"") != NULL);
        const cJSON *svc0 = cJSON_GetArrayItem(cJSON_GetObjectItem(json, "services"), 0);
        CHECK(cJSON_IsNumber(cJSON_GetObjectItem(svc0, "read_timeout")));
        CHECK_INT(cJSON_GetObjectItem(svc0, "read_timeout")->valuedouble, 120000);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(json, "_transform")));
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(json, "_format_version")), "3.0");
        const cJSON *pl0 = cJSON_GetArrayItem(cJSON_GetObjectItem(json, "plugins"), 0);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(pl0, "config")));
        free(text);
        cJSON_Delete(json);
    }
    gw_config_free(cfg);
    gw_errlist_free(&errs);

    /* the env value wins over the default when set */
    setenv("GW_TEST_HEADER", "X-Trace", 1);
    cfg = gw_config_load_file(fixture("good.yml"), 0, &errs);
    CHECK(cfg != NULL);
    if (cfg && cfg->n_plugins)
        CHECK_STR(((const struct correlation_id_conf *)cfg->plugins[0]->conf)->header_name,
                  "X-Trace");
    gw_config_free(cfg);
    gw_errlist_free(&errs);
    unsetenv("GW_TEST_HEADER");

    /* an unset vault variable is an error, not an empty key */
    unsetenv("GW_TEST_ALICE_KEY");
    cfg = gw_config_load_file(fixture("good.yml"), 0, &errs);
    CHECK(cfg == NULL);
    CHECK_INT(errs.n, 1);
    CHECK(errs.n && strstr(errs.v[0], ":44:14: consumers[0].keyauth_credentials[0].key: "
                                      "environment variable GW_TEST_ALICE_KEY is not set"));
    gw_errlist_free(&errs);
}

static void test_bad_file(void)
{
    unsetenv("GW_TEST_UNSET_VAR");
    struct gw_errlist errs = {0};
    char name[4200];
    snprintf(name, sizeof(name), "%s", fixture("bad.yml"));
    struct gw_config *cfg = gw_config_load_file(name, 0, &errs);
    CHECK(cfg == NULL);
    static const char *const expected[] = {
        "4:10: services[0].url: cannot be combined with protocol, host, port or path",
        "6:14: services[0].retries: must be between 0 and 32767",
        "9:22: services[0].routes[0].paths[1]: invalid regex '/(unclosed': missing closing "
        "parenthesis at offset 10",
        "10:19: services[0].routes[0].methods[0]: invalid method 'BREW'",
        "11:11: services[1].name: duplicate service name 'svc' (first at line 3)",
        "13:15: services[1].protocol: expected one of http, https",
        "15:11: routes[0].name: duplicate route name 'r' (first at line 8)",
        "16:14: routes[0].service: unknown service 'missing'",
        "17:13: routes[0].paths[0]: should start with: / (fixed path) or ~/ (regex path)",
        "22:33: consumers[1].keyauth_credentials[0].key: duplicate key-auth key (also in "
        "consumers[0])",
        "22:39: consumers[1].keyauth_credentials[1].key: required field missing",
        "26:18: plugins[0].config.generator: expected one of uuid, uuid#counter, tracker",
        "27:20: plugins[0].config.header_name: environment variable GW_TEST_UNSET_VAR is not set",
        "28:11: plugins[1].name: unknown plugin 'rate-limiting-advanced'",
        "31:1: upstreams: not supported by sluice",
    };
    size_t n = sizeof(expected) / sizeof(expected[0]);
    CHECK_INT(errs.n, n);
    for (size_t i = 0; i < n && i < errs.n; i++) {
        char want[4500];
        snprintf(want, sizeof(want), "%s:%s", name, expected[i]);
        CHECK_STR(errs.v[i], want);
    }
    gw_errlist_free(&errs);

    cfg = gw_config_load_file(fixture("no-such-file.yml"), 0, &errs);
    CHECK(cfg == NULL);
    CHECK(errs.n == 1 && strstr(errs.v[0], "no-such-file.yml: No such file or directory"));
    gw_errlist_free(&errs);
}

/* One inline config, one exact error list. */
struct bad_case {
    const char *yaml;
    const char *errors[10];
};

static const struct bad_case bad_cases[] = {
    {"services: []\n", {"kong.yml:1:1: _format_version: required field missing"}},
    {"_format_version: 3\n", {"kong.yml:1:18: _format_version: expected one of 3.0, 2.1, 1.1"}},
    {"_format_version: \"3.0\"\nservices:\n  - name: a\n    host: [x\n",
     {"kong.yml:5:1: did not find expected ',' or ']' (while parsing a flow sequence started at "
      "4:11)"}},
    {"_format_version: \"3.0\"\nservices:\n  - name: a\n    host: h\n    hots: x\n",
     {"kong.yml:5:5: services[0].hots: unknown field"}},
    {"_format_version: \"3.0\"\ncertificates: []\nupstreams: []\nfoo: 1\n",
     {"kong.yml:3:1: upstreams: not supported by sluice", "kong.yml:4:1: foo: unknown field"}},
    {"_format_version: \"3.0\"\nservices:\n  - name: a\n    host: h\n    port: \"80\"\n"
     "    enabled: 1\n",
     {"kong.yml:5:11: services[0].port: expected an integer",
      "kong.yml:6:14: services[0].enabled: expected a boolean"}},
    {"_format_version: \"3.0\"\nservices:\n  - {name: a}\n  - host: h\n",
     {"kong.yml:3:5: services[0].host: required field missing (or set url)",
      "kong.yml:4:5: services[1].name: required field missing"}},
    {"_format_version: \"3.0\"\nservices:\n  - {name: a, url: \"http://h\", host: h}\n",
     {"kong.yml:3:20: services[0].url: cannot be combined with protocol, host, port or path"}},
    {"_format_version: \"3.0\"\nservices:\n  - {name: a, host: h, path: v1}\n",
     {"kong.yml:3:30: services[0].path: must start with '/'"}},
    {"_format_version: \"3.0\"\nroutes:\n  - {name: r, paths: [/a], path_handling: v2, "
     "headers: {Host: x}}\n",
     {"kong.yml:3:43: routes[0].path_handling: expected one of v0, v1",
      "kong.yml:3:57: routes[0].headers.Host: cannot contain 'host' header, which must be "
      "specified in the 'hosts' attribute"}},
    {"_format_version: \"3.0\"\nroutes:\n  - name: r\n    strip_path: true\n",
     {"kong.yml:3:5: routes[0]: must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' "
      "when 'protocols' is 'https'"}},
    {"_format_version: \"3.0\"\nroutes:\n  - {service: {name: ghost}, paths: [/]}\n",
     {"kong.yml:3:15: routes[0].service: unknown service 'ghost'"}},
    {"_format_version: \"3.0\"\nservices:\n  - name: s\n    host: h\n    routes:\n"
     "      - {service: s, paths: [/]}\n",
     {"kong.yml:6:19: services[0].routes[0].service: not allowed in a route nested under a "
      "service"}},
    {"_format_version: \"3.0\"\nplugins:\n  - name: correlation-id\n    config: {generator: "
     "uuid4}\n  - name: nope\n  - config: {}\n",
     {"kong.yml:4:25: plugins[0].config.generator: expected one of uuid, uuid#counter, tracker",
      "kong.yml:5:11: plugins[1].name: unknown plugin 'nope'",
      "kong.yml:6:5: plugins[2].name: required field missing"}},
    {"_format_version: \"3.0\"\nservices:\n  - name: s\n    host: h\n    plugins:\n"
     "      - name: correlation-id\nplugins:\n  - name: correlation-id\n    service: s\n"
     "  - name: correlation-id\n    ordering: {before: {access: [x]}}\n",
     {"kong.yml:8:5: plugins[0]: plugin 'correlation-id' is already configured for the same "
      "service/route/consumer at services[0].plugins[0] (line 6)",
      "kong.yml:11:15: plugins[1].ordering: not supported: plugins run in the order of their "
      "priority (no dynamic ordering)"}},
    /* Kong fields for features sluice lacks, given a value: refused with why. */
    {"_format_version: \"3.0\"\nservices:\n  - name: s\n    url: https://h\n"
     "    tls_verify_depth: 3\n    ca_certificates: [4e3ad2e4-0bc4-4638-8e34-c84a417ba39b]\n"
     "    routes:\n      - {name: r, paths: [/], protocols: [http], snis: [a.example]}\n",
     {"kong.yml:5:23: services[0].tls_verify_depth: not supported: tls_verify_depth is not "
      "available: HTTPS upstreams are verified with OpenSSL's default depth (100)",
      "kong.yml:6:23: services[0].ca_certificates[0]: unknown ca_certificate "
      "'4e3ad2e4-0bc4-4638-8e34-c84a417ba39b'",
      "kong.yml:8:56: services[0].routes[0].snis: 'snis' can only be set when 'protocols' is "
      "'grpcs', 'https', 'tls' or 'tls_passthrough'"}},
    /* Route snis (Kong's wildcard_host): names only, one '*' at an end ("*"
     * alone is any name); on a route that takes https (the default does). */
    {"_format_version: \"3.0\"\nservices:\n  - name: s\n    host: h\n    routes:\n"
     "      - name: r\n        protocols: [https]\n"
     "        snis: [1.2.3.4, 'a.b:443', 'a.*.b', '*.a.*', '', 'a b', '*']\n"
     "      - {name: ok, protocols: [https], snis: [A.Example.COM., '*.x.test', 'api.*']}\n"
     "      - {name: http, protocols: [http], snis: [a.b]}\n"
     "      - {name: default-protocols, snis: [a.b]}\n",
     {"kong.yml:8:16: services[0].routes[0].snis[0]: must not be an IP",
      "kong.yml:8:25: services[0].routes[0].snis[1]: must not have a port",
      "kong.yml:8:36: services[0].routes[0].snis[2]: wildcard must be leftmost or rightmost "
      "character",
      "kong.yml:8:45: services[0].routes[0].snis[3]: only one wildcard must be specified",
      "kong.yml:8:54: services[0].routes[0].snis[4]: invalid value: ",
      "kong.yml:8:58: services[0].routes[0].snis[5]: invalid value: a b",
      "kong.yml:10:9: services[0].routes[2]: must set one of 'methods', 'hosts', 'headers', "
      "'paths' when 'protocols' is 'http'",
      "kong.yml:10:47: services[0].routes[2].snis: 'snis' can only be set when 'protocols' is "
      "'grpcs', 'https', 'tls' or 'tls_passthrough'"}},
    {"_format_version: \"3.0\"\nservices:\n  - name: s\n    host: h\n    plugins:\n"
     "      - {name: correlation-id, service: s, route: nope, consumer: nobody}\n",
     {"kong.yml:6:41: services[0].plugins[0].service: not allowed in a plugin nested under a "
      "service",
      "kong.yml:6:51: services[0].plugins[0].route: unknown route 'nope'",
      "kong.yml:6:67: services[0].plugins[0].consumer: unknown consumer 'nobody'"}},
    {"_format_version: \"3.0\"\nconsumers:\n  - {username: u, custom_id: c}\n"
     "  - {username: u}\n  - {custom_id: c}\n  - tags: [t]\n",
     {"kong.yml:4:16: consumers[1].username: duplicate username 'u' (first at line 3)",
      "kong.yml:5:17: consumers[2].custom_id: duplicate custom_id 'c' (first at line 3)",
      "kong.yml:6:5: consumers[3]: must set one of 'username', 'custom_id'"}},
    {"_format_version: \"3.0\"\nservices:\n  - name: s\n    host: $GW_TEST_UNSET_VAR\n",
     {"kong.yml:4:11: services[0].host: environment variable GW_TEST_UNSET_VAR is not set"}},
    {"_format_version: \"3.0\"\nroutes:\n  - paths: [\"~/a[\", /b, c]\n",
     {"kong.yml:3:13: routes[0].paths[0]: invalid regex '/a[': missing terminating ] for "
      "character class at offset 3",
      "kong.yml:3:25: routes[0].paths[2]: should start with: / (fixed path) or ~/ (regex path)"}},
    {"", {"kong.yml:1:1: the config is empty"}},
    {"[1]\n", {"kong.yml:1:1: expected a map at the top level"}},
    {"_format_version: \"3.0\"\nservices: {name: a}\n",
     {"kong.yml:2:11: services: expected a list"}},
};

static void test_bad_inline(void)
{
    unsetenv("GW_TEST_UNSET_VAR");
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct gw_errlist errs = {0};
        struct gw_config *cfg = load(c->yaml, &errs);
        CHECK(cfg == NULL);
        size_t n = 0;
        while (n < 10 && c->errors[n])
            n++;
        if (errs.n != n) {
            fprintf(stderr, "case %zu: %zu errors, expected %zu:\n", i, errs.n, n);
            for (size_t j = 0; j < errs.n; j++)
                fprintf(stderr, "  %s\n", errs.v[j]);
        }
        CHECK_INT(errs.n, n);
        for (size_t j = 0; j < n && j < errs.n; j++)
            CHECK_STR(errs.v[j], c->errors[j]);
        gw_config_free(cfg);
        gw_errlist_free(&errs);
    }
}

static void test_small_good(void)
{
    /* sha256 of exactly these bytes (sha256sum agrees) */
    const char *yaml = "_format_version: \"3.0\"\n";
    struct gw_errlist errs = {0};
    struct gw_config *cfg = load(yaml, &errs);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_STR(cfg->sha256, "7ad62cd3851cd4181245dbf739aee722b64d4bc07b5a50dd2a724227570a272d");
        CHECK_INT(cfg->n_services + cfg->n_routes + cfg->n_consumers + cfg->n_plugins, 0);
    }
    gw_config_free(cfg);

    /* url shorthand with an explicit port and no path; http default port */
    yaml = "_format_version: \"2.1\"\n_workspace: w\nservices:\n"
           "  - {name: a, url: \"HTTP://[fe80::1]:8443\"}\n  - {name: b, host: h.example}\n";
    cfg = load(yaml, &errs);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_STR(cfg->format_version, "2.1");
        CHECK_STR(cfg->services[0]->protocol, "http");
        CHECK_STR(cfg->services[0]->host, "fe80::1");
        CHECK_INT(cfg->services[0]->port, 8443);
        CHECK(cfg->services[0]->path == NULL);
        CHECK_STR(cfg->services[0]->origin, "http://[fe80::1]:8443");
        CHECK_STR(cfg->services[1]->origin, "http://h.example:80");
        CHECK_STR(cfg->services[1]->base_path, "");
    }
    gw_config_free(cfg);
    gw_errlist_free(&errs);

    /* Kong fields for features sluice lacks load while they ask for nothing
     * (null, as decK writes them, or empty). */
    yaml =
        "_format_version: \"3.0\"\nservices:\n"
        "  - name: s\n    url: https://h\n    tls_verify_depth: null\n"
        "    ca_certificates: []\n    client_certificate: null\n"
        "    routes:\n      - {name: r, paths: [/], snis: null, sources: [], destinations: null}\n";
    cfg = load(yaml, &errs);
    CHECK(cfg != NULL);
    if (!cfg && errs.n) fprintf(stderr, "unexpected: %s\n", errs.v[0]);
    gw_config_free(cfg);
    gw_errlist_free(&errs);

    /* $VAR in an enum field, as in any string value. */
    setenv("GW_TEST_GENERATOR", "tracker", 1);
    yaml = "_format_version: \"3.0\"\nplugins:\n  - name: correlation-id\n"
           "    config: {generator: $GW_TEST_GENERATOR}\n";
    cfg = load(yaml, &errs);
    CHECK(cfg != NULL);
    if (cfg && cfg->n_plugins == 1) {
        const struct correlation_id_conf *c = cfg->plugins[0]->conf;
        CHECK_INT(c->generator, 2);
    }
    gw_config_free(cfg);
    gw_errlist_free(&errs);
    unsetenv("GW_TEST_GENERATOR");
    cfg = load(yaml, &errs);
    CHECK(cfg == NULL);
    CHECK(errs.n == 1 && strstr(errs.v[0], "GW_TEST_GENERATOR") != NULL);
    gw_config_free(cfg);
    gw_errlist_free(&errs);

    /* a plugin with no config block gets every default */
    yaml = "_format_version: \"1.1\"\nplugins:\n  - name: correlation-id\n";
    cfg = load(yaml, &errs);
    CHECK(cfg != NULL);
    if (cfg && cfg->n_plugins == 1) {
        const struct correlation_id_conf *c = cfg->plugins[0]->conf;
        CHECK_STR(c->header_name, "Kong-Request-ID");
        CHECK_INT(c->generator, 1);
        CHECK_INT(c->echo_downstream, 0);
        CHECK_INT(cfg->plugins[0]->enabled, 1);
    }
    gw_config_free(cfg);
    gw_errlist_free(&errs);
}

/* Every prefix of a real config, and some hostile inputs, must load or fail
 * cleanly (ASan/UBSan builds check the "cleanly"). */
static void test_no_crash(void)
{
    size_t len;
    char *text = gw_test_read_file(fixture("good.yml"), &len);
    CHECK(text != NULL);
    size_t failed = 0;
    for (size_t i = 0; text && i < len; i++) {
        struct gw_errlist errs = {0};
        struct gw_config *cfg = gw_config_load_string("p.yml", text, i, &errs);
        if (!cfg) failed++;
        CHECK(cfg != NULL || errs.n > 0);
        gw_config_free(cfg);
        gw_errlist_free(&errs);
    }
    CHECK(failed > 0);
    free(text);

    static const char *const hostile[] = {
        "a: &a [1, 1]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: &d [*c, *c]\n",
        "_format_version: \"3.0\"\nservices: &s\n  - name: a\n    host: h\n    routes: *s\n",
        "\t\t\x01\x02",
        "_format_version: \"3.0\"\nplugins: [[[[]]]]\nroutes: [~, 1, \"\"]\n",
        "_format_version: \"3.0\"\nconsumers: [{username: u, keyauth_credentials: [~, 1]}]\n",
        "{? : }",
        "_format_version: \"3.0\"\nservices:\n  - name: a\n    url: \"http://\"\n"
        "  - name: b\n    url: \"http://[::1\"\n  - name: c\n    url: \"http://h:99999/\"\n",
        /* libFuzzer: a name equal to an earlier entity's id (which has no
         * name) was taken for a duplicate name, then its line read from
         * NULL. */
        "_format_version: \"3.0\"\nservices:\n  - id: x1\n  - name: x1\n"
        "    url: http://h\n    routes:\n      - id: r1\n        paths: [/a]\n"
        "      - name: r1\n        paths: [/b]\n",
    };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        struct gw_errlist errs = {0};
        struct gw_config *cfg = load(hostile[i], &errs);
        CHECK(cfg == NULL && errs.n > 0);
        gw_config_free(cfg);
        gw_errlist_free(&errs);
    }

    /* too many errors are capped, not listed without end */
    size_t cap = 64 * 1024;
    char *many = malloc(cap);
    size_t off = (size_t)snprintf(many, cap, "_format_version: \"3.0\"\nservices:\n");
    for (int i = 0; i < 500; i++)
        off += (size_t)snprintf(many + off, cap - off, "  - {name: s%d, port: 0}\n", i);
    struct gw_errlist errs = {0};
    CHECK(load(many, &errs) == NULL);
    CHECK_INT(errs.n, 201);
    CHECK(errs.n && strcmp(errs.v[errs.n - 1], "too many errors; the rest are not listed") == 0);
    gw_errlist_free(&errs);
    free(many);
}

/* YAML tags: the core schema's say how a scalar reads; any other is refused. */
static void test_yaml_tags(void)
{
    struct gw_errlist errs = {0};
    struct gw_config *cfg =
        load("_format_version: \"3.0\"\nservices:\n  - name: s\n    host: h\n"
             "    retries: !!int \"3\"\n    tls_verify: !!bool 'false'\n    tags: [!!str 1, ! 2]\n",
             &errs);
    CHECK(cfg != NULL);
    if (cfg) {
        CHECK_INT(cfg->services[0]->retries, 3);
        CHECK_INT(cfg->services[0]->tls_verify, 0);
        CHECK_STR(cfg->services[0]->tags.v[0], "1");
        CHECK_STR(cfg->services[0]->tags.v[1], "2");
    }
    gw_config_free(cfg);
    gw_errlist_free(&errs);

    /* !!str makes `false` a string: not a boolean any more. */
    cfg = load("_format_version: \"3.0\"\nservices:\n  - name: s\n    host: h\n"
               "    enabled: !!str false\n",
               &errs);
    CHECK(cfg == NULL);
    CHECK(errs.n == 1 && strstr(errs.v[0], "services[0].enabled: expected a boolean"));
    gw_errlist_free(&errs);

    cfg = load("_format_version: \"3.0\"\n_comment: !!binary aGVsbG8=\nservices: !!set {a: null}\n"
               "consumers: !local [x]\n",
               &errs);
    CHECK(cfg == NULL);
    CHECK_INT(errs.n, 3);
    if (errs.n == 3) {
        CHECK(strstr(errs.v[0], "kong.yml:2:11: _comment: unsupported YAML tag '!!binary' (sluice reads the "
                                "core schema") != NULL);
        CHECK(strstr(errs.v[1], "kong.yml:3:11: services: unsupported YAML tag '!!set'") != NULL);
        CHECK(strstr(errs.v[2], "kong.yml:4:12: consumers: unsupported YAML tag '!local'") != NULL);
    }
    gw_errlist_free(&errs);
}

int main(void)
{
    test_yaml_tags();
    test_good_file();
    test_bad_file();
    test_bad_inline();
    test_small_good();
    test_no_crash();
    return gw_test_done("test_config");
}
