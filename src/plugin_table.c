/*
 * The one table of plugins. Adding a plugin is adding its folder under
 * plugins/ and one line here.
 */
#include <string.h>

#include "gw_plugin.h"

extern const struct gw_plugin gw_plugin_correlation_id;
extern const struct gw_plugin gw_plugin_ai_prompt_template;
extern const struct gw_plugin gw_plugin_ai_prompt_decorator;
extern const struct gw_plugin gw_plugin_ai_prompt_guard;
extern const struct gw_plugin gw_plugin_ai_proxy;
extern const struct gw_plugin gw_plugin_rate_limiting;

const struct gw_plugin *const gw_plugins[] = {
    &gw_plugin_correlation_id,
    &gw_plugin_ai_prompt_template,
    &gw_plugin_ai_prompt_decorator,
    &gw_plugin_ai_prompt_guard,
    &gw_plugin_ai_proxy,
    &gw_plugin_rate_limiting,
    NULL,
};

const struct gw_plugin *gw_plugin_find(const char *name)
{
    for (size_t i = 0; gw_plugins[i]; i++)
        if (strcmp(gw_plugins[i]->name, name) == 0) return gw_plugins[i];
    return NULL;
}
