/**
 * Where this installation of ipip-lab keeps the files it builds the node image from: the repository, or the
 * installed npm package, whichever this module came from. Both the CLI (`gen-spec --compose`, which names it as the
 * build context) and the test harness (which builds the image) need it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder above this module that holds containers/Dockerfile; throws where there is none. */
export function packageRoot(): string {
  let directory = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(directory, 'containers', 'Dockerfile'))) {
    const parent = path.dirname(directory);
    if (parent === directory) throw new Error('cannot find containers/Dockerfile above the ipip-lab installation');
    directory = parent;
  }
  return directory;
}
