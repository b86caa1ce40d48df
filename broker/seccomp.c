/* The allowlist, from strace -f of the end-to-end suites (issue, rotation,
 * revoke, access, outage, shutdown, vault, ir, aws, csi) cut at the
 * "event=started" log line, plus the paths those runs did not reach but a
 * deployment does: DNS (getent under strace: netlink, UDP, sendmmsg,
 * FIONREAD), TCP keepalives (libpq's default), signal hooks.  Names are
 * resolved on the native architecture; one it does not have (open on
 * aarch64, renameat2 on an old table) is skipped.  Rules with arguments
 * are alternatives: a call passes when one row for it matches. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* libseccomp's header is also called seccomp.h, and broker/ comes first on
 * the include path: CMake passes its full path. */
#ifndef CB_LIBSECCOMP_H
#error "CB_LIBSECCOMP_H (the path of libseccomp's seccomp.h) is not set"
#endif
#include CB_LIBSECCOMP_H

#include "seccomp.h"

/* Allowed whatever the arguments: each string one group of names,
 * separated by spaces. */
static const char *const seccomp_any[] = {
    /* glibc threads (pthread_create, exit, join) and locks: the FUSE,
     * control, scheduler, rotation and revocation threads, libcurl's
     * resolver thread. */
    "set_robust_list rseq futex exit exit_group",
    /* malloc, thread stacks, struct secret pages (MADV_DONTDUMP,
     * MADV_WIPEONFORK, best-effort mlock), realloc of large buffers. */
    "brk mmap munmap mprotect mremap madvise mlock munlock",
    /* OpenSSL's and the hooks' randomness; glibc qsort probes memory once
     * (_SC_PHYS_PAGES). */
    "getrandom sysinfo",
    /* Signals: the blocked termination set and sigwait in main, SIGUSR1
     * that interrupts the FUSE loop's read, libcurl's SIGPIPE juggling;
     * restart_syscall is how the kernel resumes a sleep after SIGSTOP. */
    "rt_sigprocmask rt_sigaction rt_sigtimedwait rt_sigreturn",
    "restart_syscall",
    /* Time: the vDSO mostly, the syscall when it falls back; the
     * scheduler's and the hooks' sleeps. */
    "clock_gettime clock_getres gettimeofday time",
    "clock_nanosleep nanosleep",
    /* Who we are (audit actors, revoke requests, the peer-uid check). */
    "getpid gettid getuid geteuid getgid getegid",
    /* Descriptors: /dev/fuse requests (read, writev), the audit log and
     * rendered files (write, fsync, rename over), the CA bundle and
     * /etc/hosts, resolv.conf, nsswitch.conf (getaddrinfo), /proc/PID/comm
     * of readers and /proc for signal hooks (getdents64).  Older and
     * generic-table twins of one call are listed together. */
    "read pread64 write writev close lseek fcntl",
    "open openat fstat stat lstat newfstatat statx getdents64",
    "fsync fdatasync ftruncate rename renameat renameat2 unlink unlinkat",
    /* Waiting: libcurl, libpq, the control socket, the unmounter's
     * answer, the spawner's replies. */
    "poll ppoll",
    /* Sockets once made: libcurl and libpq (connect, send, recv,
     * SO_ERROR), the control socket (accept4, SO_PEERCRED), getaddrinfo
     * (netlink bind and recvmsg, UDP to the resolver with sendmmsg,
     * connect+getsockname to sort addresses), the spawner's and the
     * unmounter's SOCK_SEQPACKET pairs. */
    "connect accept4 bind getsockname getpeername getsockopt",
    "sendto recvfrom sendmsg recvmsg sendmmsg",
    /* getaddrinfo calls uname (the resolver's domain). */
    "uname",
    /* Reaping the unmounter at exit (waitpid). */
    "wait4",
};

/* An allow rule with argument checks: arg == value, or (arg & mask) ==
 * value when mask is not 0; and, when also, arg2 == value2. */
struct seccomp_rule {
	const char *name;
	unsigned int arg;
	scmp_datum_t value;
	scmp_datum_t mask;
	bool also;
	unsigned int arg2;
	scmp_datum_t value2;
};

