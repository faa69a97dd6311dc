#!/usr/bin/env node
// Writes the two seccomp profiles `npm run test:docker` uses:
//   docker/seccomp-io_uring.json     what a Node server needs, io_uring included
//   docker/seccomp-no-io_uring.json  the same with io_uring_setup/enter/register
//                                    answered by EPERM, as Docker 25+'s default does
// The format is Docker's (`docker run --security-opt seccomp=<file>`): an
// allow-list with EPERM for everything else. The lists are grouped by what
// they are for; they cover what node, npm, python3, make, gcc and the test
// suite call, and stay close to Docker's default profile for an unprivileged
// container (no mount, namespace, module, ptrace or clock-setting calls).
// Usage: node scripts/seccomp-profiles.js [--check]   (--check: exit 1 if stale)
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const EPERM = 1;
const ENOSYS = 38;
const AF_VSOCK = 40;

// The syscalls this project is about.
const IO_URING = ['io_uring_setup', 'io_uring_enter', 'io_uring_register'];

const groups = {
  multiplexers: [
    'select', '_newselect', 'pselect6', 'pselect6_time64',
    'poll', 'ppoll', 'ppoll_time64',
    'epoll_create', 'epoll_create1', 'epoll_ctl', 'epoll_wait', 'epoll_pwait', 'epoll_pwait2',
    'eventfd', 'eventfd2',
    'io_setup', 'io_destroy', 'io_submit', 'io_cancel', 'io_getevents', 'io_pgetevents',
    'io_pgetevents_time64',
  ],
  files: [
    'open', 'openat', 'openat2', 'creat', 'close', 'close_range',
    'read', 'write', 'readv', 'writev', 'pread64', 'pwrite64', 'preadv', 'preadv2', 'pwritev',
    'pwritev2', 'lseek', '_llseek',
    'stat', 'lstat', 'fstat', 'newfstatat', 'statx', 'stat64', 'lstat64', 'fstat64', 'fstatat64',
    'statfs', 'fstatfs', 'statfs64', 'fstatfs64',
    'access', 'faccessat', 'faccessat2', 'getdents', 'getdents64', 'readlink', 'readlinkat',
    'mkdir', 'mkdirat', 'rmdir', 'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2',
    'link', 'linkat', 'symlink', 'symlinkat', 'mknod', 'mknodat',
    'chmod', 'fchmod', 'fchmodat', 'chown', 'fchown', 'lchown', 'fchownat', 'chown32',
    'fchown32', 'lchown32', 'umask',
    'truncate', 'ftruncate', 'truncate64', 'ftruncate64', 'fallocate', 'fadvise64',
    'fadvise64_64', 'readahead', 'fsync', 'fdatasync', 'sync', 'syncfs', 'sync_file_range',
    'flock', 'fcntl', 'fcntl64', 'dup', 'dup2', 'dup3', 'ioctl',
    'utime', 'utimes', 'utimensat', 'utimensat_time64', 'futimesat',
    'chdir', 'fchdir', 'getcwd',
    'copy_file_range', 'sendfile', 'sendfile64', 'splice', 'tee', 'vmsplice',
    'getxattr', 'lgetxattr', 'fgetxattr', 'setxattr', 'lsetxattr', 'fsetxattr', 'listxattr',
    'llistxattr', 'flistxattr', 'removexattr', 'lremovexattr', 'fremovexattr',
    'inotify_init', 'inotify_init1', 'inotify_add_watch', 'inotify_rm_watch', 'fanotify_mark',
    'memfd_create', 'name_to_handle_at',
  ],
  memory: [
    'brk', 'mmap', 'mmap2', 'munmap', 'mprotect', 'mremap', 'madvise', 'mincore', 'msync',
    'mlock', 'mlock2', 'munlock', 'mlockall', 'munlockall', 'remap_file_pages', 'membarrier',
    'pkey_alloc', 'pkey_free', 'pkey_mprotect',
  ],
  processes: [
    'execve', 'execveat', 'exit', 'exit_group', 'fork', 'vfork', 'wait4', 'waitid', 'waitpid',
    'kill', 'tkill', 'tgkill', 'pidfd_open', 'pidfd_send_signal',
    'getpid', 'getppid', 'gettid', 'getpgid', 'setpgid', 'getpgrp', 'getsid', 'setsid',
    'getuid', 'geteuid', 'getgid', 'getegid', 'getresuid', 'getresgid', 'getgroups',
    'getuid32', 'geteuid32', 'getgid32', 'getegid32', 'getresuid32', 'getresgid32',
    'getgroups32',
    'setuid', 'setgid', 'setreuid', 'setregid', 'setresuid', 'setresgid', 'setgroups',
    'setfsuid', 'setfsgid', 'setuid32', 'setgid32', 'setreuid32', 'setregid32', 'setresuid32',
    'setresgid32', 'setgroups32', 'setfsuid32', 'setfsgid32',
    'capget', 'capset', 'prctl', 'seccomp', 'set_tid_address', 'set_robust_list',
    'get_robust_list', 'rseq', 'futex', 'futex_time64', 'futex_waitv',
    'get_thread_area', 'set_thread_area',
    'sched_yield', 'sched_getaffinity', 'sched_setaffinity', 'sched_getparam',
    'sched_setparam', 'sched_getscheduler', 'sched_setscheduler', 'sched_get_priority_max',
    'sched_get_priority_min', 'sched_rr_get_interval', 'sched_rr_get_interval_time64',
    'sched_getattr', 'sched_setattr', 'getpriority', 'setpriority', 'ioprio_get', 'ioprio_set',
    'getrlimit', 'setrlimit', 'ugetrlimit', 'prlimit64', 'getrusage', 'times',
    'uname', 'sysinfo', 'getcpu', 'getrandom', 'restart_syscall',
  ],
  signals: [
    'rt_sigaction', 'rt_sigprocmask', 'rt_sigreturn', 'rt_sigpending', 'rt_sigsuspend',
    'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_sigqueueinfo', 'rt_tgsigqueueinfo',
    'sigaltstack', 'sigprocmask', 'sigreturn', 'signalfd', 'signalfd4', 'pause', 'alarm',
  ],
  time: [
    'clock_gettime', 'clock_gettime64', 'clock_getres', 'clock_getres_time64',
    'clock_nanosleep', 'clock_nanosleep_time64', 'nanosleep', 'gettimeofday', 'time',
    'getitimer', 'setitimer', 'timer_create', 'timer_delete', 'timer_gettime',
    'timer_gettime64', 'timer_settime', 'timer_settime64', 'timer_getoverrun',
    'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime',
    'timerfd_settime64',
  ],
  sockets: [
    'socketpair', 'bind', 'listen', 'accept', 'accept4', 'connect', 'getsockname',
    'getpeername', 'getsockopt', 'setsockopt', 'shutdown', 'send', 'recv', 'sendto', 'recvfrom',
    'sendmsg', 'recvmsg', 'sendmmsg', 'recvmmsg', 'recvmmsg_time64', 'socketcall',
  ],
  ipc: [
    'pipe', 'pipe2', 'ipc', 'shmget', 'shmat', 'shmdt', 'shmctl', 'semget', 'semop', 'semctl',
    'semtimedop', 'semtimedop_time64', 'msgget', 'msgsnd', 'msgrcv', 'msgctl', 'mq_open',
    'mq_unlink', 'mq_timedsend', 'mq_timedsend_time64', 'mq_timedreceive',
    'mq_timedreceive_time64', 'mq_notify', 'mq_getsetattr',
  ],
};

