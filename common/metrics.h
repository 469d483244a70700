/* metrics.h - a registry of metrics and its Prometheus text exposition.
 *
 * A registry holds families (counters, gauges, histograms), each with a
 * name, a help text and fixed label names; a family has one child (a time
 * series, or a histogram's set of them) per tuple of label values. Updating
 * a child is cheap and safe from any thread (atomics, no lock); looking one
 * up by its label values takes the family's lock, so hot paths keep the
 * pointer. A family refuses more than max_children children (the refusals
 * are counted in edgespool_metrics_series_refused_total), so bad input that
 * ends up in a label value cannot grow memory without bound.
 *
 * Collectors are callbacks run when the registry is rendered: they set
 * gauges and counters from state that already exists elsewhere.
 *
 * The output is the text format 0.0.4 (Content-Type ES_METRICS_CONTENT_TYPE),
 * families in registration order, children in creation order.
 */
#ifndef ES_METRICS_H
#define ES_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ES_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define ES_METRICS_LABELS_MAX	8
#define ES_METRICS_BUCKETS_MAX	32

typedef struct es_metrics es_metrics;
typedef struct es_metric_family es_metric_family;
typedef struct es_metric es_metric;

typedef enum es_metric_type {
	ES_METRIC_COUNTER,
	ES_METRIC_GAUGE,
	ES_METRIC_HISTOGRAM,
} es_metric_type;

/* What a family is. labels: comma-separated label names ("method,route"),
 * NULL or "" for none. buckets: a histogram's upper bounds, strictly
 * increasing and finite (+Inf is implied); ignored for other types. */
typedef struct es_metric_desc {
	es_metric_type type;
	const char *name, *help, *labels;
	const double *buckets;
	size_t nbuckets;
} es_metric_desc;

/* A collector: run at every render, before anything is written. */
typedef void (*es_metrics_collect_fn)(void *ctx);

/* A registry whose families take at most max_children children each (0:
 * 1000). ES_ENOMEM. */
es_err es_metrics_new(size_t max_children, es_metrics **out);
/* Frees the registry and every family and child. NULL ok. No other thread
 * may use it any more. */
void es_metrics_free(es_metrics *m);

/* Adds a family. ES_EINVAL (logged) for a bad or taken name, bad label
 * names (or "le" on a histogram), more than ES_METRICS_LABELS_MAX labels,
 * bad buckets; ES_ENOMEM. A family without labels gets its one child at
 * once (es_metric_family_child(f) with no values). *out is owned by m. */
es_err es_metrics_add(es_metrics *m, const es_metric_desc *d, es_metric_family **out);

/* Adds a collector (before the registry is rendered from other threads). */
es_err es_metrics_collector(es_metrics *m, es_metrics_collect_fn fn, void *ctx);

/* The child for the family's label values (as many as it has labels, in
 * order; NULL values count as ""), made on first use. NULL when the family
 * is at its limit of children or memory is short: the es_metric_* calls
 * accept NULL and do nothing. Any thread. */
es_metric *es_metric_child(es_metric_family *f, ...);
es_metric *es_metric_childv(es_metric_family *f, const char *const *values);

/* Counters and gauges. es_metric_add on a counter ignores a negative v.
 * es_metric_set is for gauges, and for counters that mirror a count kept
 * elsewhere (a collector). Any thread; NULL ok. */
void es_metric_inc(es_metric *c);
void es_metric_add(es_metric *c, double v);
void es_metric_set(es_metric *c, double v);
double es_metric_value(const es_metric *c);

/* Histograms: counts v into its bucket and adds it to the sum. */
void es_metric_observe(es_metric *h, double v);
/* A histogram's count of observations (for tests). */
uint64_t es_metric_count(const es_metric *h);

/* Adds process_resident_memory_bytes and process_start_time_seconds (the
 * time of this call), read from /proc at each render. ES_EINVAL, ES_ENOMEM. */
es_err es_metrics_add_process(es_metrics *m);

/* Runs the collectors and renders every family as text (malloc'd, NUL-
 * terminated, *len without the NUL). Any thread; renders are serialized.
 * ES_ENOMEM. */
es_err es_metrics_render(es_metrics *m, char **text, size_t *len);

/* Whether name is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*). */
int es_metrics_name_ok(const char *name);

/* Formats v as the exposition format wants it ("1", "0.25", "+Inf", "-Inf",
 * "NaN"), independent of the locale. buf of 32 bytes is always enough. */
void es_metrics_format_double(double v, char *buf, size_t cap);

#endif
