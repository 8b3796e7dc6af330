/*
 * The native plugin launcher: the warm path without an interpreter start.
 *
 * `cnitool plugins install --launcher native` compiles this file once and writes one
 * copy per plugin into the CNI bin dir, each followed by a trailer naming its plugin
 * (see cnitool/launchers.py, native_trailer). It does what the Python launcher's router
 * and client do (cnitool/warm/router.py, cnitool/warm/client.py), with the same wire
 * format (cnitool/warm/wire.py):
 *
 *   1. CNI_COMMAND=VERSION with a known answer: print it;
 *   2. root, and a root-owned socket at $PYCNI_SOCKET (default /run/pycni/plugins.sock)
 *      whose peer is root: forward argv, the environment, stdin, the umask and the
 *      caller's mount and network namespaces and working directory; relay stderr, stdout
 *      and the exit status;
 *   3. otherwise (also when given arguments: runtimes pass none, so that is a command
 *      of the plugin's own, such as "dhcp daemon"), or when the
 *      service answers "cold" or did not take the whole request:
 *      exec the interpreter on the plugin package (the cold path), with the stdin bytes
 *      already read replayed from a memory file;
 *   4. the connection breaks after the request was sent: a CNI error (code 999), never
 *      a second run.
 *
 * Its own failures (an unreadable trailer, an interpreter that cannot be exec'd) are
 * reported as CNI errors on stdout with exit status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_SOCKET "/run/pycni/plugins.sock"
#define TRAILER_MAGIC "\0PYCNI-L"
#define TRAILER_MAGIC_LEN 8
#define TRAILER_MAX (1u << 20)
#define FORMAT_VERSION 1
#define OP_RUN 1
#define KIND_RESULT 0
#define KIND_COLD 1
#define LOST_CODE 999
#define SETUP_CODE 999
#define MAX_OUTPUT (16u * 1024 * 1024)

/* bounds of plugin, argv, env, tag and stdin (cnitool.warm.wire.LIMITS) */
static const size_t LIMITS[5] = {64, 64 * 1024, 1024 * 1024, 64, 8 * 1024 * 1024};

struct field {
    const char *data;
    uint32_t len;
    int present;
};

/* the trailer's fields, in order */
enum { F_PYTHON, F_PACKAGE, F_TAG, F_ANSWER, F_COLD, N_FIELDS };
static struct field conf[N_FIELDS];

