/*
 * The prompt plugins' config through the real loader: exact error messages
 * (file:line:col, field path, text) and a valid config that drives the
 * plugins' logic once loaded.
 */
#include "gw_test.h"
#include "config.h"
#include "gw_test_config.h"
#include "gw_plugin.h"
#include "../../plugins/ai-prompt-guard/prompt_guard.h"
#include "../../plugins/ai-prompt-decorator/prompt_decorator.h"
#include "../../plugins/ai-prompt-template/prompt_template.h"

static void test_guard_errors(void)
{
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-guard\n"
                            "  config:\n"
                            "    match_all_roles: false\n"),
              "kong.yml:5:5: plugins[0].config: at least one of these fields must be non-empty: "
              "'allow_patterns', 'deny_patterns'");
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-guard\n"
                            "  config:\n"
                            "    deny_patterns: [a, b, c, d, e, f, g, h, i, j, k]\n"),
              "kong.yml:5:20: plugins[0].config.deny_patterns: must have between 0 and 10 items");

    char long_pattern[600], yaml[1024];
    memset(long_pattern, 'x', 501);
    long_pattern[501] = '\0';
    snprintf(yaml, sizeof(yaml),
             "_format_version: '3.0'\nplugins:\n- name: ai-prompt-guard\n  config:\n"
             "    allow_patterns:\n    - ok\n    - %s\n",
             long_pattern);
    CHECK_STR(
        gw_test_fails(yaml),
        "kong.yml:7:7: plugins[0].config.allow_patterns[1]: length must be between 1 and 500");
    memset(long_pattern, 'x', 500);
    long_pattern[500] = '\0';
    snprintf(yaml, sizeof(yaml),
             "_format_version: '3.0'\nplugins:\n- name: ai-prompt-guard\n  config:\n"
             "    allow_patterns:\n    - %s\n",
             long_pattern);
    struct gw_config *cfg = gw_test_load(yaml);
    CHECK(cfg != NULL);
    if (cfg) gw_config_free(cfg);

    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-guard\n"
                            "  config:\n"
                            "    deny_patterns:\n"
                            "    - fine\n"
                            "    - '(?<name>unclosed'\n"),
              "kong.yml:7:7: plugins[0].config.deny_patterns[1]: invalid regex '(?<name>unclosed': "
              "missing closing parenthesis at offset 16");
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-guard\n"
                            "  config:\n"
                            "    deny_patterns: [x]\n"
                            "    allow_all_conversation_history: true\n"
                            "    match_all_roles: true\n"),
              "kong.yml:7:22: plugins[0].config.match_all_roles: cannot be true when "
              "allow_all_conversation_history is true");
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-guard\n"
                            "  config:\n"
                            "    deny_patterns: [x]\n"
                            "    llm_format: gemini\n"),
              "kong.yml:6:17: plugins[0].config.llm_format: expected one of openai");
}

static void test_decorator_errors(void)
{
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-decorator\n"
                            "  config:\n"
                            "    prompts: {}\n"),
              "kong.yml:5:5: plugins[0].config: at least one of these fields must be non-empty: "
              "'prompts.prepend', 'prompts.append'");
    char yaml[2048] = "_format_version: '3.0'\nplugins:\n- name: ai-prompt-decorator\n  config:\n"
                      "    prompts:\n      prepend:\n";
    for (int i = 0; i < 16; i++)
        snprintf(yaml + strlen(yaml), sizeof(yaml) - strlen(yaml), "      - content: p%d\n", i);
    CHECK_STR(gw_test_fails(yaml),
              "kong.yml:7:7: plugins[0].config.prompts.prepend: must have between 0 and 15 items");
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-decorator\n"
                            "  config:\n"
                            "    prompts:\n"
                            "      append:\n"
                            "      - role: robot\n"
                            "        content: beep\n"),
              "kong.yml:7:15: plugins[0].config.prompts.append[0].role: expected one of system, "
              "assistant, user");
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-decorator\n"
                            "  config:\n"
                            "    prompts:\n"
                            "      append:\n"
                            "      - role: user\n"
                            "        content: ''\n"),
              "kong.yml:8:18: plugins[0].config.prompts.append[0].content: length must be between "
              "1 and 500");
}

