/* edgespool sub: a consumer that misses nothing. Subscribes to every node's
 * events (one a message, or a bridge's uplink batches: batch.h), status and
 * re-send replies; tracks each node's sequence with the
 * gap tracker; asks nodes to re-send what is missing (--sub.resend); writes
 * every event it receives as one NDJSON line, and its counts to a stats
 * file. */
#include <cJSON.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "batch.h"
#include "cli.h"
#include "clock.h"
#include "config.h"
#include "control.h"
#include "dedup.h"
#include "event.h"
#include "gap.h"
#include "log.h"
#include "mqtt.h"
#include "settings_link.h"
#include "settings_shared.h"
#include "topic.h"

extern char **environ;

#define TICK_MS	       200
#define STATS_EVERY_MS 500

static const char usage[] =
	"usage: edgespool sub [--mqtt.url URL] [--sub.out FILE] [--sub.resend] ...\n"
	"\n"
	"Receives every node's events (one a message, or in uplink batches) and\n"
	"prints one NDJSON line per event:\n"
	"  "
	"{\"node\":\"SITE/"
	"NODE\",\"seq\":N,\"id\":\"...\",\"verdict\":\"new|filled|dup\",\"event\":{...}}\n"
	"tracking each node's sequence for holes; with --sub.resend it asks the node\n"
	"to re-send them. SIGTERM or SIGINT writes the stats and exits 0.\n";

struct sub_settings {
	char *mqtt_url;
	es_link_settings mqtt;
	char *root, *filter, *out, *stats;
	bool resend, from_start;
	int64_t dedup;
	es_gap_settings gap;
	es_log_settings log;
};

#define F(field) offsetof(struct sub_settings, field)

static const es_setting url_row[] = {
	{"mqtt.url", ES_CFG_STR, F(mqtt_url), "mqtt://127.0.0.1:1883", 0, 0, NULL, 0, "broker"},
};

/* A consumer: no publish window to speak of, paho's connect timeout. */
static const es_setting_edit mqtt_edits[] = {
	{"client_id", .def = "edgespool-sub",
	 .help = "client id; keep it stable to keep the broker session"},
	{"inflight", .hide = true},
	{"session_expiry_s", .hide = true},
	{"connect_timeout_s", .hide = true},
};

static const es_setting sub_rows[] = {
	{"sub.root", ES_CFG_STR, F(root), "edgespool", 0, 0, NULL, 0, "topic root"},
	{"sub.filter", ES_CFG_STR, F(filter), NULL, 0, 0, NULL, 0,
	 "event filter; default <root>/+/+/ev/#"},
	{"sub.out", ES_CFG_STR, F(out), "-", 0, 0, NULL, ES_CFG_PATH,
	 "NDJSON output; - for stdout"},
	{"sub.stats", ES_CFG_STR, F(stats), NULL, 0, 0, NULL, ES_CFG_PATH,
	 "JSON file rewritten with the counts every 500 ms"},
	{"sub.resend", ES_CFG_BOOL, F(resend), "false", 0, 0, NULL, 0,
	 "ask nodes to re-send missing sequences"},
	{"sub.from_start", ES_CFG_BOOL, F(from_start), "false", 0, 0, NULL, 0,
	 "expect every node's events from sequence 1 (else from the first one seen)"},
	{"sub.dedup", ES_CFG_INT, F(dedup), "0", 0, 268435456, NULL, 0,
	 "remember this many event ids and write each id once (0: write every copy)"},
};

static const es_setting_edit log_edits[] = {
	{"level", .def = "warn"},
	{"syslog", .hide = true},
};

static const es_settings_part parts[] = {
	ES_OWN_ROWS(url_row),
	ES_SHARED_EDITED("mqtt", F(mqtt), es_link_rows, mqtt_edits),
	ES_OWN_ROWS(sub_rows),
	ES_SHARED("gap", F(gap), es_gap_rows),
	ES_SHARED_EDITED("log", F(log), es_log_rows, log_edits),
};

