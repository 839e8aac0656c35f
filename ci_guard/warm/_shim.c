/* The warm launcher's own `ci-guard`, compiled: <socket>.bin/ci-guard (docs/warm.md).
 *
 * ci_guard/warm/shim.py holds the contract; this is its common case without an interpreter. A
 * Python client, even started with -I -S, spends ~9 ms of CPU before it sends a request; this
 * spends well under 1 ms, on every run of a fleet (BENCHMARKS.md, "The launcher's own client").
 *
 * It handles one case end to end: `ci-guard run ...` for the launcher's own installation, with an
 * argv, environment and working directory in ASCII. Anything else (another command, another
 * ci-guard next on PATH, other import variables, a byte above 0x7e, a launcher that does not
 * answer or refuses the run) is handed, unchanged, to the Python shim beside it (ci-guard.py),
 * which decides as it always does. So this program can only make a run start faster: where it is
 * not sure, the slower client runs.
 *
 * Its settings come from ci-guard.conf beside it, written by the launcher: the identity a request
 * carries, the launcher's interpreter and prefix, and its import variables.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

#define EXIT_RUN_INFRASTRUCTURE 82
#define MAX_REPLY 4096

/* What decides which code a Python imports (shim.IMPORT_VARS): they must be the launcher's. */
static const char *const IMPORT_VARS[] = {"PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONNOUSERSITE",
                                          "PYTHONUSERBASE", "PYTHONPLATLIBDIR"};
#define N_IMPORT_VARS (sizeof IMPORT_VARS / sizeof IMPORT_VARS[0])

/* The resource limits a request carries: those of Python's resource module on Linux. */
static const struct { const char *name; int which; } LIMITS[] = {
    {"RLIMIT_AS", RLIMIT_AS}, {"RLIMIT_CORE", RLIMIT_CORE}, {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA}, {"RLIMIT_FSIZE", RLIMIT_FSIZE}, {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE}, {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC}, {"RLIMIT_RSS", RLIMIT_RSS}, {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME}, {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
};
static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP};

static char fallback[PATH_MAX]; /* <dir>/ci-guard.py */
static char **args;
static volatile sig_atomic_t sock_fd = -1;

/* The Python shim decides: never returns. */
static void hand_over(void) {
    if (sock_fd >= 0) close(sock_fd);
    args[0] = fallback;
    execv(fallback, args);
    fprintf(stderr, "ci-guard: cannot start %s: %s\n", fallback, strerror(errno));
    _exit(127);
}

/* -- a growing buffer ------------------------------------------------------------------------ */
typedef struct { char *p; size_t n, cap; } buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) hand_over();
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_int(buf *b, long long v) {
    char text[32];
    put(b, text, (size_t)snprintf(text, sizeof text, "%lld", v));
}

/* A JSON string of an ASCII text (what json.loads reads back as the same str); hands over on any
 * byte outside ASCII, whose decoding (the locale, surrogate escapes) is Python's to do. */
static void put_str(buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) hand_over();
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(b, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(b, esc, 6);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    put(b, "\"", 1);
}

/* -- settings -------------------------------------------------------------------------------- */
static char *identity, *python, *prefix;
static char *import_values[N_IMPORT_VARS]; /* NULL: unset in the launcher */

static char *dup_or_leave(const char *s) {
    char *d = strdup(s);
    if (d == NULL) hand_over();
    return d;
}

static void read_settings(const char *dir) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/ci-guard.conf", dir) >= (int)sizeof path) hand_over();
    FILE *f = fopen(path, "r");
    if (f == NULL) hand_over();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n') line[--len] = '\0';
        char *value = strchr(line, ' ');
        if (value == NULL) continue;
        *value++ = '\0';
        if (strcmp(line, "identity") == 0) identity = dup_or_leave(value);
        else if (strcmp(line, "python") == 0) python = dup_or_leave(value);
        else if (strcmp(line, "prefix") == 0) prefix = dup_or_leave(value);
        else if (strcmp(line, "import") == 0) {
            char *eq = strchr(value, '=');
            if (eq == NULL) continue;
            *eq = '\0';
            for (size_t i = 0; i < N_IMPORT_VARS; i++)
                if (strcmp(value, IMPORT_VARS[i]) == 0) import_values[i] = dup_or_leave(eq + 1);
        }
    }
    free(line);
    fclose(f);
    size_t id_len = identity ? strlen(identity) : 0;
    if (!python || !prefix || id_len < 2 || identity[0] != '{' || identity[id_len - 1] != '}') hand_over();
}

