/*
 * sluice: command line, signals, reload and shutdown. The main thread owns
 * the config and the admin listener; workers serve traffic.
 */
#include <malloc.h>
#ifdef SLUICE_WITH_MIMALLOC
#include <mimalloc.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>
#include <openssl/crypto.h>
#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <yaml.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "gw_arena.h"
#include "gw_log.h"
#include "json_alloc.h"
#include "sdnotify.h"
#include "server.h"
#include "tls.h"
#include "tls_tickets.h"
#include "sluice.h"

/* How often the main loop looks whether every worker has ended its drain. */
#define STOP_CHECK_US 20000

/* kong.yml and the TLS files, read and checked together: a reload takes
 * both or neither, and every error of both is logged. */
static struct gw_snapshot *load_snapshot(struct gw_server *srv, int reloading)
{
    const char *file = srv->settings.config_file;
    struct gw_errlist errs = {0};
    struct gw_config *cfg = gw_config_load_file(file, reloading, &errs);
    SSL_CTX *tls = gw_tls_context_load(&srv->settings, cfg, &errs);
    if (!cfg || errs.n) {
        for (size_t i = 0; i < errs.n; i++)
            gw_error("%s", errs.v[i]);
        gw_error("%s%s: %zu error%s: not loaded", file,
                 srv->settings.ssl_cert ? " with --ssl-cert" : "", errs.n, errs.n == 1 ? "" : "s");
        gw_errlist_free(&errs);
        if (cfg) gw_config_free(cfg);
        SSL_CTX_free(tls);
        return NULL;
    }
    struct gw_snapshot *snap = gw_snapshot_build(cfg, ++srv->generation);
    if (tls) {
        snap->tls = tls;
        gw_arena_cleanup(cfg->arena, (gw_cleanup_fn)SSL_CTX_free, tls);
    }
    if (tls || cfg->n_certificates) {
        snap->tls_info = gw_tls_describe(tls, cfg);
        gw_arena_cleanup(cfg->arena, (gw_cleanup_fn)cJSON_Delete, snap->tls_info);
    }
    return snap;
}

static void reload(struct gw_server *srv)
{
    gw_sd_notify_reloading();
    gw_notice("reloading %s", srv->settings.config_file);
    struct gw_snapshot *snap = load_snapshot(srv, 1);
    if (!snap) {
        gw_error("reload refused: still serving config sha256=%s", srv->snapshot->cfg->sha256);
        gw_sd_notify("READY=1");
        return;
    }
    for (unsigned i = 0; i < srv->n_workers; i++)
        gw_worker_post_snapshot(&srv->workers[i], snap);
    struct gw_snapshot *old = srv->snapshot;
    srv->snapshot = snap;
    gw_snapshot_unref(old);
    gw_notice("config reloaded: sha256=%s generation=%llu%s", snap->cfg->sha256,
              (unsigned long long)snap->generation, snap->tls ? " (certificates read again)" : "");
    gw_sd_notify("READY=1");
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct gw_server *srv = arg;
    if (sig == SIGHUP) {
        if (!srv->stopping) reload(srv);
        return;
    }
    if (sig == SIGUSR1 || sig == SIGUSR2) {
        /* nginx's log reopen and binary upgrade: neither applies (logs go
         * to stderr), and the default action would kill the process with
         * no drain. */
        gw_notice("received %s: ignored (logs go to stderr; SIGHUP reloads, SIGTERM stops)",
                  sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
        return;
    }
    if (srv->stopping) return;
    srv->stopping = 1;
    gw_notice("received %s: draining (at most %ds)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
              srv->settings.drain_timeout);
    gw_sd_notify("STOPPING=1");
    for (unsigned i = 0; i < srv->n_workers; i++)
        gw_worker_post_drain(&srv->workers[i]);
    /* This loop keeps running while the workers drain: the admin listener
     * answers (/status shows the drain), a probe does not hang on it. */
    struct timeval every = {0, STOP_CHECK_US};
    event_add(srv->stop_check, &every);
}

static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct gw_server *srv = arg;
    for (unsigned i = 0; i < srv->n_workers; i++)
        if (!atomic_load(&srv->workers[i].exited)) return;
    event_base_loopbreak(srv->base);
}