struct counts {
	uint64_t received, valid, invalid, fresh, filled, duplicates, gone_replies, sent;
	uint64_t deduped; /* copies of an id already written, not written */
	uint64_t batches; /* uplink batches read (their events are counted each) */
};

struct sub {
	struct sub_settings s;
	es_loop *loop;
	es_mqtt *mqtt;
	es_gap *gap;
	es_dedup *dedup; /* NULL unless sub.dedup */
	FILE *out;
	char *password;
	struct counts n;
	uint64_t last_stats_ms;
	uint64_t request_no;
	es_timer_id tick;
};

/* "site/node" from a topic in edgespool's layout. */
static bool node_key(const es_topic_parts *p, char *key, size_t cap)
{
	int n = snprintf(key, cap, "%.*s/%.*s", (int)p->site_len, p->site, (int)p->node_len,
			 p->node);
	return n > 0 && (size_t)n < cap;
}

static const char *verdict_name(es_gap_verdict v)
{
	return v == ES_GAP_NEW ? "new" : v == ES_GAP_FILLED ? "filled" : "dup";
}

static void write_line(struct sub *sb, const char *key, const es_event *ev, es_gap_verdict v,
		       const char *payload)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	if (o && cJSON_AddStringToObject(o, "node", key) &&
	    cJSON_AddNumberToObject(o, "seq", (double)es_event_seq(ev)) &&
	    cJSON_AddStringToObject(o, "id", es_event_id(ev)) &&
	    cJSON_AddStringToObject(o, "verdict", verdict_name(v)) &&
	    cJSON_AddRawToObject(o, "event", payload))
		text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text) {
		es_error("sub", "out of memory writing event %s", es_event_id(ev));
		return;
	}
	fprintf(sb->out, "%s\n", text);
	cJSON_free(text);
}

static void on_event(struct sub *sb, const char *key, const char *payload, size_t len)
{
	es_event *ev;
	es_verr v;
	es_gap_verdict verdict;
	if (es_event_decode(payload, len, 0, &ev, &v)) {
		sb->n.invalid++;
		es_warn("sub", "invalid event from %s: %s: %s", key, v.field, v.reason);
		return;
	}
	uint64_t seq = es_event_seq(ev);
	if (seq == 0 || es_gap_seen(sb->gap, key, seq, es_clock_mono_ms(), &verdict)) {
		sb->n.invalid++;
		es_warn("sub", "event %s from %s has no valid sequence", es_event_id(ev), key);
		es_event_free(ev);
		return;
	}
	sb->n.valid++;
	if (verdict == ES_GAP_NEW)
		sb->n.fresh++;
	else if (verdict == ES_GAP_FILLED)
		sb->n.filled++;
	else
		sb->n.duplicates++;
	if (sb->dedup && es_dedup_seen(sb->dedup, es_event_id(ev)))
		sb->n.deduped++;
	else
		write_line(sb, key, ev, verdict, payload);
	es_event_free(ev);
}

static void on_status(struct sub *sb, const char *key, const char *payload, size_t len)
{
	es_status_msg m;
	char why[160];
	if (es_status_decode(payload, len, &m, why, sizeof why)) {
		es_warn("sub", "invalid status from %s: %s", key, why);
		return;
	}
	/* A new journal of the node (replaced, or restored from a backup) is a
	 * new epoch: its sequence starts again. */
	es_gap_announce(sb->gap, key, &m, es_clock_mono_ms(), NULL);
}

static void on_reply(struct sub *sb, const char *key, const char *payload, size_t len)
{
	es_resend_reply r;
	char why[160];
	if (es_resend_reply_decode(payload, len, &r, why, sizeof why)) {
		es_warn("sub", "invalid re-send reply from %s: %s", key, why);
		return;
	}
	/* Above the node's newest sequence nothing exists: a hole there (a
	 * forged sequence far ahead) is void, not asked for again. */
	if (r.latest_seq)
		es_gap_void(sb->gap, key, r.latest_seq);
	if (r.gone_from && r.gone_to) {
		sb->n.gone_replies++;
		es_error("sub", "%s no longer holds %llu..%llu: those events are lost", key,
			 (unsigned long long)r.gone_from, (unsigned long long)r.gone_to);
		es_gap_gone(sb->gap, key, r.gone_from, r.gone_to);
	}
}