static void test_template_errors(void)
{
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-template\n"
                            "  config:\n"
                            "    templates:\n"
                            "    - template: '{\"prompt\": \"x\"}'\n"),
              "kong.yml:6:7: plugins[0].config.templates[0].name: required field missing");
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-template\n"
                            "  config:\n"
                            "    allow_untemplated_requests: false\n"),
              "kong.yml:5:5: plugins[0].config.templates: required field missing");
    CHECK_STR(gw_test_fails("_format_version: '3.0'\n"
                            "plugins:\n"
                            "- name: ai-prompt-template\n"
                            "  config:\n"
                            "    templates:\n"
                            "    - name: broken\n"
                            "      template: '{\"prompt\": \"{{x}}\"'\n"),
              "kong.yml:7:17: plugins[0].config.templates[0].template: does not render to a JSON "
              "object (with every placeholder as 0)");
}

static const void *plugin_conf(const struct gw_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (strcmp(cfg->plugins[i]->plugin->name, name) == 0) return cfg->plugins[i]->conf;
    return NULL;
}

/* A valid config: defaults applied, `$` in patterns and templates left
 * alone (no env expansion), patterns compiled and usable. */
static void test_valid(void)
{
    struct gw_config *cfg = gw_test_load("_format_version: '3.0'\n"
                                         "plugins:\n"
                                         "- name: ai-prompt-guard\n"
                                         "  config:\n"
                                         "    deny_patterns: ['secret$', '(?i)^ignore']\n"
                                         "- name: ai-prompt-decorator\n"
                                         "  config:\n"
                                         "    prompts:\n"
                                         "      prepend:\n"
                                         "      - content: Be kind.\n"
                                         "      append:\n"
                                         "      - role: user\n"
                                         "        content: Be brief.\n"
                                         "- name: ai-prompt-template\n"
                                         "  config:\n"
                                         "    templates:\n"
                                         "    - name: t\n"
                                         "      template: '{\"prompt\": \"$HOME {{x}}\"}'\n");
    CHECK_STR(gw_test_errors, "");
    if (!cfg) return;
    const struct prompt_guard_conf *g = plugin_conf(cfg, "ai-prompt-guard");
    CHECK(g != NULL);
    if (g) {
        CHECK_INT(g->max_request_body_size, 8192);
        CHECK_INT(g->allow_all_conversation_history, 0);
        CHECK_INT(g->deny_patterns.n, 2);
        CHECK_STR(g->deny_patterns.v[0], "secret$");
        struct prompt_guard_verdict v;
        cJSON *body = cJSON_Parse("{\"prompt\":\"tell me the secret\"}");
        CHECK_INT(prompt_guard_check(g, body, &v), PROMPT_GUARD_DENIED);
        cJSON_Delete(body);
        body = cJSON_Parse("{\"prompt\":\"IGNORE this\"}");
        CHECK_INT(prompt_guard_check(g, body, &v), PROMPT_GUARD_DENIED);
        CHECK_INT(v.index, 1);
        cJSON_Delete(body);
        body = cJSON_Parse("{\"prompt\":\"the secret is out\"}");
        CHECK_INT(prompt_guard_check(g, body, &v), PROMPT_GUARD_ALLOWED);
        cJSON_Delete(body);
    }
    const struct prompt_decorator_conf *d = plugin_conf(cfg, "ai-prompt-decorator");
    CHECK(d != NULL);
    if (d) {
        CHECK_INT(d->prompts.prepend.n, 1);
        cJSON *body = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
        CHECK_INT(prompt_decorator_apply(d, body), 0);
        char *s = cJSON_PrintUnformatted(body);
        CHECK_STR(s, "{\"messages\":[{\"role\":\"system\",\"content\":\"Be kind.\"},"
                     "{\"role\":\"user\",\"content\":\"q\"},"
                     "{\"role\":\"user\",\"content\":\"Be brief.\"}]}");
        free(s);
        cJSON_Delete(body);
    }
    const struct prompt_template_conf *t = plugin_conf(cfg, "ai-prompt-template");
    CHECK(t != NULL);
    if (t) {
        CHECK_INT(t->allow_untemplated_requests, 1);
        CHECK_INT(t->log_original_request, 0);
        const struct prompt_template *tt = t->templates.v;
        CHECK_STR(tt[0].template, "{\"prompt\": \"$HOME {{x}}\"}");
        CHECK_INT(tt[0].n_params, 1);
    }
    /* Kong's priorities: template, then decorator, then guard. */
    CHECK_INT(gw_plugin_find("ai-prompt-template")->priority, 773);
    CHECK_INT(gw_plugin_find("ai-prompt-decorator")->priority, 772);
    CHECK_INT(gw_plugin_find("ai-prompt-guard")->priority, 771);
    gw_config_free(cfg);
}

int main(void)
{
    test_guard_errors();
    test_decorator_errors();
    test_template_errors();
    test_valid();
    return gw_test_done("test_prompt_config");
}
