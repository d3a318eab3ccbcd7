/*
 * libFuzzer driver for the config loader: any bytes must load or fail with
 * errors, never crash, leak or hang.
 */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_errlist errs = {0};
    struct gw_config *cfg = gw_config_load_string("fuzz.yml", (const char *)data, size, &errs);
    if (cfg) {
        cJSON_Delete(gw_config_to_json(cfg));
        gw_config_free(cfg);
    }
    gw_errlist_free(&errs);
    return 0;
}
