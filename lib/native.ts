// Loads the addon: IOMUX_ADDON (an explicit .node path, for the cmake-js and
// sanitizer builds) first, else node-gyp-build: build/Release, then prebuilds/.
import * as path from 'node:path';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type NativeAddon = any;

function load(): NativeAddon {
  const explicit = process.env.IOMUX_ADDON;
  if (explicit) return require(path.resolve(explicit));
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const nodeGypBuild = require('node-gyp-build');
  return nodeGypBuild(path.join(__dirname, '..'));
}

export const native: NativeAddon = load();
