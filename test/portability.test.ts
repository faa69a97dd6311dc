// native/ must compile on macOS and the BSDs by construction: every
// Linux-only header, call or constant sits inside a Linux guard. This scans
// the sources (comments and string literals removed) with a small
// preprocessor-condition tracker; it cannot prove a build, but it catches the
// usual slip (an accept4 or epoll_ctl outside #ifdef __linux__) before a macOS
// runner does. .github/workflows/macos.yml does the real build there.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..');

// Linux-only (not on macOS, or on neither macOS nor FreeBSD) names.
const LINUX_ONLY = [
  /\bepoll_\w+/, /\bEPOLL[A-Z_]+\b/, /\beventfd\w*\b/, /\bEFD_[A-Z]+\b/, /\bsignalfd\w*/, /\btimerfd_\w+/,
  /\baccept4\b/, /\bpipe2\b/, /\bSOCK_NONBLOCK\b/, /\bSOCK_CLOEXEC\b/, /\bMSG_NOSIGNAL\b/, /\bMSG_MORE\b/,
  /\bio_uring\w*/, /\bIORING_\w+/, /\bsplice\b/, /\bvmsplice\b/, /\bsendmmsg\b/, /\brecvmmsg\b/,
  /\bTCP_(QUICKACK|CORK|DEFER_ACCEPT|USER_TIMEOUT|FASTOPEN_CONNECT)\b/, /\bSO_(INCOMING_CPU|BUSY_POLL|ATTACH_\w+)\b/,
  /\bprctl\b/, /\bgettid\b/, /\bsched_[gs]etaffinity\b/, /\bcpu_set_t\b/, /\bCPU_(SET|ZERO|ISSET|COUNT)\b/,
  /\bmemfd_create\b/, /\bmremap\b/, /\bMAP_POPULATE\b/, /\bsysinfo\b/, /\bmalloc_trim\b/, /\bmallinfo2?\b/,
  /\bstatx\b/, /\bSIGRTMIN\b/, /\bSIGRTMAX\b/, /\bRLIMIT_(RTPRIO|MSGQUEUE|NICE|SIGPENDING)\b/,
  /<sys\/(epoll|eventfd|signalfd|timerfd|sendfile|prctl|sysinfo|syscall)\.h>/, /<linux\//, /<liburing\.h>/,
  /\bsyscall\s*\(/, /\b__NR_\w+/, /\bSYS_\w+/,
];

// Conditions under which a block is Linux-only: it names __linux__ (not
// negated) or IOMUX_HAVE_URING / IOMUX_LIBKQUEUE, which build-config.js sets
// only on Linux, or it tests for a Linux-only feature itself (#ifdef
// MSG_NOSIGNAL, #if defined(SOCK_CLOEXEC)); and it has no `||`
// (`defined(__APPLE__) || defined(IOMUX_LIBKQUEUE)` is compiled on macOS too).
const LINUX_MACROS = ['__linux__', '__linux', 'IOMUX_HAVE_URING', 'IOMUX_LIBKQUEUE'];

function isLinuxMacro(name: string): boolean {
  return LINUX_MACROS.includes(name) || LINUX_ONLY.some((re) => re.test(name) && re.exec(name)![0] === name);
}

/** The macros an #if/#ifdef expression tests with defined(), split by negation. */
function tested(expr: string): { positive: string[]; negative: string[] } {
  const positive: string[] = [];
  const negative: string[] = [];
  for (const m of expr.matchAll(/(!\s*)?defined\s*\(?\s*(\w+)\s*\)?/g)) (m[1] ? negative : positive).push(m[2]);
  // A bare macro in #if (`#if __linux__`)
  for (const m of expr.matchAll(/(?<![\w(])(!\s*)?(__linux__|__linux|IOMUX_HAVE_URING|IOMUX_LIBKQUEUE)\b/g)) {
    if (!expr.slice(Math.max(0, (m.index ?? 0) - 9), m.index).includes('defined')) (m[1] ? negative : positive).push(m[2]);
  }
  return { positive, negative };
}

function linuxOnly(expr: string): boolean {
  return !expr.includes('||') && tested(expr).positive.some(isLinuxMacro);
}
function notLinux(expr: string): boolean {
  return !expr.includes('||') && tested(expr).negative.some(isLinuxMacro);
}

function strip(src: string): string {
  // Comments and string/char literals out, line structure kept.
  return src.replace(
    /\/\*[\s\S]*?\*\/|\/\/[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'/g,
    (m) => (m.startsWith('/*') ? m.replace(/[^\n]/g, ' ') : m.startsWith('//') ? '' : '""'),
  );
}

/** Lines (1-based) outside any Linux-only block that use a Linux-only name. */
function unguarded(src: string): Array<{ line: number; text: string; name: string }> {
  // Each frame: is the current branch Linux-only; was any earlier branch (for #else).
  const stack: Array<{ linux: boolean; negated: boolean }> = [];
  const inLinux = () => stack.some((f) => f.linux);
  const found: Array<{ line: number; text: string; name: string }> = [];
  const lines = strip(src).split('\n');
  const original = src.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i].trim();
    const d = /^#\s*(ifdef|ifndef|if|elif|else|endif)\b(.*)$/.exec(l);
    if (d) {
      const [, kw, rest] = d;
      if (kw === 'ifdef' || kw === 'ifndef' || kw === 'if') {
        const expr = kw === 'ifdef' ? `defined(${rest.trim()})` : kw === 'ifndef' ? `!defined(${rest.trim()})` : rest;
        stack.push({ linux: linuxOnly(expr), negated: notLinux(expr) });
      } else if (kw === 'elif') {
        const top = stack[stack.length - 1];
        if (top) {
          top.linux = linuxOnly(rest);
          top.negated = false;
        }
      } else if (kw === 'else') {
        const top = stack[stack.length - 1];
        // The #else of "not Linux" is Linux; the #else of "Linux" is not.
        if (top) {
          top.linux = top.negated;
          top.negated = false;
        }
      } else {
        stack.pop();
      }
      continue;
    }
    if (inLinux()) continue;
    for (const re of LINUX_ONLY) {
      const m = re.exec(lines[i]);
      if (m) {
        found.push({ line: i + 1, text: original[i].trim(), name: m[0] });
        break;
      }
    }
  }
  return found;
}

describe('native/ portability', () => {
  it('the scanner sees guards, negated guards, #else and #elif', () => {
    const src = [
      '#ifdef __linux__', 'accept4(a);', '#else', 'accept(a);', '#endif',
      '#if !defined(__linux__)', 'pipe(p);', '#else', 'pipe2(p, 0);', '#endif',
      '#ifdef __APPLE__', 'x();', '#elif defined(__linux__)', 'epoll_create1(0);', '#endif',
      '#if defined(__APPLE__) || defined(IOMUX_LIBKQUEUE)', 'pipe2(p, 0);', '#endif',
      '#ifdef SOCK_CLOEXEC', 'socket(d, t | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);', '#else', 'socket(d, t, 0);', '#endif',
      '#ifndef MSG_NOSIGNAL', 'x = MSG_NOSIGNAL;', '#else', 'send(fd, b, n, MSG_NOSIGNAL);', '#endif',
      '// epoll_wait in a comment', 'const char* s = "eventfd in a string";',
      'int fd = epoll_create1(0);',
    ].join('\n');
    expect(unguarded(src)).toEqual([
      { line: 17, text: 'pipe2(p, 0);', name: 'pipe2' },
      { line: 25, text: 'x = MSG_NOSIGNAL;', name: 'MSG_NOSIGNAL' },
      { line: 31, text: 'int fd = epoll_create1(0);', name: 'epoll_create1' },
    ]);
  });

  it('every Linux-only header, call and constant in native/ is inside a Linux guard', () => {
    const dir = path.join(root, 'native');
    const files = fs
      .readdirSync(dir, { recursive: true })
      .map(String)
      .filter((f) => /\.(cc|h|cpp|hpp|c)$/.test(f));
    expect(files.length).toBeGreaterThan(0);
    const problems: string[] = [];
    for (const f of files) {
      for (const p of unguarded(fs.readFileSync(path.join(dir, f), 'utf8'))) {
        problems.push(`native/${f}:${p.line}: ${p.name} outside a Linux guard: ${p.text}`);
      }
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });
});
