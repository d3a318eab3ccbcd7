/*
 * The process: settings, the current snapshot (the main thread's reference),
 * the workers. Owned by the main thread; workers only get messages.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <time.h>

#include "settings.h"
#include "snapshot.h"
#include "worker.h"

struct event_base;
struct evhttp;

struct gw_server {
    struct gw_settings settings;
    struct event_base *base;
    struct evhttp *admin;
    struct gw_snapshot *snapshot;
    struct gw_worker *workers;
    unsigned n_workers;
    time_t started;
    uint64_t generation;
    int stopping;
};

int gw_admin_start(struct gw_server *srv);

#endif
