// bench/threadcost: what a second thread in a process costs each of the
// process's system calls on a file descriptor, as the worker's event loop
// makes them (make bench, part b; docs/performance.md).
//
// Three kinds of process, each a fresh fork of this one, pinned to the CPU
// given (the core benchmark 2 pins its workers to):
//   alone    - one thread, as a plain nginx worker;
//   threads  - with an idle second thread, as a worker with a thread_pool:
//              the kernel's file table is shared, so every system call on
//              an fd takes and drops a reference on its file, and glibc's
//              wrappers switch cancellation on and off around the call;
//   unshared - the same, but the idle thread gave up the shared file table
//              (unshare(CLONE_FILES)): the table is the caller's alone again,
//              to show which of the two costs is which.
// Each process times N calls of: read(2) of one byte from /dev/zero through
// glibc's read() and through syscall() (no cancellation point), fstat(2)
// and pread(2) on the same fd, write(2) of a byte to /dev/null, and
// getppid(2), which touches no fd.
// The kinds take turns, R rounds; the medians of the rounds are printed as
//   kind call ns
// lines, one per kind and call, for bench/run to read.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

double now_ns() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

int ready_pipe[2];

// A child's way out when a call fails: what failed and why, on stderr.
[[noreturn]] void die(const char *what) {
    std::fprintf(stderr, "threadcost: %s: %s\n", what, std::strerror(errno));
    _exit(2);
}

void *idle_thread(void *arg) {
    bool unshare_files = arg != nullptr;
    char ok = 1;
    if (unshare_files && unshare(CLONE_FILES) != 0) {
        std::fprintf(stderr, "threadcost: unshare(CLONE_FILES): %s\n", std::strerror(errno));
        ok = 0;
    }
    if (write(ready_pipe[1], &ok, 1) != 1) die("write to the parent thread");
    for (;;) pause();
    return nullptr;
}

const char *const kCalls[] = {"read", "raw_read", "fstat", "pread", "write", "getppid"};
constexpr int kNCalls = 6;

// In the child: the calls' mean cost in ns, written to `out` as kNCalls doubles.
void measure(int kind, long n, int out) {
    if (kind > 0) {
        if (pipe(ready_pipe) != 0) die("pipe");
        pthread_t t;
        void *arg = kind == 2 ? reinterpret_cast<void *>(1) : nullptr;
        int rc = pthread_create(&t, nullptr, idle_thread, arg);
        if (rc != 0) {
            errno = rc;
            die("pthread_create");
        }
        char ok = 0;
        if (read(ready_pipe[0], &ok, 1) != 1) die("read from the idle thread");
        if (!ok) _exit(2);  // it said why
    }
    int fd = open("/dev/zero", O_RDONLY);
    if (fd < 0) die("/dev/zero");
    int null = open("/dev/null", O_WRONLY);
    if (null < 0) die("/dev/null");
    char b[8];
    struct stat st {};
    double cost[kNCalls];
    for (int c = 0; c < kNCalls; c++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            switch (c) {
                case 0:
                    if (read(fd, b, 1) != 1) die("read");
                    break;
                case 1:
                    if (syscall(SYS_read, fd, b, 1) != 1) die("syscall(SYS_read)");
                    break;
                case 2:
                    if (fstat(fd, &st) != 0) die("fstat");
                    break;
                case 3:
                    if (pread(fd, b, 1, 0) != 1) die("pread");
                    break;
                case 4:
                    if (write(null, b, 1) != 1) die("write");
                    break;
                default:
                    (void)syscall(SYS_getppid);
            }
        }
        cost[c] = (now_ns() - t0) / static_cast<double>(n);
    }
    if (write(out, cost, sizeof cost) != static_cast<ssize_t>(sizeof cost))
        die("write to the parent");
    _exit(0);
}

// A whole decimal number in [lo, hi], or false.
bool number(const char *text, long lo, long hi, long *out) {
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) return false;
    *out = v;
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    long n = 300000;
    long rounds = 7;
    long cpu = -1;
    const char *usage =
        "usage: threadcost [-n calls (1000-100000000)] [--rounds R (1-1000)] [--cpu N]\n";
    for (int i = 1; i < argc; i += 2) {
        std::string a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
        bool ok = v != nullptr && ((a == "-n" && number(v, 1000, 100000000, &n)) ||
                                   (a == "--rounds" && number(v, 1, 1000, &rounds)) ||
                                   (a == "--cpu" && number(v, 0, CPU_SETSIZE - 1, &cpu)));
        if (!ok) {
            std::fprintf(stderr, "threadcost: bad argument %s%s%s\n%s", a.c_str(), v ? " " : "",
                         v ? v : "", usage);
            return 2;
        }
    }
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) {
            std::perror("threadcost: sched_setaffinity");
            return 2;
        }
    }
    const char *const kinds[] = {"alone", "threads", "unshared"};
    std::map<std::string, std::vector<double>> samples;
    for (long r = 0; r < rounds; r++) {
        for (int j = 0; j < 3; j++) {
            int kind = static_cast<int>((j + r) % 3);  // a drift of the machine meets every kind
            int p[2];
            if (pipe(p) != 0) return 2;
            pid_t pid = fork();
            if (pid < 0) return 2;
            if (pid == 0) {
                close(p[0]);
                measure(kind, n, p[1]);
            }
            close(p[1]);
            double cost[kNCalls];
            ssize_t got = read(p[0], cost, sizeof cost);
            close(p[0]);
            int status = 0;
            waitpid(pid, &status, 0);
            if (got != static_cast<ssize_t>(sizeof cost) || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0) {
                std::fprintf(stderr, "threadcost: the %s process failed (its reason above)\n",
                             kinds[kind]);
                return 1;
            }
            for (int c = 0; c < kNCalls; c++)
                samples[std::string(kinds[kind]) + " " + kCalls[c]].push_back(cost[c]);
        }
    }
    for (const char *k : kinds) {
        for (const char *c : kCalls) {
            auto &v = samples[std::string(k) + " " + c];
            std::sort(v.begin(), v.end());
            std::printf("%s %s %.1f\n", k, c, v[v.size() / 2]);
        }
    }
    return 0;
}