struct buf {
    char *data;
    size_t len, cap;
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* a reader that went away is not an error */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* A CNI error on stdout, as the plugins print it; msg holds no characters to escape. */
static void __attribute__((noreturn)) fail(int code, const char *msg, const char *detail)
{
    char out[1024];
    int n = snprintf(out, sizeof out, "{\n    \"code\": %d,\n    \"msg\": \"%s%s\"\n}", code, msg,
                     detail ? detail : "");
    if (n > 0)
        write_all(1, out, (size_t)n < sizeof out ? (size_t)n : sizeof out - 1);
    _exit(1);
}

static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t get_u32be(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_u32be(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static int read_at(int fd, void *dst, size_t n, off_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)dst + done, n - done, off + (off_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

/*
 * The trailer at the end of this executable: the fields, each a little-endian u32
 * length (0xffffffff: absent) and its bytes, then the u32 length of all of them and the
 * magic.
 */
static int load_trailer(void)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    unsigned char tail[4 + TRAILER_MAGIC_LEN];
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof tail ||
        read_at(fd, tail, sizeof tail, st.st_size - (off_t)sizeof tail) != 0 ||
        memcmp(tail + 4, TRAILER_MAGIC, TRAILER_MAGIC_LEN) != 0) {
        close(fd);
        return -1;
    }
    uint32_t size = get_u32le(tail);
    if (size > TRAILER_MAX || (off_t)size > st.st_size - (off_t)sizeof tail) {
        close(fd);
        return -1;
    }
    unsigned char *data = malloc(size ? size : 1);
    if (!data || read_at(fd, data, size, st.st_size - (off_t)sizeof tail - size) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    size_t pos = 0;
    for (int i = 0; i < N_FIELDS; i++) {
        if (size - pos < 4)
            return -1;
        uint32_t len = get_u32le(data + pos);
        pos += 4;
        if (len == 0xffffffffu)
            continue;
        if (len > size - pos)
            return -1;
        conf[i].data = (const char *)data + pos;
        conf[i].len = len;
        conf[i].present = 1;
        pos += len;
    }
    /* the interpreter, the package and the cold script are C strings too */
    for (int i = 0; i < N_FIELDS; i++) {
        if (i == F_ANSWER)
            continue;
        if (!conf[i].present || memchr(conf[i].data, 0, conf[i].len) != NULL)
            return -1;
    }
    /* each field is followed by the next one's length or the total length: make the
     * string fields NUL-terminated copies */
    for (int i = 0; i < N_FIELDS; i++) {
        if (!conf[i].present)
            continue;
        char *copy = malloc(conf[i].len + 1);
        if (!copy)
            return -1;
        memcpy(copy, conf[i].data, conf[i].len);
        copy[conf[i].len] = 0;
        conf[i].data = copy;
    }
    free(data);
    return 0;
}

static int buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* All of stdin, or -1 when it cannot be read (the cold path then reports it). */
static int read_stdin(struct buf *b)
{
    char chunk[65536];
    for (;;) {
        ssize_t r = read(0, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (buf_add(b, chunk, (size_t)r) != 0)
            return -1;
    }
}

/* A connection to the service, or -1 when it is not usable. */
static int connect_service(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_uid != 0)
        return -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return -1;
    strcpy(addr.sun_path, path);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return -1;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != 0) {
        close(sock);
        return -1;
    }
    return sock;
}

static int recv_exact(int sock, char *dst, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = recv(sock, dst + done, n - done, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

static void __attribute__((noreturn)) lost(const char *detail)
{
    fail(LOST_CODE,
         "pycni plugin service: the connection broke before the result arrived (", detail);
}

/* Forward the call; its exit status, or -1 to run cold. */
static int forward(int sock, char **argv, const struct buf *in)
{
    struct buf args = {0}, env = {0};
    for (char **a = argv; *a; a++)
        if (buf_add(&args, *a, strlen(*a) + 1) != 0)
            return -1;
    for (char **e = environ; *e; e++)
        if (strchr(*e, '=') && buf_add(&env, *e, strlen(*e) + 1) != 0)
            return -1;
    const char *pkg = conf[F_PACKAGE].data, *tag = conf[F_TAG].data;
    size_t lens[5] = {strlen(pkg), args.len, env.len, strlen(tag), in->len};
    for (int i = 0; i < 5; i++)
        if (lens[i] > LIMITS[i])
            return -1;
    mode_t mask = umask(022);
    umask(mask);

    struct buf req = {0};
    char head[32];
    memcpy(head, "PCNQ", 4);
    head[4] = 0;
    head[5] = FORMAT_VERSION;
    head[6] = 0;
    head[7] = OP_RUN;
    put_u32be(head + 8, (uint32_t)mask);
    for (int i = 0; i < 5; i++)
        put_u32be(head + 12 + 4 * i, (uint32_t)lens[i]);
    if (buf_add(&req, head, sizeof head) || buf_add(&req, pkg, lens[0]) ||
        buf_add(&req, args.data ? args.data : "", args.len) ||
        buf_add(&req, env.data ? env.data : "", env.len) || buf_add(&req, tag, lens[3]) ||
        buf_add(&req, in->data ? in->data : "", in->len))
        return -1;

    int fds[3] = {-1, -1, -1};
    fds[0] = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
    fds[1] = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    fds[2] = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int sent_ok = fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0;
    if (sent_ok) {
        union {
            char raw[CMSG_SPACE(sizeof fds)];
            struct cmsghdr align;
        } control;
        memset(&control, 0, sizeof control);
        struct iovec iov = {.iov_base = req.data, .iov_len = req.len};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.raw,
                             .msg_controllen = sizeof control.raw};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof fds);
        memcpy(CMSG_DATA(cm), fds, sizeof fds);
        ssize_t sent;
        do
            sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
        while (sent < 0 && errno == EINTR);
        size_t off = sent < 0 ? 0 : (size_t)sent;
        sent_ok = sent >= 0;
        while (sent_ok && off < req.len) {
            ssize_t w = send(sock, req.data + off, req.len - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                sent_ok = 0;
            else
                off += (size_t)w;
        }
    }
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(req.data);
    free(args.data);
    free(env.data);
    if (!sent_ok)
        return -1; /* the service did not take the whole request: nothing ran */

    unsigned char rh[20];
    if (recv_exact(sock, (char *)rh, sizeof rh) != 0)
        lost("the service closed the connection before its answer); "
             "the call may have run in part and was not retried");
    if (memcmp(rh, "PCNR", 4) != 0 || rh[4] != 0 || rh[5] != FORMAT_VERSION)
        lost("not a pycni plugin service response); "
             "the call may have run in part and was not retried");
    unsigned kind = (unsigned)rh[6] << 8 | rh[7];
    int32_t status = (int32_t)get_u32be(rh + 8);
    uint32_t n_out = get_u32be(rh + 12), n_err = get_u32be(rh + 16);
    if (kind == KIND_COLD)
        return -1;
    if (kind != KIND_RESULT || n_out > MAX_OUTPUT || n_err > MAX_OUTPUT)
        lost("unexpected response); the call may have run in part and was not retried");
    char *body = malloc((size_t)n_out + n_err + 1);
    if (!body || recv_exact(sock, body, (size_t)n_out + n_err) != 0)
        lost("the service closed the connection in its answer); "
             "the call may have run in part and was not retried");
    write_all(2, body + n_out, n_err);
    write_all(1, body, n_out);
    return status & 0xff;
}

/* Run the plugin in an interpreter of its own, stdin replayed when already read. */
static void __attribute__((noreturn)) run_cold(int argc, char **argv, const struct buf *in)
{
    if (in) {
        int fd = memfd_create("pycni-stdin", MFD_CLOEXEC);
        if (fd < 0)
            fail(SETUP_CODE, "pycni launcher: cannot keep stdin for the interpreter: ",
                 strerror(errno));
        size_t off = 0;
        while (off < in->len) {
            ssize_t w = write(fd, in->data + off, in->len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                fail(SETUP_CODE, "pycni launcher: cannot keep stdin for the interpreter: ",
                     strerror(errno));
            off += (size_t)w;
        }
        if (lseek(fd, 0, SEEK_SET) != 0 || dup2(fd, 0) != 0)
            fail(SETUP_CODE, "pycni launcher: cannot replay stdin: ", strerror(errno));
        close(fd);
    }
    /* python -IS -c SCRIPT ARGV0 ARGV1...: the script drops "-c" from sys.argv */
    char **args = calloc((size_t)argc + 5, sizeof *args);
    if (!args)
        fail(SETUP_CODE, "pycni launcher: out of memory", NULL);
    int n = 0;
    args[n++] = (char *)conf[F_PYTHON].data;
    args[n++] = "-IS";
    args[n++] = "-c";
    args[n++] = (char *)conf[F_COLD].data;
    for (int i = 0; i < argc; i++)
        args[n++] = argv[i];
    if (argc == 0)
        args[n++] = (char *)conf[F_PACKAGE].data;
    args[n] = NULL;
    execv(conf[F_PYTHON].data, args);
    char detail[512];
    snprintf(detail, sizeof detail, "%s: %s", conf[F_PYTHON].data, strerror(errno));
    fail(SETUP_CODE, "pycni launcher: cannot run the interpreter ", detail);
}

int main(int argc, char **argv)
{
    if (load_trailer() != 0)
        fail(SETUP_CODE, "pycni launcher: cannot read the plugin it launches from its own file "
                         "(reinstall it with cnitool plugins install)",
             NULL);
    const char *command = getenv("CNI_COMMAND");
    int version = command && strcmp(command, "VERSION") == 0;
    if (version && conf[F_ANSWER].present) {
        write_all(1, conf[F_ANSWER].data, conf[F_ANSWER].len);
        return 0;
    }
    struct buf in = {0};
    int have_in = 0;
    /* runtimes pass no arguments: with some, this is a command of the plugin's own
     * (such as "dhcp daemon", a long-lived process), never a call for the service */
    if (argc <= 1 && geteuid() == 0) {
        const char *path = getenv("PYCNI_SOCKET");
        if (!path || !*path)
            path = DEFAULT_SOCKET;
        int sock = connect_service(path);
        if (sock >= 0) {
            int status = -1;
            if (version || read_stdin(&in) == 0) {
                have_in = 1;
                status = forward(sock, argv, &in);
            }
            close(sock);
            if (status >= 0)
                return status;
        }
    }
    run_cold(argc, argv, have_in ? &in : NULL);
}
