/* loop.h - a small event loop: one thread, poll(2), timers, and work posted
 * from other threads.
 *
 * The thread that calls es_loop_run() owns the loop and everything its
 * callbacks touch. Other threads (paho's callbacks, civetweb's workers, the
 * journal writer) hand work over with es_loop_post() or an es_async, both
 * thread-safe, both waking the loop through an eventfd.
 *
 * Lock: `lock` guards the posted-work queue and the asyncs' pending flags;
 * everything else belongs to the loop thread.
 */
#ifndef ES_LOOP_H
#define ES_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

typedef struct es_loop es_loop;
typedef struct es_async es_async;
typedef void (*es_loop_fn)(void *arg);
typedef void (*es_fd_fn)(void *arg, int fd, short revents);
typedef uint64_t es_timer_id; /* never 0 */

es_err es_loop_new(es_loop **out);
/* Frees the loop; posted work that never ran is dropped (its arg is not
 * freed: post only what the loop, or its owner, can account for). */
void es_loop_free(es_loop *loop);

/* Runs callbacks until es_loop_stop(). ES_ESYS if poll fails. */
es_err es_loop_run(es_loop *loop);
/* Makes es_loop_run return after the current callback. Any thread. */
void es_loop_stop(es_loop *loop);

/* Runs fn(arg) on the loop thread, in posting order. Any thread. ES_ENOMEM
 * if the work could not be queued (then fn never runs). */
es_err es_loop_post(es_loop *loop, es_loop_fn fn, void *arg);

/* A coalescing wake-up: es_async_send() from any thread makes fn(arg) run
 * once on the loop thread soon after; several sends before it runs give one
 * call. Never allocates after creation. */
es_err es_async_new(es_loop *loop, es_loop_fn fn, void *arg, es_async **out);
void es_async_send(es_async *a);
/* Loop thread only. */
void es_async_free(es_async *a);

/* One-shot timer: fn(arg) runs on the loop thread after delay_ms. */
es_err es_loop_timer(es_loop *loop, uint64_t delay_ms, es_loop_fn fn, void *arg, es_timer_id *id);
/* Cancels a timer that has not fired; unknown or fired ids are ignored. */
void es_loop_timer_cancel(es_loop *loop, es_timer_id id);

/* Calls fn when fd is ready for events (POLLIN/POLLOUT); one watch per fd. */
es_err es_loop_watch(es_loop *loop, int fd, short events, es_fd_fn fn, void *arg);
void es_loop_unwatch(es_loop *loop, int fd);

/* Monotonic ms, as of the current loop iteration. */
uint64_t es_loop_now(const es_loop *loop);

#endif
