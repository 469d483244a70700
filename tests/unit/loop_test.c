/* loop_test.c - the poll event loop: posted work, asyncs, timers, fd watches,
 * stopping. Each test runs the loop on the test thread, with a watchdog timer
 * so that a broken loop fails the test instead of hanging it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "loop.h"

#define WATCHDOG_MS 10000
#define POSTERS	    4
#define PER_POSTER  2000

static es_loop *new_loop(void)
{
	es_loop *l = NULL;
	assert_int_equal(es_loop_new(&l), ES_OK);
	assert_non_null(l);
	return l;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

typedef struct watchdog {
	es_loop *loop;
	bool fired;
} watchdog;

static void on_watchdog(void *arg)
{
	watchdog *w = arg;
	w->fired = true;
	es_loop_stop(w->loop);
}

/* Runs the loop until something stops it; fails if the watchdog had to. */
static void run_guarded(es_loop *l)
{
	watchdog w = {.loop = l};
	es_timer_id id;
	assert_int_equal(es_loop_timer(l, WATCHDOG_MS, on_watchdog, &w, &id), ES_OK);
	assert_int_equal(es_loop_run(l), ES_OK);
	assert_false(w.fired);
	es_loop_timer_cancel(l, id);
}

/* ---- posted work ------------------------------------------------------------ */

typedef struct post_test {
	es_loop *loop;
	pthread_t loop_thread;
	unsigned next[POSTERS]; /* loop thread only */
	unsigned ran;
	bool wrong_thread, out_of_order;
} post_test;

typedef struct post_item {
	post_test *t;
	unsigned poster, index;
} post_item;

static post_item items[POSTERS][PER_POSTER];

static void on_posted(void *arg)
{
	post_item *it = arg;
	post_test *t = it->t;
	if (!pthread_equal(pthread_self(), t->loop_thread))
		t->wrong_thread = true;
	if (it->index != t->next[it->poster])
		t->out_of_order = true;
	t->next[it->poster] = it->index + 1;
	if (++t->ran == POSTERS * PER_POSTER)
		es_loop_stop(t->loop);
}

static void *poster(void *arg)
{
	post_item *mine = arg;
	for (unsigned i = 0; i < PER_POSTER; i++)
		if (es_loop_post(mine[i].t->loop, on_posted, &mine[i]) != ES_OK)
			return (void *)1;
	return NULL;
}

static void posted_work_runs_in_order_on_loop_thread(void **state)
{
	static post_test t;
	t = (post_test){.loop = new_loop(), .loop_thread = pthread_self()};
	pthread_t th[POSTERS];
	for (unsigned p = 0; p < POSTERS; p++) {
		for (unsigned i = 0; i < PER_POSTER; i++)
			items[p][i] = (post_item){.t = &t, .poster = p, .index = i};
		assert_int_equal(pthread_create(&th[p], NULL, poster, items[p]), 0);
	}
	run_guarded(t.loop);
	for (unsigned p = 0; p < POSTERS; p++) {
		void *rc;
		assert_int_equal(pthread_join(th[p], &rc), 0);
		assert_null(rc);
		assert_int_equal(t.next[p], PER_POSTER);
	}
	assert_int_equal(t.ran, POSTERS * PER_POSTER);
	assert_false(t.wrong_thread);
	assert_false(t.out_of_order);
	es_loop_free(t.loop);
}

/* Work posted before the loop runs waits for it; work left when the loop is
 * freed is dropped (without leaking: see valgrind). */
typedef struct counter {
	es_loop *loop;
	int n;
	int stop_at;
} counter;

static void count_up(void *arg)
{
	counter *c = arg;
	if (++c->n == c->stop_at)
		es_loop_stop(c->loop);
}

static void posted_before_run_and_dropped_at_free(void **state)
{
	es_loop *l = new_loop();
	counter c = {.loop = l, .stop_at = 3};
	for (int i = 0; i < 3; i++)
		assert_int_equal(es_loop_post(l, count_up, &c), ES_OK);
	run_guarded(l);
	assert_int_equal(c.n, 3);
	for (int i = 0; i < 5; i++)
		assert_int_equal(es_loop_post(l, count_up, &c), ES_OK);
	es_loop_free(l);
	assert_int_equal(c.n, 3);
	es_loop_free(NULL);
}

/* ---- asyncs ------------------------------------------------------------------ */

typedef struct async_test {
	es_loop *loop;
	es_async *a;
	pthread_t loop_thread;
	_Atomic unsigned calls;
	bool wrong_thread;
	_Atomic unsigned senders_done;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned final_at; /* stop when calls reaches this; 0: not yet */
} async_test;

