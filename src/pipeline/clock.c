/* pipeline/clock.c — the system clock behind ek_clock.  Everything that needs
 * time takes an ek_clock so tests can drive state machines (breaker, rate
 * limiter, deadlines, retry backoff) with a fake one. */
#include <time.h>

#include "embedkit_pipeline.h"

static int64_t mono_now(void *arg) {
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void mono_sleep(void *arg, int64_t ns) {
    (void)arg;
    if (ns <= 0) return;
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int64_t wall_now(void *arg) {
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

ek_clock ek_clock_system(void) {
    ek_clock c = {mono_now, mono_sleep, wall_now, NULL};
    return c;
}
