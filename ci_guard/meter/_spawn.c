/* ci-guard-spawn PARENT_PID PROGRAM ARGV0 [ARG...]: become PROGRAM, dying with PARENT_PID.
 *
 * The agent must die when ci-guard does (PR_SET_PDEATHSIG). Setting that from Python needs a
 * preexec_fn, and a preexec_fn makes the spawn a full fork() of ci-guard's process (tens of MB of
 * page tables, then copy-on-write faults on both sides until the exec): ~6 ms of CPU per run,
 * measured. Without it, Python spawns this program with vfork(); it sets the signal, checks that
 * ci-guard did not die before it was set (then the kernel would never send it), and execs the
 * agent. ci_guard/meter/spawn.py resolves PROGRAM (and reports a missing or non-executable one)
 * before; an exec that fails anyway exits 127 with the reason, as a shell does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: ci-guard-spawn PARENT_PID PROGRAM ARGV0 [ARG...]\n");
        return 2;
    }
    char *end;
    long parent = strtol(argv[1], &end, 10);
    if (*end != '\0' || parent <= 0) {
        fprintf(stderr, "ci-guard-spawn: not a pid: %s\n", argv[1]);
        return 2;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        fprintf(stderr, "ci-guard-spawn: prctl(PR_SET_PDEATHSIG): %s\n", strerror(errno));
        return 127;
    }
    if (getppid() != (pid_t)parent) /* ci-guard is already gone: end as the signal would have */
        raise(SIGKILL);
    execv(argv[2], argv + 3);
    fprintf(stderr, "ci-guard: cannot run the agent %s: %s\n", argv[2], strerror(errno));
    return 127;
}
