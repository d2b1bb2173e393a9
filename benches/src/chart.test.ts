import { describe, expect, it } from 'vitest';
import { panels, renderChart } from './chart.js';
import { buildRows } from './rows.js';
import { sampleResults } from './sample-results.js';

/*
 * wellFormed: a small XML well-formedness check -- one root element, every tag closed in order,
 * attributes quoted -- enough to catch a broken SVG without an XML library.
 */
function wellFormed(xml: string): { root: string; tags: string[] } {
  const body = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  const tags: string[] = [];
  let root = '';
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"]*")*)\s*(\/?)>|<|>/g;
  for (let m = re.exec(body); m !== null; m = re.exec(body)) {
    if (m[2] === undefined) throw new Error(`stray ${m[0]} at ${m.index}`);
    const [, close, name, , self] = m;
    if (close === '/') {
      if (stack.pop() !== name) throw new Error(`</${name}> closes the wrong element at ${m.index}`);
      continue;
    }
    if (stack.length === 0) {
      if (root !== '') throw new Error('more than one root element');
      root = name;
    }
    tags.push(name);
    if (self !== '/') stack.push(name);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  return { root, tags };
}

describe('chart.svg', () => {
  const sample = sampleResults();
  const rows = buildRows(sample.measurements, sample.autoThreshold, sample.soak);
  const svg = renderChart(rows, 'test');

  it('is well-formed SVG with the SVG namespace', () => {
    const { root } = wellFormed(svg);
    expect(root).toBe('svg');
    expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
  });

  it('is self-contained: no script, no external reference', () => {
    expect(svg).not.toMatch(/<script/i);
    expect(svg.replace('http://www.w3.org/2000/svg', '')).not.toMatch(/https?:\/\/|href=/i);
  });

  it('has one polyline per mode in each suite', () => {
    const lines = [...svg.matchAll(/<polyline[^>]*data-suite="([^"]+)" data-mode="([^"]+)"/g)].map(
      (m) => `${m[1]}/${m[2]}`,
    );
    expect(lines.sort()).toEqual(
      [
        'null-sink/copy',
        'null-sink/loan',
        'null-sink/auto',
        'tcp/copy',
        'tcp/loan',
        'tcp/auto',
        'tcp/raw',
        'echo/copy',
        'echo/loan',
        'echo/raw',
        'loan-cost/copy',
        'loan-cost/loan',
        'latency/copy',
        'latency/loan',
        'latency/raw',
      ].sort(),
    );
  });

  it('puts a point on each polyline per size', () => {
    const tcpLoan = svg.match(/<polyline[^>]*data-suite="tcp" data-mode="loan" points="([^"]+)"/)![1];
    expect(tcpLoan.split(' ')).toHaveLength(2);
  });

  it('leaves out suites with no rows, and still draws with none at all', () => {
    expect(panels(rows.filter((r) => r.suite !== 'echo')).map((p) => p.suite)).toEqual([
      'null-sink',
      'loan-cost',
      'tcp',
      'latency',
    ]);
    const empty = renderChart([]);
    expect(wellFormed(empty).root).toBe('svg');
    expect(empty).toContain('no results');
  });
});
