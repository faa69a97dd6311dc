// The project's performance targets (issue 5), each judged from figures taken
// in one run of `iomux report` (or of the benchmark that measures it): the
// target, the measured ratio, met / missed, and where the figure comes from.
import type { SyscallReport } from './syscalls';
import type { DispatchReport } from './dispatch';
import type { EchoReport } from './echo';
import type { VerifyReport } from './verify';
import { mdTable, num } from './lab-run';

export type TargetVerdict = 'met' | 'missed' | 'not measured';

export interface TargetRow {
  id: string;
  target: string;
  /** The limit the measured value is compared with (<=). */
  limit: number;
  /** The figure the verdict is computed from; null when not measured. */
  measured: number | null;
  /** The figure and its context, in words. */
  detail: string;
  verdict: TargetVerdict;
  /** Which section (and command) the figure comes from. */
  source: string;
}

export interface TargetInputs {
  syscalls?: { result: SyscallReport; command: string } | null;
  dispatch?: { result: DispatchReport; command: string } | null;
  echo?: { result: EchoReport; command: string } | null;
  verify?: { result: VerifyReport; command: string } | null;
}

export const TARGET_LIMITS = {
  bindingTax: 1.3,
  dispatchVsNative: 1.25,
  dispatchN: 1000,
  reactorVsCEpoll: 1.15,
  proactorVsCEpoll: 1.0,
  vsNodeNet: 1 / 1.3,
  /** KiB of RSS per idle connection, reactor --backend epoll at 10,000 connections ("2 KB", read as KiB). */
  reactorKiBPerConn: 2,
  idleConns: 10000,
} as const;

const L = TARGET_LIMITS;

function judge(measured: number | null, limit: number): TargetVerdict {
  return measured === null || !Number.isFinite(measured) ? 'not measured' : measured <= limit ? 'met' : 'missed';
}

function notMeasured(id: string, target: string, limit: number, why: string, source: string): TargetRow {
  return { id, target, limit, measured: null, detail: why, verdict: 'not measured', source };
}

