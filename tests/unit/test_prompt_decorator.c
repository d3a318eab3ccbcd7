/*
 * ai-prompt-decorator's rewrite of a parsed chat body.
 */
#include "gw_test.h"
#include "../../plugins/ai-prompt-decorator/prompt_decorator.h"

/* Applies conf to json and returns the serialised result (malloc'd), or
 * NULL when apply refused the body. */
static char *decorate(const struct prompt_decorator_conf *c, const char *json)
{
    cJSON *body = cJSON_Parse(json);
    if (!body) abort();
    char *out = prompt_decorator_apply(c, body) == 0 ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    return out;
}

static void test_order(void)
{
    /* Mutable copies of the content: a reference, not a copy, is what the
     * decorated body must hold, and cJSON_Delete must not free it. */
    char sys[] = "You are a pirate.", sys2[] = "Answer in French.", tail[] = "Be brief.";
    struct prompt_decorator_message pre[] = {{PROMPT_ROLE_SYSTEM, sys},
                                             {PROMPT_ROLE_ASSISTANT, sys2}};
    struct prompt_decorator_message app[] = {{PROMPT_ROLE_USER, tail}};
    struct prompt_decorator_conf c = {.prompts = {{pre, 2}, {app, 1}}};

    char *out = decorate(&c, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\","
                             "\"name\":\"bob\"},{\"role\":\"assistant\",\"content\":\"ho\"}]}");
    CHECK_STR(out, "{\"model\":\"m\",\"messages\":["
                   "{\"role\":\"system\",\"content\":\"You are a pirate.\"},"
                   "{\"role\":\"assistant\",\"content\":\"Answer in French.\"},"
                   "{\"role\":\"user\",\"content\":\"hi\",\"name\":\"bob\"},"
                   "{\"role\":\"assistant\",\"content\":\"ho\"},"
                   "{\"role\":\"user\",\"content\":\"Be brief.\"}]}");
    free(out);
    CHECK_STR(sys, "You are a pirate.");

    /* Only prepend, then only append. */
    struct prompt_decorator_conf only_pre = {.prompts = {{pre, 1}, {NULL, 0}}};
    out = decorate(&only_pre, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
    CHECK_STR(out, "{\"messages\":[{\"role\":\"system\",\"content\":\"You are a pirate.\"},"
                   "{\"role\":\"user\",\"content\":\"q\"}]}");
    free(out);
    struct prompt_decorator_conf only_app = {.prompts = {{NULL, 0}, {app, 1}}};
    out = decorate(&only_app, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
    CHECK_STR(out, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
                   "{\"role\":\"user\",\"content\":\"Be brief.\"}]}");
    free(out);
}

/* Fifteen prepended messages keep their configured order. */
static void test_many(void)
{
    struct prompt_decorator_message pre[PROMPT_DECORATOR_MAX_PROMPTS];
    char texts[PROMPT_DECORATOR_MAX_PROMPTS][8];
    for (int i = 0; i < PROMPT_DECORATOR_MAX_PROMPTS; i++) {
        snprintf(texts[i], sizeof(texts[i]), "p%d", i);
        pre[i] = (struct prompt_decorator_message){PROMPT_ROLE_SYSTEM, texts[i]};
    }
    struct prompt_decorator_conf c = {.prompts = {{pre, PROMPT_DECORATOR_MAX_PROMPTS}, {0}}};
    cJSON *body = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"last\"}]}");
    CHECK_INT(prompt_decorator_apply(&c, body), 0);
    cJSON *messages = cJSON_GetObjectItem(body, "messages");
    CHECK_INT(cJSON_GetArraySize(messages), PROMPT_DECORATOR_MAX_PROMPTS + 1);
    int i = 0, in_order = 1;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const char *content = cJSON_GetObjectItem(m, "content")->valuestring;
        if (i < PROMPT_DECORATOR_MAX_PROMPTS && strcmp(content, texts[i]) != 0) in_order = 0;
        i++;
    }
    CHECK(in_order);
    CHECK_STR(cJSON_GetArrayItem(messages, PROMPT_DECORATOR_MAX_PROMPTS)->child->next->valuestring,
              "last");
    cJSON_Delete(body);
}

static void test_not_chat(void)
{
    struct prompt_decorator_message pre[] = {{PROMPT_ROLE_SYSTEM, "s"}};
    struct prompt_decorator_conf c = {.prompts = {{pre, 1}, {0}}};
    CHECK(decorate(&c, "{\"prompt\":\"hello\"}") == NULL);
    CHECK(decorate(&c, "{\"messages\":[]}") == NULL);
    CHECK(decorate(&c, "{\"messages\":\"{template://x}\"}") == NULL);
    CHECK(decorate(&c, "[1,2]") == NULL);
    CHECK_STR(prompt_decorator_roles[PROMPT_ROLE_USER], "user");
}

int main(void)
{
    test_order();
    test_many();
    test_not_chat();
    return gw_test_done("test_prompt_decorator");
}
