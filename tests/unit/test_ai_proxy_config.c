/*
 * ai-proxy's auth block through the real loader: a credential header that
 * could not be sent as configured is a load error (file:line:col, field
 * path, and never the secret itself), not a per-request surprise.
 */
#include "gw_test.h"
#include "config.h"
#include "gw_test_config.h"

static int loads(const char *yaml)
{
    struct gw_config *cfg = gw_test_loads(yaml);
    if (!cfg) return 0;
    gw_config_free(cfg);
    return 1;
}

#define HEAD                                                                                       \
    "_format_version: '3.0'\n"                                                                     \
    "plugins:\n"                                                                                   \
    "- name: ai-proxy\n"                                                                           \
    "  config:\n"                                                                                  \
    "    route_type: llm/v1/chat\n"                                                                \
    "    model: {provider: openai, name: gpt-4o}\n"                                                \
    "    auth:\n"

int main(void)
{
    CHECK(loads(HEAD "      header_name: Authorization\n"
                     "      header_value: Bearer sk-ok\n"));
    /* A line break in the key: YAML's escapes, or a secret file's newline. */
    const char *e = gw_test_fails(HEAD "      header_name: Authorization\n"
                                       "      header_value: \"Bearer sk-secret\\n\"\n");
    CHECK_STR(e, "kong.yml:9:21: plugins[0].config.auth.header_value: must not contain a line "
                 "break (CR or LF)");
    CHECK(strstr(e, "sk-secret") == NULL);
    CHECK_STR(gw_test_fails(HEAD "      header_name: Authorization\n"
                                 "      header_value: \"a\\rb\"\n"),
              "kong.yml:9:21: plugins[0].config.auth.header_value: must not contain a line "
              "break (CR or LF)");
    CHECK_STR(gw_test_fails(HEAD "      header_name: 'x-api-key: injected'\n"
                                 "      header_value: k\n"),
              "kong.yml:8:20: plugins[0].config.auth.header_name: must be a header name (no "
              "spaces, colons or line breaks)");
    CHECK_STR(gw_test_fails(HEAD "      header_name: x-api-key\n"),
              "kong.yml:8:7: plugins[0].config.auth: header_name and header_value go together");
    return gw_test_done("ai_proxy_config");
}