/* -- whether this run is the launcher's to take (shim.py: main, next_on_path, runs_in) ---------- */
static int same_inode(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Whether the console script at `path` runs the launcher's interpreter in the launcher's prefix. */
static int runs_in(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    char line[512];
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok || line[0] != '#' || line[1] != '!') return 0;
    char *interp = line + 2;
    interp += strspn(interp, " \t\v\f\r\n");
    interp[strcspn(interp, " \t\v\f\r\n")] = '\0';
    if (interp[0] != '/') return 0; /* not an absolute path as written: Python decides */
    /* dirname(dirname(interp)) == prefix, on the path as written (pip writes it clean) */
    char *slash = strrchr(interp, '/');
    if (slash == NULL || slash == interp) return 0;
    *slash = '\0';
    char *bin = strrchr(interp, '/');
    if (bin == NULL) return 0;
    size_t env_len = (size_t)(bin - interp);
    int same_prefix = strlen(prefix) == env_len && strncmp(prefix, interp, env_len) == 0;
    *slash = '/';
    if (!same_prefix) return 0;
    char a[PATH_MAX], b[PATH_MAX];
    return realpath(interp, a) != NULL && realpath(python, b) != NULL && strcmp(a, b) == 0;
}

/* 1 when the next ci-guard on PATH (after this directory) is none, or the launcher's own. */
static int next_on_path_is_ours(const struct stat *own_dir, const struct stat *own_exe,
                                const struct stat *own_script) {
    const char *path = getenv("PATH");
    if (path == NULL) return 0; /* Python's os.defpath: let it look */
    const char *entry = path;
    for (;;) {
        size_t n = strcspn(entry, ":");
        char dir[PATH_MAX], candidate[PATH_MAX + 16];
        if (n >= sizeof dir) return 0;
        if (n == 0) strcpy(dir, ".");
        else {
            memcpy(dir, entry, n);
            dir[n] = '\0';
        }
        struct stat st;
        if (!(stat(dir, &st) == 0 && same_inode(&st, own_dir))) {
            snprintf(candidate, sizeof candidate, "%s/ci-guard", dir);
            if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode) && access(candidate, X_OK) == 0
                && !same_inode(&st, own_exe) && !same_inode(&st, own_script))
                return runs_in(candidate);
        }
        if (entry[n] == '\0') return 1;
        entry += n + 1;
    }
}

static int import_vars_match(void) {
    for (size_t i = 0; i < N_IMPORT_VARS; i++) {
        const char *ours = getenv(IMPORT_VARS[i]);
        const char *theirs = import_values[i];
        if ((ours == NULL) != (theirs == NULL) || (ours && strcmp(ours, theirs) != 0)) return 0;
    }
    return 1;
}

/* -- the request ----------------------------------------------------------------------------- */
static void build_request(buf *b, int argc, char **argv) {
    put(b, "\0\0\0\0", 4); /* the frame's length, filled in below */
    put(b, identity, strlen(identity) - 1); /* without its closing brace */
    puts_(b, ",\"argv\":[");
    for (int i = 1; i < argc; i++) {
        if (i > 1) put(b, ",", 1);
        put_str(b, argv[i], strlen(argv[i]));
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL) hand_over();
    puts_(b, "],\"cwd\":");
    put_str(b, cwd, strlen(cwd));
    /* os.environ: the first of duplicate names wins; entries without "=" are left out */
    puts_(b, ",\"env\":{");
    int first = 1;
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL) continue;
        size_t klen = (size_t)(eq - *e);
        int seen = 0;
        for (char **p = environ; p < e && !seen; p++)
            seen = strncmp(*p, *e, klen + 1) == 0;
        if (seen) continue;
        if (!first) put(b, ",", 1);
        first = 0;
        put_str(b, *e, klen);
        put(b, ":", 1);
        put_str(b, eq + 1, strlen(eq + 1));
    }
    mode_t mask = umask(022);
    umask(mask);
    puts_(b, "},\"umask\":");
    put_int(b, (long long)mask);
    puts_(b, ",\"rlimits\":{");
    for (size_t i = 0; i < sizeof LIMITS / sizeof LIMITS[0]; i++) {
        struct rlimit rl;
        if (getrlimit(LIMITS[i].which, &rl) != 0) hand_over();
        if (i) put(b, ",", 1);
        put_str(b, LIMITS[i].name, strlen(LIMITS[i].name));
        put(b, ":[", 2);
        /* as Python's resource module reports them: RLIM_INFINITY is -1 */
        put_int(b, rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur);
        put(b, ",", 1);
        put_int(b, rl.rlim_max == RLIM_INFINITY ? -1 : (long long)rl.rlim_max);
        put(b, "]", 1);
    }
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    if (nice == -1 && errno) hand_over();
    puts_(b, "},\"nice\":");
    put_int(b, nice);
    put(b, "}", 1);
    uint32_t len = (uint32_t)(b->n - 4);
    unsigned char *h = (unsigned char *)b->p;
    h[0] = (unsigned char)(len >> 24), h[1] = (unsigned char)(len >> 16);
    h[2] = (unsigned char)(len >> 8), h[3] = (unsigned char)len;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* The request's first bytes carry stdin, stdout and stderr (SCM_RIGHTS). */
