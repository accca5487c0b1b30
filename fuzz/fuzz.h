/* Shared pieces of the libFuzzer targets (fuzz/fuzz-*.c).
 *
 * Each target decodes its input into the arguments of public calls, makes
 * them on a fresh loop, runs that loop for a bounded number of
 * non-blocking iterations and closes it, so that nothing outlives the
 * input (libFuzzer's leak check runs per input).  A call that returns
 * anything but 0 or a negative code, or a protocol that does not hear
 * connection_lost exactly once, aborts: that is the crash libFuzzer
 * reports.
 *
 * Nothing leaves the machine: the loop's resolver asks a UDP socket on
 * 127.0.0.1 that never answers, and fuzz-common.c replaces connect(),
 * bind(), sendto() and sendmsg() for the whole process with versions that
 * refuse any address but loopback (bind: not even the wildcard) on a port
 * this process has bound itself, and UNIX paths inside the target's own
 * temporary directory: a fuzzed port never reaches another program. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <asyncio.h>

/* The fuzz input, consumed from the front; reads past the end give zeros.
 * Strings it hands out live until fz_input_free. */
typedef struct fz_input {
    const uint8_t *p;
    size_t n;
    void **allocs;
    size_t nallocs, cap;
} fz_input;

void fz_input_init(fz_input *in, const uint8_t *data, size_t size);
void fz_input_free(fz_input *in);
uint8_t fz_u8(fz_input *in);
uint16_t fz_u16(fz_input *in);
uint32_t fz_u32(fz_input *in);
/* A byte-length-prefixed string of at most `max` bytes (stops at a NUL). */
char *fz_str(fz_input *in, size_t max);
/* NULL, "" or fz_str, as the next byte says. */
char *fz_opt_str(fz_input *in, size_t max);
/* An int that is often one of the edges (0, -1, 65535, 65536, INT_MIN...). */
int fz_int(fz_input *in);
/* A double that is often 0, negative, NaN or infinite. */
double fz_double(fz_input *in);
/* `len` raw bytes (zero-padded past the end of the input) into buf. */
void fz_bytes(fz_input *in, void *buf, size_t len);
/* Memory that lives until fz_input_free. */
void *fz_alloc(fz_input *in, size_t len);

/* The target's private directory (made on first use, removed at exit). */
const char *fz_tmpdir(void);
/* fz_tmpdir() "/" name, with '/' and a leading '.' in name made '_', so
 * the path never leaves the directory (its length still reaches sun_path's limit). */
char *fz_path_in_tmpdir(fz_input *in, const char *name);

/* A loop whose resolver asks only the silent loopback socket and whose
 * exception handler stays quiet. */
asyncio_loop *fz_loop_new(void);
/* Up to `iterations` non-blocking iterations, fewer once `f` is done. */
void fz_loop_run(asyncio_loop *loop, asyncio_future *f, int iterations);
/* Close the loop, release it, and check every protocol heard
 * connection_lost exactly once. */
void fz_loop_free(asyncio_loop *loop);

/* A factory (arg: ignored) of protocols that free themselves in
 * connection_lost; fz_loop_free checks the count. */
asyncio_protocol *fz_protocol_factory(void *arg);

/* The result of a future that completed with one; NULL while pending,
 * failed or cancelled.  Borrowed from the future. */
void *fz_result(asyncio_future *f);

/* Abort unless rc is 0 or negative. */
void fz_check(int rc, const char *what);
/* Abort unless rc is 0, negative or, for calls that return a count, at
 * most `max`. */
void fz_check_count(int rc, int max, const char *what);

#endif
