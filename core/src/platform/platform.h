/* Threads, clocks, randomness and atomics: the only place with platform #ifdefs. */
#ifndef STRATA_PLATFORM_H
#define STRATA_PLATFORM_H

#include <stdint.h>
#include <stddef.h>
#include <pthread.h>
#include <time.h>

typedef pthread_mutex_t strata__mutex;
typedef pthread_cond_t strata__cond;
typedef pthread_t strata__thread;

int  strata__mutex_init(strata__mutex *m);
#define strata__mutex_lock(m)    pthread_mutex_lock(m)
#define strata__mutex_unlock(m)  pthread_mutex_unlock(m)
#define strata__mutex_destroy(m) pthread_mutex_destroy(m)
#define strata__mutex_trylock(m) pthread_mutex_trylock(m) /* 0 = taken */

/* Condition variables wait on the monotonic clock. */
int  strata__cond_init(strata__cond *c);
#define strata__cond_signal(c)    pthread_cond_signal(c)
#define strata__cond_broadcast(c) pthread_cond_broadcast(c)
#define strata__cond_destroy(c)   pthread_cond_destroy(c)
#define strata__cond_wait(c, m)   pthread_cond_wait(c, m)
/* Waits until the monotonic deadline (ms); returns 0, or 1 on timeout. */
int  strata__cond_wait_until(strata__cond *c, strata__mutex *m, int64_t deadline_ms);

int  strata__thread_start(strata__thread *t, void *(*fn)(void *), void *arg);
#define strata__thread_join(t) pthread_join(t, NULL)

#define STRATA__TLS __thread

/* Milliseconds on the monotonic clock (deadlines) and the wall clock (stored times). */
int64_t strata__now_mono_ms(void);
int64_t strata__now_wall_ms(void);
uint64_t strata__now_mono_ns(void);
void strata__sleep_ms(int64_t ms);

/* The wall clock for freshness checks on hit paths: CLOCK_REALTIME_COARSE
 * (a vDSO read of the time at the last tick, no hardware clock: ~6 ns
 * against ~17 ns) plus one tick. The coarse clock lags the true one by up to
 * a tick or two (HZ=250: measured up to 5.8 ms), so a caller deciding an
 * expiry within STRATA__COARSE_SLACK_MS of now reads strata__now_wall_ms()
 * instead (docs/FRESHNESS.md). No thread, nothing to redo after fork. */
#define STRATA__COARSE_SLACK_MS 50
extern int64_t strata__coarse_tick_ms; /* the coarse clock's tick, rounded up; < 0 until known */
int64_t strata__now_wall_coarse_slow(void);
static inline int64_t strata__now_wall_coarse_ms(void)
{
    struct timespec ts;
    int64_t tick = __atomic_load_n(&strata__coarse_tick_ms, __ATOMIC_RELAXED);
    if (tick < 0)
        return strata__now_wall_coarse_slow();
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + tick;
}

/* The calling thread's reader slot: a number in [0, STRATA__READER_SLOTS)
 * no other live thread holds, so what a thread writes in a structure's slot
 * of that number (the L1's reader mark and hit counts) no other thread
 * writes: plain stores, no locked instructions, no shared cache line. Taken
 * on first use, given back when the thread exits, reset in a forked child to
 * the forking thread's. STRATA__READER_SLOTS when all are taken (the caller
 * takes a slower path that shares; asked again on the next call).
 * initial-exec TLS: one load from the thread pointer, no __tls_get_addr
 * call; four bytes fit the static TLS surplus glibc keeps for libraries
 * loaded later (the Python and Lua modules). */
#define STRATA__READER_SLOTS 64u
extern STRATA__TLS unsigned int strata__this_reader_slot __attribute__((tls_model("initial-exec")));
unsigned int strata__reader_slot_take(void);
static inline unsigned int strata__reader_slot(void)
{
    unsigned int s = strata__this_reader_slot; /* 0 = none (yet), else slot + 1 */
    return s ? s - 1 : strata__reader_slot_take();
}
/* The slot the thread holds already, else a number >= STRATA__READER_SLOTS
 * (no call: for a fast path whose slow path takes one). */
static inline unsigned int strata__reader_slot_held(void)
{
    return strata__this_reader_slot - 1u;
}
/* fn runs in a thread that ends, before its slot is given back: for what a
 * structure keeps per slot that should not wait for the slot's next thread
 * (the hot-key sample buffers). One hook; set once. */
void strata__reader_slot_on_release(void (*fn)(unsigned int slot));
/* One more than the highest slot any thread took so far (a bound for scans). */
unsigned int strata__reader_slots_used(void);

/* Inside a spin wait. */
void strata__spin_pause(unsigned int round);

/* Per-thread xoshiro-style generator seeded from the OS; fork-safe (reseeds on pid change). */
uint64_t strata__random_u64(void);
/* Uniform in (0, 1]: never 0, so log() is finite. */
double strata__random_unit(void);

/* One random value per process (redrawn in a forked child), the same in
 * every thread: for decisions each process should make once, not per call. */
uint64_t strata__process_seed(void);

/* Bumped in the child after every fork: a backend that sees it change drops the
 * parent's sockets and reconnects; the RNG reseeds. */
unsigned int strata__fork_generation(void);

#define strata__atomic_add(p, v)   __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define strata__atomic_load(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define strata__atomic_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define strata__atomic_cas(p, expected, desired) \
    __atomic_compare_exchange_n((p), (expected), (desired), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

#endif
