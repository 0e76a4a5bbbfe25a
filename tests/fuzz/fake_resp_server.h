/*
 * A fake Redis for the reply harness: a thread on a loopback port that reads
 * whole RESP commands and answers each batch of them (everything a client
 * wrote before it started reading) with the next scripted chunk of bytes,
 * whatever the commands were; a client still silent 3 ms after a chunk
 * is waiting for more and gets the next one. After the last chunk the
 * server shuts its side down, so a client waiting for more sees EOF at
 * once, never its timeout.
 * One connection at a time, in accept order.
 */
#ifndef STRATA_FAKE_RESP_SERVER_H
#define STRATA_FAKE_RESP_SERVER_H

#include <stddef.h>

/* Starts the server (once per process); returns its port. */
int fake_resp_start(void);

/* The replies for the next client connections: chunks[i] answers the i-th
 * batch of commands, across connections. The memory stays the caller's
 * until fake_resp_wait_idle returns. */
void fake_resp_script(const char *const *chunks, const size_t *lens, size_t n);

/* Waits until every connection made so far has been served and closed. */
void fake_resp_wait_idle(void);

#endif
