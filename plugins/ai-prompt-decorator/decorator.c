/*
 * ai-prompt-decorator's rewrite of a chat body, without request or config
 * loader dependencies.
 */
#include <stdlib.h>

#include "prompt_decorator.h"

const char *const prompt_decorator_roles[] = {"system", "assistant", "user", NULL};

/* {"role": ..., "content": ...} built from references: neither the keys nor
 * the values are copied, and cJSON_Delete leaves them alone. */
static cJSON *message_ref(const struct prompt_decorator_message *m)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON *role = cJSON_CreateStringReference(prompt_decorator_roles[m->role]);
    cJSON *content = cJSON_CreateStringReference(m->content);
    if (!obj || !role || !content) abort(); /* out of memory, as gw_alloc does */
    cJSON_AddItemToObjectCS(obj, "role", role);
    cJSON_AddItemToObjectCS(obj, "content", content);
    return obj;
}

int prompt_decorator_apply(const struct prompt_decorator_conf *conf, cJSON *body)
{
    cJSON *messages = cJSON_GetObjectItemCaseSensitive(body, "messages");
    if (!cJSON_IsArray(messages) || !messages->child) return -1;
    const struct prompt_decorator_message *pre = conf->prompts.prepend.v;
    const struct prompt_decorator_message *app = conf->prompts.append.v;
    /* The array object stays (whoever holds it still sees the messages);
     * its items move aside and back, O(1) each. cJSON_InsertItemInArray is
     * not used: inserting at the head is unreliable in cJSON 1.7.15. */
    if (conf->prompts.prepend.n) {
        cJSON orig_list = {.type = cJSON_Array}, *orig = &orig_list; /* no allocation */
        while (messages->child)
            cJSON_AddItemToArray(orig, cJSON_DetachItemViaPointer(messages, messages->child));
        for (size_t i = 0; i < conf->prompts.prepend.n; i++)
            cJSON_AddItemToArray(messages, message_ref(&pre[i]));
        while (orig->child)
            cJSON_AddItemToArray(messages, cJSON_DetachItemViaPointer(orig, orig->child));
    }
    for (size_t i = 0; i < conf->prompts.append.n; i++)
        cJSON_AddItemToArray(messages, message_ref(&app[i]));
    return 0;
}
