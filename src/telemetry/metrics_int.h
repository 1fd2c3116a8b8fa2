/* telemetry/metrics_int.h — the registry's structures, shared by the
 * registry (metrics.c) and the Prometheus renderer (prom.c). */
#ifndef EK_TELEMETRY_METRICS_INT_H
#define EK_TELEMETRY_METRICS_INT_H

#include <pthread.h>
#include <stdint.h>

#include "embedkit_pipeline.h"

#define EK_MAX_METRICS 96
#define EK_METRIC_NAME_MAX 96
#define EK_LABEL_MAX 32
#define EK_LABEL_VALUE_MAX 64

struct ek_series {
    const struct ek_metric_family *metric;
    char values[EK_METRIC_MAX_LABELS][EK_LABEL_VALUE_MAX];
    uint64_t value_bits;                          /* counter / gauge (double) */
    uint64_t buckets[EK_METRIC_MAX_BUCKETS + 1];  /* per bucket, last = +Inf */
    uint64_t sum_bits;                            /* histogram sum (double) */
};

struct ek_metric_family {
    ek_metric_kind kind;
    char name[EK_METRIC_NAME_MAX];
    char help[256];
    int n_labels;
    char labels[EK_METRIC_MAX_LABELS][EK_LABEL_MAX];
    int n_buckets;
    double bounds[EK_METRIC_MAX_BUCKETS];
    int max_series;
    int n_series;          /* published with release ordering */
    int overflowed;
    ek_series *series;     /* max_series + 1 (the "other" series last) */
    pthread_mutex_t mu;    /* creating series */
};

struct ek_metrics {
    pthread_mutex_t mu;
    ek_metric_family *metrics[EK_MAX_METRICS];
    int n;
};

double ek_series_bits_value(const uint64_t *bits);

#endif
