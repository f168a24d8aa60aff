/* sdnotify: tells systemd (Type=notify) the service's state: ready, reloading, stopping, watchdog. */
#include "b2bd/sdnotify.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "b2bd/util.h"

/* Process-wide by nature (one service manager per process): the watchdog period, read
 * once from the environment (-1: not read yet, 0: no watchdog), and the last ping. */
static atomic_llong watchdog_ms = -1;
static atomic_llong last_ping_ms;

void sdnotify_ready(const char *status)
{
    char msg[256];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status ? status : "running");
    sd_notify(0, msg);
}

void sdnotify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[128];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
    sd_notify(0, msg);
}

void sdnotify_status(const char *status)
{
    char msg[256];
    snprintf(msg, sizeof msg, "STATUS=%s", status);
    sd_notify(0, msg);
}

void sdnotify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void sdnotify_watchdog(void)
{
    long long period = atomic_load(&watchdog_ms);
    if (period < 0) {
        uint64_t usec = 0;
        period = sd_watchdog_enabled(0, &usec) > 0 ? (long long)(usec / 1000) : 0;
        atomic_store(&watchdog_ms, period);
    }
    if (period <= 0)
        return;
    long long now = util_now_ms();
    if (now - atomic_load(&last_ping_ms) < period / 4)
        return;
    atomic_store(&last_ping_ms, now);
    sd_notify(0, "WATCHDOG=1");
}
