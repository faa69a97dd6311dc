// SVG charts for the report, rendered headless with Vega-Lite (no DOM, no
// canvas): a spec is compiled to Vega and rendered with renderer 'none'.
/* eslint-disable @typescript-eslint/no-var-requires */

export interface Point {
  series: string;
  x: number | string;
  y: number;
}

export interface ChartOptions {
  title: string;
  xTitle: string;
  yTitle: string;
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
}

function render(spec: Record<string, unknown>): Promise<string> {
  const vega = require('vega');
  const vl = require('vega-lite');
  const compiled = vl.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v5.json', ...spec }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  return view.toSVG().finally(() => view.finalize());
}

function common(o: ChartOptions) {
  return {
    title: o.title,
    width: o.width ?? 560,
    height: o.height ?? 320,
    config: { font: 'sans-serif', axis: { labelFontSize: 11, titleFontSize: 12 }, legend: { labelFontSize: 11 } },
  };
}

/** One line per series, points marked: e.g. dispatch cost vs n per backend. */
export function lineChart(points: Point[], o: ChartOptions): Promise<string> {
  return render({
    ...common(o),
    data: { values: points },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: o.xTitle, scale: o.logX ? { type: 'log' } : {} },
      y: { field: 'y', type: 'quantitative', title: o.yTitle, scale: o.logY ? { type: 'log' } : { zero: true } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  });
}

/** Grouped bars: x is a category (e.g. an architecture), one bar per series. */
export function barChart(points: Point[], o: ChartOptions): Promise<string> {
  return render({
    ...common(o),
    data: { values: points },
    mark: 'bar',
    encoding: {
      x: { field: 'x', type: 'nominal', title: o.xTitle, axis: { labelAngle: -30 } },
      xOffset: { field: 'series' },
      // Grouped, never stacked: stacked bars on a log scale are not drawn at all.
      y: { field: 'y', type: 'quantitative', title: o.yTitle, scale: o.logY ? { type: 'log' } : {}, stack: null },
      color: { field: 'series', type: 'nominal', title: null },
    },
  });
}
