/* The write-behind journal file: append, replay, compact (see journal.h). */
#define _GNU_SOURCE
#include "journal.h"
#include "error.h"
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define J_MAGIC "STRJ\001\0\0\0" /* magic, format version 1, reserved */
#define J_HEADER 8
#define J_PUT 1
#define J_ACK 2
#define J_DEAD 3
#define J_MAX_BODY ((size_t)1 << 31)

struct strata__journal {
    int fd;
    char path[1100];
    int fsync_policy;
    int64_t interval_ms;
    int64_t last_sync_ms;   /* monotonic */
};

/* ---- encoding ---------------------------------------------------------- */

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* Frames body (whose first 8 bytes are reserved for length and CRC) in place. */
static void frame(unsigned char *rec, size_t bodylen)
{
    put_u32(rec, (uint32_t)bodylen);
    put_u32(rec + 4, crc32_of(rec + 8, bodylen));
}

static int write_all(int fd, const unsigned char *p, size_t n, const char *path)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return strata__error(STRATA_EBACKEND, "journal %s: write failed: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sync_fd(strata__journal *j, int force)
{
    int64_t now;
    if (j->fsync_policy == STRATA_WB_FSYNC_NONE && !force)
        return 0;
    now = strata__now_mono_ms();
    if (!force && j->fsync_policy == STRATA_WB_FSYNC_INTERVAL && now - j->last_sync_ms < j->interval_ms)
        return 0;
    if (fdatasync(j->fd) != 0)
        return strata__error(STRATA_EBACKEND, "journal %s: fdatasync failed: %s", j->path, strerror(errno));
    j->last_sync_ms = now;
    return 0;
}

/* One framed record: a single write(), so a crash leaves at most a torn tail
 * that replay detects by its length or CRC. */
static int append_record(strata__journal *j, int fd, unsigned char *rec, size_t bodylen)
{
    frame(rec, bodylen);
    return write_all(fd, rec, 8 + bodylen, j->path);
}

/* ---- replay ------------------------------------------------------------ */

static int read_file(int fd, const char *path, unsigned char **data, size_t *len)
{
    struct stat st;
    size_t off = 0;
    *data = NULL;
    *len = 0;
    if (fstat(fd, &st) != 0)
        return strata__error(STRATA_EOPTION, "option wb_journal: stat %s: %s", path, strerror(errno));
    if (st.st_size == 0)
        return 0;
    if ((*data = malloc((size_t)st.st_size)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory replaying journal %s", path);
    while (off < (size_t)st.st_size) {
        ssize_t r = pread(fd, *data + off, (size_t)st.st_size - off, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    *len = off;
    return 0;
}

/* Finds the live put with this sequence (puts are in increasing order). */
static strata__wb_record *find_seq(strata__wb_record *recs, size_t n, uint64_t seq)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (recs[mid].id.seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && recs[lo].id.seq == seq ? &recs[lo] : NULL;
}

/* Parses every whole record; *valid_len = bytes up to the first torn or
 * corrupt one. Acked puts are marked by seq = UINT64_MAX afterwards removed. */
static int replay(const unsigned char *data, size_t len, size_t *valid_len, strata__wb_record **out,
                  size_t *nout, size_t *nacked, uint64_t *next_seq, const char *path)
{
    strata__wb_record *recs = NULL;
    size_t n = 0, cap = 0, off = J_HEADER, i, w;
    int rc = 0;

    *nacked = 0;
    while (off + 8 <= len && rc == 0) {
        uint32_t bodylen = get_u32(data + off);
        const unsigned char *body = data + off + 8;
        if (bodylen < 1 || off + 8 + bodylen > len || crc32_of(body, bodylen) != get_u32(data + off + 4))
            break; /* torn tail from a crash mid-write */
        if (body[0] == J_PUT && bodylen >= 1 + 8 + 8 + 4) {
            uint32_t keylen = get_u32(body + 17);
            if (keylen == 0 || 21 + (size_t)keylen > bodylen)
                break;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 256;
                strata__wb_record *p = realloc(recs, nc * sizeof *p);
                if (p == NULL) {
                    rc = strata__error(STRATA_ENOMEM, "out of memory replaying journal %s", path);
                    break;
                }
                memset(p + cap, 0, (nc - cap) * sizeof *p);
                recs = p;
                cap = nc;
            }
            recs[n].id.ms = 0;
            recs[n].id.seq = get_u64(body + 1);
            recs[n].enqueued_ms = (int64_t)get_u64(body + 9);
            if ((rc = strata__bytes_set(&recs[n].key, body + 21, keylen)) == 0)
                rc = strata__bytes_set(&recs[n].val, body + 21 + keylen, bodylen - 21 - keylen);
            n++;
            if (recs[n - 1].id.seq >= *next_seq)
                *next_seq = recs[n - 1].id.seq + 1;
        } else if (body[0] == J_ACK && bodylen >= 5) {
            uint32_t count = get_u32(body + 1);
            if (5 + (size_t)count * 8 > bodylen)
                break;
            for (i = 0; i < count; i++) {
                strata__wb_record *r = find_seq(recs, n, get_u64(body + 5 + i * 8));
                if (r && !r->id.ms) {
                    r->id.ms = 1; /* acked */
                    (*nacked)++;
                }
            }
        } else {
            break;
        }
        off += 8 + bodylen;
    }
    *valid_len = off > len ? len : off;
    if (rc != 0) {
        strata__wb_records_free(recs, cap);
        return rc;
    }
    /* keep the live ones, in order */
    for (i = 0, w = 0; i < n; i++) {
        if (recs[i].id.ms) {
            strata__bytes_free(&recs[i].key);
            strata__bytes_free(&recs[i].val);
            continue;
        }
        if (w != i) {
            recs[w] = recs[i];
            memset(&recs[i], 0, sizeof recs[i]);
        }
        w++;
    }
    *out = recs;
    *nout = w;
    return 0;
}

/* A put record's bytes (framing included) in a fresh buffer. */
static unsigned char *put_record(uint64_t seq, const char *key, size_t keylen, const char *val,
                                 size_t vallen, int64_t enqueued_ms, size_t *bodylen)
{
    unsigned char *rec;
    *bodylen = 21 + keylen + vallen;
    if (*bodylen > J_MAX_BODY || (rec = malloc(8 + *bodylen)) == NULL)
        return NULL;
    rec[8] = J_PUT;
    put_u64(rec + 9, seq);
    put_u64(rec + 17, (uint64_t)enqueued_ms);
    put_u32(rec + 25, (uint32_t)keylen);
    memcpy(rec + 29, key, keylen);
    if (vallen)
        memcpy(rec + 29 + keylen, val, vallen);
    return rec;
}

/* Rewrites the journal with only the live records (tmp file, fsync, rename). */
static int compact(strata__journal *j, const strata__wb_record *recs, size_t n)
{
    char tmp[1200];
    int fd, rc = 0;
    size_t i;
    snprintf(tmp, sizeof tmp, "%s.tmp", j->path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return strata__error(STRATA_EBACKEND, "journal %s: cannot create %s: %s", j->path, tmp, strerror(errno));
    rc = write_all(fd, (const unsigned char *)J_MAGIC, J_HEADER, tmp);
    for (i = 0; i < n && rc == 0; i++) {
        size_t bodylen;
        unsigned char *rec = put_record(recs[i].id.seq, recs[i].key.data, recs[i].key.len,
                                        recs[i].val.data, recs[i].val.len, recs[i].enqueued_ms, &bodylen);
        if (rec == NULL) {
            rc = strata__error(STRATA_ENOMEM, "out of memory compacting journal %s", j->path);
            break;
        }
        rc = append_record(j, fd, rec, bodylen);
        free(rec);
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = strata__error(STRATA_EBACKEND, "journal %s: fdatasync: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, j->path) != 0)
        rc = strata__error(STRATA_EBACKEND, "journal %s: rename: %s", j->path, strerror(errno));
    if (rc != 0) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    /* the lock moves to the new file: it is the journal now */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return strata__error(STRATA_EBUSY, "journal %s: cannot lock the compacted file", j->path);
    }
    close(j->fd);
    j->fd = fd;
    if (fcntl(fd, F_SETFL, O_APPEND) != 0)
        return strata__error(STRATA_EBACKEND, "journal %s: fcntl: %s", j->path, strerror(errno));
    return 0;
}

int strata__journal_open(strata__journal **out, const char *path, int fsync_policy, int64_t interval_ms,
                         strata__wb_record **recs, size_t *n, uint64_t *next_seq)
{
    strata__journal *j;
    unsigned char *data = NULL;
    size_t len = 0, valid = 0, nacked = 0;
    int rc;

    *out = NULL;
    *recs = NULL;
    *n = 0;
    *next_seq = 1;
    if (path == NULL || *path == '\0' || strlen(path) >= sizeof j->path)
        return strata__error(STRATA_EOPTION, "option wb_journal: path must be 1-1023 bytes");
    if ((j = calloc(1, sizeof *j)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory opening journal");
    snprintf(j->path, sizeof j->path, "%s", path);
    j->fsync_policy = fsync_policy;
    j->interval_ms = interval_ms;
    j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (j->fd < 0) {
        rc = strata__error(STRATA_EOPTION, "option wb_journal: cannot open \"%s\": %s", path, strerror(errno));
        free(j);
        return rc;
    }
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = strata__error(STRATA_EBUSY, "option wb_journal: \"%s\" is in use by another cache or process",
                           path);
        goto fail;
    }
    if ((rc = read_file(j->fd, path, &data, &len)) < 0)
        goto fail;
    if (len >= J_HEADER && memcmp(data, J_MAGIC, 4) != 0) {
        rc = strata__error(STRATA_EOPTION, "option wb_journal: \"%s\" is not a stratacache journal", path);
        goto fail;
    }
    if (len >= J_HEADER && data[4] != 1) {
        rc = strata__error(STRATA_EVERSION, "journal \"%s\" has format version %d (this library knows 1)",
                           path, data[4]);
        goto fail;
    }
    if (len >= J_HEADER && (rc = replay(data, len, &valid, recs, n, &nacked, next_seq, path)) < 0)
        goto fail;
    free(data);
    data = NULL;
    if (len < J_HEADER || *n == 0) {
        /* empty, new, or all flushed: start over from the header */
        if (ftruncate(j->fd, 0) != 0 || write_all(j->fd, (const unsigned char *)J_MAGIC, J_HEADER, path) != 0 ||
            fdatasync(j->fd) != 0) {
            rc = strata__error(STRATA_EOPTION, "option wb_journal: cannot write \"%s\": %s", path, strerror(errno));
            goto fail;
        }
    } else if (nacked > 0 || valid < len) {
        if ((rc = compact(j, *recs, *n)) < 0)
            goto fail;
    }
    j->last_sync_ms = strata__now_mono_ms();
    *out = j;
    return 0;
fail:
    free(data);
    strata__wb_records_free(*recs, *n);
    *recs = NULL;
    *n = 0;
    close(j->fd);
    free(j);
    return rc;
}

void strata__journal_close(strata__journal *j)
{
    if (j == NULL)
        return;
    if (j->fsync_policy != STRATA_WB_FSYNC_NONE)
        fdatasync(j->fd);
    close(j->fd);
    free(j);
}

int strata__journal_put(strata__journal *j, uint64_t seq, const char *key, size_t keylen, const char *val,
                        size_t vallen, int64_t enqueued_ms)
{
    size_t bodylen;
    unsigned char *rec = put_record(seq, key, keylen, val, vallen, enqueued_ms, &bodylen);
    int rc;
    if (rec == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory journaling a %zu-byte value", vallen);
    rc = append_record(j, j->fd, rec, bodylen);
    free(rec);
    return rc == 0 ? sync_fd(j, 0) : rc;
}

int strata__journal_ack(strata__journal *j, size_t n, const strata__wb_id *ids)
{
    size_t bodylen = 5 + n * 8, i;
    unsigned char *rec;
    int rc;
    if (n == 0)
        return 0;
    if ((rec = malloc(8 + bodylen)) == NULL)
        return strata__error(STRATA_ENOMEM, "out of memory journaling %zu acks", n);
    rec[8] = J_ACK;
    put_u32(rec + 9, (uint32_t)n);
    for (i = 0; i < n; i++)
        put_u64(rec + 13 + i * 8, ids[i].seq);
    rc = append_record(j, j->fd, rec, bodylen);
    free(rec);
    return rc; /* an ack lost to a crash means one more delivery, never a lost write */
}

int strata__journal_dead(strata__journal *j, const char *key, size_t keylen, const char *val, size_t vallen,
                         unsigned int attempts, const char *message, size_t n, const strata__wb_id *ids)
{
    char path[1200];
    size_t msglen = message ? strlen(message) : 0, bodylen = 1 + 8 + 4 + 4 + keylen + 4 + msglen + vallen;
    unsigned char *rec;
    struct stat st;
    int fd, rc;
    snprintf(path, sizeof path, "%s.dead", j->path);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
        return strata__error(STRATA_EBACKEND, "journal %s: cannot open %s: %s", j->path, path, strerror(errno));
    if ((rec = malloc(8 + bodylen)) == NULL) {
        close(fd);
        return strata__error(STRATA_ENOMEM, "out of memory writing a dead letter");
    }
    rec[8] = J_DEAD;
    put_u64(rec + 9, (uint64_t)strata__now_wall_ms());
    put_u32(rec + 17, attempts);
    put_u32(rec + 21, (uint32_t)keylen);
    memcpy(rec + 25, key, keylen);
    put_u32(rec + 25 + keylen, (uint32_t)msglen);
    if (msglen)
        memcpy(rec + 29 + keylen, message, msglen);
    if (vallen)
        memcpy(rec + 29 + keylen + msglen, val, vallen);
    rc = 0;
    if (fstat(fd, &st) == 0 && st.st_size == 0)
        rc = write_all(fd, (const unsigned char *)J_MAGIC, J_HEADER, path);
    if (rc == 0)
        rc = append_record(j, fd, rec, bodylen);
    if (rc == 0 && j->fsync_policy != STRATA_WB_FSYNC_NONE && fdatasync(fd) != 0)
        rc = strata__error(STRATA_EBACKEND, "journal %s: fdatasync: %s", path, strerror(errno));
    free(rec);
    close(fd);
    return rc == 0 ? strata__journal_ack(j, n, ids) : rc;
}

int strata__journal_truncate(strata__journal *j)
{
    if (ftruncate(j->fd, J_HEADER) != 0)
        return strata__error(STRATA_EBACKEND, "journal %s: ftruncate: %s", j->path, strerror(errno));
    return 0;
}

/* ---- dead letters, for the operator tools (engine/wb_dead.c) ------------ */

static void dead_path(const char *journal_path, char *buf, size_t size)
{
    snprintf(buf, size, "%s.dead", journal_path);
}

int strata__journal_dead_read(const char *journal_path, strata__dead_letter **out, size_t *nout)
{
    char path[1200];
    unsigned char *data = NULL;
    size_t len = 0, off = J_HEADER, n = 0, cap = 0;
    strata__dead_letter *d = NULL;
    int fd, rc = 0;

    *out = NULL;
    *nout = 0;
    dead_path(journal_path, path, sizeof path);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : strata__error(STRATA_EBACKEND, "dead letters %s: %s", path, strerror(errno));
    rc = read_file(fd, path, &data, &len);
    close(fd);
    if (rc < 0)
        return rc;
    if (len >= J_HEADER && memcmp(data, J_MAGIC, 4) != 0) {
        free(data);
        return strata__error(STRATA_EBACKEND, "dead letters %s: not a stratacache dead-letter file", path);
    }
    while (rc == 0 && off + 8 <= len) {
        uint32_t bodylen = get_u32(data + off), keylen, msglen;
        const unsigned char *body = data + off + 8;
        if (bodylen < 21 || off + 8 + bodylen > len || crc32_of(body, bodylen) != get_u32(data + off + 4) ||
            body[0] != J_DEAD)
            break; /* a torn tail */
        keylen = get_u32(body + 13);
        if (17 + (size_t)keylen + 4 > bodylen)
            break;
        msglen = get_u32(body + 17 + keylen);
        if (21 + (size_t)keylen + msglen > bodylen)
            break;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            strata__dead_letter *p = realloc(d, nc * sizeof *p);
            if (p == NULL) {
                rc = strata__error(STRATA_ENOMEM, "out of memory reading dead letters");
                break;
            }
            memset(p + cap, 0, (nc - cap) * sizeof *p);
            d = p;
            cap = nc;
        }
        snprintf(d[n].id, sizeof d[n].id, "%zu", n + 1);
        d[n].given_up_ms = (int64_t)get_u64(body + 1);
        d[n].attempts = get_u32(body + 9);
        rc = strata__bytes_set(&d[n].key, body + 17, keylen);
        if (rc == 0)
            rc = strata__bytes_set(&d[n].error, body + 21 + keylen, msglen);
        if (rc == 0)
            rc = strata__bytes_set(&d[n].val, body + 21 + keylen + msglen, bodylen - 21 - keylen - msglen);
        n++;
        off += 8 + bodylen;
    }
    free(data);
    if (rc < 0) {
        strata__dead_letters_free(d, n);
        return rc;
    }
    *out = d;
    *nout = n;
    return 0;
}

int strata__journal_dead_rewrite(const char *journal_path, const strata__dead_letter *d, size_t n,
                                 const unsigned char *keep)
{
    char path[1200], tmp[1210];
    int fd, rc = 0;
    size_t i;

    dead_path(journal_path, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return strata__error(STRATA_EBACKEND, "dead letters: cannot create %s: %s", tmp, strerror(errno));
    rc = write_all(fd, (const unsigned char *)J_MAGIC, J_HEADER, tmp);
    for (i = 0; i < n && rc == 0; i++) {
        size_t bodylen = 21 + d[i].key.len + d[i].error.len + d[i].val.len;
        unsigned char *rec;
        if (!keep[i])
            continue;
        if ((rec = malloc(8 + bodylen)) == NULL) {
            rc = strata__error(STRATA_ENOMEM, "out of memory rewriting dead letters");
            break;
        }
        rec[8] = J_DEAD;
        put_u64(rec + 9, (uint64_t)d[i].given_up_ms);
        put_u32(rec + 17, d[i].attempts);
        put_u32(rec + 21, (uint32_t)d[i].key.len);
        memcpy(rec + 25, d[i].key.data, d[i].key.len);
        put_u32(rec + 25 + d[i].key.len, (uint32_t)d[i].error.len);
        if (d[i].error.len)
            memcpy(rec + 29 + d[i].key.len, d[i].error.data, d[i].error.len);
        if (d[i].val.len)
            memcpy(rec + 29 + d[i].key.len + d[i].error.len, d[i].val.data, d[i].val.len);
        frame(rec, bodylen);
        rc = write_all(fd, rec, 8 + bodylen, tmp);
        free(rec);
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = strata__error(STRATA_EBACKEND, "dead letters %s: fdatasync: %s", tmp, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = strata__error(STRATA_EBACKEND, "dead letters %s: rename: %s", path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    return rc;
}
