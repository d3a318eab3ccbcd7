/*
 * ai-prompt-template's logic: cutting templates into segments at load and
 * rendering a request, with Kong's error messages (templater.lua and
 * render-prompt-template.lua). No request or config-loader dependency.
 *
 * One deliberate difference from Kong: a property value that itself
 * contains "{{x}}" is not rescanned, so it is neither substituted again nor
 * reported as a missing parameter.
 */
#include <stdio.h>
#include <string.h>

#include "gw_arena.h"
#include "gw_json.h"
#include "prompt_template.h"

static const char template_prefix[] = "{template://";
#define TEMPLATE_PREFIX_LEN (sizeof(template_prefix) - 1)

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Length of a {{name}} placeholder starting at s[i] (0 if there is none),
 * with Kong's pattern {{([%w_]+)}}: no spaces inside the braces. */
static size_t placeholder_at(const char *s, size_t n, size_t i, size_t *name_len)
{
    if (i + 4 >= n || s[i] != '{' || s[i + 1] != '{') return 0;
    size_t j = i + 2;
    while (j < n && is_name_char(s[j]))
        j++;
    if (j == i + 2 || j + 1 >= n || s[j] != '}' || s[j + 1] != '}') return 0;
    *name_len = j - (i + 2);
    return j + 2 - i;
}

/* Walks the template; with t->segs set, records segments and params too.
 * Returns the number of placeholders. */
static size_t scan(struct gw_arena *a, struct prompt_template *t)
{
    const char *s = t->template;
    size_t n = strlen(s), count = 0, lit = 0, name_len, len;
    for (size_t i = 0; i < n;) {
        if (!(len = placeholder_at(s, n, i, &name_len))) {
            i++;
            continue;
        }
        count++;
        if (t->segs) {
            if (i > lit)
                t->segs[t->n_segs++] =
                    (struct prompt_template_segment){.text = s + lit, .len = i - lit, .param = -1};
            size_t p = 0;
            while (p < t->n_params && !(strlen(t->params[p]) == name_len &&
                                        !memcmp(t->params[p], s + i + 2, name_len)))
                p++;
            if (p == t->n_params) t->params[t->n_params++] = gw_strndup(a, s + i + 2, name_len);
            t->segs[t->n_segs++] = (struct prompt_template_segment){
                .text = t->params[p], .len = name_len, .param = (int)p};
        }
        i += len;
        lit = i;
    }
    if (t->segs && n > lit)
        t->segs[t->n_segs++] =
            (struct prompt_template_segment){.text = s + lit, .len = n - lit, .param = -1};
    return count;
}

/* Concatenates the segments with values[p] (raw strings, escaped here). */
static char *concat(struct gw_arena *a, const struct prompt_template *t, const char **values,
                    size_t *len_out)
{
    size_t len = 0;
    size_t *vlen = gw_alloc(a, (t->n_params + 1) * sizeof(*vlen));
    for (size_t p = 0; p < t->n_params; p++)
        vlen[p] = gw_json_escaped_len(values[p]);
    for (size_t i = 0; i < t->n_segs; i++)
        len += t->segs[i].param < 0 ? t->segs[i].len : vlen[t->segs[i].param];
    char *buf = gw_alloc(a, len + 1), *o = buf;
    for (size_t i = 0; i < t->n_segs; i++) {
        if (t->segs[i].param < 0) {
            memcpy(o, t->segs[i].text, t->segs[i].len);
            o += t->segs[i].len;
        } else {
            o = gw_json_escape_to(o, values[t->segs[i].param]);
        }
    }
    *o = '\0';
    *len_out = len;
    return buf;
}

/* A JSON object, or NULL: the whole text (a property that closes the
 * object early must not leave the rest behind unnoticed) and no key twice. */