/* Each event of an uplink batch, as if it had come alone; a batch that
 * cannot be read is counted invalid, with why. */
static void on_batch(struct sub *sb, const char *key, const es_mqtt_msg *msg)
{
	es_batch_meta meta;
	es_batch *b = NULL;
	char why[256];
	es_batch_meta_from_props(&msg->props, &meta);
	es_batch_limits lim = {.event_max_bytes = ES_EVENT_MAX_BYTES_DEFAULT * 16};
	es_err err = es_batch_read(msg->topic, '/', &meta, msg->payload, msg->len, &lim, &b, why,
				   sizeof why);
	if (!err && !b)
		snprintf(why, sizeof why, "the topic's last level names no coding");
	if (err || !b) {
		sb->n.invalid++;
		es_warn("sub", "a batch on %s that cannot be read: %s", msg->topic, why);
		return;
	}
	sb->n.batches++;
	for (size_t i = 0; i < es_batch_count(b); i++) {
		size_t len;
		const char *json = es_batch_json(b, i, &len);
		on_event(sb, key, json, len);
	}
	es_batch_free(b);
}

static void on_message(void *ctx, const es_mqtt_msg *msg)
{
	struct sub *sb = ctx;
	const char *topic = msg->topic;
	const void *payload = msg->payload;
	size_t len = msg->len;
	es_topic_parts p;
	char key[2 * ES_TOPIC_ID_MAX + 2];
	sb->n.received++;
	if (es_topic_split(topic, sb->s.root, &p) || !node_key(&p, key, sizeof key)) {
		sb->n.invalid++;
		es_warn("sub", "message on unexpected topic %s", topic);
		return;
	}
	if (p.kind_len == 2 && memcmp(p.kind, "ev", 2) == 0)
		on_event(sb, key, payload, len);
	else if (p.kind_len == strlen(ES_BATCH_KIND) &&
		 memcmp(p.kind, ES_BATCH_KIND, p.kind_len) == 0)
		on_batch(sb, key, msg);
	else if (p.kind_len == 6 && memcmp(p.kind, "status", 6) == 0)
		on_status(sb, key, payload, len);
	else if (p.kind_len == 5 && memcmp(p.kind, "reply", 5) == 0)
		on_reply(sb, key, payload, len);
}

/* ---- re-send requests and stats --------------------------------------------- */

static void send_request(struct sub *sb, const es_gap_request *r)
{
	char topic[ES_TOPIC_MAX], site[ES_TOPIC_ID_MAX + 1];
	const char *slash = strchr(r->node, '/');
	if (!slash || (size_t)(slash - r->node) > ES_TOPIC_ID_MAX)
		return;
	snprintf(site, sizeof site, "%.*s", (int)(slash - r->node), r->node);
	if (es_topic_build(topic, sizeof topic, sb->s.root, site, slash + 1, "cmd", "resend"))
		return;
	es_resend_req req = {.from = r->from, .to = r->to};
	snprintf(req.request_id, sizeof req.request_id, "%s-%llu", sb->s.mqtt.client_id,
		 (unsigned long long)++sb->request_no);
	char *json;
	size_t len;
	if (es_resend_req_encode(&req, &json, &len))
		return;
	if (es_mqtt_publish(sb->mqtt, topic, json, len, 1, false, 0) == ES_OK) {
		sb->n.sent++;
		es_info("sub", "asked %s to re-send %llu..%llu", r->node,
			(unsigned long long)r->from, (unsigned long long)r->to);
	}
	free(json);
}