// clone(2) without any namespace flag (those need CAP_SYS_ADMIN).
const CLONE_NEW_ANY =
  0x00020000 /* NEWNS */ | 0x02000000 /* NEWCGROUP */ | 0x04000000 /* NEWUTS */ |
  0x08000000 /* NEWIPC */ | 0x10000000 /* NEWUSER */ | 0x20000000 /* NEWPID */ |
  0x40000000; /* NEWNET */

function profile(allowUring) {
  const names = Object.values(groups).flat();
  if (allowUring) names.push(...IO_URING);
  const rules = [
    { names: [...new Set(names)].sort(), action: 'SCMP_ACT_ALLOW' },
    {
      comment: 'socket(2) for every family but AF_VSOCK',
      names: ['socket'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: AF_VSOCK, valueTwo: 0, op: 'SCMP_CMP_NE' }],
    },
    {
      comment: 'personality(2): query, and the Linux/32-bit/no-ASLR personas only',
      names: ['personality'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: 0, valueTwo: 0, op: 'SCMP_CMP_EQ' }],
    },
    ...[0x0008, 0x20000, 0x20008, 0xffffffff].map((persona) => ({
      names: ['personality'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: persona, valueTwo: 0, op: 'SCMP_CMP_EQ' }],
    })),
    {
      comment: 'clone(2) for threads and processes, never with a CLONE_NEW* flag',
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: CLONE_NEW_ANY, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      excludes: { arches: ['s390', 's390x'] },
    },
    {
      comment: 'clone3 cannot be filtered by flags: ENOSYS makes libc fall back to clone',
      names: ['clone3'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: ENOSYS,
    },
    { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['amd64', 'x32'] } },
    {
      names: ['set_tls', 'cacheflush', 'breakpoint', 'arm_fadvise64_64', 'arm_sync_file_range',
        'sync_file_range2'],
      action: 'SCMP_ACT_ALLOW',
      includes: { arches: ['arm', 'arm64'] },
    },
  ];
  if (!allowUring) {
    rules.push({
      comment: 'io_uring denied with EPERM, as Docker 25 and later do by default',
      names: [...IO_URING],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
    });
  }
  return {
    comment: allowUring
      ? 'iomux: an unprivileged container profile that permits io_uring (scripts/seccomp-profiles.js)'
      : 'iomux: the same profile with io_uring denied by EPERM (scripts/seccomp-profiles.js)',
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    archMap: [
      { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
      { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
    ],
    syscalls: rules,
  };
}

const outputs = {
  'docker/seccomp-io_uring.json': profile(true),
  'docker/seccomp-no-io_uring.json': profile(false),
};

module.exports = { outputs, IO_URING, groups };

if (require.main === module) {
  const root = path.join(__dirname, '..');
  const check = process.argv.includes('--check');
  let stale = false;
  for (const [rel, obj] of Object.entries(outputs)) {
    const file = path.join(root, rel);
    const text = JSON.stringify(obj, null, 2) + '\n';
    const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (old === text) continue;
    if (check) {
      console.error(`${rel} is stale: run node scripts/seccomp-profiles.js`);
      stale = true;
    } else {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
      console.log(`wrote ${rel}`);
    }
  }
  process.exit(stale ? 1 : 0);
}
