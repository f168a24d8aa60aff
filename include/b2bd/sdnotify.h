/* sdnotify: tells systemd (Type=notify) the service's state: ready, reloading, stopping, watchdog. */
#ifndef B2BD_SDNOTIFY_H
#define B2BD_SDNOTIFY_H

/* All are no-ops when not started by systemd (no NOTIFY_SOCKET). */

/* READY=1, with a STATUS= line. */
void sdnotify_ready(const char *status);

/* RELOADING=1 (with MONOTONIC_USEC=, as systemd 253's Type=notify-reload wants): a
 * reload has begun; sdnotify_ready() ends it. */
void sdnotify_reloading(void);

/* STATUS= only (e.g. "waiting for PostgreSQL"). */
void sdnotify_status(const char *status);

/* STOPPING=1. */
void sdnotify_stopping(void);

/* WATCHDOG=1 when WatchdogSec= is set, at most every quarter of its period: call it
 * from a loop on each round that shows the loop is alive. */
void sdnotify_watchdog(void);

#endif
