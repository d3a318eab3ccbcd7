/* systemd's notify protocol (Type=notify), without libsystemd: one datagram
 * to $NOTIFY_SOCKET. A no-op when not started by systemd. */
#ifndef GW_SDNOTIFY_H
#define GW_SDNOTIFY_H
void gw_sd_notify(const char *state);
void gw_sd_notify_reloading(void); /* RELOADING=1 with MONOTONIC_USEC */
#endif