static void tickets_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    gw_tls_tickets_sweep();
}

static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        gw_error("cannot write pid file %s", path);
        return -1;
    }
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
    return 0;
}

/* Which malloc the process runs on, for the start-up line: a bug report or
 * a benchmark can say which build it came from. */
static const char *allocator_name(void)
{
#ifdef SLUICE_WITH_MIMALLOC
    static char name[32];
    int v = mi_version(); /* e.g. 209 for 2.0.9 */
    snprintf(name, sizeof(name), "mimalloc %d.%d.%d", v / 100, v / 10 % 10, v % 10);
    return name;
#elif defined(__SANITIZE_ADDRESS__)
    return "AddressSanitizer's";
#else
    return "glibc";
#endif
}

/* -V: the version, and what it runs on, for a bug report (as nginx -V):
 * the libraries' versions as loaded, not as compiled against. */
static void print_version(void)
{
    /* hiredis 0.14 has no run-time version: the one compiled against. */
    char pcre[32] = "";
    pcre2_config(PCRE2_CONFIG_VERSION, pcre);
    printf("sluice %s\n", SLUICE_VERSION);
    printf("libcurl %s, %s, libevent %s, cJSON %s, hiredis %d.%d.%d, libyaml %s, PCRE2 %s, "
           "malloc %s\n",
           curl_version_info(CURLVERSION_NOW)->version, OpenSSL_version(OPENSSL_VERSION),
           event_get_version(), cJSON_Version(), HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
           yaml_get_version_string(), pcre, allocator_name());
}

int main(int argc, char **argv)
{
    static struct gw_server srv;
    gw_json_alloc_init(); /* before any cJSON allocation */
    int rc = gw_settings_parse(&srv.settings, argc, argv);
    if (rc > 0 && srv.settings.show_version) print_version();
    if (rc) return rc > 0 ? 0 : 2;
    gw_log_threshold = (enum gw_log_level)srv.settings.log_level;

    if (srv.settings.check_only) {
        struct gw_errlist errs = {0};
        struct gw_config *cfg = gw_config_load_file(srv.settings.config_file, 0, &errs);
        SSL_CTX *tls = gw_tls_context_load(&srv.settings, cfg, &errs);
        SSL_CTX_free(tls);
        if (errs.n && cfg) {
            gw_config_free(cfg); /* the TLS files are part of what -t checks */
            cfg = NULL;
        }
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.v[i]);
        gw_errlist_free(&errs);
        if (!cfg) {
            fprintf(stderr, "configuration %s is invalid\n", srv.settings.config_file);
            return 1;
        }
        fprintf(stderr, "configuration %s is ok\n", srv.settings.config_file);
        gw_config_free(cfg);
        return 0;
    }