static const struct seccomp_rule seccomp_rules[] = {
    /* Sockets of these families only: Unix (PostgreSQL's socket, nscd,
     * the spawner), IPv4 and IPv6 (Vault, PostgreSQL, AWS, http hooks, the
     * resolver), and netlink routing (getaddrinfo's address check): no
     * AF_PACKET, no other netlink family. */
    {"socket", 0, AF_UNIX, 0, false, 0, 0},
    {"socket", 0, AF_INET, 0, false, 0, 0},
    {"socket", 0, AF_INET6, 0, false, 0, 0},
    {"socket", 0, AF_NETLINK, 0, true, 2, NETLINK_ROUTE},
    /* libcurl's wake-up pair (threaded resolver, multi handle). */
    {"socketpair", 0, AF_UNIX, 0, false, 0, 0},
    /* The options libcurl, libpq (keepalives are its default) and glibc's
     * resolver set: no TCP_ULP, no socket filters, no multicast. */
    {"setsockopt", 1, IPPROTO_TCP, 0, true, 2, TCP_NODELAY},
    {"setsockopt", 1, IPPROTO_TCP, 0, true, 2, TCP_KEEPIDLE},
    {"setsockopt", 1, IPPROTO_TCP, 0, true, 2, TCP_KEEPINTVL},
    {"setsockopt", 1, IPPROTO_TCP, 0, true, 2, TCP_KEEPCNT},
    {"setsockopt", 1, IPPROTO_TCP, 0, true, 2, TCP_USER_TIMEOUT},
    {"setsockopt", 1, SOL_SOCKET, 0, true, 2, SO_KEEPALIVE},
    {"setsockopt", 1, SOL_SOCKET, 0, true, 2, SO_RCVTIMEO},
    {"setsockopt", 1, SOL_SOCKET, 0, true, 2, SO_SNDTIMEO},
    {"setsockopt", 1, IPPROTO_IP, 0, true, 2, IP_RECVERR},
    {"setsockopt", 1, IPPROTO_IPV6, 0, true, 2, IPV6_RECVERR},
    /* glibc's resolver sizes an answer (FIONREAD); stdio asks whether a
     * character device is a terminal (TCGETS). */
    {"ioctl", 1, FIONREAD, 0, false, 0, 0},
    {"ioctl", 1, TCGETS, 0, false, 0, 0},
    /* Reading this process's limits, never setting them. */
    {"prlimit64", 0, 0, 0, true, 2, 0},
    {"getrlimit", 0, RLIMIT_NOFILE, 0, false, 0, 0},
    {"getrlimit", 0, RLIMIT_STACK, 0, false, 0, 0},
    /* Signal hooks: the signals hooks.c accepts, to a pid >= 0 (never a
     * process group, never -1). */
    {"kill", 0, 0, 0x80000000U, true, 1, SIGHUP},
    {"kill", 0, 0, 0x80000000U, true, 1, SIGUSR1},
    {"kill", 0, 0, 0x80000000U, true, 1, SIGUSR2},
    {"kill", 0, 0, 0x80000000U, true, 1, SIGTERM},
};

/* Longer than any system call's name. */
#define SECCOMP_NAME_MAX 64

/* The namespace flags and CLONE_THREAD: a clone passes only as a thread
 * of this process. */
