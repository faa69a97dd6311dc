import { describe, expect, it } from 'vitest';
import { barChart, lineChart } from '../lib/bench/charts';

describe('charts', () => {
  it('renders a line chart with every series to SVG', async () => {
    const svg = await lineChart(
      [
        { series: 'epoll', x: 100, y: 1 },
        { series: 'epoll', x: 1000, y: 1.1 },
        { series: 'poll', x: 100, y: 2 },
        { series: 'poll', x: 1000, y: 20 },
      ],
      { title: 'dispatch', xTitle: 'n', yTitle: 'µs per event', logX: true },
    );
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('epoll');
    expect(svg).toContain('poll');
    expect(svg).toContain('µs per event');
  });

  it('renders grouped bars', async () => {
    const svg = await barChart(
      [
        { series: 'rss', x: 'threads', y: 10 },
        { series: 'rss', x: 'reactor', y: 2 },
      ],
      { title: 'memory', xTitle: 'arch', yTitle: 'KiB per connection' },
    );
    expect(svg).toContain('threads');
    expect(svg).toContain('KiB per connection');
  });
});
