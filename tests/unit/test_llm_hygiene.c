/* gw_json_print gives its integer nodes back with their whole type (flag
 * bits included), and a reply's empty "model" is not taken as the model
 * the client is told about. */
#include <event2/buffer.h>

#include "gw_arena.h"
#include "gw_test.h"
#include "llm/llm.h"

static void test_print_keeps_flags(void)
{
    struct gw_arena *a = gw_arena_new(0);
    cJSON *o = cJSON_CreateObject();
    /* The key is a literal cJSON must not free: cJSON_StringIsConst. */
    cJSON *n = cJSON_CreateNumber(42);
    cJSON_AddItemToObjectCS(o, "n", n);
    cJSON *f = cJSON_CreateNumber(1.5);
    cJSON_AddItemToObjectCS(o, "f", f);
    int n_type = n->type, f_type = f->type;
    CHECK(n_type & cJSON_StringIsConst);
    size_t len;
    char *s = gw_json_print(a, o, &len);
    CHECK_STR(s, "{\"n\":42,\"f\":1.5}");
    CHECK_INT(len, strlen("{\"n\":42,\"f\":1.5}"));
    CHECK_INT(n->type, n_type);
    CHECK_INT(f->type, f_type);
    CHECK(n->valuestring == NULL);
    CHECK(cJSON_IsNumber(n) && n->valueint == 42);
    cJSON_Delete(o); /* ASan: no free of the literal keys */
    gw_arena_free(a);
}

static void test_empty_model_ignored(void)
{
    struct gw_arena *a = gw_arena_new(0);
    struct gw_llm_options none = {0};
    struct gw_llm_call c;
    gw_llm_call_init(&c, a, gw_llm_provider_find("openai"), GW_LLM_CHAT, &none, "asked");
    c.stream = 1;
    cJSON *reply = cJSON_Parse("{\"id\":\"r1\",\"model\":\"\",\"choices\":[{\"index\":0,"
                               "\"message\":{\"role\":\"assistant\",\"content\":\"hi\"},"
                               "\"finish_reason\":\"stop\"}]}");
    struct evbuffer *out = evbuffer_new();
    gw_llm_reply_to_chunks(&c, reply, out);
    CHECK(c.response_model == NULL);
    evbuffer_add(out, "", 1);
    const char *text = (const char *)evbuffer_pullup(out, -1);
    CHECK(strstr(text, "\"model\":\"asked\"") != NULL);
    CHECK(strstr(text, "\"model\":\"\"") == NULL);
    evbuffer_free(out);
    cJSON_Delete(reply);
    gw_arena_free(a);
}

int main(void)
{
    test_print_keeps_flags();
    test_empty_model_ignored();
    return gw_test_done("test_llm_hygiene");
}
