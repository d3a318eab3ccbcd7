/*
 * The process: settings, the current snapshot (the main thread's reference),
 * the workers. Owned by the main thread; workers only get messages.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdint.h>
#include <time.h>

#include "settings.h"
#include "snapshot.h"
#include "worker.h"

struct event;
struct event_base;
struct evconnlistener;
struct evhttp;

struct gw_server {
    struct gw_settings settings;
    struct event_base *base;
    struct evhttp *admin;
    /* The admin listener rests, as the workers' do, when accept() fails
     * for want of descriptors (admin.c). */
    struct evconnlistener *admin_listener;
    struct event *admin_resume;
    uint64_t admin_accept_logged_us;
    struct gw_snapshot *snapshot;
    struct gw_worker *workers;
    unsigned n_workers;
    uint64_t started_us; /* gw_now_us() (monotonic): uptime survives clock steps */
    uint64_t generation;
    int stopping;
    struct event *stop_check; /* while stopping: have the workers all ended? */
};

int gw_admin_start(struct gw_server *srv);
void gw_admin_stop(struct gw_server *srv);

#endif