static cJSON *parse_object(const char *s, size_t len)
{
    const char *why;
    size_t at;
    cJSON *json = gw_json_parse_strict(s, len, &why, &at);
    if (json && !cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}

int prompt_template_compile(struct gw_arena *a, struct prompt_template *t, char *err, size_t errlen)
{
    t->segs = NULL;
    t->n_segs = t->n_params = 0;
    size_t count = scan(a, t);
    t->segs = gw_calloc(a, (2 * count + 1) * sizeof(*t->segs));
    t->params = gw_calloc(a, (count + 1) * sizeof(*t->params));
    scan(a, t);
    /* Every value is a string escaped for JSON, so "0" (valid inside a
     * string and as a number) shows whether the template can render to
     * JSON at all: better a config error now than a 400 on every call. */
    const char **zeros = gw_alloc(a, (t->n_params + 1) * sizeof(*zeros));
    for (size_t p = 0; p < t->n_params; p++)
        zeros[p] = "0";
    size_t len;
    const char *text = concat(a, t, zeros, &len);
    cJSON *json = parse_object(text, len);
    if (!json) {
        snprintf(err, errlen, "does not render to a JSON object (with every placeholder as 0)");
        return -1;
    }
    cJSON_Delete(json);
    return 0;
}

/* The NAME in "{template://NAME}", or NULL if ref is no such reference. */
static const char *reference_name(const cJSON *ref, size_t *len)
{
    if (!cJSON_IsString(ref)) return NULL;
    const char *s = ref->valuestring;
    size_t n = strlen(s);
    if (n < TEMPLATE_PREFIX_LEN + 1 || memcmp(s, template_prefix, TEMPLATE_PREFIX_LEN) != 0 ||
        s[n - 1] != '}')
        return NULL;
    *len = n - TEMPLATE_PREFIX_LEN - 1;
    return s + TEMPLATE_PREFIX_LEN;
}

/* Lua's type() names, as Kong's message shows them (a JSON null is a
 * "userdata" there; "null" says more). */
static const char *lua_type_name(const cJSON *v)
{
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNull(v)) return "null";
    return "table";
}

/* Looks up the template's values in `properties`: every property must be a
 * string (as Kong checks first), then every placeholder must have one. */
static int collect_values(const struct prompt_template *t, const cJSON *props, struct gw_arena *a,
                          const char **values, const char **err)
{
    if (props && !cJSON_IsObject(props) && !(cJSON_IsArray(props) && !props->child)) {
        *err = "properties must be an object";
        return -1;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, props)
    {
        if (!cJSON_IsString(v)) {
            *err = gw_sprintf(a, "property values must be a string, got %s", lua_type_name(v));
            return -1;
        }
    }
    char *missing = NULL;
    for (size_t p = 0; p < t->n_params; p++) {
        v = cJSON_GetObjectItemCaseSensitive(props, t->params[p]);
        if (v) {
            values[p] = v->valuestring;
            continue;
        }
        missing = missing ? gw_sprintf(a, "%s, [%s]", missing, t->params[p])
                          : gw_sprintf(a, "missing template parameters: [%s]", t->params[p]);
    }
    if (missing) {
        *err = missing;
        return -1;
    }
    return 0;
}

int prompt_template_render(const struct prompt_template_conf *conf, const cJSON *body,
                           struct gw_arena *a, cJSON **out, const char **err)
{
    *out = NULL;
    if (!cJSON_IsObject(body)) {
        *err = "this LLM route only supports application/json requests";
        return -1;
    }
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(body, "messages");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (messages && prompt) {
        *err = "cannot run 'messages' and 'prompt' templates at the same time";
        return -1;
    }
    if (!messages && !prompt) {
        *err = "only 'llm/v1/chat' and 'llm/v1/completions' formats are supported for templating";
        return -1;
    }
    size_t name_len;
    const char *name = reference_name(messages ? messages : prompt, &name_len);
    if (!name) {
        if (conf->allow_untemplated_requests) return 0;
        *err = "this LLM route only supports templated requests";
        return -1;
    }
    const struct prompt_template *t = NULL, *all = conf->templates.v;
    for (size_t i = 0; i < conf->templates.n && !t; i++)
        if (strlen(all[i].name) == name_len && !memcmp(all[i].name, name, name_len)) t = &all[i];
    if (!t) {
        *err = gw_sprintf(a, "could not find template name [%.*s]", (int)name_len, name);
        return -1;
    }
    const char **values = gw_alloc(a, (t->n_params + 1) * sizeof(*values));
    if (collect_values(t, cJSON_GetObjectItemCaseSensitive(body, "properties"), a, values, err) < 0)
        return -1;
    size_t len;
    const char *text = concat(a, t, values, &len);
    /* Values cannot break out of a string, but a placeholder written
     * outside quotes ("max_tokens": {{n}}) can still get a non-number. */
    if (!(*out = parse_object(text, len))) {
        *err = gw_sprintf(a, "template [%s] did not render to a JSON object", t->name);
        return -1;
    }
    return 1;
}
