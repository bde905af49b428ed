#!/usr/bin/env node
// The `kubectl` of a node container (containers/Dockerfile links it onto the PATH).
import { endQuietlyWhenStdoutCloses } from './common.js';
import { runKubectl } from './kubectl.js';

endQuietlyWhenStdoutCloses();
process.exitCode = await runKubectl(process.argv.slice(2));
