// binding.gyp is the source of truth; CMakeLists.txt must build the same sources.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '..');

function gypSources(): string[] {
  const gyp = JSON.parse(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8'));
  return gyp.targets.find((t: { target_name: string }) => t.target_name === 'iomux').sources;
}

function cmakeSources(): string[] {
  const text = fs.readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8');
  const m = /set\(IOMUX_SOURCES\s+([^)]*)\)/m.exec(text);
  if (!m) throw new Error('CMakeLists.txt has no set(IOMUX_SOURCES ...)');
  return m[1].split(/\s+/).filter(Boolean);
}

describe('build files', () => {
  it('binding.gyp and CMakeLists.txt list the same native sources', () => {
    expect([...cmakeSources()].sort()).toEqual([...gypSources()].sort());
  });

  it('every native .cc file is built, and every listed source exists', () => {
    const onDisk = fs
      .readdirSync(path.join(root, 'native'), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.cc'))
      .map((f) => `native/${f}`)
      .sort();
    expect([...gypSources()].sort()).toEqual(onDisk);
  });
});
