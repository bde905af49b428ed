/**
 * `npm install`'s step for the addon (package.json "install"): builds it with node-gyp. When that fails the install
 * goes on, after saying so plainly: the agent then runs on the raw-socket package and logs why at startup.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const directory = fileURLToPath(new URL('.', import.meta.url));
// node-gyp is on PATH inside npm scripts (npm ships it); outside them, `npx node-gyp` finds it.
const build = spawnSync('node-gyp', ['rebuild', '--directory', directory], { stdio: 'inherit' });
if (build.status !== 0) {
  const why = build.error ? build.error.message : `node-gyp exited with ${build.status ?? build.signal}`;
  process.stderr.write(
    [
      '',
      '==================================================================================================',
      `ipip-lab: the native underlay addon was NOT built (${why}).`,
      'The node agent will use the slower raw-socket package instead and say so when it starts;',
      '`ipip-lab node --underlay native` will refuse to start. To build it: a C compiler, make, python3 and',
      "Node's headers (see native/README.md), then `npm run install` here (or `npm rebuild ipip-lab` where",
      'ipip-lab is a dependency).',
      '==================================================================================================',
      '',
    ].join('\n'),
  );
}