export function computeTargets(inp: TargetInputs): TargetRow[] {
  const rows: TargetRow[] = [];

  // 1. Binding tax: epoll_wait with nothing ready, JS / C.
  {
    const id = 'binding-tax';
    const target = `binding tax: epoll_wait with nothing ready, JS / C <= ${L.bindingTax}`;
    const s = inp.syscalls?.result;
    if (!s) rows.push(notMeasured(id, target, L.bindingTax, 'the syscalls section did not run', 'bench syscalls'));
    else {
      const eps = s.rows.filter((r) => r.op === 'wait-idle' && r.backend === 'epoll' && !r.skipped).sort((a, b) => a.fds! - b.fds!);
      const first = eps[0];
      const m = first?.taxCpu ?? null;
      rows.push({
        id,
        target,
        limit: L.bindingTax,
        measured: m,
        detail: first
          ? `${num(m, 2)} at ${first.fds} idle fd by thread CPU time (${num(first.jsCpuNs, 0)} ns from JS / ${num(first.cCpuNs, 0)} ns from C); wall clock ${num(first.tax, 2)}; ` +
            `at ${eps.map((r) => r.fds).join(', ')} fds: ${eps.map((r) => num(r.taxCpu, 2)).join(', ')} (CPU) and ${eps.map((r) => num(r.tax, 2)).join(', ')} (wall)`
          : 'no epoll row',
        verdict: judge(m, L.bindingTax),
        source: inp.syscalls!.command,
      });
    }
  }

  // 2. Dispatch: the EventLoop's per-event cost vs the C loop at n = 1000, every backend.
  {
    const d = inp.dispatch?.result;
    if (!d) rows.push(notMeasured('dispatch', `dispatch n = ${L.dispatchN}: EventLoop per event <= ${L.dispatchVsNative} × C loop, every backend`, L.dispatchVsNative, 'the dispatch section did not run', 'bench dispatch'));
    else {
      const names = [...new Set(d.rows.map((r) => r.backend))];
      for (const b of names) {
        const target = `dispatch n = ${L.dispatchN}, a = 100, w = 1000: EventLoop per event <= ${L.dispatchVsNative} × C loop (${b})`;
        const ratios = d.ratios.filter((r) => r.backend === b && r.runner === 'eventloop');
        let r = ratios.find((x) => x.n === L.dispatchN);
        let note = '';
        if (!r) {
          const below = ratios.filter((x) => x.n < L.dispatchN).sort((a, c) => c.n - a.n)[0];
          const skip = d.skipped.find((x) => x.backend === b && x.n === L.dispatchN);
          if (below && skip) {
            r = below;
            note = ` at n = ${below.n}: ${skip.reason}`;
          }
        }
        if (!r) {
          rows.push(notMeasured(`dispatch-${b}`, target, L.dispatchVsNative, `no EventLoop row at n = ${L.dispatchN}`, inp.dispatch!.command));
          continue;
        }
        const poller = d.ratios.find((x) => x.backend === b && x.n === r!.n && x.runner === 'poller');
        const lean = d.ratios.find((x) => x.backend === b && x.n === r!.n && x.runner === 'lean');
        rows.push({
          id: `dispatch-${b}`,
          target,
          limit: L.dispatchVsNative,
          measured: r.perEventCpuVsNative,
          detail:
            `${num(r.perEventCpuVsNative, 2)} by thread CPU time, ${num(r.perEventVsNative, 2)} by the wall clock${note}` +
            (poller ? `; the same loop over a bare Poller: ${num(poller.perEventCpuVsNative, 2)}` : '') +
            (lean ? `, over the leanest binding: ${num(lean.perEventCpuVsNative, 2)}` : ''),
          verdict: judge(r.perEventCpuVsNative, L.dispatchVsNative),
          source: inp.dispatch!.command,
        });
      }
    }
  }

  // 3. Echo: server CPU µs per request at 1000 connections, 64 B.
  {
    const e = inp.echo?.result;
    const specs = [
      { id: 'echo-reactor-vs-c-epoll', target: `echo 64 B, 1000 conns, server CPU per request: reactor --backend epoll <= ${L.reactorVsCEpoll} × c-epoll`, limit: L.reactorVsCEpoll, arch: 'reactor', vs: 'c-epoll' },
      { id: 'echo-proactor-vs-c-epoll', target: `echo 64 B, 1000 conns, server CPU per request: proactor <= ${L.proactorVsCEpoll} × c-epoll`, limit: L.proactorVsCEpoll, arch: 'proactor', vs: 'c-epoll' },
      { id: 'echo-reactor-vs-node-net', target: 'echo 64 B, 1000 conns, server CPU per request: reactor --backend epoll <= node-net / 1.3', limit: L.vsNodeNet, arch: 'reactor', vs: 'node-net' },
      { id: 'echo-proactor-vs-node-net', target: 'echo 64 B, 1000 conns, server CPU per request: proactor <= node-net / 1.3', limit: L.vsNodeNet, arch: 'proactor', vs: 'node-net' },
    ];
    for (const sp of specs) {
      if (!e) {
        rows.push(notMeasured(sp.id, sp.target, sp.limit, 'the echo section did not run', 'bench echo'));
        continue;
      }
      const cell = (pred: (c: EchoReport['cells'][number]) => boolean) => e.cells.find((c) => c.conns === 1000 && c.size === 64 && c.status === 'ok' && pred(c));
      const a = cell((c) => c.archName === sp.arch && (sp.arch !== 'reactor' || c.backend === 'epoll'));
      const b = cell((c) => c.arch === sp.vs);
      if (!a || !b || a.cpuUsPerRequest === null || b.cpuUsPerRequest === null) {
        const failed = e.cells.filter((c) => c.conns === 1000 && c.status !== 'ok' && (c.archName === sp.arch || c.arch === sp.vs));
        rows.push(
          notMeasured(
            sp.id,
            sp.target,
            sp.limit,
            failed.length ? failed.map((c) => `${c.arch}: ${c.error}`).join('; ') : 'the echo run has no 1000-connection cells for both',
            inp.echo!.command,
          ),
        );
        continue;
      }
      const m = a.cpuUsPerRequest / b.cpuUsPerRequest;
      rows.push({
        id: sp.id,
        target: sp.target,
        limit: sp.limit,
        measured: m,
        detail: `${a.arch} ${num(a.cpuUsPerRequest, 2)} µs / ${b.arch} ${num(b.cpuUsPerRequest, 2)} µs = ${num(m, 2)} (limit ${num(sp.limit, 2)})`,
        verdict: judge(m, sp.limit),
        source: inp.echo!.command,
      });
    }
  }

  // 4. Memory: reactor --backend epoll holding 10,000 idle connections.
  {
    const id = 'memory-reactor-10k';
    const target = `memory: reactor --backend epoll holding ${L.idleConns.toLocaleString('en-US')} idle connections <= ${L.reactorKiBPerConn} KiB RSS per connection`;
    const v = inp.verify?.result;
    const row = v?.rows.find((r) => r.id === 'c10k-memory');
    const re = (row?.values as { reactor?: { arch: string; conns: number; connected: number; rssKbPerConn: number; pssKbPerConn: number | null; held: boolean } } | undefined)?.reactor;
    if (!v || !row) rows.push(notMeasured(id, target, L.reactorKiBPerConn, 'the verify section (c10k-memory) did not run', 'iomux verify --only c10k-memory'));
    else if (!re) rows.push(notMeasured(id, target, L.reactorKiBPerConn, row.reason ?? 'not measured', inp.verify!.command));
    else if (re.conns !== L.idleConns)
      rows.push(notMeasured(id, target, L.reactorKiBPerConn, `measured at ${re.conns} connections, not ${L.idleConns} (${num(re.rssKbPerConn, 2)} KiB each)`, inp.verify!.command));
    else {
      rows.push({
        id,
        target,
        limit: L.reactorKiBPerConn,
        measured: re.rssKbPerConn,
        detail: `${num(re.rssKbPerConn, 2)} KiB RSS (${num(re.pssKbPerConn, 2)} KiB PSS) per connection, ${re.connected.toLocaleString('en-US')} connections held by ${re.arch}, one of them active`,
        verdict: judge(re.rssKbPerConn, L.reactorKiBPerConn),
        source: inp.verify!.command,
      });
    }
  }
  return rows;
}

export function targetsMarkdown(rows: TargetRow[]): string {
  const t = [['target', 'measured', 'verdict', 'detail', 'from']];
  for (const r of rows) t.push([r.target, r.measured === null ? '-' : num(r.measured, 2), `**${r.verdict}**`, r.detail.replace(/\|/g, '\\|'), `\`${r.source}\``]);
  return mdTable(t);
}
