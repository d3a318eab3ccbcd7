/* Everything a plugin needs, in one include. */
#ifndef SLUICE_H
#define SLUICE_H

#include <event2/buffer.h>
#include <event2/http.h>

#include "gw_arena.h"
#include "gw_entities.h"
#include "gw_headers.h"
#include "gw_log.h"
#include "gw_num_text.h"
#include "gw_plugin.h"
#include "gw_request.h"
#include "gw_schema.h"

#define SLUICE_VERSION "0.1.0"

#endif