#ifndef SLUICE_WITH_MIMALLOC
    /* Fixed malloc thresholds: glibc's adaptive ones made the heap shrink
     * and regrow around each request's cJSON trees and bodies (perf on the
     * ai-proxy path: malloc_consolidate, sysmalloc and page faults). A few
     * MB kept after a peak is the price. */
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
#endif
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        gw_error("curl_global_init failed");
        return 1;
    }
    evthread_use_pthreads();

    srv.snapshot = load_snapshot(&srv, 0);
    if (!srv.snapshot) return 1;
    srv.started_us = gw_now_us();
    srv.base = gw_oom_check(event_base_new());

    srv.n_workers = (unsigned)srv.settings.workers;
    srv.workers = gw_oom_check(calloc(srv.n_workers, sizeof(*srv.workers)));
    for (unsigned i = 0; i < srv.n_workers; i++)
        if (gw_worker_init(&srv.workers[i], i, &srv.settings, srv.snapshot) < 0) return 1;
    if (gw_admin_start(&srv) < 0) return 1;
    if (srv.settings.pid_file && write_pid_file(srv.settings.pid_file) < 0) return 1;

    srv.stop_check = gw_oom_check(event_new(srv.base, -1, EV_PERSIST, stop_check_cb, &srv));
    struct event *sig_hup = gw_oom_check(evsignal_new(srv.base, SIGHUP, signal_cb, &srv));
    struct event *sig_term = gw_oom_check(evsignal_new(srv.base, SIGTERM, signal_cb, &srv));
    struct event *sig_int = gw_oom_check(evsignal_new(srv.base, SIGINT, signal_cb, &srv));
    struct event *sig_usr1 = gw_oom_check(evsignal_new(srv.base, SIGUSR1, signal_cb, &srv));
    struct event *sig_usr2 = gw_oom_check(evsignal_new(srv.base, SIGUSR2, signal_cb, &srv));
    event_add(sig_hup, NULL);
    event_add(sig_term, NULL);
    event_add(sig_int, NULL);
    event_add(sig_usr1, NULL);
    event_add(sig_usr2, NULL);
    /* Ticket keys past their life are wiped even when no handshake comes
     * to notice (tls_tickets.c). */
    struct event *tickets_sweep =
        gw_oom_check(event_new(srv.base, -1, EV_PERSIST, tickets_sweep_cb, NULL));
    struct timeval sweep_every = {gw_tls_tickets_sweep_every(), 0};
    event_add(tickets_sweep, &sweep_every);

    /* From here on no event loop writes to stderr itself (gw_log.h). */
    if (gw_log_async_start() < 0) gw_warn("no log writer thread: log lines are written inline");
    for (unsigned i = 0; i < srv.n_workers; i++)
        if (gw_worker_start(&srv.workers[i]) < 0) {
            gw_error("cannot start worker %u", i);
            /* The workers already running stop as on SIGTERM before the
             * process ends under them. */
            for (unsigned j = 0; j < i; j++)
                gw_worker_post_drain(&srv.workers[j]);
            for (unsigned j = 0; j < i; j++)
                gw_worker_join(&srv.workers[j]);
            gw_log_async_stop();
            gw_admin_stop(&srv);
            if (srv.settings.pid_file) unlink(srv.settings.pid_file);
            return 1;
        }
    char where[GW_LISTEN_TEXT_MAX];
    for (size_t i = 0; i < srv.settings.n_proxy; i++)
        gw_notice("proxy listening on %s%s", gw_listen_text(&srv.settings.proxy[i], where),
                  srv.settings.proxy[i].ssl ? " (TLS)" : "");
    if (!srv.settings.admin_off)
        gw_notice("admin listening on %s", gw_listen_text(&srv.settings.admin, where));
    gw_notice("sluice %s started: %u workers, config %s sha256=%s, malloc %s", SLUICE_VERSION,
              srv.n_workers, srv.snapshot->cfg->file, srv.snapshot->cfg->sha256, allocator_name());
    gw_sd_notify("READY=1");

    event_base_dispatch(srv.base);

    /* The workers have drained and ended (stop_check_cb): nothing waits. */
    for (unsigned i = 0; i < srv.n_workers; i++)
        gw_worker_join(&srv.workers[i]);
    gw_notice("stopped");
    gw_log_async_stop();
    gw_admin_stop(&srv);
    /* Freeing the signal events puts back the default actions: a second
     * SIGTERM (or a logrotate's SIGUSR1) from here on would end the process
     * by signal (a failed stop for systemd) with the pid file left behind.
     * Blocked in this thread, and ignored for any thread libcurl's resolver
     * may have left; pending ones die with the process. */
    static const int handled[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        sigaddset(&stop_signals, handled[i]);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    event_free(sig_hup);
    event_free(sig_term);
    event_free(sig_int);
    event_free(sig_usr1);
    event_free(sig_usr2);
    event_free(srv.stop_check);
    event_free(tickets_sweep);
    gw_tls_tickets_wipe();
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        signal(handled[i], SIG_IGN);
    event_base_free(srv.base);
    gw_snapshot_unref(srv.snapshot);
    free(srv.workers);
    if (srv.settings.pid_file) unlink(srv.settings.pid_file);
    curl_global_cleanup();
    return 0;
}