#define SECCOMP_CLONE_MASK                                                     \
	(CLONE_THREAD | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |         \
	 CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/* Adds one rule for name on the native architecture; a name this
 * architecture lacks is skipped.  A negative number is libseccomp's
 * pseudo call: real where the architecture multiplexes it (socket through
 * socketcall on i386, which libseccomp rewrites), absent otherwise. */
static int seccomp_add(scmp_filter_ctx ctx, uint32_t action, const char *name,
		       unsigned int n, const struct scmp_arg_cmp *cmp,
		       struct errmsg *err)
{
	int nr = seccomp_syscall_resolve_name(name), r;

	if (nr == __NR_SCMP_ERROR)
		return 0;
	if (nr < 0 && seccomp_syscall_resolve_name_rewrite(
			  seccomp_arch_native(), name) < 0)
		return 0;
	r = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	if (r < 0)
		return errmsg_set(err, r, "seccomp: rule for %s: %s", name,
				  strerror(-r));
	return 0;
}

static struct scmp_arg_cmp seccomp_cmp(unsigned int arg, enum scmp_compare op,
				       scmp_datum_t a, scmp_datum_t b)
{
	struct scmp_arg_cmp c = {arg, op, a, b};

	return c;
}

/* Adds every name of a space-separated list, with any arguments. */
static int seccomp_add_names(scmp_filter_ctx ctx, const char *list,
			     struct errmsg *err)
{
	char name[SECCOMP_NAME_MAX];
	size_t len;
	int r = 0;

	for (;;) {
		list += strspn(list, " ");
		len = strcspn(list, " ");
		if (len == 0 || r < 0)
			return r;
		if (len >= sizeof(name))
			return errmsg_set(err, -ENAMETOOLONG,
					  "seccomp: name too long: %.*s",
					  (int)len, list);
		memcpy(name, list, len);
		name[len] = '\0';
		r = seccomp_add(ctx, SCMP_ACT_ALLOW, name, 0, NULL, err);
		list += len;
	}
}

static int seccomp_add_rule(scmp_filter_ctx ctx,
			    const struct seccomp_rule *rule, struct errmsg *err)
{
	struct scmp_arg_cmp cmp[2];

	if (rule->mask != 0)
		cmp[0] = seccomp_cmp(rule->arg, SCMP_CMP_MASKED_EQ, rule->mask,
				     rule->value);
	else
		cmp[0] = seccomp_cmp(rule->arg, SCMP_CMP_EQ, rule->value, 0);
	cmp[1] = seccomp_cmp(rule->arg2, SCMP_CMP_EQ, rule->value2, 0);
	return seccomp_add(ctx, SCMP_ACT_ALLOW, rule->name, rule->also ? 2 : 1,
			   cmp, err);
}

/* The argument that holds clone's flags: s390 passes the stack first. */
static unsigned int seccomp_clone_flags_arg(void)
{
	uint32_t arch = seccomp_arch_native();

	return arch == SCMP_ARCH_S390 || arch == SCMP_ARCH_S390X ? 1 : 0;
}

/* The rules whose arguments depend on this process or architecture. */
static int seccomp_add_runtime(scmp_filter_ctx ctx, struct errmsg *err)
{
	struct scmp_arg_cmp thread =
	    seccomp_cmp(seccomp_clone_flags_arg(), SCMP_CMP_MASKED_EQ,
			SECCOMP_CLONE_MASK, CLONE_THREAD);
	/* pthread_kill (SIGUSR1 to the FUSE loop) and raise/abort: threads
	 * of this process only. */
	struct scmp_arg_cmp self =
	    seccomp_cmp(0, SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0);
	int r;

	r = seccomp_add(ctx, SCMP_ACT_ALLOW, "clone", 1, &thread, err);
	if (r == 0)
		r = seccomp_add(ctx, SCMP_ACT_ALLOW, "tgkill", 1, &self, err);
	/* clone3 hides its flags in memory the filter cannot read: ENOSYS
	 * sends glibc (2.34+) back to clone. */
	if (r == 0)
		r = seccomp_add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL,
				err);
	return r;
}

#if defined(__SANITIZE_ADDRESS__)
#define SECCOMP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SECCOMP_ASAN 1
#endif
#endif

#ifdef SECCOMP_ASAN
/* AddressSanitizer's runtime, in sanitizer builds only (measured with a
 * user-notification supervisor on a filtered ASan process): every thread
 * gets an alternate signal stack (sigaltstack) and reads its own
 * attributes (pthread_getattr_np: sched_getaffinity); spin locks yield;
 * LeakSanitizer's check at exit stops the threads from a tracer task that
 * lists /proc/self/task (getdents), checks its parent (getppid) and reads
 * their registers (ptrace); a report reads /proc/self/exe.  Without these
 * a sanitizer broker dies with SIGSYS at its first new thread or at
 * exit. */
static const char seccomp_asan_any[] =
    "sigaltstack sched_getaffinity sched_yield getppid getdents readlink";

