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

    /* A decK dump of Kong's ai-proxy carries every field of Kong's schema,
     * those of providers and credentials sluice lacks at their defaults. */
    CHECK(loads("_format_version: '3.0'\n"
                "plugins:\n"
                "- name: ai-proxy\n"
                "  protocols: [grpc, grpcs, http, https]\n"
                "  config:\n"
                "    route_type: llm/v1/chat\n"
                "    llm_format: openai\n"
                "    genai_category: text/generation\n"
                "    auth:\n"
                "      header_name: Authorization\n"
                "      header_value: Bearer sk-ok\n"
                "      allow_override: false\n"
                "      aws_access_key_id: null\n"
                "      aws_secret_access_key: null\n"
                "      azure_client_id: null\n"
                "      azure_client_secret: null\n"
                "      azure_tenant_id: null\n"
                "      azure_use_managed_identity: false\n"
                "      gcp_service_account_json: null\n"
                "      gcp_use_service_account: False\n"
                "      param_location: null\n"
                "    model:\n"
                "      provider: openai\n"
                "      name: gpt-4o\n"
                "      options:\n"
                "        max_tokens: 256\n"
                "        azure_api_version: '2023-05-15'\n"
                "        bedrock: {aws_region: null, embeddings_normalize: false}\n"
                "        gemini: {api_endpoint: null, location_id: null, project_id: null}\n"
                "        huggingface: {}\n"
                "        cohere: {embedding_input_type: classification, wait_for_model: null}\n"));
    /* Asking for the feature is an error naming the field, never ignored;
     * the value (a credential, maybe) is not repeated. */
    e = gw_test_fails(HEAD "      header_name: Authorization\n"
                           "      header_value: Bearer sk-ok\n"
                           "      aws_access_key_id: AKIAEXAMPLE\n"
                           "      azure_use_managed_identity: true\n"
                           "      gcp_use_service_account: true\n");
    CHECK_STR(e, "kong.yml:10:26: plugins[0].config.auth.aws_access_key_id: not supported: AWS "
                 "credentials are for the bedrock provider, which sluice does not have yet\n"
                 "kong.yml:11:35: plugins[0].config.auth.azure_use_managed_identity: not "
                 "supported: no Azure managed identity in sluice: give the key with header_name: "
                 "api-key\n"
                 "kong.yml:12:32: plugins[0].config.auth.gcp_use_service_account: not supported: "
                 "GCP service accounts are for the gemini provider, which sluice does not have "
                 "yet");
    CHECK(strstr(e, "AKIAEXAMPLE") == NULL);
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-proxy\n"
                            "  config:\n"
                            "    route_type: llm/v1/chat\n"
                            "    llm_format: bedrock\n"
                            "    genai_category: audio/speech\n"
                            "    model:\n"
                            "      provider: openai\n"
                            "      options:\n"
                            "        bedrock: {aws_region: us-east-1}\n"
                            "        cohere: {embedding_input_type: search_query}\n"
                            "        gemini: {projectid: p}\n"),
              "kong.yml:6:17: plugins[0].config.llm_format: not supported: clients speak the "
              "OpenAI API here (Kong's native bedrock and gemini formats are not available)\n"
              "kong.yml:7:21: plugins[0].config.genai_category: not supported: only "
              "text/generation and text/embeddings (as route_type says)\n"
              "kong.yml:11:31: plugins[0].config.model.options.bedrock.aws_region: not supported: "
              "for the bedrock provider, which sluice does not have yet\n"
              "kong.yml:12:40: plugins[0].config.model.options.cohere.embedding_input_type: not "
              "supported: for the cohere provider, which sluice does not have yet\n"
              "kong.yml:13:18: plugins[0].config.model.options.gemini.projectid: unknown field");
    return gw_test_done("ai_proxy_config");
}