static void write_stats(struct sub *sb)
{
	if (!sb->s.stats)
		return;
	es_gap_stats g;
	es_gap_stats_get(sb->gap, &g);
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", sb->s.stats);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		es_error("sub", "%s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(f,
		"{\"received\":%llu,\"valid\":%llu,\"invalid\":%llu,\"new\":%llu,\"filled\":%llu,"
		"\"duplicates\":%llu,\"nodes\":%llu,\"holes_open\":%llu,\"missing\":%llu,"
		"\"holes_detected\":%llu,\"lost\":%llu,\"requests\":%llu,\"gone\":%llu,"
		"\"deduped\":%llu,\"batches\":%llu,\"connected\":%s,\"subscribed\":%s}\n",
		(unsigned long long)sb->n.received, (unsigned long long)sb->n.valid,
		(unsigned long long)sb->n.invalid, (unsigned long long)sb->n.fresh,
		(unsigned long long)sb->n.filled, (unsigned long long)sb->n.duplicates,
		(unsigned long long)g.nodes, (unsigned long long)g.holes_open,
		(unsigned long long)g.missing, (unsigned long long)g.holes_detected,
		(unsigned long long)g.lost, (unsigned long long)sb->n.sent,
		(unsigned long long)sb->n.gone_replies, (unsigned long long)sb->n.deduped,
		(unsigned long long)sb->n.batches,
		es_mqtt_is_connected(sb->mqtt) ? "true" : "false",
		es_mqtt_is_subscribed(sb->mqtt) ? "true" : "false");
	if (fclose(f) != 0 || rename(tmp, sb->s.stats) != 0)
		es_error("sub", "%s: %s", sb->s.stats, strerror(errno));
}

static void tick(void *arg)
{
	struct sub *sb = arg;
	uint64_t now = es_clock_mono_ms();
	if (sb->s.resend && es_mqtt_is_connected(sb->mqtt)) {
		es_gap_request reqs[16];
		size_t n = es_gap_due(sb->gap, now, reqs, 16);
		for (size_t i = 0; i < n; i++)
			send_request(sb, &reqs[i]);
	}
	fflush(sb->out);
	if (now - sb->last_stats_ms >= STATS_EVERY_MS) {
		write_stats(sb);
		sb->last_stats_ms = now;
	}
	es_loop_timer(sb->loop, TICK_MS, tick, sb, &sb->tick);
}

static void on_connected(void *ctx, bool session_present)
{
	write_stats(ctx);
}

/* The stats say "subscribed": true from now on: what is published reaches
 * this consumer (the tests start producing then). */
static void on_subscribed(void *ctx)
{
	write_stats(ctx);
}

static void on_disconnected(void *ctx, const char *cause, uint64_t retry_ms)
{
	struct sub *sb = ctx;
	write_stats(sb);
	if (!retry_ms)
		es_loop_stop(sb->loop);
}

static void on_signal(void *arg, int fd, short revents)
{
	struct sub *sb = arg;
	struct signalfd_siginfo si;
	if (read(fd, &si, sizeof si) != (ssize_t)sizeof si)
		return;
	es_mqtt_disconnect(sb->mqtt, 500); /* disconnected(.., 0) stops the loop */
}

/* ---- setup ----------------------------------------------------------------- */

static es_err make_mqtt(struct sub *sb)
{
	const struct sub_settings *s = &sb->s;
	es_mqtt_opts o;
	es_link_mqtt_opts(&s->mqtt, NULL, sb->password, &o);
	o.url = s->mqtt_url;
	o.cbs = (es_mqtt_cbs){.connected = on_connected,
			      .disconnected = on_disconnected,
			      .message_props = on_message,
			      .subscribed = on_subscribed};
	o.ctx = sb;
	char filter[ES_TOPIC_MAX];
	es_err err = es_mqtt_new(sb->loop, &o, &sb->mqtt);
	if (!err)
		snprintf(filter, sizeof filter, "%s/+/+/ev/#", s->root);
	if (!err)
		err = es_mqtt_subscribe(sb->mqtt, s->filter ? s->filter : filter, 1);
	if (!err)
		snprintf(filter, sizeof filter, "%s/+/+/" ES_BATCH_KIND "/#", s->root);
	if (!err)
		err = es_mqtt_subscribe(sb->mqtt, filter, 1);
	if (!err)
		snprintf(filter, sizeof filter, "%s/+/+/status", s->root);
	if (!err)
		err = es_mqtt_subscribe(sb->mqtt, filter, 1);
	if (!err)
		snprintf(filter, sizeof filter, "%s/+/+/reply/resend", s->root);
	if (!err)
		err = es_mqtt_subscribe(sb->mqtt, filter, 1);
	return err;
}