static const struct seccomp_rule seccomp_asan_rules[] = {
    /* The tracer may attach although the broker is not dumpable. */
    {"prctl", 0, PR_GET_DUMPABLE, 0, false, 0, 0},
    {"prctl", 0, PR_SET_DUMPABLE, 0, false, 0, 0},
    {"prctl", 0, PR_SET_PTRACER, 0, false, 0, 0},
    {"prctl", 0, PR_SET_PDEATHSIG, 0, false, 0, 0},
    {"ptrace", 0, PTRACE_ATTACH, 0, false, 0, 0},
    {"ptrace", 0, PTRACE_CONT, 0, false, 0, 0},
    {"ptrace", 0, PTRACE_DETACH, 0, false, 0, 0},
    {"ptrace", 0, PTRACE_KILL, 0, false, 0, 0},
    {"ptrace", 0, PTRACE_GETREGSET, 0, false, 0, 0},
#ifdef PTRACE_GETREGS
    {"ptrace", 0, PTRACE_GETREGS, 0, false, 0, 0},
#endif
};

static int seccomp_add_asan(scmp_filter_ctx ctx, struct errmsg *err)
{
	/* The tracer task (internal_clone in sanitizer_common). */
	struct scmp_arg_cmp tracer =
	    seccomp_cmp(seccomp_clone_flags_arg(), SCMP_CMP_EQ,
			CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED, 0);
	size_t i;
	int r;

	r = seccomp_add_names(ctx, seccomp_asan_any, err);
	for (i = 0; r == 0 && i < sizeof(seccomp_asan_rules) /
				      sizeof(seccomp_asan_rules[0]);
	     i++)
		r = seccomp_add_rule(ctx, &seccomp_asan_rules[i], err);
	if (r == 0)
		r = seccomp_add(ctx, SCMP_ACT_ALLOW, "clone", 1, &tracer, err);
	return r;
}
#endif

static int seccomp_add_all(scmp_filter_ctx ctx, struct errmsg *err)
{
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && i < sizeof(seccomp_any) / sizeof(seccomp_any[0]);
	     i++)
		r = seccomp_add_names(ctx, seccomp_any[i], err);
	for (i = 0;
	     r == 0 && i < sizeof(seccomp_rules) / sizeof(seccomp_rules[0]);
	     i++)
		r = seccomp_add_rule(ctx, &seccomp_rules[i], err);
	if (r == 0)
		r = seccomp_add_runtime(ctx, err);
#ifdef SECCOMP_ASAN
	if (r == 0)
		r = seccomp_add_asan(ctx, err);
#endif
	return r;
}

static int seccomp_attr(scmp_filter_ctx ctx, enum scmp_filter_attr attr,
			uint32_t value, const char *what, struct errmsg *err)
{
	int r = seccomp_attr_set(ctx, attr, value);

	if (r < 0)
		return errmsg_set(err, r, "seccomp: %s: %s", what,
				  strerror(-r));
	return 0;
}

static int seccomp_install_with(uint32_t deny, struct errmsg *err)
{
	scmp_filter_ctx ctx = seccomp_init(deny);
	int r;

	if (ctx == NULL)
		return errmsg_set(err, -ENOMEM, "seccomp: init failed");
	/* The kernel's own errno from seccomp_load, not -ECANCELED
	 * (libseccomp 2.5.0+; older ones say -ECANCELED). */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	r = seccomp_attr(ctx, SCMP_FLTATR_ACT_BADARCH, deny,
			 "bad-architecture action", err);
	if (r == 0)
		r = seccomp_attr(ctx, SCMP_FLTATR_CTL_NNP, 1, "no_new_privs",
				 err);
	if (r == 0)
		r = seccomp_attr(ctx, SCMP_FLTATR_CTL_TSYNC, 1,
				 "thread synchronisation", err);
	if (r == 0)
		r = seccomp_add_all(ctx, err);
	if (r == 0) {
		r = seccomp_load(ctx);
		if (r < 0)
			(void)errmsg_set(err, r, "seccomp: load: %s",
					 strerror(-r));
	}
	seccomp_release(ctx);
	return r;
}

int seccomp_install(struct errmsg *err)
{
	return seccomp_install_with(SCMP_ACT_KILL_PROCESS, err);
}