static int send_request(int fd, const buf *b) {
    int fds[3] = {0, 1, 2};
    char control[CMSG_SPACE(sizeof fds)];
    memset(control, 0, sizeof control);
    struct iovec iov = {b->p, b->n};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof fds);
    ssize_t sent;
    do sent = sendmsg(fd, &msg, MSG_NOSIGNAL); while (sent < 0 && errno == EINTR);
    if (sent <= 0) return -1;
    return send_all(fd, b->p + sent, b->n - (size_t)sent);
}

/* One message's JSON text into `out` (NUL-terminated); -1 at EOF or on an error. */
static int read_message(int fd, char *out, size_t cap) {
    unsigned char h[4];
    size_t got = 0;
    while (got < 4) {
        ssize_t r = recv(fd, h + got, 4 - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    size_t len = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
    if (len >= cap) return -1;
    for (got = 0; got < len;) {
        ssize_t r = recv(fd, out + got, len - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    out[len] = '\0';
    return 0;
}

/* The integer of `{"<key>": N}`, the only replies read here; 0 if the message is not that. */
static int reply_int(const char *text, const char *key, long *value) {
    char head[32];
    snprintf(head, sizeof head, "{\"%s\":", key);
    if (strncmp(text, head, strlen(head)) != 0) return 0;
    char *end;
    errno = 0;
    *value = strtol(text + strlen(head), &end, 10);
    return errno == 0 && end != text + strlen(head) && strcmp(end, "}") == 0;
}

/* -- the run --------------------------------------------------------------------------------- */
static void forward(int sig) {
    /* {"signal":N}, framed: built by hand (snprintf is not async-signal-safe; send is) */
    int saved = errno;
    static const char head[] = "{\"signal\":";
    char frame[32], digits[12];
    size_t n = 0, d = 0;
    unsigned value = (unsigned)sig;
    do digits[d++] = (char)('0' + value % 10); while ((value /= 10) && d < sizeof digits);
    memcpy(frame + 4, head, sizeof head - 1);
    n = sizeof head - 1;
    while (d) frame[4 + n++] = digits[--d];
    frame[4 + n++] = '}';
    frame[0] = frame[1] = frame[2] = 0;
    frame[3] = (char)n;
    if (sock_fd >= 0) send_all(sock_fd, frame, n + 4);
    errno = saved;
}

static void note(const char *text) {
    dprintf(2, "ci-guard: note: %s\n", text);
}

int main(int argc, char **argv) {
    args = argv;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) { /* no /proc: nothing is known, not even where the Python shim is */
        fprintf(stderr, "ci-guard: cannot find this program's directory (/proc/self/exe)\n");
        return 127;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    *slash = '\0';
    const char *dir = exe;
    if (snprintf(fallback, sizeof fallback, "%s/ci-guard.py", dir) >= (int)sizeof fallback) return 127;

    const char *socket_path = getenv("CI_GUARD_WARM");
    if (argc < 2 || strcmp(argv[1], "run") != 0 || socket_path == NULL || socket_path[0] == '\0') hand_over();
    read_settings(dir);
    struct stat own_dir, own_exe, own_script;
    *slash = '/';
    int known = stat(exe, &own_exe) == 0;
    *slash = '\0';
    if (!known || stat(dir, &own_dir) != 0 || stat(fallback, &own_script) != 0) hand_over();
    if (!import_vars_match() || !next_on_path_is_ours(&own_dir, &own_exe, &own_script)) hand_over();

    buf request = {0};
    build_request(&request, argc, argv);
    struct sockaddr_un addr = {0};
    addr.sun_family = AF_UNIX;
    if (strlen(socket_path) >= sizeof addr.sun_path) hand_over();
    strcpy(addr.sun_path, socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) hand_over();
    sock_fd = fd;
    int rc;
    do rc = connect(fd, (struct sockaddr *)&addr, sizeof addr); while (rc < 0 && errno == EINTR);
    if (rc < 0 || send_request(fd, &request) < 0) hand_over(); /* it retries, and says why */
    free(request.p);
    char reply[MAX_REPLY];
    long value;
    if (read_message(fd, reply, sizeof reply) < 0 || !reply_int(reply, "pid", &value))
        hand_over(); /* refused, or gone: the Python shim asks again and writes the note */

    struct sigaction sa = {0};
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof FORWARDED / sizeof FORWARDED[0]; i++) sigaction(FORWARDED[i], &sa, NULL);
    if (read_message(fd, reply, sizeof reply) < 0 || !reply_int(reply, "exit", &value)) {
        note("the warm launcher went away before the run ended; its outcome is in the ledger");
        _exit(EXIT_RUN_INFRASTRUCTURE);
    }
    if (value < 0) { /* the run died of a signal: so does this process, as a cold run would have */
        sock_fd = -1;
        for (size_t i = 0; i < sizeof FORWARDED / sizeof FORWARDED[0]; i++) signal(FORWARDED[i], SIG_DFL);
        signal((int)-value, SIG_DFL);
        kill(getpid(), (int)-value);
        _exit((int)(128 - value));
    }
    _exit((int)(value & 0xff));
}