static es_err setup(struct sub *sb)
{
	es_gap_opts g = {.grace_ms = (uint64_t)sb->s.gap.grace_ms,
			 .retry_ms = (uint64_t)sb->s.gap.retry_ms,
			 .max_span = (uint64_t)sb->s.gap.max_span,
			 .from_start = sb->s.from_start};
	if (es_topic_check_root(sb->s.root)) {
		fprintf(stderr, "edgespool sub: sub.root '%s' %s\n", sb->s.root,
			es_topic_check_root(sb->s.root));
		return ES_EINVAL;
	}
	sb->out = strcmp(sb->s.out, "-") == 0 ? stdout : fopen(sb->s.out, "a");
	if (!sb->out) {
		fprintf(stderr, "edgespool sub: %s: %s\n", sb->s.out, strerror(errno));
		return ES_EINVAL;
	}
	char why[300];
	es_err err = ES_OK;
	if (sb->s.mqtt.password_file &&
	    (err = es_config_read_secret(sb->s.mqtt.password_file, &sb->password, why, sizeof why)))
		fprintf(stderr, "edgespool sub: mqtt.password_file %s\n", why);
	if (!err)
		err = es_gap_new(&g, &sb->gap);
	if (!err && sb->s.dedup)
		err = es_dedup_new((size_t)sb->s.dedup, &sb->dedup);
	if (!err)
		err = es_loop_new(&sb->loop);
	if (!err)
		err = make_mqtt(sb);
	return err;
}

static void teardown(struct sub *sb)
{
	es_mqtt_free(sb->mqtt);
	es_loop_free(sb->loop);
	es_gap_free(sb->gap);
	es_dedup_free(sb->dedup);
	if (sb->out && sb->out != stdout)
		fclose(sb->out);
	free(sb->password);
}

static int run(struct sub *sb)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	int rc = 1;
	if (fd < 0 || setup(sb) || es_loop_watch(sb->loop, fd, POLLIN, on_signal, sb) ||
	    es_mqtt_start(sb->mqtt))
		goto out;
	tick(sb);
	rc = es_loop_run(sb->loop) ? 1 : 0;
	if (sb->out)
		fflush(sb->out);
	write_stats(sb);
out:
	teardown(sb);
	if (fd >= 0)
		close(fd);
	return rc;
}

int cmd_sub(int argc, char **argv)
{
	struct sub sb = {0};
	es_config *cfg;
	char err[512];
	if (es_config_new_parts(parts, ES_NELEM(parts), &sb.s, &cfg))
		return 1;
	int rc = 2;
	if (es_config_load(cfg, argc, argv, environ, err, sizeof err))
		fprintf(stderr, "edgespool sub: %s\n", err);
	else if (es_config_mode(cfg) == ES_CFG_HELP)
		es_config_help(cfg, stdout, usage), rc = 0;
	else if (es_config_mode(cfg) == ES_CFG_PRINT)
		es_config_print(cfg, stdout), rc = 0;
	else if (es_mqtt_check_url(sb.s.mqtt_url))
		fprintf(stderr, "edgespool sub: mqtt.url '%s' %s\n", sb.s.mqtt_url,
			es_mqtt_check_url(sb.s.mqtt_url));
	else {
		es_log_setup((es_log_level)sb.s.log.level, false, "edgespool-sub");
		rc = run(&sb);
	}
	es_config_free(cfg);
	return rc;
}