static void on_async(void *arg)
{
	async_test *t = arg;
	if (!pthread_equal(pthread_self(), t->loop_thread))
		t->wrong_thread = true;
	unsigned n = atomic_fetch_add(&t->calls, 1) + 1;
	if (t->final_at && n >= t->final_at)
		es_loop_stop(t->loop);
}

#define SENDS 20000

static void *sender(void *arg)
{
	async_test *t = arg;
	for (unsigned i = 0; i < SENDS; i++)
		es_async_send(t->a);
	pthread_mutex_lock(&t->mu);
	atomic_fetch_add(&t->senders_done, 1);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* Holds the loop thread until every sender has finished. */
static void hold_loop(void *arg)
{
	async_test *t = arg;
	pthread_mutex_lock(&t->mu);
	while (atomic_load(&t->senders_done) < POSTERS)
		pthread_cond_wait(&t->cv, &t->mu);
	pthread_mutex_unlock(&t->mu);
	t->final_at = atomic_load(&t->calls) + 1;
}

static async_test *async_setup(void)
{
	async_test *t = calloc(1, sizeof *t);
	assert_non_null(t);
	t->loop = new_loop();
	t->loop_thread = pthread_self();
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	assert_int_equal(es_async_new(t->loop, on_async, t, &t->a), ES_OK);
	return t;
}

static void async_teardown(async_test *t)
{
	es_async_free(t->a);
	es_loop_free(t->loop);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
}

/* Sends while the loop is busy coalesce into exactly one call. */
static void async_sends_while_busy_give_one_call(void **state)
{
	async_test *t = async_setup();
	assert_int_equal(es_loop_post(t->loop, hold_loop, t), ES_OK);
	pthread_t th[POSTERS];
	for (unsigned i = 0; i < POSTERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, sender, t), 0);
	run_guarded(t->loop);
	for (unsigned i = 0; i < POSTERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(atomic_load(&t->calls), 1);
	assert_false(t->wrong_thread);
	async_teardown(t);
}

/* Free-running senders: at least one call, far fewer calls than sends, and a
 * send after the last call is never lost. */
static void final_send(void *arg)
{
	async_test *t = arg;
	if (atomic_load(&t->senders_done) < POSTERS) {
		es_loop_timer(t->loop, 2, final_send, t, NULL);
		return;
	}
	t->final_at = atomic_load(&t->calls) + 1;
	es_async_send(t->a);
}

static void async_coalesces_free_running_sends(void **state)
{
	async_test *t = async_setup();
	pthread_t th[POSTERS];
	for (unsigned i = 0; i < POSTERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, sender, t), 0);
	assert_int_equal(es_loop_timer(t->loop, 1, final_send, t, NULL), ES_OK);
	run_guarded(t->loop);
	for (unsigned i = 0; i < POSTERS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	unsigned calls = atomic_load(&t->calls);
	print_message("%u sends gave %u calls\n", POSTERS * SENDS + 1, calls);
	assert_true(calls >= 1);
	assert_true(calls < POSTERS * SENDS);
	assert_false(t->wrong_thread);
	async_teardown(t);
}

/* ---- timers -------------------------------------------------------------------- */

typedef struct timer_test {
	es_loop *loop;
	uint64_t start;
	int order[16];
	uint64_t at[16];
	int n;
	es_timer_id victim;
} timer_test;

typedef struct tmark {
	timer_test *t;
	int name;
	uint64_t delay;
} tmark;

static void on_timer(void *arg)
{
	tmark *m = arg;
	timer_test *t = m->t;
	assert_true(t->n < 16);
	t->at[t->n] = es_clock_mono_ms() - t->start;
	t->order[t->n++] = m->name;
	assert_true(es_loop_now(t->loop) >= t->start + m->delay);
}

static void on_last_timer(void *arg)
{
	on_timer(arg);
	es_loop_stop(((tmark *)arg)->t->loop);
}

static void on_cancelling_timer(void *arg)
{
	tmark *m = arg;
	on_timer(m);
	es_loop_timer_cancel(m->t->loop, m->t->victim);
}

static void timers_fire_in_due_order(void **state)
{
	timer_test t = {.loop = new_loop(), .start = es_clock_mono_ms()};
	tmark m[] = {{&t, 30, 30}, {&t, 10, 10}, {&t, 20, 20}, {&t, 0, 0},
		     {&t, 15, 15}, {&t, 40, 40}, {&t, 21, 20}, {&t, 22, 20}};
	es_timer_id ids[8];
	for (int i = 0; i < 8; i++) {
		es_loop_fn fn = m[i].name == 40 ? on_last_timer : on_timer;
		assert_int_equal(es_loop_timer(t.loop, m[i].delay, fn, &m[i], &ids[i]), ES_OK);
		assert_true(ids[i] != 0);
		if (i)
			assert_true(ids[i] != ids[i - 1]);
	}
	es_loop_timer_cancel(t.loop, ids[4]); /* the 15 ms one */
	es_loop_timer_cancel(t.loop, ids[4]); /* twice: ignored */
	es_loop_timer_cancel(t.loop, 987654); /* unknown: ignored */
	run_guarded(t.loop);
	/* Equal due times fire in the order they were armed. */
	int want[] = {0, 10, 20, 21, 22, 30, 40};
	assert_int_equal(t.n, 7);
	for (int i = 0; i < 7; i++) {
		assert_int_equal(t.order[i], want[i]);
		assert_true(t.at[i] >= (uint64_t)(want[i] == 21 || want[i] == 22 ? 20 : want[i]));
	}
	es_loop_free(t.loop);
}

static tmark *arm_stopper; /* armed by on_arming_timer */

static void on_arming_timer(void *arg)
{
	tmark *m = arg;
	on_timer(m);
	assert_int_equal(es_loop_timer(m->t->loop, 0, on_last_timer, arm_stopper, NULL), ES_OK);
}

/* A callback may cancel a timer due at the same moment, and arm new ones
 * (a 0 ms timer armed by a callback runs after the others already due). */
static void timer_callbacks_cancel_and_arm(void **state)
{
	timer_test t = {.loop = new_loop(), .start = es_clock_mono_ms()};
	tmark first = {&t, 1, 5}, victim = {&t, 2, 5}, arming = {&t, 3, 5}, third = {&t, 4, 5},
	      last = {&t, 9, 0};
	arm_stopper = &last;
	assert_int_equal(es_loop_timer(t.loop, 5, on_cancelling_timer, &first, NULL), ES_OK);
	assert_int_equal(es_loop_timer(t.loop, 5, on_timer, &victim, &t.victim), ES_OK);
	assert_int_equal(es_loop_timer(t.loop, 5, on_arming_timer, &arming, NULL), ES_OK);
	assert_int_equal(es_loop_timer(t.loop, 5, on_timer, &third, NULL), ES_OK);
	run_guarded(t.loop);
	int want[] = {1, 3, 4, 9};
	assert_int_equal(t.n, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(t.order[i], want[i]);
	es_loop_free(t.loop);
}

/* ---- fd watches ------------------------------------------------------------------- */

typedef struct pipe_test {
	es_loop *loop;
	int fds[2];
	int calls;
	char got[8];
	short revents;
} pipe_test;

static void on_readable(void *arg, int fd, short revents)
{
	pipe_test *p = arg;
	p->revents = revents;
	ssize_t n = read(fd, p->got, sizeof p->got - 1);
	assert_true(n > 0);
	p->calls++;
	es_loop_unwatch(p->loop, fd);
	es_loop_stop(p->loop);
}

static void *write_later(void *arg)
{
	pipe_test *p = arg;
	nap_ms(20); /* not synchronisation: the loop must wait whatever the delay */
	ssize_t n = write(p->fds[1], "hi", 2);
	return n == 2 ? NULL : (void *)1;
}

static void fd_watch_fires_on_pipe(void **state)
{
	pipe_test p = {.loop = new_loop()};
	assert_int_equal(pipe2(p.fds, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(es_loop_watch(p.loop, p.fds[0], POLLIN, on_readable, &p), ES_OK);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, write_later, &p), 0);
	run_guarded(p.loop);
	void *rc;
	assert_int_equal(pthread_join(th, &rc), 0);
	assert_null(rc);
	assert_int_equal(p.calls, 1);
	assert_true(p.revents & POLLIN);
	assert_string_equal(p.got, "hi");
	close(p.fds[0]);
	close(p.fds[1]);
	es_loop_free(p.loop);
}

typedef struct multi_watch {
	es_loop *loop;
	int rd[2], wr[2];
	int readable, writable, wrong;
} multi_watch;

static void on_writable(void *arg, int fd, short revents)
{
	multi_watch *m = arg;
	if (fd != m->wr[1] || !(revents & POLLOUT))
		m->wrong++;
	m->writable++;
	es_loop_unwatch(m->loop, fd);
	if (write(m->rd[1], "x", 1) != 1) /* now make the other one readable */
		m->wrong++;
}

static void on_read_stop(void *arg, int fd, short revents)
{
	multi_watch *m = arg;
	char c;
	if (fd != m->rd[0] || !(revents & POLLIN) || read(fd, &c, 1) != 1)
		m->wrong++;
	m->readable++;
	es_loop_stop(m->loop);
}

/* Two watches, each gets its own fd's events; an unwatched fd is ignored. */
static void fd_watches_are_per_fd(void **state)
{
	multi_watch m = {.loop = new_loop()};
	assert_int_equal(pipe2(m.rd, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(pipe2(m.wr, O_CLOEXEC | O_NONBLOCK), 0);
	/* A readable fd whose watch is removed before the run never fires. */
	assert_int_equal(write(m.wr[1], "z", 1), 1);
	assert_int_equal(es_loop_watch(m.loop, m.wr[0], POLLIN, on_read_stop, &m), ES_OK);
	es_loop_unwatch(m.loop, m.wr[0]);
	es_loop_unwatch(m.loop, 12345); /* unknown: ignored */
	assert_int_equal(es_loop_watch(m.loop, m.rd[0], POLLIN, on_read_stop, &m), ES_OK);
	assert_int_equal(es_loop_watch(m.loop, m.wr[1], POLLOUT, on_writable, &m), ES_OK);
	run_guarded(m.loop);
	assert_int_equal(m.wrong, 0);
	assert_int_equal(m.writable, 1);
	assert_int_equal(m.readable, 1);
	for (int i = 0; i < 2; i++) {
		close(m.rd[i]);
		close(m.wr[i]);
	}
	es_loop_free(m.loop);
}

/* ---- stopping --------------------------------------------------------------------- */

typedef struct stop_test {
	es_loop *loop;
	_Atomic bool running;
} stop_test;

static void mark_running(void *arg)
{
	atomic_store(&((stop_test *)arg)->running, true);
}

static void *stop_when_running(void *arg)
{
	stop_test *s = arg;
	uint64_t deadline = es_clock_mono_ms() + WATCHDOG_MS;
	while (!atomic_load(&s->running) && es_clock_mono_ms() < deadline)
		nap_ms(1);
	nap_ms(10); /* let the loop block in poll(2) with nothing to do */
	es_loop_stop(s->loop);
	return NULL;
}

static void stop_from_another_thread(void **state)
{
	stop_test s = {.loop = new_loop()};
	for (int round = 0; round < 3; round++) {
		atomic_store(&s.running, false);
		assert_int_equal(es_loop_post(s.loop, mark_running, &s), ES_OK);
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, stop_when_running, &s), 0);
		uint64_t t0 = es_clock_mono_ms();
		run_guarded(s.loop); /* runs again after a stop */
		assert_true(es_clock_mono_ms() - t0 < WATCHDOG_MS);
		assert_true(atomic_load(&s.running));
		assert_int_equal(pthread_join(th, NULL), 0);
	}
	es_loop_free(s.loop);
}

static void stop_before_run_returns_at_once(void **state)
{
	es_loop *l = new_loop();
	es_loop_stop(l);
	assert_int_equal(es_loop_run(l), ES_OK);
	/* ...once: the next run goes on until stopped again. */
	counter c = {.loop = l, .stop_at = 1};
	assert_int_equal(es_loop_timer(l, 5, count_up, &c, NULL), ES_OK);
	run_guarded(l);
	assert_int_equal(c.n, 1);
	es_loop_free(l);
}

static int loop_setup(void **state)
{
	es_loop *l = NULL;
	if (es_loop_new(&l))
		return -1;
	*state = l;
	return 0;
}

static int loop_teardown(void **state)
{
	es_loop_free(*state);
	return 0;
}

/* es_loop_stop() from a callback: es_loop_run returns after that callback;
 * work queued behind it is not lost, it runs in the next es_loop_run. */
static void stop_in_callback_returns_after_it(void **state)
{
	es_loop *l = *state;
	counter stopper = {.loop = l, .stop_at = 1}, behind = {.loop = l};
	assert_int_equal(es_loop_post(l, count_up, &stopper), ES_OK);
	assert_int_equal(es_loop_post(l, count_up, &behind), ES_OK);
	run_guarded(l);
	assert_int_equal(stopper.n, 1);
	assert_int_equal(behind.n, 0);
	counter last = {.loop = l, .stop_at = 1};
	assert_int_equal(es_loop_post(l, count_up, &last), ES_OK);
	run_guarded(l);
	assert_int_equal(behind.n, 1);
	assert_int_equal(last.n, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(posted_work_runs_in_order_on_loop_thread),
		cmocka_unit_test(posted_before_run_and_dropped_at_free),
		cmocka_unit_test(async_sends_while_busy_give_one_call),
		cmocka_unit_test(async_coalesces_free_running_sends),
		cmocka_unit_test(timers_fire_in_due_order),
		cmocka_unit_test(timer_callbacks_cancel_and_arm),
		cmocka_unit_test(fd_watch_fires_on_pipe),
		cmocka_unit_test(fd_watches_are_per_fd),
		cmocka_unit_test(stop_from_another_thread),
		cmocka_unit_test(stop_before_run_returns_at_once),
		cmocka_unit_test_setup_teardown(stop_in_callback_returns_after_it, loop_setup,
						loop_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
