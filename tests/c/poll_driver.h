/*
 * A second driver of the sans-I/O operations, for tests and benchmarks: one
 * thread, non-blocking sockets and poll(). It knows no command: it moves the
 * bytes strata_op_next asks for, pipelines the ops on a few connections per
 * server (replies are handed to the ops in the order they were sent), sleeps
 * WAITs on its own timer list and applies each exchange's deadline.
 */
#ifndef STRATA_POLL_DRIVER_H
#define STRATA_POLL_DRIVER_H

#include <stdint.h>

#include "stratacache.h"

typedef struct poll_driver poll_driver;

/* Called once an op is DONE (the driver forgets it; the callback owns it and
 * may hand it back with poll_driver_add after a fill or abandon). */
typedef void (*poll_done_fn)(void *ud, strata_op *op);

/* conns: connections per server address (ops are spread over them). */
poll_driver *poll_driver_new(unsigned int conns);
void poll_driver_free(poll_driver *d);
/* Starts driving op. */
void poll_driver_add(poll_driver *d, strata_op *op, poll_done_fn done, void *ud);
/* Calls fn(ud) at strata_clock_ms() >= at_ms (a host-side timer: a loader's delay). */
void poll_driver_at(poll_driver *d, int64_t at_ms, void (*fn)(void *ud), void *ud);
/* Runs until nothing is in flight or strata_clock_ms() reaches until_ms.
 * Returns the number of ops still in flight. */
int  poll_driver_run(poll_driver *d, int64_t until_ms);

#endif
