/* amqp_test.c - the AMQP source's asking side, what can be seen without a
 * broker: the routing keys of requests and answers, and ask()'s bounds
 * while its link is still logging in to a listener that never answers (a
 * loopback socket the test never accepts on). Requests and answers going
 * through RabbitMQ are the cluster tests' (tests/cluster). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "source.h"
#include "topic.h"

static void request_keys(void **state)
{
	(void)state;
	char k[ES_TOPIC_MAX];
	assert_int_equal(es_amqp_resend_key("edgespool", "/site-1/gw-7", k, sizeof k), ES_OK);
	assert_string_equal(k, "edgespool.site-1.gw-7.cmd.resend");
	assert_int_equal(es_amqp_resend_key("acme/edgespool", "/s/n", k, sizeof k), ES_OK);
	assert_string_equal(k, "acme.edgespool.s.n.cmd.resend");
	/* Not "/<site>/<node>": no site, no node, a level too many. */
	assert_int_equal(es_amqp_resend_key("edgespool", "site-1/gw-7", k, sizeof k), ES_EINVAL);
	assert_int_equal(es_amqp_resend_key("edgespool", "//gw-7", k, sizeof k), ES_EINVAL);
	assert_int_equal(es_amqp_resend_key("edgespool", "/site-1/", k, sizeof k), ES_EINVAL);
	assert_int_equal(es_amqp_resend_key("edgespool", "/a/b/c", k, sizeof k), ES_EINVAL);
	/* A dot would be a word more in AMQP: no bridge's subscription sees it. */
	assert_int_equal(es_amqp_resend_key("edgespool", "/site.1/gw", k, sizeof k), ES_EINVAL);
	assert_int_equal(es_amqp_resend_key("edgespool", "/s/gw.7", k, sizeof k), ES_EINVAL);
	assert_int_equal(es_amqp_resend_key("edge.spool", "/s/n", k, sizeof k), ES_EINVAL);
	/* It fits, with its NUL, or nothing is written. */
	char small[25] = "untouched";
	assert_int_equal(es_amqp_resend_key("edgespool", "/s/n", small, 24), ES_ETOOBIG);
	assert_string_equal(small, "untouched");
	assert_int_equal(es_amqp_resend_key("edgespool", "/s/n", small, 25), ES_OK);
	assert_string_equal(small, "edgespool.s.n.cmd.resend");
}

static void reply_keys(void **state)
{
	(void)state;
	char node[136] = "";
	assert_true(es_amqp_reply_node("edgespool", "edgespool.site-1.gw-7.reply.resend", node,
				       sizeof node));
	assert_string_equal(node, "/site-1/gw-7");
	assert_true(es_amqp_reply_node("acme/edgespool", "acme.edgespool.s.n.reply.resend", node,
				       sizeof node));
	assert_string_equal(node, "/s/n");
	strcpy(node, "untouched");
	assert_false(
		es_amqp_reply_node("edgespool", "edgespool.s.n.cmd.resend", node, sizeof node));
	assert_false(es_amqp_reply_node("edgespool", "other.s.n.reply.resend", node, sizeof node));
	assert_false(
		es_amqp_reply_node("edgespool", "edgespoolx.s.n.reply.resend", node, sizeof node));
	assert_false(
		es_amqp_reply_node("edgespool", "edgespool.s.reply.resend", node, sizeof node));
	assert_false(
		es_amqp_reply_node("edgespool", "edgespool.s.n.x.reply.resend", node, sizeof node));
	assert_false(
		es_amqp_reply_node("edgespool", "edgespool..n.reply.resend", node, sizeof node));
	assert_false(es_amqp_reply_node("edgespool", "edgespool", node, sizeof node));
	assert_false(es_amqp_reply_node("edgespool", "edgespool.s.n.reply.resend", node, 4));
	assert_string_equal(node, "untouched");
	/* A request's key and its answer's name the same node. */
	char k[ES_TOPIC_MAX];
	assert_int_equal(es_amqp_resend_key("a/b", "/site_9/n-1", k, sizeof k), ES_OK);
	memcpy(strstr(k, "cmd.resend"), "reply.resend", sizeof "reply.resend");
	assert_true(es_amqp_reply_node("a/b", k, node, sizeof node));
	assert_string_equal(node, "/site_9/n-1");
}

/* A loopback listener nobody accepts on: a connect succeeds (the kernel's
 * backlog), the AMQP login then waits for an answer that never comes. */
static int silent_listener(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void ask_bounds(void **state)
{
	(void)state;
	int port;
	int fd = silent_listener(&port);
	char url[64];
	snprintf(url, sizeof url, "amqp://127.0.0.1:%d/", port);
	const char *urls[] = {url};
	es_amqp_opts o = {.urls = urls, .nurls = 1, .resend_root = "edgespool", .asker_id = "t"};
	es_source *s = NULL;
	assert_int_equal(es_amqp_source_new(&o, &s), ES_OK);
	assert_non_null(s->ops->ask);
	assert_int_equal(s->ops->ask(s, "/s/n", 5, 4), ES_EINVAL);
	assert_int_equal(s->ops->ask(s, "/s/n", 0, 4), ES_EINVAL);
	assert_int_equal(s->ops->ask(s, "/s/gw.1", 1, 4), ES_EINVAL);
	assert_int_equal(s->ops->ask(s, "s-n", 1, 4), ES_EINVAL);
	/* The link is logging in, so nothing is taken: 64 wait, then busy. */
	for (int i = 0; i < 64; i++)
		assert_int_equal(s->ops->ask(s, "/s/n", (uint64_t)i + 1, (uint64_t)i + 1), ES_OK);
	assert_int_equal(s->ops->ask(s, "/s/n", 100, 100), ES_EBUSY);
	es_source_reply r;
	assert_false(s->ops->reply(s, &r));
	close(fd); /* the login fails at once: freeing does not wait for its timeout */
	es_source_free(s);
}

static void refuses_bad_roots(void **state)
{
	(void)state;
	const char *urls[] = {"amqp://127.0.0.1:1/"};
	es_amqp_opts o = {.urls = urls, .nurls = 1, .resend_root = "edge.spool"};
	es_source *s = NULL;
	assert_int_equal(es_amqp_source_new(&o, &s), ES_EINVAL);
	assert_null(s);
	o.resend_root = "a//b";
	assert_int_equal(es_amqp_source_new(&o, &s), ES_EINVAL);
	assert_null(s);
	/* Without a root the source does not ask. */
	o.resend_root = NULL;
	assert_int_equal(es_amqp_source_new(&o, &s), ES_OK);
	assert_int_equal(s->ops->ask(s, "/s/n", 1, 1), ES_EINVAL);
	es_source_reply r;
	assert_false(s->ops->reply(s, &r));
	es_source_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_keys),
		cmocka_unit_test(reply_keys),
		cmocka_unit_test(ask_bounds),
		cmocka_unit_test(refuses_bad_roots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
